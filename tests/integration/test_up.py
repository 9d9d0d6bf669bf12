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

from filerelay.queue import FolderMarks
from tests.support.embedded_load import landed, run_load
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
        # The worker took the folder kind's wake-up (an empty file), and nothing else carries one.
        assert FolderMarks(home / "broker" / "wake").waiting() == []
        assert sorted(p.name for p in (home / "broker").iterdir()) == ["wake"]
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def _up_once(tmp_path: Path, home: Path, port: int) -> str:
    """Run `filerelay up` on the demo configuration until ready, stop it; what it printed."""
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}", FILERELAY_CONFIG=str(DEMO))
    env.pop("FILERELAY_BROKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "up", "--port", str(port)],
        env=env,
        cwd=tmp_path,  # the demo writes under $FILERELAY_HOME/out, whatever the working directory
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        time.sleep(0.5)  # the announcement follows readiness
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


def test_up_on_the_demo_prints_the_console_and_a_key_that_signs_in_once(tmp_path: Path) -> None:
    import re

    import requests

    home, port = tmp_path / "home", free_port()
    first = _up_once(tmp_path, home, port)
    assert f"Console: http://127.0.0.1:{port}/ui/demo/local/" in first
    (key,) = re.findall(r"^\s+(fr_live_\S+)$", first, re.M)
    # The key is an admin key of the demo workspace: it signs in to the console.
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}", FILERELAY_CONFIG=str(DEMO))
    env.pop("FILERELAY_BROKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        browser = requests.Session()
        login = browser.get(f"http://127.0.0.1:{port}/ui/demo/local/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        signed = browser.post(login.url, data={"api_key": key, "csrf_token": token[1]}, timeout=10)
        assert signed.url.endswith("/ui/demo/local/")
        assert "Audit log" in signed.text  # an admin's navigation
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    # A restart mints no second key: the workspace has a live admin key now.
    again = _up_once(tmp_path, home, port)
    assert "Console: " in again
    assert "fr_live_" not in again


def test_up_stays_up_under_mixed_load_and_delivers_every_201_though_its_worker_is_killed(tmp_path: Path) -> None:
    """Creates, gets, infos and searches from 8 connections; the worker SIGKILLed in the middle: `up`
    starts it again, keeps serving, and every document answered 201 lands in the folder."""
    home = tmp_path / "home"
    report = run_load(home, seconds=20, connections=8, kill_worker_at=8)

    assert report.up_alive
    assert len(report.worker_pids) == 2, report.worker_pids  # killed, and started again
    assert report.accepted, report.answers
    assert set(report.answers) <= {200, 201}, report.answers
    assert report.refused == 0
    assert report.landed_after is not None, f"{len(set(report.accepted) - landed(home))} never landed"
    assert set(report.accepted) <= landed(home)
