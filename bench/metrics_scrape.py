"""Cost of one `GET /metrics` scrape as the document history grows: 1,000, 1,000,000 and 10,000,000.

    python -m bench.metrics_scrape [--sizes 1000 1000000 10000000] [--database-url postgresql+psycopg://...]
                                   [--keep-database NAME]

Fills a scratch PostgreSQL database (created and dropped by the script; with --keep-database, that one,
kept for the next run and topped up to each size) with generate_series, server side, in batches. What
grows is the history: delivered documents, each with its delivery to each of three destinations. The
work outstanding stays the same at every size, as on a live installation: 2,000 documents pending,
1,000 retrying, 5,000 failed, and the last hour's 10,000 delivered documents still staged. At each size
it times the scrape through the real Flask app, and beside it the query the gauges used to run (a count
of every live document by status). Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from bench.list_documents import CONFIG, START
from filerelay.api import create_app
from filerelay.config_file import apply, load
from filerelay.db.migrate import upgrade
from filerelay.db.session import session_scope
from filerelay.runtime import build_runtime
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY, scratch_database
from tests.support.policy import LOOPBACK

# The work outstanding, the same at every size (the newest documents).
PENDING, RETRYING, FAILED, STAGED_DELIVERED = 2_000, 1_000, 5_000, 10_000
BATCH = 500_000
# What the gauges asked before: every live document, counted by status.
OLD_QUERY = "SELECT status, count(*) FROM documents WHERE deleted_at IS NULL GROUP BY status"


def _status(n: int, total: int) -> str:
    """The status of document n (1-based) of `total`: the newest are the work outstanding."""
    from_end = total - n
    if from_end < PENDING:
        return "pending"
    if from_end < PENDING + RETRYING:
        return "retrying"
    if from_end < PENDING + RETRYING + FAILED:
        return "failed"
    return "delivered"


def grow(engine: Engine, total: int) -> None:
    """Add documents up to `total`; the ones that were outstanding at the last size are delivered now."""
    with engine.connect() as conn:
        have = conn.execute(text("SELECT coalesce(max(id), 0) FROM archive_documents")).scalar_one()
    if have >= total:
        return
    with engine.begin() as conn:
        # Yesterday's outstanding work has been delivered and purged meanwhile.
        conn.execute(
            text(
                "UPDATE deliveries SET status = 'delivered', next_attempt_at = NULL, delivered_at = created_at "
                "WHERE status <> 'delivered'"
            )
        )
        conn.execute(text("UPDATE documents SET status = 'delivered', staging_key = NULL WHERE status <> 'delivered'"))
        conn.execute(text("UPDATE documents SET staging_key = NULL WHERE staging_key IS NOT NULL"))
    with engine.connect() as conn:
        repositories = [row[0] for row in conn.execute(text("SELECT id FROM repositories ORDER BY repo_id"))]
        workspace = conn.execute(text("SELECT id FROM workspaces")).scalar_one()
        destinations = [row[0] for row in conn.execute(text("SELECT id FROM destinations ORDER BY id"))]
    repo = f"(ARRAY[{', '.join(map(str, repositories))}])[1 + n % {len(repositories)}]"
    with without_secondary_indexes(engine, rebuild=total - have > have):
        for start in range(have + 1, total + 1, BATCH):
            insert_batch(engine, start, min(start + BATCH - 1, total), total, repo, workspace, destinations)
    with engine.connect() as conn:
        conn.execute(text("SELECT setval('archive_documents_id_seq', :n)"), {"n": total})
        conn.commit()
    # What autovacuum does on a live system: statistics, and the visibility map index-only scans need.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


@contextmanager
def without_secondary_indexes(engine: Engine, *, rebuild: bool) -> Iterator[None]:
    """When most rows are still to come, drop the tables' secondary indexes and build them again after:
    one sort per index rather than millions of insertions into it. The indexes are the migrations' own
    (their definitions are read back from pg_indexes), so the tables end as `filerelay migrate` leaves them."""
    if not rebuild:
        yield
        return
    tables = ("archive_documents", "documents", "deliveries")
    with engine.begin() as conn:
        definitions = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(:tables) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            ),
            {"tables": list(tables)},
        ).all()
        for name, _ in definitions:
            conn.execute(text(f'DROP INDEX "{name}"'))
    try:
        yield
    finally:
        for _, definition in definitions:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
                conn.execute(text(definition))


def insert_batch(
    engine: Engine, start: int, end: int, total: int, repo: str, workspace: int, destinations: list[int]
) -> None:
    outstanding = PENDING + RETRYING + FAILED
    status = (
        f"CASE WHEN {total} - n < {PENDING} THEN 'pending' WHEN {total} - n < {PENDING + RETRYING} THEN 'retrying' "
        f"WHEN {total} - n < {outstanding} THEN 'failed' ELSE 'delivered' END"
    )
    staged = f"CASE WHEN {total} - n < {outstanding + STAGED_DELIVERED} THEN 'staging/doc_' || n ELSE NULL END"
    received = f"timestamptz '{START.isoformat()}' + n * interval '3 seconds'"
    series = f"generate_series({start}, {end}) AS n"
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(
            text(
                "INSERT INTO archive_documents (id, repository_id, doc_id, created_at, updated_at) "  # noqa: S608 - numbers this script computed
                f"SELECT n, {repo}, 'D' || lpad(n::text, 12, '0'), {received}, {received} FROM {series}"
            )
        )
        conn.execute(
            text(
                "INSERT INTO documents (id, archive_document_id, workspace_id, repository_id, doc_id, comp_id, "  # noqa: S608 - numbers this script computed
                "content_type, size_bytes, sha256, staging_key, generation, status, received_at, updated_at, "
                "metadata, export_messages) "
                f"SELECT 'doc_' || lpad(n::text, 20, '0'), n, {workspace}, {repo}, 'D' || lpad(n::text, 12, '0'), "
                f"'data', 'application/pdf', 245780, repeat('0', 64), {staged}, 1, {status}, {received}, "
                f"{received}, '{{}}', '[]' FROM {series}"
            )
        )
        for k, destination in enumerate(destinations):
            # A failed document failed at its first destination; its others delivered.
            state = status if k == 0 else f"CASE WHEN {status} = 'failed' THEN 'delivered' ELSE {status} END"
            conn.execute(
                text(
                    "INSERT INTO deliveries (id, document_id, destination_id, status, attempts, cycle_attempts, "  # noqa: S608 - numbers this script computed
                    "cycle_started_at, expires_at, next_attempt_at, delivered_at, delivered_generation, "
                    "created_at, updated_at) "
                    f"SELECT 'dlv_' || lpad(n::text, 18, '0') || '{k}', 'doc_' || lpad(n::text, 20, '0'), "
                    f"{destination}, s, 1, 1, {received}, timestamptz '2100-01-01', "
                    f"CASE WHEN s IN ('pending', 'retrying') THEN {received} END, "
                    f"CASE WHEN s = 'delivered' THEN {received} END, 1, {received}, {received} "
                    f"FROM {series}, LATERAL (SELECT {state} AS s) AS st"
                )
            )


@contextmanager
def database(server_url: str, keep: str | None) -> Iterator[str]:
    if keep is None:
        with scratch_database(server_url, prefix="filerelay_bench") as url:
            yield url
        return
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": keep}).first():
            conn.execute(text(f'CREATE DATABASE "{keep}"'))
    admin.dispose()
    yield make_url(server_url).set(database=keep).render_as_string(hide_password=False)


def timed(call: object, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        timings.append((time.perf_counter() - t0) * 1000)
    return sorted(timings)


def statement_times(engine: Engine, call: Callable[[], None], runs: int) -> list[tuple[str, float]]:
    """Each statement a scrape runs, its median time over `runs` scrapes: where the milliseconds go."""
    times: dict[str, list[float]] = {}
    started: list[float] = []

    def before(*_: object) -> None:
        started.append(time.perf_counter())

    def after(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        key = " ".join(statement.split())[:110]
        times.setdefault(key, []).append((time.perf_counter() - started.pop()) * 1000)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        for _ in range(runs):
            call()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return sorted(((key, statistics.median(ms)) for key, ms in times.items()), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep-database", default=None, help="Fill (and keep) this database instead of a scratch one.")
    args = parser.parse_args()
    with database(args.database_url, args.keep_database) as url:
        upgrade(url)
        runtime = build_runtime(
            Settings.from_env(
                {
                    "FILERELAY_DATABASE_URL": url,
                    "FILERELAY_HOME": "/tmp/fr-bench-metrics",
                    "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                    # The broker's gauge is not what is measured here: the embedded one answers at once.
                    "FILERELAY_BROKER_URL": "",
                }
            )
        )
        with runtime.engine.connect() as conn:
            configured = conn.execute(text("SELECT count(*) FROM workspaces")).scalar_one()
        if not configured:
            with session_scope(runtime.sessions) as session:
                apply(session, load(CONFIG, {}), now=START, policy=LOOPBACK)
        client = create_app(runtime=runtime).test_client()
        print(f"{'documents':>12} {'fill s':>7} {'scrape p50 ms':>14} {'p95 ms':>8} {'old query p50 ms':>17}")
        for size in sorted(args.sizes):
            t0 = time.perf_counter()
            grow(runtime.engine, size)
            filled = time.perf_counter() - t0

            def scrape() -> None:
                reply = client.get("/metrics")
                assert reply.status_code == 200, reply.status_code
                assert b'filerelay_metrics_source_up{source="database"} 1.0' in reply.data, reply.data

            scrape()  # warm: connections, caches
            scrapes = timed(scrape, args.runs)
            with runtime.engine.connect() as conn:
                old = timed(lambda: conn.execute(text(OLD_QUERY)).all(), max(3, args.runs // 4))
            p95 = scrapes[max(0, int(len(scrapes) * 0.95) - 1)]
            print(
                f"{size:>12,} {filled:>7.0f} {statistics.median(scrapes):>14.1f} {p95:>8.1f} "
                f"{statistics.median(old):>17.1f}",
                flush=True,
            )
            for statement, ms in statement_times(runtime.engine, scrape, args.runs):
                print(f"{'':>12} {ms:8.2f} ms  {statement}", flush=True)
        runtime.close()


if __name__ == "__main__":
    main()
