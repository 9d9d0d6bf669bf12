"""Run real FileRelay processes (the `filerelay` console script) for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.support.databases import TEST_ENCRYPTION_KEY

CONFIG = """
workspaces:
  - owner: acme
    slug: production
    destinations:
      - {id: dest_folder, name: Local Folder, kind: folder, root: "${OUT_DIR}"}
    repositories:
      - {id: Z1, description: Invoices, signature: none, destinations: [dest_folder]}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, what: str, timeout: float = 30.0) -> None:
    """Until something accepts connections on the loopback port (a server just started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


def listening(args: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    """A server binary started quietly, returned once it accepts connections on the loopback `port`."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, what)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def ended(proc: subprocess.Popen[bytes] | None) -> None:
    """A server started by `listening` asked to stop, and waited for."""
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=30)


def environment(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    config = home / "filerelay.yaml"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG)
    return {
        **os.environ,
        "FILERELAY_HOME": str(home),
        "FILERELAY_DATABASE_URL": database_url,
        "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        "FILERELAY_CONFIG": str(config),
        "OUT_DIR": str(home / "out"),
        **extra,
    }


def wait_ready(base_url: str, proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} was not ready within {timeout} s")


@contextmanager
def filerelay(args: list[str], env: Mapping[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Start `filerelay ARGS` in its own process group, wait for /readyz, stop it (SIGTERM) afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=dict(env), start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        yield proc
    finally:
        stop_group(proc, signal.SIGTERM, timeout=40)


def stop_group(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """`sig` to the process group of `proc` unless it has ended; SIGKILL if it outlasts `timeout`; reaped."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and all it started: nothing gets to clean up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Children may outlive the group leader for a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


# With setproctitle installed (mutmut brings it), gunicorn and Celery retitle their processes, which
# replaces what cmdline() reads: "gunicorn: worker [filerelay-api]", "[celeryd: filerelay-s3@host:...]".
_TITLES = {"api": "[filerelay-api]", "worker": "[celeryd: filerelay-"}


def filerelay_command(process: psutil.Process) -> str | None:
    """The `filerelay` subcommand a process runs (api, worker, sweeper, ...), by its arguments or by the
    title its server gave it; None for other processes, and for one that exited meanwhile."""
    try:
        args = process.cmdline()
    except psutil.Error:
        return None
    if "filerelay.cli" in args[:-1]:
        return args[args.index("filerelay.cli") + 1]
    title = " ".join(args)
    return next((command for command, mark in _TITLES.items() if mark in title), None)


def _is_api(process: psutil.Process) -> bool:
    return filerelay_command(process) == "api"


def gunicorn_workers(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The gunicorn worker processes below `proc`: API processes whose parent is the API master."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        workers = [p for p in tree if _is_api(p) and (parent := p.parent()) is not None and _is_api(parent)]
        if workers:
            return workers
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker found")


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of resident memory (VmHWM) for one process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not available")


def stream_put(
    port: int, path: str, size: int, *, chunk: int = 1 << 20, stop_after: int | None = None
) -> socket.socket:
    """Send a PUT with `size` announced bytes; stop after `stop_after` bytes (leaving the socket open)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/pdf\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    sock.sendall(head.encode())
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    limit = size if stop_after is None else stop_after
    while sent < limit:
        piece = block[: min(chunk, limit - sent)]
        sock.sendall(piece)
        sent += len(piece)
    return sock
