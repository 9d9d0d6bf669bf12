"""Relay throughput to S3: FileRelay workers beside boto3 alone, and the latency from 201 to delivered.

    python -m bench.relay [--documents 1500] [--concurrency 2 4] [--latency-documents 100]
                          [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                          [--redis-url redis://127.0.0.1:6379/14]

Starts SeaweedFS (the local S3 server, tests/support/s3server.py), a scratch PostgreSQL database, and
`filerelay api` on PostgreSQL + Redis with one `s3` destination wired to Z1. For each concurrency C:

1. N documents of 100 KiB go in through ArchiveLink `create` with no worker running, so N deliveries wait;
2. `filerelay worker --queues s3 --concurrency C` (the production command) drains them; the clock runs from
   the first attempt's start to the last delivered_at (both from the database; the worker's start-up is
   shown separately as "incl. start-up", from launching the worker until the poll sees the last one);
3. boto3 alone puts the same staged files into the same SeaweedFS, one client, C threads, with
   ChecksumSHA256, as the s3 kind does.

Beside the ratios, the CPU each process spent per document (bench/cpu.py): for FileRelay from its first
delivered document to its last (the worker's start-up left out): the worker (main and pool), PostgreSQL's
backends for its database and auxiliary processes, Redis and SeaweedFS; for boto3: the benchmark's own
process (where boto3's threads run) and SeaweedFS. PostgreSQL's auxiliary processes and Redis serve the
whole machine while measured.

Then, with one worker running (the lowest C) and nothing else to do, 100 documents one after another: the
time from the 201 (client clock) to delivered_at (the worker's clock; both on this machine), p50/p99.
Figures only, no pass/fail; on a busy machine they are noisy (compare ratios, and note `uptime`).
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from botocore.config import Config

from bench import cpu
from tests.support.bench_processes import exit_on_sigterm
from tests.support.relay_stack import RelayStack, Staged, median, percentile, relay_stack
from tests.support.s3server import S3Server, seaweedfs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BODY_BYTES = 100 * 1024
BUCKET = "bench-relay"
LATENCY_WARMUP = 3
# Generous bounds: a loop that waits on the machine must still end.
DRAIN_TIMEOUT_PER_DOC = 1.0
LATENCY_TIMEOUT = 60.0
RELAYER, PG_BACKENDS, PG_AUX, REDIS, S3 = "relay process", "PG backends", "PG aux", "Redis", "S3 server"
CPU_COLUMNS = (RELAYER, PG_BACKENDS, PG_AUX, REDIS, S3)


class CpuWindow:
    """Each process group's CPU ms per document over a drain (tests.support.relay_stack.Window)."""

    def __init__(self, groups: dict[str, cpu.Finder]) -> None:
        self.groups = groups
        self.meter = cpu.Meter({})
        self.before: cpu.Sample = {}
        self.ms_per_doc: dict[str, float] = {}

    def begin(self, worker_pid: int) -> None:
        self.meter = cpu.Meter({RELAYER: cpu.tree(worker_pid), **self.groups})
        self.before = self.meter.sample()

    def end(self, documents: int) -> None:
        self.ms_per_doc = cpu.per_document(self.meter.seconds_since(self.before), documents)


def filerelay_groups(stack: RelayStack, s3: S3Server) -> dict[str, cpu.Finder]:
    backends, aux = cpu.postgres(stack.engine.url.render_as_string(hide_password=False))
    return {PG_BACKENDS: backends, PG_AUX: aux, REDIS: cpu.redis_server(stack.redis_url), S3: cpu.one(s3.pid)}


def body() -> bytes:
    return (bytes(range(256)) * (BODY_BYTES // 256 + 1))[:BODY_BYTES]


def boto3_client(s3: S3Server, concurrency: int) -> S3Client:
    """One client for all threads (boto3 clients are thread-safe), settings as the s3 kind's."""
    return s3.client(
        Config(
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            s3={"addressing_style": "path"},
            max_pool_connections=max(10, concurrency),
        )
    )


def put_as_the_s3_kind(client: S3Client, bucket: str, key: str, body: bytes | BinaryIO, size: int, sha256: str) -> None:
    """One object put as FileRelay's s3 kind puts it: its sha256 as the checksum and in the metadata."""
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentLength=size,
        ContentType="application/pdf",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
        Metadata={"sha256": sha256},
    )


def boto3_put_all(s3: S3Server, objects: list[Staged], concurrency: int) -> tuple[float, dict[str, float]]:
    """Put every staged file into the bucket under baseline/…, C at a time; return docs/s and the CPU ms per
    document of this process (boto3's threads) and the S3 server."""
    client = boto3_client(s3, concurrency)
    meter = cpu.Meter({RELAYER: cpu.itself(), S3: cpu.one(s3.pid)})

    def put(item: Staged) -> None:
        with open(item.path, "rb") as data:
            put_as_the_s3_kind(client, BUCKET, f"baseline/{item.doc_id}.pdf", data, item.size, item.sha256)

    before = meter.sample()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(put, objects))
    elapsed = time.perf_counter() - started
    return len(objects) / elapsed, cpu.per_document(meter.seconds_since(before), len(objects))


@dataclass
class Round:
    filerelay: float
    with_startup: float
    boto3: float
    filerelay_cpu: dict[str, float]
    boto3_cpu: dict[str, float]


def throughput_round(stack: RelayStack, s3: S3Server, documents: int, concurrency: int, processes: int) -> Round:
    prefix = f"C{concurrency}X"
    ids = [f"{prefix}{n:06d}" for n in range(documents)]
    started = time.perf_counter()
    stack.create(ids, body())
    created = time.perf_counter() - started
    waiting = stack.progress(prefix)
    print(f"c={concurrency}: {documents} creates in {created:.1f} s ({documents / created:.0f}/s); waiting: {waiting}")
    window = CpuWindow(filerelay_groups(stack, s3))
    timeout = 30 + DRAIN_TIMEOUT_PER_DOC * documents
    # C uploads in flight in all, as boto3's C threads: spread over the worker's processes.
    per_process = max(1, -(-concurrency // processes))
    drain, _rss = stack.drain(prefix, documents, per_process, timeout=timeout, window=window, processes=processes)
    objects = stack.staged(prefix)
    baseline, baseline_cpu = boto3_put_all(s3, objects, concurrency)
    print(f"c={concurrency}: FileRelay {drain.docs_per_second:.1f} docs/s, boto3 {baseline:.1f} docs/s")
    return Round(drain.docs_per_second, drain.count / drain.since_launch_s, baseline, window.ms_per_doc, baseline_cpu)


def latency_run(stack: RelayStack, documents: int, concurrency: int) -> list[float]:
    """Sequential creates, each waited for until delivered; ms from the 201 to delivered_at."""
    latencies: list[float] = []
    with stack.worker(concurrency, "latency") as proc:
        for n in range(LATENCY_WARMUP + documents):
            doc_id = f"LAT{n:06d}"
            at_201 = stack.create([doc_id], body(), threads=1)[doc_id]
            deadline = time.monotonic() + LATENCY_TIMEOUT
            delivered = stack.delivered_at(doc_id)
            while delivered is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise TimeoutError(f"{doc_id} not delivered within {LATENCY_TIMEOUT} s: {stack.progress(doc_id)}")
                time.sleep(0.005)  # a short poll: the latency is tens of ms
                delivered = stack.delivered_at(doc_id)
            if n >= LATENCY_WARMUP:
                latencies.append((delivered.timestamp() - at_201) * 1000)
    return latencies


def print_table(rounds: dict[int, Round], latencies: list[float], concurrency: int) -> None:
    print()
    print(f"{'concurrency':>11} {'FileRelay docs/s':>17} {'incl. start-up':>15} {'boto3 docs/s':>13} {'ratio':>6}")
    for c, r in rounds.items():
        ratio = r.filerelay / r.boto3 if r.boto3 else float("nan")
        print(f"{c:11d} {r.filerelay:17.1f} {r.with_startup:15.1f} {r.boto3:13.1f} {ratio:6.2f}")
    print()
    rows = []
    for c, r in rounds.items():
        rows += [cpu.Row(f"FileRelay c={c}", r.filerelay_cpu), cpu.Row(f"boto3 c={c}", r.boto3_cpu)]
    print(cpu.table(rows, CPU_COLUMNS, shared=(PG_AUX, REDIS)))
    print("relay process: FileRelay's worker (main and pool processes); for boto3, the benchmark's own process")
    print()
    print(
        f"201 -> delivered, {len(latencies)} sequential documents, one worker (--concurrency {concurrency}): "
        f"p50 {median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"min {min(latencies, default=float('nan')):.1f} ms, max {max(latencies, default=float('nan')):.1f} ms"
    )


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1500, help="waiting deliveries per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 4], help="worker --concurrency values")
    parser.add_argument("--latency-documents", type=int, default=100)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: one per core, as `filerelay worker`); each runs C/P uploads at once",
    )
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workdir", default=None, help="where the servers keep their files (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-relay-", dir=args.workdir) as tmp, ExitStack() as stack:
        work = Path(tmp)
        s3 = stack.enter_context(seaweedfs(work / "seaweedfs"))
        relay = stack.enter_context(relay_stack(work, s3, s3.endpoint, BUCKET, args.database_url, args.redis_url))
        print(f"worker: {args.processes} processes; concurrency C = uploads in flight in all (C/P per process)")
        rounds = {c: throughput_round(relay, s3, args.documents, c, args.processes) for c in args.concurrency}
        latencies = latency_run(relay, args.latency_documents, min(args.concurrency))
        print_table(rounds, latencies, min(args.concurrency))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
