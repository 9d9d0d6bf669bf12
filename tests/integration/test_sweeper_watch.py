"""A real `filerelay sweeper --metrics-port`: it serves its last pass, touches its heartbeat after each
pass, and `filerelay probe sweeper` passes while it runs and fails once it is stopped (SIGSTOP: a
sweeper that hangs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from filerelay.db.migrate import upgrade
from tests.support.metrics import parse
from tests.support.processes import environment, free_port

pytestmark = pytest.mark.slow


def last_pass(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            samples = parse(response.read().decode())
    except (urllib.error.URLError, OSError):
        return 0.0
    return samples.get(("filerelay_sweeper_last_pass_timestamp_seconds", frozenset()), 0.0)


def probe(env: dict[str, str], *args: str) -> int:
    command = [sys.executable, "-m", "filerelay.cli", "probe", "sweeper", *args]
    return subprocess.run(command, env=env, capture_output=True, timeout=60).returncode


def test_the_sweeper_serves_its_last_pass_and_its_probe_follows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    database = f"sqlite:///{tmp_path / 'filerelay.db'}"
    upgrade(database)
    env = environment(home, database, FILERELAY_SWEEP_INTERVAL_SECONDS="0.5")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("FILERELAY_BROKER_URL", None)
    port = free_port()
    assert probe(env) == 1  # nothing has run yet
    started = time.time()
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "sweeper", "--metrics-port", str(port)],
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while last_pass(port) < started and time.monotonic() < deadline:
            assert sweeper.poll() is None, "the sweeper exited"
            time.sleep(0.2)
        assert last_pass(port) >= started
        assert probe(env) == 0
        # A sweeper that hangs: its heartbeat stops, and the probe fails once the file is older than allowed.
        os.kill(sweeper.pid, signal.SIGSTOP)
        time.sleep(3)
        assert probe(env, "--max-age", "2") == 1
        os.kill(sweeper.pid, signal.SIGCONT)
        time.sleep(2)
        assert probe(env, "--max-age", "2") == 0
    finally:
        os.kill(sweeper.pid, signal.SIGCONT)
        sweeper.terminate()
        sweeper.wait(timeout=30)
