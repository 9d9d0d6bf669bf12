"""GET /metrics, what an operator watches the pipeline with: how late deliveries are, how long the oldest
due one has waited, the sweeper's last pass, the workers' heartbeats, the certificates' days to expiry;
and the scrape never reads the whole document history.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select

from filerelay import certificates, heartbeats, metrics
from filerelay.clock import FrozenClock
from filerelay.db.models import Certificate, Delivery, Destination, Repository, Workspace
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from filerelay.worker.sweeper import run_forever
from tests.support.metrics import Samples, scrape, value
from tests.support.sapclient import SapClient
from tests.support.signing import make_signer
from tests.support.sql_capture import executed, sqlite_plan

WHERE = {"workspace": "acme/production"}


def delivery_of(runtime: Runtime, destination: str) -> str:
    with session_scope(runtime.sessions) as session:
        return session.scalars(select(Delivery.id).join(Destination).where(Destination.public_id == destination)).one()


def latency(samples: Samples, kind: str, le: str) -> float:
    return value(samples, "filerelay_delivery_latency_seconds_bucket", kind=kind, le=le)


def test_created_to_delivered_is_observed_per_kind_once_recorded(
    server: str, sap: SapClient, configured: Runtime, clock: FrozenClock
) -> None:
    assert sap.create("DOC1", "data", b"x").status == 201
    clock.advance(90)  # the delivery waited a minute and a half for its worker
    before = scrape(server)
    assert service.run(configured, delivery_of(configured, "dest_folder"))
    assert service.run(configured, delivery_of(configured, "dest_s3prod"))  # refused: a retry, no latency yet
    after = scrape(server)

    def delta(kind: str, le: str) -> float:
        return latency(after, kind, le) - latency(before, kind, le)

    assert delta("folder", "60.0") == 0
    assert delta("folder", "120.0") == 1
    count = "filerelay_delivery_latency_seconds_count"
    assert value(after, count, kind="folder") - value(before, count, kind="folder") == 1
    total = "filerelay_delivery_latency_seconds_sum"
    assert value(after, total, kind="folder") - value(before, total, kind="folder") == pytest.approx(90)
    assert delta("s3", "+Inf") == 0


def test_the_oldest_due_delivery_of_each_destination_says_how_long_it_waited(
    server: str, sap: SapClient, configured: Runtime, clock: FrozenClock
) -> None:
    late = "filerelay_delivery_oldest_due_age_seconds"
    empty = scrape(server)
    assert value(empty, late, **WHERE, destination_id="dest_folder", kind="folder") == 0
    assert (late, frozenset({**WHERE, "destination_id": "dest_s3prod", "kind": "s3"}.items())) in empty
    assert sap.create("DOC1", "data", b"x").status == 201
    clock.advance(200)
    assert sap.create("DOC2", "data", b"y").status == 201
    clock.advance(100)
    samples = scrape(server)
    assert value(samples, late, **WHERE, destination_id="dest_folder", kind="folder") == 300
    assert value(samples, late, **WHERE, destination_id="dest_s3prod", kind="s3") == 300
    with session_scope(configured.sessions) as session:
        first = session.scalars(
            select(Delivery.id)
            .join(Destination)
            .where(Destination.public_id == "dest_folder")
            .order_by(Delivery.created_at)
        ).first()
    assert first is not None
    assert service.run(configured, first)
    samples = scrape(server)
    assert value(samples, late, **WHERE, destination_id="dest_folder", kind="folder") == 100  # the next one
    assert value(samples, late, **WHERE, destination_id="dest_s3prod", kind="s3") == 300


def test_the_sweeper_touches_its_heartbeat_and_sets_its_last_pass(configured: Runtime) -> None:
    beat = configured.settings.home / f"sweeper-{socket.gethostname()}.heartbeat"
    assert not beat.exists()
    started = time.time()
    run_forever(configured.settings, once=True)
    assert beat.stat().st_mtime >= started - 1
    [sample] = [s for f in metrics.REGISTRY.collect() for s in f.samples if s.name.startswith("filerelay_sweeper")]
    assert sample.name == "filerelay_sweeper_last_pass_timestamp_seconds"
    assert sample.value >= started


def test_each_worker_processs_heartbeat_shows(server: str, configured: Runtime) -> None:
    home = configured.settings.home
    one = heartbeats.worker_path(configured.settings.home, host="pod-a")  # the watchdog's own names
    two = heartbeats.worker_path(configured.settings.home, host="pod-a", suffix="-1")
    for path, at in ((one, 1_700_000_000), (two, 1_700_000_100)):
        path.touch()
        os.utime(path, (at, at))
    (home / "unrelated.heartbeat").touch()
    samples = scrape(server)
    beats = {
        dict(labels)["process"]: v
        for (name, labels), v in samples.items()
        if name.startswith("filerelay_worker_heartbeat")
    }
    assert beats == {"worker-pod-a": 1_700_000_000, "worker-pod-a-1": 1_700_000_100}


def sharepoint_destination(runtime: Runtime, pem: str, thumbprint: str) -> None:
    with session_scope(runtime.sessions) as session:
        workspace = session.scalars(select(Workspace).where(Workspace.slug == "production")).one()
        now = runtime.clock.now()
        session.add(
            Destination(
                workspace_id=workspace.id,
                public_id="dest_sp",
                name="SharePoint",
                kind="sharepoint",
                settings={"site_url": "https://contoso.sharepoint.com/sites/a", "thumbprint": thumbprint},
                secrets={"certificate": pem},
                path_template="/{doc_id}{ext}",
                created_at=now,
                updated_at=now,
            )
        )


def test_days_to_expiry_of_saps_and_sharepoints_certificates_and_no_key_leaks(
    server: str, configured: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    # SAP's: one activated (counted), one received but never activated (trusted by nothing, not shown).
    active = make_signer("rsa", "S4H", not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=10))
    waiting = make_signer("rsa", "OTHER", not_before=now, not_after=now + dt.timedelta(days=3))
    with session_scope(configured.sessions) as session:
        repository = session.scalars(select(Repository).where(Repository.repo_id == "Z1")).one()
        for signer, activated in ((active, True), (waiting, False)):
            session.add(
                Certificate(
                    repository_id=repository.id,
                    auth_id="S4H",
                    fingerprint=certificates.fingerprint(signer.certificate),
                    subject=signer.certificate.subject.rfc4514_string(),
                    issuer=signer.certificate.issuer.rfc4514_string(),
                    serial=format(signer.certificate.serial_number, "x"),
                    not_before=signer.certificate.not_valid_before_utc,
                    not_after=signer.certificate.not_valid_after_utc,
                    der=signer.certificate.public_bytes(serialization.Encoding.DER),
                    active=activated,
                    created_at=now,
                )
            )
    # SharePoint's: the private key with its certificate after it, sealed with the destination's secrets.
    sharepoint = make_signer("rsa", "filerelay-app", not_before=now, not_after=now + dt.timedelta(days=45, hours=12))
    key_pem = sharepoint.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    thumbprint = sharepoint.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    sharepoint_destination(
        configured, key_pem + sharepoint.certificate.public_bytes(serialization.Encoding.PEM).decode(), thumbprint
    )
    samples = scrape(server)
    days = {
        (labels_["source"], labels_["owner"], labels_["fingerprint"]): v
        for (name, labels), v in samples.items()
        if name == "filerelay_certificate_expiry_days"
        for labels_ in [dict(labels)]
    }
    assert days == {
        ("sap", "Z1", certificates.fingerprint(active.certificate)): pytest.approx(10),
        ("sharepoint", "dest_sp", thumbprint): pytest.approx(45.5),
    }
    with urllib.request.urlopen(f"{server}/metrics", timeout=10) as response:
        body = response.read().decode()
    key_lines = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    assert key_lines
    assert not any(line in body for line in key_lines), "a line of the private key is in /metrics"


def test_the_scrape_reads_no_table_of_the_history_whole(server: str, sap: SapClient, configured: Runtime) -> None:
    """Every statement a scrape runs on documents or deliveries searches an index (SQLite's plan says
    SEARCH) or walks a partial one (the staged documents'): its cost follows the work outstanding, not
    the history (bench/metrics_scrape.py measures it on PostgreSQL at ten million documents)."""
    if configured.engine.dialect.name != "sqlite":
        pytest.skip("the plan is read from SQLite's EXPLAIN QUERY PLAN; PostgreSQL's is measured by the bench")
    for n in range(3):
        assert sap.create(f"DOC{n}", "data", b"x").status == 201
    with executed(configured.engine) as statements:
        scrape(server)
    history = [(s, p) for s, p in statements if re.search(r"\b(documents|deliveries)\b", s)]
    assert len(history) >= 3, statements  # by status, staged bytes, oldest due
    with configured.engine.connect() as conn:
        # Partial indexes over outstanding work (staged, waiting); not those over every live document.
        partial = {
            name
            for name, sql in conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
            if sql and re.search(r"\bWHERE\b(?!\s+deleted_at IS NULL\s*$)", sql, re.IGNORECASE)
        }
    for statement, parameters in history:
        plan = sqlite_plan(configured.engine, statement, parameters)
        scans = [
            step
            for step in plan
            if re.match(r"SCAN (documents|deliveries)\b", step)
            and not any(step.endswith(f"INDEX {name}") for name in partial)
        ]
        assert not scans, f"{statement}\n{plan}"
