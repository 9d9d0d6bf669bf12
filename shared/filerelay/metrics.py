"""Prometheus metrics: counters the processes increment, gauges read from the database and broker per scrape.

Several processes count: gunicorn workers (documents received) and Celery prefork children (deliveries).
With ``PROMETHEUS_MULTIPROC_DIR`` set to a folder they all share, prometheus-client keeps every process's
values in memory-mapped files there and ``GET /metrics`` adds them up, so a scrape that lands on any one
gunicorn worker sees the whole host. The variable must be set before ``prometheus_client`` is first
imported (it chooses the storage then) and the folder must start empty; ``filerelay up`` and
``filerelay api`` create a fresh one under FILERELAY_HOME when the operator did not set it
(:func:`filerelay.metrics_dir.own_multiprocess_dir`). Without it, each process only ever shows its own counts.

The gauges (queue depth, documents by status, staged bytes) are not counted anywhere: :class:`StateCollector`
asks the database and the broker at scrape time, in the serving process, so they are right whichever
process answers and never go through the multiprocess files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from filerelay.db.models import Destination, Document, DocumentStatus, Workspace
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


def count_delivery(destination_id: str, kind: str, outcome: str, size: int) -> None:
    """One finished attempt's verdict; a delivered one also adds its bytes."""
    DELIVERIES.labels(destination_id=destination_id, kind=kind, outcome=outcome).inc()
    if outcome == "delivered":
        DELIVERED_BYTES.labels(destination_id=destination_id, kind=kind).inc(size)


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
        # prometheus_client's multiprocess module has no type annotations.
        shared: list[Metric] = list(MultiProcessCollector(None, path=str(folder)).collect())  # type: ignore[no-untyped-call]
        if _file_backed():
            return shared  # our own counts are among the files
        # This process loaded prometheus_client before the folder was set (an embedding application or a
        # test), so its counts are in memory only: add them to the other processes'.
        return _merge([*shared, *REGISTRY.collect()])


def _merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name, samples with equal name and labels summed (counters and cumulative buckets)."""
    heads: dict[str, Metric] = {}
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in families:
        heads.setdefault(family.name, Metric(family.name, family.documentation, family.type))
        sums = totals.setdefault(family.name, {})
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a timestamp per process, not addable; the multiprocess files have none either
            key = (sample.name, tuple(sorted(sample.labels.items())))
            sums[key] = sums.get(key, 0.0) + sample.value
    for name, head in heads.items():
        for (sample_name, labels), value in totals[name].items():
            head.add_sample(sample_name, dict(labels), value)
    return list(heads.values())


class StateCollector:
    """Gauges read at scrape time: one grouped query each, and one look at the broker."""

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
        with self._runtime.engine.connect() as conn:
            by_status: dict[str, int] = {
                status: count
                for status, count in conn.execute(
                    select(Document.status, func.count()).where(Document.deleted_at.is_(None)).group_by(Document.status)
                )
            }
            staged = conn.execute(
                select(func.coalesce(func.sum(Document.size_bytes), 0)).where(Document.staging_key.is_not(None))
            ).scalar_one()
            destinations = conn.execute(
                select(
                    Destination.public_id,
                    Destination.kind,
                    Destination.paused_at,
                    Destination.breaker_opened_at,
                    Destination.probe_delivery_id,
                    Workspace.owner_slug,
                    Workspace.slug,
                ).join(Workspace, Workspace.id == Destination.workspace_id)
            ).all()
        documents = GaugeMetricFamily(
            "filerelay_documents", "Live documents (components) by delivery status.", labels=["status"]
        )
        # Every status, zeros included, so an alert on a status does not go silent when its count drops to 0.
        for status in [*DocumentStatus, *sorted(set(by_status) - set(DocumentStatus))]:
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
        for public_id, kind, paused_at, opened_at, _probe, owner, slug in destinations:
            where = [f"{owner}/{slug}", public_id, kind]
            paused.add_metric(where, int(paused_at is not None))
            breaker.add_metric(where, int(opened_at is not None))
        return [documents, staged_bytes, paused, breaker]

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


def serve_counts(port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's port, for its scraper
    """Serve this host's counters (not the database gauges: the API answers those) on their own port, in
    a background thread: how a worker pod, which has no HTTP service of its own, gets scraped."""
    registry = CollectorRegistry()
    registry.register(_Counts())
    start_http_server(port, addr=host, registry=registry)


def scrape_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry for one scrape: the counts (see :class:`_Counts`) and the scrape-time gauges."""
    registry = CollectorRegistry()
    counts: Collector = _Counts()
    state: Collector = StateCollector(runtime)
    # Neither collector has describe(), so registering them runs no query; collect() does, per scrape.
    registry.register(counts)
    registry.register(state)
    return registry
