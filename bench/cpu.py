"""Where a benchmark's CPU goes: user + system time of each process group over a measured window.

A group is a set of processes found afresh at each sample (a gunicorn tree, the PostgreSQL backends
serving one database, the redis-server, the S3 server). A process that starts inside the window counts
from zero; one that ends inside it is lost (the groups here live across the window: pooled connections,
long-running servers). PostgreSQL's auxiliary processes (WAL writer, checkpointer, ...) and Redis serve
everything the machine runs, not only the benchmark: their columns are marked shared.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psutil
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

# (pid, create_time) names a process for good: a pid reused inside the window is another process.
Key = tuple[int, float]
Finder = Callable[[], Iterable[psutil.Process]]
Sample = dict[str, dict[Key, float]]

SHARED_MARK = "*"
BACKENDS = text(
    "SELECT pid, backend_type FROM pg_stat_activity WHERE (datname = current_database() OR datname IS NULL) "
    "AND pid <> pg_backend_pid()"
)


def _cpu(process: psutil.Process) -> tuple[Key, float] | None:
    try:
        with process.oneshot():
            times = process.cpu_times()
            return (process.pid, process.create_time()), times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def tree(pid: int) -> Finder:
    """The process and all its descendants (gunicorn's master and workers, a worker and its pool)."""

    def find() -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    return find


def itself() -> Finder:
    """This Python process: the reference client's threads (boto3) run here."""
    return lambda: [psutil.Process(os.getpid())]


def one(pid: int | None) -> Finder:
    return lambda: [psutil.Process(pid)] if pid is not None and psutil.pid_exists(pid) else []


def postgres(database_url: str) -> tuple[Finder, Finder]:
    """The backends connected to this database (the benchmark's own sampling connection excluded), and the
    server's auxiliary processes (shared by every database on it)."""

    def rows() -> list[tuple[int, str]]:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [(int(pid), str(kind)) for pid, kind in conn.execute(BACKENDS)]
        finally:
            engine.dispose()

    def processes(client: bool) -> list[psutil.Process]:
        found = []
        for pid, kind in rows():
            if (kind == "client backend") == client and psutil.pid_exists(pid):
                found.append(psutil.Process(pid))
        return found

    return (lambda: processes(True)), (lambda: processes(False))


def redis_server(redis_url: str) -> Finder:
    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return one(pid)


@dataclass
class Meter:
    """Named process groups, sampled before and after a window."""

    groups: Mapping[str, Finder]

    def sample(self) -> Sample:
        taken: Sample = {}
        for name, find in self.groups.items():
            taken[name] = dict(found for process in find() if (found := _cpu(process)) is not None)
        return taken

    def seconds_since(self, before: Sample) -> dict[str, float]:
        after = self.sample()
        return {
            name: sum(cpu - before.get(name, {}).get(key, 0.0) for key, cpu in after[name].items())
            for name in self.groups
        }


@dataclass(frozen=True)
class Row:
    label: str
    ms_per_doc: Mapping[str, float]  # group name -> CPU ms per document (a group the row lacks is absent)


def per_document(seconds: Mapping[str, float], documents: int) -> dict[str, float]:
    return {name: s * 1000 / documents if documents else math.nan for name, s in seconds.items()}


def median_rows(label: str, runs: Sequence[Mapping[str, float]]) -> Row:
    names = {name for run in runs for name in run}
    return Row(label, {name: statistics.median(run[name] for run in runs if name in run) for name in names})


def table(rows: Sequence[Row], columns: Sequence[str], shared: Iterable[str] = ()) -> str:
    """A small table: one line per server, one column per process group and the total, in CPU ms per document."""
    shared = set(shared)
    heads = [name + (SHARED_MARK if name in shared else "") for name in columns]
    width = max(len(r.label) for r in rows) if rows else 10
    lines = [f"{'CPU ms per document':{width}} " + " ".join(f"{h:>12}" for h in [*heads, "total"])]
    for row in rows:
        cells = [f"{row.ms_per_doc[c]:12.2f}" if c in row.ms_per_doc else f"{'-':>12}" for c in columns]
        total = sum(row.ms_per_doc.get(c, 0.0) for c in columns)
        lines.append(f"{row.label:{width}} " + " ".join(cells) + f" {total:12.2f}")
    if shared:
        lines.append(f"{SHARED_MARK} serves the whole machine (other databases, other Redis clients) while measured")
    return "\n".join(lines)
