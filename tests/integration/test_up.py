"""`filerelay up` on embedded defaults: no server to install, documents delivered, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.processes import environment, filerelay_command, free_port, wait_ready
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow


def test_up_relays_on_embedded_defaults_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}")
    env.pop("FILERELAY_BROKER_URL", None)  # the embedded broker
    proc = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "up", "--port", str(port)], env=env, start_new_session=True
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = {command for c in children if (command := filerelay_command(c))}
        assert {"api", "worker", "sweeper"} <= commands
        sap = SapClient(f"http://127.0.0.1:{port}/archivelink/acme/production")
        assert sap.create("UPDOC1", "data", b"%PDF-1.4 embedded", "application/pdf").status == 201
        target = home / "out" / "Z1" / "UPDOC1_data.pdf"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert target.read_bytes() == b"%PDF-1.4 embedded"
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
