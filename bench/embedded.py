"""`filerelay up` under sustained mixed ArchiveLink load: its ingest and delivery rates side by side.

    python -m bench.embedded [--seconds 180] [--connections 8] [--kill-worker-at 60]

70% creates of 20 KiB, 10% get, 10% info, 10% search, from each connection in a loop, against `filerelay up`
on its embedded defaults (SQLite, the wake-up folder, one folder destination). Prints the documents
accepted and delivered per second during the load, how long after its end the last 201 landed, and
whether every process stayed up (a killed worker started again). Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.support.embedded_load import landed, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--kill-worker-at", type=float, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as tmp:
        home = Path(tmp) / "home"
        report = run_load(home, seconds=args.seconds, connections=args.connections, kill_worker_at=args.kill_worker_at)
        missing = len(set(report.accepted) - landed(home))
    print(f"load: {report.load_seconds:.0f} s from {args.connections} connections; answers {report.answers}")
    print(f"ingest   {report.ingest_rate:8.1f} docs/s  ({len(report.accepted)} answered 201)")
    print(f"delivery {report.delivery_rate:8.1f} docs/s  ({report.landed_during_load} landed during the load)")
    print(f"ratio delivery/ingest {report.delivery_rate / report.ingest_rate:.2f}")
    after = "never" if report.landed_after is None else f"{report.landed_after:.1f} s"
    print(f"every 201 landed {after} after the load ended; {missing} missing")
    print(f"up stayed up: {report.up_alive}; worker processes seen: {len(report.worker_pids)}")


if __name__ == "__main__":
    main()
