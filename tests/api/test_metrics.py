"""GET /metrics: Prometheus text that parses, counts what SAP sent, and gauges that match the database.

Counters live for the whole test process (other tests count too), so tests compare before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from filerelay import metrics
from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, transitions
from filerelay.runtime import Runtime
from tests.support.metrics import Samples, scrape, value
from tests.support.sapclient import Part, SapClient
from tests.support.wakeups import take_wakeups


def received(samples: Samples, repo_id: str = "Z1") -> float:
    return value(samples, "filerelay_documents_received_total", workspace="acme/production", repo_id=repo_id)


def test_received_counts_every_document_sap_created(server: str, sap: SapClient) -> None:
    before = scrape(server)
    assert sap.create("DOC1", "data", b"one").status == 201
    assert sap.create("DOC2", "data", b"two").status == 201
    # One document with two components is one document received.
    assert sap.create_multipart("DOC3", [Part("a", b"3a"), Part("b", b"3b")]).status == 201
    # mCreate: each document in the body counts.
    reply = sap.m_create([Part("data", b"4", doc_id="DOC4"), Part("data", b"5", doc_id="DOC5")])
    assert reply.status == 201
    # Refused creates do not count: a duplicate, and an unknown repository.
    assert sap.create("DOC1", "data", b"again").status == 403
    assert SapClient(sap_endpoint(server), cont_rep="NOPE").create("DOC9", "data", b"x").status == 404
    after = scrape(server)

    assert received(after) - received(before) == 5
    assert received(after, "Z2") == received(before, "Z2")


def sap_endpoint(server: str) -> str:
    return server + "/archivelink/acme/production"


def test_status_gauges_and_staged_bytes_match_the_database(server: str, sap: SapClient, configured: Runtime) -> None:
    for n in range(4):
        assert sap.create(f"DOC{n}", "data", b"x" * (100 + n)).status == 201
    assert SapClient(sap_endpoint(server), cont_rep="Z2").create("UNWIRED", "data", b"y" * 7).status == 201
    with session_scope(configured.sessions) as session:
        ids = list(session.scalars(select(Document.id).where(Document.repository.has(repo_id="Z1"))))
        # Some variety: one delivered and purged from staging, one failed.
        session.execute(update(Document).where(Document.id == ids[0]).values(status="delivered", staging_key=None))
        session.execute(update(Document).where(Document.id == ids[1]).values(status="failed"))
    samples = scrape(server)

    with session_scope(configured.sessions) as session:
        by_status = {
            status: count
            for status, count in session.execute(
                select(Document.status, func.count()).where(Document.deleted_at.is_(None)).group_by(Document.status)
            )
        }
        staged = session.scalar(select(func.sum(Document.size_bytes)).where(Document.staging_key.is_not(None)))
    assert len(by_status) >= 3
    # The statuses still needing attention; delivered ones grow with the history, and are not counted.
    for status in ("pending", "retrying", "failed"):
        assert value(samples, "filerelay_documents", status=status) == by_status.get(status, 0), status
    assert by_status["delivered"] == 1
    assert ("filerelay_documents", frozenset({("status", "delivered")})) not in samples
    assert staged is not None
    assert staged > 7  # the unwired document and three Z1 ones
    assert value(samples, "filerelay_staged_bytes") == staged
    assert value(samples, "filerelay_metrics_source_up", source="database") == 1


def test_queue_depth_counts_the_embedded_brokers_wake_ups(server: str, sap: SapClient, configured: Runtime) -> None:
    assert configured.settings.embedded_broker
    empty = scrape(server)
    for queue in ("deliver.s3", "deliver.folder", "deliver.sharepoint", "deliver.pull"):
        assert value(empty, "filerelay_queue_depth", queue=queue) == 0
    for n in range(3):
        assert sap.create(f"DOC{n}", "data", b"x").status == 201
    samples = scrape(server)
    # Z1 is wired to a folder and an S3 bucket: one wake-up waits on each queue, however many documents.
    assert value(samples, "filerelay_queue_depth", queue="deliver.folder") == 1
    assert value(samples, "filerelay_queue_depth", queue="deliver.s3") == 1
    assert value(samples, "filerelay_queue_depth", queue="deliver.sharepoint") == 0
    assert value(samples, "filerelay_metrics_source_up", source="broker") == 1
    assert take_wakeups(configured) == ["folder", "s3"]  # a worker took them
    taken = scrape(server)
    assert value(taken, "filerelay_queue_depth", queue="deliver.folder") == 0
    assert value(taken, "filerelay_queue_depth", queue="deliver.s3") == 0


def test_an_unreadable_broker_drops_only_the_queue_gauge(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(_settings: object) -> dict[str, int]:
        raise ConnectionError("broker down")

    monkeypatch.setattr(metrics, "queue_depths", down)
    samples = scrape(server)
    assert value(samples, "filerelay_metrics_source_up", source="broker") == 0
    assert not any(name == "filerelay_queue_depth" for name, _ in samples)
    assert value(samples, "filerelay_metrics_source_up", source="database") == 1


def test_deliveries_are_counted_by_destination_and_verdict(server: str, sap: SapClient, configured: Runtime) -> None:
    assert sap.create("DOC1", "data", b"12345").status == 201
    with session_scope(configured.sessions) as session:
        deliveries = {
            public_id: delivery_id
            for public_id, delivery_id in session.execute(select(Destination.public_id, Delivery.id).join(Destination))
        }
    before = scrape(server)
    assert service.run(configured, deliveries["dest_folder"])
    assert service.run(configured, deliveries["dest_s3prod"])  # nothing listens there: retried later
    assert not service.run(configured, deliveries["dest_folder"])  # nothing to claim: not counted
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "filerelay_deliveries_total"
    assert delta(total, destination_id="dest_folder", kind="folder", outcome="delivered") == 1
    assert delta(total, destination_id="dest_s3prod", kind="s3", outcome="retry") == 1
    assert delta(total, destination_id="dest_s3prod", kind="s3", outcome="failed") == 0
    assert delta("filerelay_delivered_bytes_total", destination_id="dest_folder", kind="folder") == 5
    assert delta("filerelay_delivered_bytes_total", destination_id="dest_s3prod", kind="s3") == 0
    assert delta("filerelay_delivery_attempt_seconds_count", kind="folder") == 1
    assert delta("filerelay_delivery_attempt_seconds_count", kind="s3") == 1
    assert delta("filerelay_delivery_attempt_seconds_bucket", kind="folder", le="+Inf") == 1


WRITER = textwrap.dedent(
    """
    from filerelay import metrics
    metrics.count_delivery("dest_folder", "folder", "delivered", 10)
    metrics.count_delivery("dest_folder", "folder", "delivered", 10)
    metrics.ATTEMPT_SECONDS.labels(kind="folder").observe(0.2)
    """
)


def test_counts_other_processes_wrote_to_the_shared_folder_are_added_up(
    server: str, sap: SapClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What gunicorn workers and Celery children do: each counts into PROMETHEUS_MULTIPROC_DIR files."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    before = scrape(server)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for _ in range(2):  # two processes, two files
        subprocess.run([sys.executable, "-c", WRITER], env=env, check=True, timeout=60)
    # Each process's counters, histograms and (the sweeper's last pass, 0 in any other process) gauge.
    kinds = ["counter", "gauge", "histogram"]
    assert sorted(p.name.split("_")[0] for p in folder.iterdir()) == sorted(kinds * 2)
    assert sap.create("DOC1", "data", b"x").status == 201  # counted in this process's memory
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    after = scrape(server)

    delivered = {"destination_id": "dest_folder", "kind": "folder", "outcome": "delivered"}
    # This process was not started in multiprocess mode: its own counts are added to the files'.
    assert (
        value(after, "filerelay_deliveries_total", **delivered)
        == value(before, "filerelay_deliveries_total", **delivered) + 4
    )
    assert received(after) == received(before) + 1
    assert value(after, "filerelay_delivery_attempt_seconds_bucket", kind="folder", le="0.25") >= 2
    # The gauges still come from the database, once, not from any file.
    assert Counter(name for name, _ in after)["filerelay_staged_bytes"] == 1


def test_a_file_another_process_has_only_just_created_spoils_no_scrape(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's counter file is empty for a moment after it is created, before prometheus_client sizes
    it: a scrape then read it and answered 500 (CI, `filerelay up` with its worker just starting)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", WRITER], env=env, check=True, timeout=60)
    (folder / "counter_999999.db").touch()  # born, not yet sized
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    after = scrape(server)
    delivered = {"destination_id": "dest_folder", "kind": "folder", "outcome": "delivered"}
    assert value(after, "filerelay_deliveries_total", **delivered) >= 2  # the sized file's counts still read


def test_a_paused_destination_and_an_open_breaker_show(server: str, configured: Runtime) -> None:
    with session_scope(configured.sessions) as session:
        folder = session.scalars(select(Destination).where(Destination.public_id == "dest_folder")).one()
        transitions.paused(folder, now=configured.clock.now())
        s3 = session.scalars(select(Destination).where(Destination.public_id == "dest_s3prod")).one()
        for _ in range(configured.settings.breaker.failures):
            transitions.attempt_counted(
                s3,
                delivery_id="dlv_x",
                ok=False,
                retryable=True,
                policy=configured.settings.breaker,
                now=configured.clock.now(),
            )
    samples = scrape(server)
    where = {"workspace": "acme/production"}
    assert value(samples, "filerelay_destination_paused", **where, destination_id="dest_folder", kind="folder") == 1
    assert value(samples, "filerelay_destination_paused", **where, destination_id="dest_s3prod", kind="s3") == 0
    assert value(samples, "filerelay_destination_breaker_open", **where, destination_id="dest_s3prod", kind="s3") == 1
    assert (
        value(samples, "filerelay_destination_breaker_open", **where, destination_id="dest_folder", kind="folder") == 0
    )
