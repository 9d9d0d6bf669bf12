"""Prometheus metrics: counters the processes increment, gauges read from the database and broker per scrape.

Several processes count: gunicorn workers (documents received) and Celery prefork children (deliveries).
With ``PROMETHEUS_MULTIPROC_DIR`` set to a folder they all share, prometheus-client keeps every process's
values in memory-mapped files there and ``GET /metrics`` adds them up, so a scrape that lands on any one
gunicorn worker sees the whole host. The variable must be set before ``prometheus_client`` is first
imported (it chooses the storage then) and the folder must start empty; ``filerelay up`` and
``filerelay api`` create a fresh one under FILERELAY_HOME when the operator did not set it
(:func:`filerelay.metrics_dir.own_multiprocess_dir`). Without it, each process only ever shows its own counts.

The gauges (queue depth, outstanding documents by status, staged bytes, each destination's oldest due
delivery, certificates' days to expiry) are not counted anywhere: :class:`StateCollector` asks the database
and the broker at scrape time, in the serving process, so they are right whichever process answers and
never go through the multiprocess files. Each of its queries walks an index over the work outstanding
(waiting, failed, staged documents; due deliveries) or a small table, never the whole history: a scrape
costs the same at ten million documents as at a thousand (bench/metrics_scrape.py). Delivered documents
are therefore not a gauge: `filerelay_deliveries_total` counts them as they happen.

Two values are process state rather than database state: the sweeper's last pass (a gauge the sweeper
sets; across processes the newest wins) and each worker process's heartbeat (the files of
filerelay.heartbeats, read at scrape time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from filerelay import certificate_expiry, heartbeats
from filerelay.db.models import Delivery, DeliveryStatus, Destination, Document, DocumentStatus, Workspace
from filerelay.metrics_dir import multiprocess_dir
from filerelay.queue import KINDS, queue_depths, queue_name
from filerelay.runtime import Runtime

log = logging.getLogger(__name__)

# This process's metrics. Not prometheus-client's global REGISTRY, so /metrics exposes exactly these
# (its default process/platform collectors describe one process only, misleading under gunicorn).
REGISTRY = CollectorRegistry()

DOCUMENTS_RECEIVED = Counter(
    "filerelay_documents_received",
    "ArchiveLink documents accepted (create/mCreate committed), by workspace and content repository.",
    ["workspace", "repo_id"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "filerelay_deliveries",
    "Finished delivery attempts by verdict: delivered, retry (another attempt follows) or failed (given up).",
    ["destination_id", "kind", "outcome"],
    registry=REGISTRY,
)
ATTEMPT_SECONDS = Histogram(
    "filerelay_delivery_attempt_seconds",
    "Time spent uploading one delivery attempt to its destination.",
    ["kind"],
    # From a local folder write to a multi-gigabyte upload.
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
DELIVERED_BYTES = Counter(
    "filerelay_delivered_bytes",
    "Bytes of content delivered successfully.",
    ["destination_id", "kind"],
    registry=REGISTRY,
)


DELIVERY_LATENCY = Histogram(
    "filerelay_delivery_latency_seconds",
    "From a delivery's creation (its document received) to its being recorded delivered, retries included.",
    ["kind"],
    # From a folder copy within the second to a destination that was down for a day.
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200),
    registry=REGISTRY,
)
SWEEPER_LAST_PASS = Gauge(
    "filerelay_sweeper_last_pass_timestamp_seconds",
    "When the sweeper last finished a pass without error (Unix time; 0 from a process that is not the "
    "sweeper: take the max).",
    # A sweeper started again writes a new file beside its predecessor's: the newest pass is the latest.
    multiprocess_mode="max",
    registry=REGISTRY,
)
# Delivery statuses that wait for a worker.
_WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# Document statuses still needing attention; the others only ever grow with the history.
OUTSTANDING = (DocumentStatus.PENDING, DocumentStatus.RETRYING, DocumentStatus.FAILED)


def count_delivery(destination_id: str, kind: str, outcome: str, size: int, waited: float | None = None) -> None:
    """One finished attempt's verdict; a delivered one also adds its bytes, and `waited` (seconds since
    the delivery was created) to the latency histogram."""
    DELIVERIES.labels(destination_id=destination_id, kind=kind, outcome=outcome).inc()
    if outcome == "delivered":
        DELIVERED_BYTES.labels(destination_id=destination_id, kind=kind).inc(size)
        if waited is not None:
            DELIVERY_LATENCY.labels(kind=kind).observe(max(0.0, waited))


def sweeper_passed(at: float | None = None) -> None:
    """The sweeper finished a pass (now, or at Unix time `at`)."""
    SWEEPER_LAST_PASS.set(time.time() if at is None else at)


def _file_backed() -> bool:
    """Whether this process's counters live in the shared folder (it was set when prometheus_client loaded)."""
    return values.ValueClass is not values.MutexValue


class _Counts:
    """The counters and histograms: this process's, the shared folder's, or both added up."""

    def collect(self) -> Iterable[Metric]:
        folder = multiprocess_dir()
        if folder is None:
            return REGISTRY.collect()
        folder.mkdir(parents=True, exist_ok=True)  # nobody has counted anything yet
        # A file another process has just created is empty until it sizes it, and prometheus_client fails
        # the whole scrape reading it (struct.error): such a file holds no count yet, so it is left out.
        files = [str(path) for path in folder.glob("*.db") if _sized(path)]
        # prometheus_client's multiprocess module has no type annotations.
        shared: list[Metric] = list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]
        if _file_backed():
            return shared  # our own counts are among the files
        # This process loaded prometheus_client before the folder was set (an embedding application or a
        # test), so its counts are in memory only: add them to the other processes'.
        return _merge([*shared, *REGISTRY.collect()])


def _sized(path: Path) -> bool:
    try:
        return path.stat().st_size >= 8  # prometheus_client's header: the bytes used, then padding
    except FileNotFoundError:  # a process that ended, its file removed
        return False


def _merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name, samples with equal name and labels summed (counters and cumulative buckets);
    gauges (timestamps) keep the largest."""
    heads: dict[str, Metric] = {}
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in families:
        heads.setdefault(family.name, Metric(family.name, family.documentation, family.type))
        sums = totals.setdefault(family.name, {})
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a timestamp per process, not addable; the multiprocess files have none either
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if family.type == "gauge":
                sums[key] = max(sums.get(key, sample.value), sample.value)
            else:
                sums[key] = sums.get(key, 0.0) + sample.value
    for name, head in heads.items():
        for (sample_name, labels), value in totals[name].items():
            head.add_sample(sample_name, dict(labels), value)
    return list(heads.values())


class StateCollector:
    """Gauges read at scrape time: a few indexed queries, and one look at the broker."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "filerelay_metrics_source_up",
            "1 when this scrape could read the source (database, broker), 0 when the gauges from it are missing.",
            labels=["source"],
        )
        families: list[Metric] = []
        try:
            families += self._database()
            up.add_metric(["database"], 1)
        except Exception as exc:
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up.add_metric(["database"], 0)
        try:
            families.append(self._queues())
            up.add_metric(["broker"], 1)
        except Exception as exc:
            log.warning("metrics: cannot read the broker: %s", type(exc).__name__)
            up.add_metric(["broker"], 0)
        return [*families, up]

    def _database(self) -> list[Metric]:
        now = self._runtime.clock.now()
        with self._runtime.engine.connect() as conn:
            by_status = _outstanding(conn)
            # The partial index on staged documents: those not delivered yet, failed, or within the
            # staging retention, however many were delivered and purged before.
            staged = conn.execute(
                select(func.coalesce(func.sum(Document.size_bytes), 0)).where(Document.staging_key.is_not(None))
            ).scalar_one()
            destinations = conn.execute(
                select(
                    Destination.id,
                    Destination.public_id,
                    Destination.kind,
                    Destination.enabled,
                    Destination.paused_at,
                    Destination.breaker_opened_at,
                    Workspace.owner_slug,
                    Workspace.slug,
                ).join(Workspace, Workspace.id == Destination.workspace_id)
            ).all()
            # The (status, next_attempt_at) index, over the due deliveries only.
            oldest_due = dict(
                conn.execute(
                    select(Delivery.destination_id, func.min(Delivery.next_attempt_at))
                    .where(Delivery.status.in_(_WAITING), Delivery.next_attempt_at <= now)
                    .group_by(Delivery.destination_id)
                ).all()
            )
            expiries = [*certificate_expiry.sap(conn), *_sharepoint_expiries(conn)]
        documents = GaugeMetricFamily(
            "filerelay_documents",
            "Live documents (components) still needing attention, by delivery status: pending, retrying, failed "
            "(delivered ones are counted by filerelay_deliveries_total).",
            labels=["status"],
        )
        # Every status, zeros included, so an alert on a status does not go silent when its count drops to 0.
        for status in OUTSTANDING:
            documents.add_metric([str(status)], by_status.get(status, 0))
        staged_bytes = GaugeMetricFamily(
            "filerelay_staged_bytes", "Bytes held in staging (documents whose staged copy is not purged yet)."
        )
        staged_bytes.add_metric([], int(staged))
        labels = ["workspace", "destination_id", "kind"]
        paused = GaugeMetricFamily(
            "filerelay_destination_paused", "1 while an admin has paused the destination.", labels=labels
        )
        breaker = GaugeMetricFamily(
            "filerelay_destination_breaker_open",
            "1 while the destination's circuit breaker holds its deliveries (open, or probing with one).",
            labels=labels,
        )
        late = GaugeMetricFamily(
            "filerelay_delivery_oldest_due_age_seconds",
            "How long the destination's longest-due waiting delivery has been due (0: none due). Enabled push "
            "destinations; a paused one's, or one whose breaker is open, wait on purpose (see those gauges).",
            labels=labels,
        )
        for row_id, public_id, kind, enabled, paused_at, opened_at, owner, slug in destinations:
            where = [f"{owner}/{slug}", public_id, kind]
            paused.add_metric(where, int(paused_at is not None))
            breaker.add_metric(where, int(opened_at is not None))
            if enabled and kind != "pull":  # nothing of FileRelay's delivers these: their integration does
                due = oldest_due.get(row_id)
                late.add_metric(where, 0.0 if due is None else max(0.0, (now - due).total_seconds()))
        expiry = GaugeMetricFamily(
            "filerelay_certificate_expiry_days",
            "Days until the certificate expires (negative: expired): SAP's activated certificates (owner: the "
            "repository) and SharePoint destinations' sign-in certificates (owner: the destination).",
            labels=["workspace", "source", "owner", "fingerprint"],
        )
        for item in expiries:
            expiry.add_metric([item.workspace, item.source, item.owner, item.fingerprint], item.days_left(now))
        return [documents, staged_bytes, paused, breaker, late, expiry]

    def _queues(self) -> Metric:
        depths = queue_depths(self._runtime.settings)
        family = GaugeMetricFamily(
            "filerelay_queue_depth",
            "Delivery wake-ups waiting in each deliver.<kind> queue (not those a worker is running).",
            labels=["queue"],
        )
        for kind in KINDS:
            family.add_metric([queue_name(kind)], depths.get(queue_name(kind), 0))
        return family


def _outstanding(conn: Connection) -> dict[str, int]:
    """Live documents by outstanding status, counted in the (workspace, status, received) index: one range
    per workspace and status, so the delivered history is never read."""
    workspaces = list(conn.execute(select(Workspace.id)).scalars())
    if not workspaces:
        return {}
    return {
        status: count
        for status, count in conn.execute(
            select(Document.status, func.count())
            .where(
                Document.workspace_id.in_(workspaces),
                Document.status.in_([str(s) for s in OUTSTANDING]),
                Document.deleted_at.is_(None),
            )
            .group_by(Document.status)
        )
    }


def _sharepoint_expiries(conn: Connection) -> list[certificate_expiry.Expiry]:
    """Read from the destinations' sealed secrets: one this process cannot open (a key it lacks) costs
    the certificate gauges, not the scrape."""
    try:
        return list(certificate_expiry.sharepoint(conn))
    except Exception as exc:
        log.warning("metrics: cannot read the SharePoint destinations' certificates: %s", type(exc).__name__)
        return []


class HeartbeatCollector:
    """Each worker process's last heartbeat on this host: the mtime of its file (filerelay.heartbeats)."""

    def __init__(self, home: Path) -> None:
        self._home = home

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "filerelay_worker_heartbeat_timestamp_seconds",
            "When each worker process on this host last said it is taking work (Unix time); the liveness "
            "probe fails it once that is too long ago.",
            labels=["process"],
        )
        for process, at in sorted(heartbeats.every_worker(self._home).items()):
            family.add_metric([process], at)
        return [family]


def serve_counts(port: int, home: Path, host: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's port, for its scraper
    """Serve this host's counters and heartbeats (not the database gauges: the API answers those) on their
    own port, in a background thread: how a worker or sweeper pod, with no HTTP service of its own, gets
    scraped."""
    registry = CollectorRegistry()
    registry.register(_Counts())
    registry.register(HeartbeatCollector(home))
    start_http_server(port, addr=host, registry=registry)


def scrape_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry for one scrape: the counts (see :class:`_Counts`), this host's worker heartbeats and the
    scrape-time gauges."""
    registry = CollectorRegistry()
    counts: Collector = _Counts()
    beats: Collector = HeartbeatCollector(runtime.settings.home)
    state: Collector = StateCollector(runtime)
    # No collector has describe(), so registering them runs no query; collect() does, per scrape.
    registry.register(counts)
    registry.register(beats)
    registry.register(state)
    return registry
