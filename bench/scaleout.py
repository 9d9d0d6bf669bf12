"""Relay scale-out: docs/s with 1, 2, 4 and 8 deliveries in flight to an S3 endpoint 50 ms away.

    python -m bench.scaleout [--documents 300] [--concurrency 1 2 4 8] [--delay-ms 50]
                             [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                             [--redis-url redis://127.0.0.1:6379/13]

Starts SeaweedFS (the local S3 server) behind a loopback proxy that holds every request for --delay-ms
(tests/support/delay_proxy.py), a scratch PostgreSQL database and `filerelay api` on PostgreSQL + Redis
with one `s3` destination (pointed at the proxy) wired to Z1. For each concurrency C: N documents go in
through ArchiveLink `create` with no worker running, then `filerelay worker --queues s3` drains them with C
deliveries in flight in all: one process per core as by default (`--processes`, never more than C), C/P
threads each;
docs/s runs from the first attempt's start to the last delivered_at (database clock). Beside it, the
least work: boto3 putting the same number of objects through the same proxy with C threads (in a process of
its own, as the worker is: the proxy's threads share this one's interpreter). Printed per C: docs/s of
each, their ratio to C=1 (C would be perfect scaling), FileRelay's ratio to boto3, and the peak RSS
(VmHWM) of each worker process, which must stay under 150 MiB. Figures only, no pass/fail; a busy machine
makes them noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.relay import boto3_client, put_as_the_s3_kind
from tests.support.bench_processes import exit_on_sigterm
from tests.support.delay_proxy import delaying_proxy
from tests.support.relay_stack import relay_stack
from tests.support.s3server import S3Server, seaweedfs

BODY_BYTES = 100 * 1024
BUCKET = "bench-scaleout"
RSS_LIMIT_MIB = 150
# A bound on each drain, generous for C=1 behind the delay.
DRAIN_TIMEOUT_PER_DOC = 2.0


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=300, help="waiting deliveries per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--delay-ms", type=float, default=50.0, help="added to every S3 request")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: one per core, as `filerelay worker`; never more than C); C/P uploads each",
    )
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--workdir", default=None, help="where the servers keep their files (default: a temp dir)")
    args = parser.parse_args()
    body = (bytes(range(256)) * (BODY_BYTES // 256 + 1))[:BODY_BYTES]
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows: list[tuple[int, float, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-", dir=args.workdir) as tmp, ExitStack() as stack:
        work = Path(tmp)
        s3 = stack.enter_context(seaweedfs(work / "seaweedfs"))
        proxy = stack.enter_context(delaying_proxy(s3.endpoint, args.delay_ms / 1000))
        relay = stack.enter_context(relay_stack(work, s3, proxy.url, BUCKET, args.database_url, args.redis_url))
        for c in args.concurrency:
            prefix = f"S{c}X"
            started = time.perf_counter()
            relay.create([f"{prefix}{n:06d}" for n in range(args.documents)], body)
            print(f"c={c}: {args.documents} creates in {time.perf_counter() - started:.1f} s", end="; ")
            before = proxy.forwarded
            # C uploads in flight in all, as boto3's C threads: spread over the worker's processes.
            processes = min(args.processes, c)
            per_process = -(-c // processes)
            timeout = 30 + DRAIN_TIMEOUT_PER_DOC * args.documents
            drain, rss = relay.drain(prefix, args.documents, per_process, timeout=timeout, processes=processes)
            print(f"drained at {drain.docs_per_second:.1f} docs/s, {proxy.forwarded - before} requests via the proxy")
            behind = dataclasses.replace(s3, endpoint=proxy.url)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as alone:
                reference = alone.submit(boto3_rate, behind, body, args.documents, c, f"R{c}X").result()
            print(f"c={c}: boto3 through the proxy {reference:.1f} docs/s")
            rows.append((c, drain.docs_per_second, reference, rss))
    print_table(rows, args.delay_ms)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def boto3_rate(s3: S3Server, body: bytes, documents: int, concurrency: int, prefix: str) -> float:
    """docs/s of boto3 putting `documents` copies of `body` with `concurrency` threads, as the s3 kind puts
    them (the sha256 as checksum and metadata)."""
    client = boto3_client(s3, concurrency)
    sha256 = hashlib.sha256(body).hexdigest()

    def put(n: int) -> None:
        put_as_the_s3_kind(client, BUCKET, f"baseline/{prefix}{n:06d}.pdf", body, len(body), sha256)

    put(documents)  # the connection and the client's first-call set-up, outside the clock
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(put, range(documents)))
    return documents / (time.perf_counter() - started)


def print_table(rows: list[tuple[int, float, float, dict[str, float]]], delay_ms: float) -> None:
    print()
    print(f"S3 behind a {delay_ms:.0f} ms delay; `filerelay worker`, C uploads in flight over min(P, C) processes")
    print(
        f"{'concurrency':>11} {'docs/s':>8} {'x of c=1':>9} {'boto3':>8} {'x of c=1':>9} {'ratio':>6} "
        f"{'main MiB':>9} {'max pool MiB':>13}  pool processes (MiB)"
    )
    base = rows[0][1] if rows else float("nan")
    reference_base = rows[0][2] if rows else float("nan")
    for c, rate, reference, rss in rows:
        pool = [v for k, v in rss.items() if k != "main"]
        worst = max(pool, default=float("nan"))
        # With the threads pool there are no pool processes: the main process is the only one to judge.
        peak = max([rss["main"], *pool])
        flag = "" if peak < RSS_LIMIT_MIB else f"  OVER {RSS_LIMIT_MIB} MiB"
        each = " ".join(f"{v:.0f}" for v in pool)
        print(
            f"{c:11d} {rate:8.1f} {rate / base:9.2f} {reference:8.1f} {reference / reference_base:9.2f} "
            f"{rate / reference:6.2f} {rss['main']:9.1f} {worst:13.1f}  {each}{flag}"
        )


if __name__ == "__main__":
    main()
