"""Latency of the Documents API's filtered list queries over 1,000,000 documents (3 deliveries each).

    python -m bench.list_documents [--documents 1000000] [--database-url postgresql+psycopg://...]

Fills a scratch PostgreSQL database (created and dropped by the script) with COPY, then times each
filtered `GET /documents` through the real Flask app (query, serialisation, auth) and prints
p50/p95/max per filter (and a cursor page 1,000 pages deep), the web console's overview, documents and
destinations pages, and the sweeper's pass over the same tables. A total past 10,000 is capped and
printed with a "+". Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

from filerelay.api import create_app
from filerelay.catalog import Cursor
from filerelay.config_file import apply, load
from filerelay.db.migrate import upgrade
from filerelay.db.session import session_scope
from filerelay.delivery.sweep import sweep
from filerelay.runtime import build_runtime
from filerelay.settings import Settings
from tests.support.console import sign_in
from tests.support.databases import TEST_ENCRYPTION_KEY, scratch_database
from tests.support.policy import LOOPBACK

KEY = "fr_live_bench_0123456789abcdef"
CONFIG = f"""
workspaces:
  - owner: acme
    slug: production
    api_keys: [{{name: bench, role: viewer, key: "{KEY}"}}]
    destinations:
      - {{id: dest_a, name: A, kind: folder, root: /tmp/a}}
      - {{id: dest_b, name: B, kind: folder, root: /tmp/b}}
      - {{id: dest_c, name: C, kind: folder, root: /tmp/c}}
    repositories:
      - {{id: Z1, description: Invoices, signature: none, destinations: [dest_a, dest_b, dest_c]}}
      - {{id: Z2, description: Orders, signature: none, destinations: [dest_a, dest_b, dest_c]}}
      - {{id: Z3, description: Rare, signature: none, destinations: [dest_a, dest_b, dest_c]}}
"""
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC).isoformat()
# Most documents delivered, some failing or retrying: what a busy installation looks like.
STATUSES = ["delivered"] * 90 + ["failed"] * 5 + ["retrying"] * 3 + ["pending"] * 2


def business_object(n: int) -> tuple[str, str]:
    """Every document linked to a business object: half to accounting documents (BKPF), three documents
    to each; the rest to incoming invoices (BUS2081); one in 1,000 to a rare type (VBRK)."""
    if n % 1000 == 7:
        return "VBRK", f"{n:010d}"
    if n % 2:
        return "BKPF", f"1000{n // 6:010d}2025"
    return "BUS2081", f"{n // 2:010d}2025"


def fill(engine: Engine, documents: int) -> None:
    """COPY documents and deliveries in batches: minutes for a million, not hours."""
    with engine.connect() as conn:
        ids = {repo_id: row_id for repo_id, row_id in conn.execute(text("SELECT repo_id, id FROM repositories"))}
        workspace = conn.execute(text("SELECT id FROM workspaces")).scalar_one()
        destinations = [row[0] for row in conn.execute(text("SELECT id FROM destinations ORDER BY id"))]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch = 50_000
        for start in range(0, documents, batch):
            headers, docs, deliveries = io.StringIO(), io.StringIO(), io.StringIO()
            for n in range(start, min(start + batch, documents)):
                # Z3 is rare (1 in 1000), so a filter on it cannot ride the date index alone.
                repo = "Z3" if n % 1000 == 0 else ("Z1" if n % 2 else "Z2")
                received = (START + dt.timedelta(seconds=30 * n)).isoformat()
                status = STATUSES[n % len(STATUSES)]
                object_type, object_id = business_object(n)
                headers.write(f"{n + 1}\t{ids[repo]}\tD{n:012d}\t{received}\t{received}\n")
                docs.write(
                    f"doc_{n:020d}\t{n + 1}\t{workspace}\t{ids[repo]}\tD{n:012d}\tdata\tapplication/pdf\t"
                    f"245780\t{'0' * 64}\t1\t{status}\t{received}\t{received}\t"
                    f'{{"sap_object_type": "{object_type}", "sap_object_id": "{object_id}"}}\t[]\t'
                    f"{object_type}\t{object_id}\n"
                )
                for k, destination in enumerate(destinations):
                    state = "delivered" if status == "delivered" or k else status
                    delivered = received if state == "delivered" else "\\N"
                    # Waiting deliveries expire far ahead: the sweeper should find nothing due.
                    deliveries.write(
                        f"dlv_{n:018d}{k}\tdoc_{n:020d}\t{destination}\t{state}\t1\t1\t{received}\t{FAR_FUTURE}\t"
                        f"{delivered}\t1\t{received}\t{received}\n"
                    )
            for table, columns, buffer in (
                ("archive_documents", "id, repository_id, doc_id, created_at, updated_at", headers),
                (
                    "documents",
                    "id, archive_document_id, workspace_id, repository_id, doc_id, comp_id, content_type, "
                    "size_bytes, sha256, generation, status, received_at, updated_at, metadata, export_messages, "
                    "sap_object_type, sap_object_id",
                    docs,
                ),
                (
                    "deliveries",
                    "id, document_id, destination_id, status, attempts, cycle_attempts, cycle_started_at, "
                    "expires_at, delivered_at, delivered_generation, created_at, updated_at",
                    deliveries,
                ),
            ):
                buffer.seek(0)
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(buffer.getvalue())
            raw.commit()
        cursor.execute("SELECT setval('archive_documents_id_seq', %s)", (documents,))
        raw.commit()
    finally:
        raw.close()
    # What autovacuum does on a live system: statistics, and the visibility map index-only scans need.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def queries(documents: int) -> dict[str, str]:
    # The cursor that ends page 1,000 (25 per page): the document 25,000 below the newest.
    deep = documents - 1 - 25 * 1000
    cursor = Cursor(START + dt.timedelta(seconds=30 * deep), f"doc_{deep:020d}").encode() if deep >= 0 else ""
    return {
        "newest page": "",
        "page 200": "page=200",
        "cursor 1,000 pages deep": f"cursor={cursor}",
        "repo_id=Z1": "repo_id=Z1",
        "repo_id=Z3 (rare)": "repo_id=Z3",
        "status=failed": "status=failed",
        "status=failed&repo_id=Z2": "status=failed&repo_id=Z2",
        "one day (date_from/date_to)": "date_from=2025-03-01&date_to=2025-03-01",
        "doc_id (one document)": f"doc_id=D{documents // 2:012d}",
        "destination_id=dest_b": "destination_id=dest_b",
        "sap_object_type=BKPF": "sap_object_type=BKPF",
        "sap_object_type=VBRK (rare)": "sap_object_type=VBRK",
        "one business object": "sap_object_type=BKPF&sap_object_id=" + business_object(documents // 2 + 1)[1],
        "business object & repo_id=Z1": "sap_object_type=BKPF&repo_id=Z1&sap_object_id="
        + business_object(documents // 2 + 1)[1],
        "per_page=100": "per_page=100",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with scratch_database(args.database_url, prefix="filerelay_bench") as url:
        upgrade(url)
        runtime = build_runtime(
            Settings.from_env(
                {
                    "FILERELAY_DATABASE_URL": url,
                    "FILERELAY_HOME": "/tmp/fr-bench",
                    "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                }
            )
        )
        with session_scope(runtime.sessions) as session:
            apply(session, load(CONFIG, {}), now=START, policy=LOOPBACK)
        started = time.perf_counter()
        fill(runtime.engine, args.documents)
        print(
            f"filled {args.documents:,} documents, {3 * args.documents:,} deliveries "
            f"in {time.perf_counter() - started:.0f} s"
        )
        client = create_app(runtime=runtime).test_client()
        headers = {"Authorization": f"Bearer {KEY}"}
        print(f"{'query':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'total':>9}")
        for label, query in queries(args.documents).items():
            timings = []
            total = ""
            for _ in range(args.runs):
                t0 = time.perf_counter()
                reply = client.get(f"/api/acme/production/documents?{query}", headers=headers)
                timings.append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200, reply.data
                meta = reply.get_json()["meta"]
                total = f"{meta['total']:,}{'' if meta['total_exact'] else '+'}"
            timings.sort()
            p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
            print(f"{label:32} {statistics.median(timings):8.1f} {p95:8.1f} {timings[-1]:8.1f} {total:>9}")
        # The web console's pages over the same tables, signed in as the same (viewer) key.
        console = create_app(runtime=runtime).test_client()
        sign_in(console, KEY)
        for label, path in (
            ("console: overview", "/ui/acme/production/"),
            ("console: documents, failed", "/ui/acme/production/documents?status=failed"),
            (
                "console: one business object",
                "/ui/acme/production/documents?sap_object_type=BKPF&sap_object_id="
                + business_object(args.documents // 2 + 1)[1],
            ),
            ("console: destinations", "/ui/acme/production/destinations"),
        ):
            timings = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                reply = console.get(path)
                timings.append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200, reply.status_code
            timings.sort()
            p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
            print(f"{label:32} {statistics.median(timings):8.1f} {p95:8.1f} {timings[-1]:8.1f}")
        # The sweeper walks indexes over due rows only: with nothing due, a pass must not scan the tables.
        sweeps = []
        for _ in range(5):
            t0 = time.perf_counter()
            report = sweep(runtime)
            sweeps.append((time.perf_counter() - t0) * 1000)
        print(f"sweeper pass with nothing due over these tables: median {statistics.median(sweeps):.1f} ms ({report})")
        runtime.close()


if __name__ == "__main__":
    main()
