"""A cloud destination without credentials of its own would act as the installation (its environment keys,
its instance or pod role): refused by default when written and when used, allowed by the operator's
FILERELAY_ALLOW_AMBIENT_CREDENTIALS. Through the real server over HTTP, against a real S3 server whose
keys sit in the process environment, as the compose file's staging store's do."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from filerelay.settings import Settings
from tests.support.keys import ADMIN_KEY
from tests.support.policy import LOOPBACK
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient

API = "/api/acme/production"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def allow_ambient() -> bool:
    """The operator's FILERELAY_ALLOW_AMBIENT_CREDENTIALS; a test that allows it parametrizes this."""
    return False


@pytest.fixture
def settings(settings: Settings, allow_ambient: bool) -> Settings:
    """The tests' settings, with the operator's flag as the test sets it."""
    policy = dataclasses.replace(LOOPBACK, allow_ambient_credentials=allow_ambient)
    return settings.with_overrides(operator_policy=policy)


@pytest.fixture
def installation_keys(s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The installation's own identity in its environment: keys the S3 server accepts."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    # Nothing else of the host's AWS configuration.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A bucket the installation's identity reaches (the staging bucket, say)."""
    name = f"ambient-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


def call(server: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{server}{API}{path}", json=body, headers=ADMIN, timeout=30)


def s3_destination(s3: S3Server, bucket: str, **keys: str) -> dict[str, Any]:
    settings = {"bucket": bucket, "endpoint_url": s3.endpoint, **keys}
    return {"id": "dest_ambient", "name": "Ambient", "kind": "s3", "settings": settings, "path": "/{doc_id}{ext}"}


def deliver(server: str, sap: SapClient, runtime: Runtime, doc_id: str) -> Delivery:
    """Z1 wired to dest_ambient alone; a document created as SAP creates one; one attempt at its delivery."""
    assert call(server, "PATCH", "/repositories/Z1", {"destinations": ["dest_ambient"]}).status_code == 200
    assert sap.create(doc_id, "data", b"%PDF-1.4 ambient").status == 201
    with session_scope(runtime.sessions) as session:
        delivery_id = session.scalars(select(Delivery.id).join(Document).where(Document.doc_id == doc_id)).one()
    service.run(runtime, delivery_id, rand=lambda: 0.5)
    with session_scope(runtime.sessions) as session:
        return session.get_one(Delivery, delivery_id)


def keys_in(s3: S3Server, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.usefixtures("installation_keys")
def test_s3_without_keys_is_refused_when_written(server: str, s3: S3Server, bucket: str) -> None:
    reply = call(server, "POST", "/destinations", s3_destination(s3, bucket))
    assert reply.status_code == 400, reply.text
    entry = reply.json()["errors"][0]
    assert entry["source"] == {"pointer": "/settings/access_key_id"}
    assert "FILERELAY_ALLOW_AMBIENT_CREDENTIALS=true" in entry["detail"]
    # Nor by taking the keys away from one that has them.
    assert call(server, "POST", "/destinations", s3_destination(s3, bucket, access_key_id="x", secret_access_key="y"))
    emptied = call(server, "PATCH", "/destinations/dest_ambient", {"settings": {"access_key_id": None}})
    assert emptied.status_code == 400, emptied.text


@pytest.mark.usefixtures("installation_keys")
def test_gcs_without_a_key_is_refused_when_written(server: str) -> None:
    body = {"id": "dest_gcs", "name": "GCS", "kind": "gcs", "settings": {"bucket": "docs"}}
    reply = call(server, "POST", "/destinations", body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["errors"][0]["source"] == {"pointer": "/settings/credentials_json"}


@pytest.mark.usefixtures("installation_keys")
def test_s3_without_keys_is_refused_when_used_and_tells_nothing_about_the_bucket(
    server: str, sap: SapClient, configured: Runtime, s3: S3Server, bucket: str
) -> None:
    # Stored before the policy, or by hand: the client is never built, so no request is made as the
    # installation (no delivery, and `test` is no oracle of which buckets exist).
    assert call(server, "POST", "/destinations", s3_destination(s3, bucket, access_key_id="x", secret_access_key="y"))
    with session_scope(configured.sessions) as session:
        row = session.scalars(select(Destination).where(Destination.public_id == "dest_ambient")).one()
        row.settings = {"bucket": bucket, "endpoint_url": s3.endpoint, "region": "us-east-1"}
        row.secrets = {}

    refused = deliver(server, sap, configured, "AMBIENT1")

    assert refused.status == "failed"  # at once: no retry gives it keys
    assert "FILERELAY_ALLOW_AMBIENT_CREDENTIALS" in (refused.last_error or "")
    assert keys_in(s3, bucket) == []
    for name in (bucket, "no-such-bucket-anywhere"):
        with session_scope(configured.sessions) as session:
            row = session.scalars(select(Destination).where(Destination.public_id == "dest_ambient")).one()
            row.settings = {**row.settings, "bucket": name}
        check = call(server, "POST", "/destinations/dest_ambient/test").json()["data"]
        assert check["ok"] is False
        assert "FILERELAY_ALLOW_AMBIENT_CREDENTIALS" in check["detail"]


@pytest.mark.parametrize("allow_ambient", [True])
@pytest.mark.usefixtures("installation_keys")
def test_the_operators_flag_lets_s3_without_keys_deliver_as_the_installation(
    server: str, sap: SapClient, configured: Runtime, s3: S3Server, bucket: str
) -> None:
    created = call(server, "POST", "/destinations", s3_destination(s3, bucket))
    assert created.status_code == 201, created.text
    assert call(server, "POST", "/destinations/dest_ambient/test").json()["data"]["ok"] is True

    delivered = deliver(server, sap, configured, "AMBIENT2")

    assert delivered.status == "delivered", delivered.last_error
    assert keys_in(s3, bucket) == ["AMBIENT2.pdf"]


@pytest.mark.parametrize("allow_ambient", [True])
@pytest.mark.usefixtures("installation_keys")
def test_keys_of_its_own_never_fall_back_to_the_installations(
    server: str, sap: SapClient, configured: Runtime, s3: S3Server, bucket: str
) -> None:
    body = s3_destination(s3, bucket, access_key_id=s3.access_key, secret_access_key="not-the-secret")
    assert call(server, "POST", "/destinations", body).status_code == 201

    refused = deliver(server, sap, configured, "AMBIENT3")

    assert refused.status == "failed"
    assert "SignatureDoesNotMatch" in (refused.last_error or "") or "HTTP 403" in (refused.last_error or "")
    assert keys_in(s3, bucket) == []


def test_the_flag_is_read_from_the_environment_only(home: Path) -> None:
    allowed = Settings.from_env({"FILERELAY_HOME": str(home), "FILERELAY_ALLOW_AMBIENT_CREDENTIALS": "true"})
    assert allowed.policy.allow_ambient_credentials is True
    assert Settings.from_env({"FILERELAY_HOME": str(home)}).policy.allow_ambient_credentials is False
    assert allowed.policy.environ()["FILERELAY_ALLOW_AMBIENT_CREDENTIALS"] == "true"
