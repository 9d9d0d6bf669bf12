"""Ingest throughput of ArchiveLink `create`: FileRelay beside the least work the same durability needs.

    python -m bench.ingest [--runs 3] [--duration 15] [--servers bare,pg,filerelay,sqlite,embedded]
                           [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                           [--redis-url redis://127.0.0.1:6379/12]

Needs `wrk` (Debian: `apt-get install -y wrk`), PostgreSQL (scratch databases are created and dropped) and
Redis (only the keys this script fills are deleted at the end, in the database the URL names).

Every server runs under gunicorn with FileRelay's settings (2 processes x 8 gthread threads, keep-alive 5 s,
access log on) and gets the same load: wrk, 2 threads, 16 connections, 100 KiB `create` PUTs
(bench/create.lua: every docId unique, every answer that is not 201 counted):

- bare               a plain WSGI handler: body streamed to a file, fsync'd, 201 (bench/reference_app.py)
- bare+PG+Redis      + sha256, a document and a delivery row in one PostgreSQL transaction, one Redis LPUSH
- FileRelay          `filerelay api` on PostgreSQL + Redis, one folder destination on Z1, no worker running
- bare+SQLite        + sha256 and both rows in SQLite (WAL), one kombu-style message file per wake-up
- FileRelay embedded `filerelay api` on its embedded defaults (FILERELAY_HOME only: SQLite, filesystem broker)

Runs are interleaved (A B C A B C ...) and each figure is the median over runs; docs/s counts 201s only.
CPU ms is the server processes' own CPU time per 201 (gunicorn master + workers; not PostgreSQL or Redis):
steadier than docs/s when other work shares the machine. A second table splits each server's CPU per 201
by process (bench/cpu.py): the server's, PostgreSQL's backends for its database, PostgreSQL's auxiliary
processes and Redis (these two shared with the rest of the machine), so the budget shows what the
durable work costs and what FileRelay adds to it.
Before the load, each server's single-request latency: median of 20 sequential creates on one connection.
Figures only, no pass/fail; on a busy machine they are noisy (compare ratios, and note `uptime`).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from sqlalchemy import create_engine, text

from bench import cpu, reference_app
from tests.support.bench_processes import clean_environ, exit_on_sigterm, filerelay_command, run_command, started
from tests.support.databases import scratch_database
from tests.support.processes import CONFIG, free_port

ROOT = Path(__file__).resolve().parents[1]
LUA = Path(__file__).with_name("create.lua")
SCRIPT_PATH = "/archivelink/acme/production"
BODY_BYTES = 100 * 1024
WORKERS, THREADS = 2, 8
WRK_THREADS, CONNECTIONS = 2, 16
IDLE_SAMPLES, IDLE_WARMUP = 20, 5
REFERENCE_WAKE_KEY = "bench.ingest.wakeups"
# FileRelay's Redis producer fills this list (no worker takes from it) and declares this binding.
FILERELAY_KEYS = ("deliver.folder", "_kombu.binding.deliver.folder", "_kombu.binding_permanent.deliver.folder")
SERVERS = {
    "bare": "bare (file + fsync)",
    "pg": "bare + PG + Redis",
    "filerelay": "FileRelay (PG + Redis)",
    "sqlite": "bare + SQLite + folder",
    "embedded": "FileRelay embedded",
}
BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


@dataclass
class Server:
    key: str
    port: int
    pid: int
    # How many deliveries (or files) the server has recorded: checked against the 201s it gave.
    stored: Callable[[], int]
    # The processes whose CPU the window is charged to (bench/cpu.py): the server's, and its database's and
    # Redis's when it has them.
    meter: cpu.Meter
    runs: list[dict[str, int]] = field(default_factory=list)
    # Per run: CPU ms per 201 of each process group.
    cpu_runs: list[dict[str, float]] = field(default_factory=list)
    idle_ms: float = float("nan")

    @property
    def label(self) -> str:
        return SERVERS[self.key]


def psycopg_conninfo(url: str) -> str:
    # scratch_database speaks SQLAlchemy URLs; psycopg wants the plain libpq form.
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


SERVER_CPU, PG_BACKENDS, PG_AUX, REDIS = "server", "PG backends", "PG aux", "Redis"
CPU_COLUMNS = (SERVER_CPU, PG_BACKENDS, PG_AUX, REDIS)


def meter(pid: int, database_url: str | None = None, redis_url: str | None = None) -> cpu.Meter:
    groups = {SERVER_CPU: cpu.tree(pid)}
    if database_url is not None:
        groups[PG_BACKENDS], groups[PG_AUX] = cpu.postgres(database_url)
    if redis_url is not None:
        groups[REDIS] = cpu.redis_server(redis_url)
    return cpu.Meter(groups)


def count_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one())
    finally:
        engine.dispose()


def gunicorn_command(factory: str, port: int) -> list[str]:
    """gunicorn with the options filerelay.cli.server gives FileRelay's API (those a plain app can take)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        f"--bind=127.0.0.1:{port}",
        f"--workers={WORKERS}",
        "--worker-class=gthread",
        f"--threads={THREADS}",
        "--timeout=120",
        "--graceful-timeout=30",
        "--keep-alive=5",
        "--access-logfile=-",
        "--error-logfile=-",
        "--log-level=info",
        f"bench.reference_app:{factory}()",
    ]


@contextmanager
def reference(key: str, work: Path, database_url: str, redis_url: str) -> Iterator[Server]:
    """One reference app under gunicorn; its database (if any) created beforehand, dropped afterwards."""
    port = free_port()
    folder = work / key
    env = clean_environ(PYTHONPATH=str(ROOT), REFERENCE_DIR=str(folder / "files"))
    with ExitStack() as stack:
        stored: Callable[[], int] = lambda: sum(1 for _ in (folder / "files").iterdir())  # noqa: E731
        database: str | None = None
        if key == "pg":
            database = stack.enter_context(scratch_database(database_url, prefix="bench_ingest"))
            conninfo = psycopg_conninfo(database)
            reference_app.create_postgres_schema(conninfo)
            env.update(REFERENCE_DATABASE=conninfo, REFERENCE_REDIS=redis_url, REFERENCE_WAKE_KEY=REFERENCE_WAKE_KEY)
            stored = lambda: reference_app.count_postgres(conninfo)  # noqa: E731
        elif key == "sqlite":
            path = str(folder / "reference.db")
            folder.mkdir(parents=True, exist_ok=True)
            reference_app.create_sqlite_schema(path)
            env.update(REFERENCE_SQLITE=path, REFERENCE_WAKE_DIR=str(folder / "broker"))
            stored = lambda: reference_app.count_sqlite(path)  # noqa: E731
        factory = {"bare": "bare", "pg": "postgres", "sqlite": "sqlite"}[key]
        url = f"http://127.0.0.1:{port}"
        proc = stack.enter_context(started(gunicorn_command(factory, port), env, work / f"{key}.log", ready_url=url))
        with_redis = redis_url if key == "pg" else None
        yield Server(key, port, proc.pid, stored, meter(proc.pid, database, with_redis))


@contextmanager
def filerelay_api(key: str, work: Path, database_url: str, redis_url: str) -> Iterator[Server]:
    """`filerelay api` after `migrate` and `config apply`; on PostgreSQL + Redis, or embedded (home only)."""
    port = free_port()
    home = work / key
    home.mkdir(parents=True)
    config = home / "filerelay.yaml"
    config.write_text(CONFIG)  # its folder destination writes to ${OUT_DIR}
    log = work / f"{key}.log"
    with ExitStack() as stack:
        env = clean_environ(FILERELAY_HOME=str(home), OUT_DIR=str(home / "out"))
        if key == "filerelay":
            url = stack.enter_context(scratch_database(database_url, prefix="bench_ingest"))
            env.update(FILERELAY_DATABASE_URL=url, FILERELAY_BROKER_URL=redis_url)
        else:
            url = f"sqlite:///{home / 'filerelay.db'}"  # the embedded default, read back for the row count
        run_command(filerelay_command("migrate"), env, log)
        run_command(filerelay_command("config", "apply", str(config)), env, log)
        args = filerelay_command("api", "--host", "127.0.0.1", "--port", str(port))
        args += ["--workers", str(WORKERS), "--threads", str(THREADS)]
        proc = stack.enter_context(started(args, env, log, ready_url=f"http://127.0.0.1:{port}"))
        on_postgres = key == "filerelay"
        measured = meter(proc.pid, url if on_postgres else None, redis_url if on_postgres else None)
        yield Server(key, port, proc.pid, lambda: count_rows(url), measured)


def create_path(doc_id: str) -> str:
    return f"{SCRIPT_PATH}?create&pVersion=0047&contRep=Z1&docId={doc_id}&compId=data"


def idle_latency(server: Server, body: bytes) -> float:
    """Median ms of IDLE_SAMPLES sequential creates on one keep-alive connection, after a short warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    timings: list[float] = []
    try:
        for n in range(IDLE_WARMUP + IDLE_SAMPLES):
            started_at = time.perf_counter()
            conn.request("PUT", create_path(f"IDLE{n}"), body=body, headers={"Content-Type": "application/pdf"})
            reply = conn.getresponse()
            reply.read()
            elapsed = (time.perf_counter() - started_at) * 1000
            if reply.status != 201:
                raise RuntimeError(f"{server.label}: idle create answered {reply.status}")
            if n >= IDLE_WARMUP:
                timings.append(elapsed)
    finally:
        conn.close()
    return statistics.median(timings)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server: gunicorn's master and its workers (not the database or Redis)."""
    total = 0.0
    master = psutil.Process(pid)
    for process in (master, *master.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_wrk(server: Server, tag: str, duration: int) -> dict[str, int]:
    """One load run; wrk's figures plus the server's CPU time (ms) in `cpu_ms`; each process group's CPU ms
    per 201 in `server.cpu_runs`."""
    cpu_before = cpu_seconds(server.pid)
    groups_before = server.meter.sample()
    args = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--latency",
        # A slow answer must count in the latency, not vanish as a timeout.
        "--timeout=60s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{server.port}",
        "--",
        tag,
        str(BODY_BYTES),
        SCRIPT_PATH,
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    found = BENCH_LINE.search(out)
    if found is None:
        raise RuntimeError(f"wrk printed no BENCH line:\n{out}")
    figures = {k: int(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    # CPU per document is steadier than docs/s on a machine others are using too.
    figures["cpu_ms"] = round((cpu_seconds(server.pid) - cpu_before) * 1000)
    spent = server.meter.seconds_since(groups_before)
    server.cpu_runs.append(cpu.per_document(spent, figures["requests"] - figures["non201"]))
    return figures


def cpu_ms_per_doc(run: dict[str, int]) -> float:
    ok = run["requests"] - run["non201"]
    return run["cpu_ms"] / ok if ok else float("nan")


def docs_per_second(run: dict[str, int]) -> float:
    return (run["requests"] - run["non201"]) / (run["duration_us"] / 1e6)


def socket_errors(run: dict[str, int]) -> int:
    return run["connect"] + run["read"] + run["write"] + run["timeout"]


def median_of(server: Server, pick: Callable[[dict[str, int]], float]) -> float:
    return statistics.median(pick(run) for run in server.runs) if server.runs else float("nan")


def print_row(s: Server) -> None:
    ok = sum(r["requests"] - r["non201"] for r in s.runs)
    each = " ".join(f"{docs_per_second(r):.0f}" for r in s.runs)
    first_bad = next((r["first_bad"] for r in s.runs if r["first_bad"]), None)
    bad = sum(r["non201"] for r in s.runs)
    print(
        f"{s.label:24} {median_of(s, docs_per_second):8.1f} {median_of(s, lambda r: r['p50_us'] / 1000):8.1f} "
        f"{median_of(s, lambda r: r['p99_us'] / 1000):8.1f} {median_of(s, cpu_ms_per_doc):8.1f} {bad:8d} "
        f"{sum(socket_errors(r) for r in s.runs):8d} {s.idle_ms:8.1f} {ok:7d} {s.stored():7d}  {each}"
        + (f"  (first non-201: {first_bad})" if bad else "")
    )


def print_table(servers: list[Server]) -> None:
    print()
    head = f"{'server':24} {'docs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'non-201':>8} {'sock err':>8}"
    print(f"{head} {'idle ms':>8} {'201s':>7} {'stored':>7}  docs/s per run")
    for server in servers:
        print_row(server)
    print()
    for pick, unit in ((docs_per_second, "docs/s"), (cpu_ms_per_doc, "CPU ms per document")):
        by_key = {s.key: median_of(s, pick) for s in servers}
        for top, bottom in (("filerelay", "pg"), ("embedded", "sqlite"), ("filerelay", "bare"), ("embedded", "bare")):
            if top in by_key and bottom in by_key and by_key[bottom] > 0:
                print(f"ratio of {unit}, {SERVERS[top]} / {SERVERS[bottom]}: {by_key[top] / by_key[bottom]:.2f}")
    print()
    rows = [cpu.median_rows(s.label, s.cpu_runs) for s in servers]
    print(cpu.table(rows, CPU_COLUMNS, shared=(PG_AUX, REDIS)))
    print(
        "CPU ms = the server's own processes' CPU per 201 (not PostgreSQL's or Redis's).\n"
        f"stored = deliveries (or files) recorded: the 201s + {IDLE_WARMUP + IDLE_SAMPLES} idle creates"
        f" + up to {CONNECTIONS} per run still in flight when wrk stopped"
    )


def clean_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(REFERENCE_WAKE_KEY, *FILERELAY_KEYS)
    finally:
        client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per server (median taken)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per run")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {','.join(SERVERS)}")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--workdir", default=None, help="where servers keep their files (default: a temp dir)")
    args = parser.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := [s for s in args.servers if s not in SERVERS]:
        parser.error(f"unknown servers {unknown}; use {', '.join(SERVERS)}")
    if shutil.which("wrk") is None:
        parser.error("wrk is missing; on Debian/Ubuntu: apt-get install -y wrk")
    return args


def start(stack: ExitStack, key: str, work: Path, args: argparse.Namespace) -> Server:
    starter = filerelay_api if key in ("filerelay", "embedded") else reference
    return stack.enter_context(starter(key, work, args.database_url, args.redis_url))


def main() -> None:
    exit_on_sigterm()
    args = parse_args()
    body = (bytes(range(256)) * (BODY_BYTES // 256 + 1))[:BODY_BYTES]
    print(
        f"load: wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{args.duration}s, {BODY_BYTES // 1024} KiB PUT create, ", end=""
    )
    print(f"{args.runs} interleaved run(s); servers: gunicorn {WORKERS} x {THREADS} gthread")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=args.workdir) as tmp, ExitStack() as stack:
        stack.callback(clean_redis, args.redis_url)
        work = Path(tmp)
        servers = [start(stack, key, work, args) for key in args.servers]
        for server in servers:
            server.idle_ms = idle_latency(server, body)
        for run in range(args.runs):
            for server in servers:
                time.sleep(1)  # let the previous server's writes settle before the next one is timed
                server.runs.append(run_wrk(server, f"R{run}", args.duration))
                print(f"run {run + 1}/{args.runs} {server.label:24} {docs_per_second(server.runs[-1]):8.1f} docs/s")
        print_table(servers)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
