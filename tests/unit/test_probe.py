"""`filerelay probe worker|sweeper`: the liveness probe passes while the heartbeat files are fresh and fails
for a stale one, a missing one, or one stale process among several."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from filerelay import heartbeats
from filerelay.cli.main import main as cli
from filerelay.heartbeats import judge, sweeper_path
from filerelay.settings import Settings


def probe(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["probe", *args], env={"FILERELAY_HOME": str(home)})
    return result.exit_code, result.output


def aged(path: Path, seconds: float) -> Path:
    path.touch()
    at = time.time() - seconds
    os.utime(path, (at, at))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"FILERELAY_HOME": str(tmp_path)})


def test_a_fresh_worker_heartbeat_passes_and_a_stale_one_fails(settings: Settings) -> None:
    beat = aged(heartbeats.worker_path(settings.home), 5)  # the name the worker's watchdog touches
    code, output = probe(settings.home, "worker")
    assert code == 0, output
    aged(beat, 200)
    code, output = probe(settings.home, "worker")
    assert code == 1
    assert "stopped taking work" in output
    assert probe(settings.home, "worker", "--max-age", "300")[0] == 0


def test_no_heartbeat_yet_fails(settings: Settings) -> None:
    code, output = probe(settings.home, "worker")
    assert code == 1
    assert "no worker heartbeat file" in output
    # Another host's file (a pod before, on a shared volume) is not this one's.
    aged(heartbeats.worker_path(settings.home, host="some-other-pod"), 1)
    assert probe(settings.home, "worker")[0] == 1


def test_one_stale_process_of_several_fails_the_worker(settings: Settings) -> None:
    for index in range(3):
        aged(heartbeats.worker_path(settings.home, suffix=f"-{index}"), 3)
    assert probe(settings.home, "worker")[0] == 0
    aged(heartbeats.worker_path(settings.home, suffix="-1"), 500)
    code, output = probe(settings.home, "worker")
    assert code == 1
    assert f"worker-{socket.gethostname()}-1.heartbeat" in output


def test_the_sweeper_probe_reads_the_sweepers_file(settings: Settings) -> None:
    aged(heartbeats.worker_path(settings.home), 1)  # a worker's beat says nothing about the sweeper
    assert probe(settings.home, "sweeper")[0] == 1
    beat = aged(sweeper_path(settings.home), 10)
    assert probe(settings.home, "sweeper")[0] == 0
    aged(beat, 130)
    assert probe(settings.home, "sweeper")[0] == 1


def test_the_sweepers_allowance_follows_a_long_sweep_interval(tmp_path: Path) -> None:
    aged(sweeper_path(tmp_path), 500)
    env = {"FILERELAY_HOME": str(tmp_path), "FILERELAY_SWEEP_INTERVAL_SECONDS": "200"}
    assert CliRunner().invoke(cli, ["probe", "sweeper"], env=env).exit_code == 0  # 3 intervals: 600 s
    aged(sweeper_path(tmp_path), 700)
    assert CliRunner().invoke(cli, ["probe", "sweeper"], env=env).exit_code == 1


def test_judge_ignores_files_of_other_roles_and_hosts(tmp_path: Path) -> None:
    aged(tmp_path / "worker-hostA.heartbeat", 1)
    aged(tmp_path / "worker-hostAB.heartbeat", 999)  # a longer hostname with the same start
    aged(tmp_path / "worker-hostA-x.heartbeat", 999)  # not a process index
    assert judge(tmp_path, "worker", max_age=60, host="hostA").ok
