"""Heartbeat files: how a worker or sweeper process says it is still taking work, for probes and metrics.

A process touches its file under FILERELAY_HOME while it works: a worker's watchdog every few seconds
while it takes wake-ups (`worker-<hostname>.heartbeat`, or `worker-<hostname>-<i>.heartbeat` for each of
`--processes N`), the sweeper after every pass (`sweeper-<hostname>.heartbeat`). An exec probe in the
same container (same hostname, same FILERELAY_HOME) fails once a file is older than it allows, so the
kubelet or Compose restarts a process that hangs or stopped taking work; /metrics shows each file's
time. Files, not a port: a stuck process cannot answer for itself, and a file needs no server.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".heartbeat"
ROLES = ("worker", "sweeper")


def hostname() -> str:
    return socket.gethostname()


def worker_path(home: Path, host: str | None = None, suffix: str = "") -> Path:
    """A worker process's file; `suffix` tells apart the processes of one worker (`-0`, `-1`…)."""
    return home / f"worker-{host or hostname()}{suffix}{SUFFIX}"


def sweeper_path(home: Path, host: str | None = None) -> Path:
    return home / f"sweeper-{host or hostname()}{SUFFIX}"


def files(home: Path, role: str, host: str | None = None) -> list[Path]:
    """This host's heartbeat files of `role`: the single process's and each numbered process's."""
    name = re.escape(f"{role}-{host or hostname()}")
    pattern = re.compile(rf"^{name}(-\d+)?{re.escape(SUFFIX)}$")
    try:
        return sorted(p for p in home.iterdir() if pattern.match(p.name))
    except FileNotFoundError:
        return []


def beat(path: Path) -> None:
    """Touch the file; a full or read-only home is logged (the probe will say so) and the process goes on."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        log.exception("could not touch the heartbeat file %s", path)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def judge(
    home: Path, role: str, *, max_age: float, host: str | None = None, now: Callable[[], float] = time.time
) -> Verdict:
    """Alive when this host has at least one heartbeat file of `role` and none older than `max_age` s.

    Every file counts: one stale process among several (`--processes N`) fails the container, since its
    supervisor restarting it is not the same as it taking work."""
    found = files(home, role, host)
    if not found:
        return Verdict(False, f"no {role} heartbeat file for {host or hostname()} in {home} (not started yet?)")
    at = now()
    ages = {}
    for path in found:
        try:
            ages[path.name] = at - path.stat().st_mtime
        except FileNotFoundError:  # removed between the listing and now
            continue
    stale = {name: age for name, age in ages.items() if age > max_age}
    if not ages or stale:
        detail = ", ".join(f"{name} {age:.0f} s old" for name, age in sorted(stale.items())) or "files vanished"
        return Verdict(False, f"{role} stopped taking work: {detail} (allowed {max_age:.0f} s)")
    return Verdict(True, f"{role}: {len(ages)} heartbeat(s), the oldest {max(ages.values()):.0f} s old")


def every_worker(home: Path) -> dict[str, float]:
    """Every worker heartbeat file under `home` (all hostnames): its process name and time of last beat."""
    found: dict[str, float] = {}
    try:
        paths = [p for p in home.iterdir() if p.name.startswith("worker-") and p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return found
    for path in paths:
        try:
            found[path.name.removesuffix(SUFFIX)] = path.stat().st_mtime
        except FileNotFoundError:
            continue
    return found
