"""/metrics after a real run: the counts match the documents sent, whichever process counted them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import select

from filerelay.db.models import Document
from filerelay.db.session import session_scope
from tests.support.metrics import Samples, scrape, value
from tests.support.processes import environment, free_port, wait_ready
from tests.support.relay import Relay, wait_until
from tests.support.sapclient import Part, SapClient

pytestmark = pytest.mark.slow


def delivered(samples: Samples, destination_id: str, kind: str) -> float:
    labels = {"destination_id": destination_id, "kind": kind, "outcome": "delivered"}
    return value(samples, "filerelay_deliveries_total", **labels)


def from_folder(folder: Path) -> Samples:
    """What the worker's processes wrote, read the way the API's /metrics reads it."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return {(s.name, frozenset(s.labels.items())): s.value for f in registry.collect() for s in f.samples}


def test_metrics_count_what_a_real_worker_delivered(
    make_relay: Callable[..., Relay], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = make_relay()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    # The worker (main process and its children) counts into the shared folder, as under `up`.
    relay.env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    # The in-process API shares the folder too (its own counts stay in memory and are added: see metrics.py).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    base = f"http://{relay.sap.host}:{relay.sap.port}"
    before = scrape(base)

    sizes = [0, 10, 300_000, 5, 7, 11]
    for n, size in enumerate(sizes[:4]):
        assert relay.sap.create(f"DOC{n}", "data", b"x" * size).status == 201
    reply = relay.sap.m_create(
        [Part("data", b"x" * sizes[4], doc_id="DOC4"), Part("data", b"x" * sizes[5], doc_id="DOC5")]
    )
    assert reply.status == 201
    documents, destinations = len(sizes), 2

    def counted() -> bool:
        return sum(
            delivered(from_folder(folder), d, k) for d, k in [("dest_folder", "folder"), ("dest_s3prod", "s3")]
        ) >= (documents * destinations)

    wait_until(counted, what="every delivery counted")
    with session_scope(relay.runtime.sessions) as session:
        assert set(session.scalars(select(Document.status))) == {"delivered"}

    # The worker's own files say it: every document, once to each destination, nothing failed.
    worker = from_folder(folder)
    assert delivered(worker, "dest_folder", "folder") == documents
    assert delivered(worker, "dest_s3prod", "s3") == documents
    assert not any(
        name == "filerelay_deliveries_total" and ("outcome", "delivered") not in labels for name, labels in worker
    )
    assert value(worker, "filerelay_delivery_attempt_seconds_count", kind="s3") == documents
    assert value(worker, "filerelay_delivered_bytes_total", destination_id="dest_s3prod", kind="s3") == sum(sizes)

    # And the API's /metrics, sharing the folder, adds them to what it counted itself.
    after = scrape(base)
    total = sum(
        delivered(after, d, k) - delivered(before, d, k) for d, k in [("dest_folder", "folder"), ("dest_s3prod", "s3")]
    )
    assert total == documents * destinations
    received = "filerelay_documents_received_total"
    labels = {"workspace": "acme/production", "repo_id": "Z1"}
    assert value(after, received, **labels) - value(before, received, **labels) == documents
    for queue in ("deliver.s3", "deliver.folder"):
        assert value(after, "filerelay_queue_depth", queue=queue) == 0
    assert value(after, "filerelay_metrics_source_up", source="broker") == 1  # the queue depth came from Redis
    assert value(after, "filerelay_documents", status="pending") == 0
    # Created → delivered, observed by the worker for each delivery it recorded.
    assert sum(value(worker, "filerelay_delivery_latency_seconds_count", kind=k) for k in ("s3", "folder")) == (
        documents * destinations
    )


def test_up_shows_the_workers_deliveries_on_the_apis_metrics(tmp_path: Path) -> None:
    """`filerelay up` gives its API and worker one metrics folder under FILERELAY_HOME, and removes it after."""
    home = tmp_path / "home"
    port = free_port()
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}")
    for name in ("FILERELAY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "up", "--port", str(port)], env=env, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        [folder] = (home / "metrics").iterdir()  # one folder for all of up's processes
        assert folder.name.startswith("prometheus-")
        sap = SapClient(f"{base}/archivelink/acme/production")
        for n in range(3):
            assert sap.create(f"UP{n}", "data", b"%PDF-1.4").status == 201

        def all_delivered() -> bool:
            return delivered(scrape(base), "dest_folder", "folder") == 3

        wait_until(all_delivered, what="the worker's deliveries on the API's /metrics")
        samples = scrape(base)
        assert value(samples, "filerelay_documents_received_total", workspace="acme/production", repo_id="Z1") == 3
        assert value(samples, "filerelay_queue_depth", queue="deliver.folder") == 0  # its wake-up file taken
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert list((home / "metrics").iterdir()) == []


def test_every_gunicorn_worker_answers_with_the_same_counts_and_logs_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}")
    for name in ("FILERELAY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "FILERELAY_LOG_FORMAT"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "filerelay.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, timeout=120, capture_output=True)
    subprocess.run(
        [*cli, "config", "apply", env["FILERELAY_CONFIG"]], env=env, check=True, timeout=120, capture_output=True
    )
    log_file = tmp_path / "api.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [*cli, "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "3", "--threads", "2"],
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        sap = SapClient(f"{base}/archivelink/acme/production")
        for n in range(5):
            assert sap.create(f"G{n}", "data", b"x").status == 201
        # New connections land on whichever worker accepts first: every one must see all five.
        counts = {
            value(scrape(base), "filerelay_documents_received_total", workspace="acme/production", repo_id="Z1")
            for _ in range(12)
        }
        assert counts == {5.0}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    entries = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    accepted = [e for e in entries if e["message"].startswith("accepted component")]
    assert sorted(e["doc_id"] for e in accepted) == [f"G{n}" for n in range(5)]
    assert all(e["document_id"].startswith("doc_") for e in accepted)
    assert any(e["logger"] == "gunicorn.access" and "/metrics" in e["message"] for e in entries)
    # The folder `filerelay api` made for itself is gone once it stopped.
    assert list((home / "metrics").iterdir()) == []


def test_a_worker_pod_serves_its_own_delivery_counts(make_relay: Callable[..., Relay]) -> None:
    """In Kubernetes a worker shares no folder with the API: `--metrics-port` lets Prometheus scrape it."""
    relay = make_relay()
    env = {k: v for k, v in relay.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    relay.env = env
    port = free_port()
    relay.start("worker", "worker", "--queues", "s3,folder", "--metrics-port", str(port))
    for n in range(3):
        assert relay.sap.create(f"PODM{n}", "data", b"%PDF pod", "application/pdf").status == 201

    def all_counted() -> bool:
        try:
            samples = scrape(f"http://127.0.0.1:{port}")
        except OSError:
            return False
        return delivered(samples, "dest_folder", "folder") == 3 and delivered(samples, "dest_s3prod", "s3") == 3

    wait_until(all_counted, timeout=90, what="the worker's own /metrics to count every delivery")
    samples = scrape(f"http://127.0.0.1:{port}")
    # Counts only: the database gauges are the API's to answer.
    assert not any(name == "filerelay_documents" for name, _ in samples)
