"""`filerelay up`: prepare the embedded installation, then run and watch its processes."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from filerelay.bootstrap import DEMO_WORKSPACE, demo_admin_key, prepare
from filerelay.clock import SystemClock
from filerelay.config_file import ConfigError
from filerelay.metrics_dir import own_multiprocess_dir
from filerelay.settings import Settings

log = logging.getLogger("filerelay.up")

# Where `filerelay up` may hand out the demo workspace's admin key: only this machine can reach it.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _spawn(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.environ()}
    return subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=env)  # noqa: S603


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def offers_demo_key(workspaces: list[str], host: str) -> bool:
    """Whether `up` may hand out an admin key: the demo configuration, reachable from this machine only."""
    return DEMO_WORKSPACE in workspaces and host in LOOPBACK


def run_up(settings: Settings, *, host: str, port: int) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        summary = prepare(settings)
    except ConfigError as exc:
        click.echo(f"error: {settings.config_file}: {exc}", err=True)
        return 2
    if summary:
        click.echo(str(summary))
    workspaces = summary.workspaces if summary else []
    demo_key = None
    if offers_demo_key(workspaces, host):
        demo_key = demo_admin_key(settings, now=SystemClock().now())
    # One metrics folder for the API and the worker (they share this host), so /metrics also shows the
    # worker's delivery counts; the children inherit it through the environment.
    with own_multiprocess_dir(settings.home):
        return _supervise(settings, host=host, port=port, workspaces=workspaces, demo_key=demo_key)


def _announce(base: str, settings: Settings, workspaces: list[str], demo_key: str | None) -> None:
    click.echo(f"FileRelay is up: {base}/archivelink/<owner>/<workspace>  (data in {settings.home})")
    for workspace in workspaces:
        click.echo(f"Console: {base}/ui/{workspace}/")
    if demo_key:
        click.echo(
            f"Sign in to the console of {DEMO_WORKSPACE} with this admin key (shown once, stored only as a hash):"
        )
        click.echo(f"  {demo_key}")
    elif workspaces:
        click.echo("Sign in with an API key of the workspace (`filerelay keys create NAME --role admin`).")
    click.echo("Press Ctrl-C to stop.")


class Children:
    """FileRelay processes run side by side and started again when one ends: a process that died (a
    crash, a worker's watchdog exit) must not take the others down, nor leave the server half up.
    A child that keeps dying is started again with a growing pause, so it cannot spin."""

    def __init__(self, settings: Settings, commands: list[list[str]]) -> None:
        self._settings = settings
        self._commands = commands
        self.procs = [_spawn(settings, *command) for command in commands]
        self._started = [time.monotonic()] * len(commands)
        self._pause = [0.0] * len(commands)
        self._due: list[float | None] = [None] * len(commands)
        self.restarts = 0

    def watch(self) -> None:
        """Start again each child that ended, after its pause."""
        now = time.monotonic()
        for index, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            due = self._due[index]
            if due is None:
                lived = now - self._started[index]
                self._pause[index] = (
                    RESTART_FIRST
                    if lived > RESTART_RESET
                    else min(max(self._pause[index] * 2, RESTART_FIRST), RESTART_MOST)
                )
                self._due[index] = now + self._pause[index]
                log.error(
                    "FileRelay process `%s` exited with code %s; starting it again in %.0f s",
                    " ".join(self._commands[index][:1]),
                    proc.returncode,
                    self._pause[index],
                )
            elif now >= due:
                self.procs[index] = _spawn(self._settings, *self._commands[index])
                self._started[index], self._due[index] = now, None
                self.restarts += 1

    def stop(self, grace: float | None = 35.0) -> None:
        """SIGTERM to each child, then wait; past `grace` seconds (None: no limit) a child is killed."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity, bounded by the cgroup's CPU quota (a container's CPU
    limit, rounded up), at least 1. os.cpu_count() counts the node's cores: a pod limited to one CPU on a
    32-core node would start 32 worker processes into it."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity it is
    return max(1, count)


# A child's pauses before it is started again: the first, doubled while it keeps dying, at most the last;
# back to the first once it lived this long.
RESTART_FIRST = 1.0
RESTART_MOST = 30.0
RESTART_RESET = 60.0


def run_children(
    settings: Settings,
    commands: list[list[str]],
    *,
    ready: Callable[[Children], None] | None = None,
    grace: float | None = 35.0,
) -> int:
    """Run the commands until SIGTERM or SIGINT, restarting any that ends; 0 once stopped. On the way out
    each child gets `grace` seconds to end (None: as long as it takes, as a worker's uploads in flight do;
    its orchestrator's own grace period bounds it)."""
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children = Children(settings, commands)
    if ready is not None:
        ready(children)
    while not stopping.wait(0.2):
        children.watch()
    children.stop(grace)
    return 0


def _supervise(settings: Settings, *, host: str, port: int, workspaces: list[str], demo_key: str | None) -> int:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base = f"http://{shown_host}:{port}"

    def announce(children: Children) -> None:
        if _wait_ready(f"{base}/readyz", children.procs[0]):
            _announce(base, settings, workspaces, demo_key)

    code = run_children(
        settings,
        [
            ["api", "--host", host, "--port", str(port), "--workers", "1"],
            # One process: the embedded database has one writer at a time, and the worker's threads
            # upload in parallel.
            ["worker", "--concurrency", "8", "--processes", "1"],
            ["sweeper"],
        ],
        ready=announce,
    )
    click.echo("FileRelay stopped.")
    return code
