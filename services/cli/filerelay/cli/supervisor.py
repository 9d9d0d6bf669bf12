"""`filerelay up`: prepare the embedded installation, then run and watch its processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def _supervise(settings: Settings, *, host: str, port: int, workspaces: list[str], demo_key: str | None) -> int:
    children = [
        _spawn(settings, "api", "--host", host, "--port", str(port), "--workers", "1"),
        _spawn(settings, "worker", "--concurrency", "2"),
        _spawn(settings, "sweeper"),
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base = f"http://{shown_host}:{port}"
    if _wait_ready(f"{base}/readyz", children[0]):
        _announce(base, settings, workspaces, demo_key)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                log.error("a FileRelay process exited with code %s; stopping", child.returncode)
                stopping, code = True, 1
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=35)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    click.echo("FileRelay stopped.")
    return code
