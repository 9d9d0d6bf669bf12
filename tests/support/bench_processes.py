"""Processes for benchmarks: each in its own session, its output in a log file, always stopped afterwards.

tests/support/processes.py lets a child print to the terminal; a benchmark's servers would flood it with
access lines, so these write to files the benchmark names when something goes wrong.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.processes import wait_ready


def filerelay_command(*args: str) -> list[str]:
    """The `filerelay` console script, run by this interpreter (the venv's, wherever it lives)."""
    return [sys.executable, "-m", "filerelay.cli", *args]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any FILERELAY_* setting the caller's shell may have, plus `extra`:
    a benchmark says exactly what each server gets."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FILERELAY_")}
    env["FILERELAY_ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEY  # every server of a benchmark opens the same secrets
    # A benchmark's destinations are servers of its own on loopback, and its folders lie under the temp
    # directory: allowed as an operator would allow them (the default policy refuses loopback).
    env.update(LOOPBACK.environ())
    env.update(extra)
    return env


def log_tail(log: Path, size: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def run_command(args: list[str], env: Mapping[str, str], log: Path, timeout: float = 180) -> None:
    """Run a command to completion (migrate, config apply); raise with its log if it fails."""
    with open(log, "ab") as out:
        result = subprocess.run(args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:4])} failed ({result.returncode}):\n{log_tail(log)}")


def stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds, reap, then kill any straggler of the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Children (gunicorn workers, Celery pool processes) may outlive their leader for a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def exit_on_sigterm() -> None:
    """Make SIGTERM (`timeout`, `kill`) unwind like Ctrl-C does, so every `started` process is stopped."""

    def _raise(signum: int, _frame: FrameType | None) -> None:
        print("terminated: stopping every process this benchmark started", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


@contextmanager
def started(
    args: list[str], env: Mapping[str, str], log: Path, *, ready_url: str | None = None, timeout: float = 90
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `args` in a new session with output to `log`; wait for `ready_url`/readyz when given; stop it
    (and everything it started) on the way out, whatever happened."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if ready_url is not None:
            try:
                wait_ready(ready_url, proc, timeout=timeout)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}; log {log}:\n{log_tail(log)}") from None
        yield proc
    finally:
        stop(proc)
