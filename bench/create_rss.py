"""Peak memory of the API process while SAP creates one large document.

    python -m bench.create_rss [--mb 500] [--database-url URL] [--deliver [s3] [sharepoint]]

Starts `filerelay up` on a throw-away home, streams one `create` of the given size, and prints the API
worker's peak RSS (the kernel's VmHWM) before and after, the growth, its ratio to the body size, and
the throughput. With --deliver, then delivers a document of the same size to each kind named (both
when none is) and prints the worker's peak RSS the same way (bench/deliver_rss.py, which also runs
alone). Figures, not a pass/fail: tests/integration/test_memory.py checks the bound.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.processes import (
    environment,
    filerelay,
    free_port,
    gunicorn_workers,
    peak_rss_bytes,
    stream_put,
)

MB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="body size in MiB")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the temporary home")
    parser.add_argument(
        "--deliver", nargs="*", choices=["s3", "sharepoint"], default=None, help="then deliver one to these kinds"
    )
    args = parser.parse_args()
    size = args.mb * MB
    with tempfile.TemporaryDirectory(prefix="filerelay-bench-") as tmp:
        home = Path(tmp) / "home"
        url = args.database_url or f"sqlite:///{home / 'filerelay.db'}"
        port = free_port()
        with filerelay(["up", "--port", str(port)], environment(home, url), port) as proc:
            (worker,) = gunicorn_workers(proc)
            path = "/archivelink/acme/production?create&pVersion=0047&contRep=Z1&docId={}&compId=data"
            warm = stream_put(port, path.format("WARMUP"), MB)
            assert warm.recv(4096).startswith(b"HTTP/1.1 201")
            warm.close()
            before = peak_rss_bytes(worker.pid)
            started = time.perf_counter()
            sock = stream_put(port, path.format("BENCH"), size)
            status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
            elapsed = time.perf_counter() - started
            sock.close()
            after = peak_rss_bytes(worker.pid)
    verdict = "within" if after < 150 * MB else "OVER"
    growth = after - before
    print(f"body                 {args.mb} MiB ({status})")
    print(f"API peak RSS before  {before / MB:8.1f} MiB")
    print(f"API peak RSS after   {after / MB:8.1f} MiB   (limit 150 MiB: {verdict})")
    print(f"growth               {growth / MB:8.1f} MiB   = {growth / size:.4f} x body size")
    print(f"upload               {elapsed:8.2f} s      = {args.mb / elapsed:.0f} MiB/s into fsync'd staging")
    if args.deliver is not None:
        from bench import deliver_rss

        print(flush=True)
        deliver_rss.run(args.deliver or list(deliver_rss.TARGETS), size)


if __name__ == "__main__":
    main()
