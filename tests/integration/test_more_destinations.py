"""The newer destination kinds end to end: SAP → API → Redis → a real `filerelay worker` process →
a webhook receiver, an SFTP server, an SMTP server, Azurite and fake-gcs-server, all on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from filerelay.db.models import Delivery
from filerelay.db.session import session_scope
from tests.support.azurite import KEY, azurite
from tests.support.fake_gcs import fake_gcs, service_account
from tests.support.policy import LOOPBACK
from tests.support.relay import Relay, wait_until
from tests.support.sftp_server import PASSWORD as SFTP_PASSWORD
from tests.support.sftp_server import USER as SFTP_USER
from tests.support.sftp_server import sftp_server
from tests.support.smtp_server import PASSWORD as SMTP_PASSWORD
from tests.support.smtp_server import USER as SMTP_USER
from tests.support.smtp_server import smtp_server
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"e2e-webhook-key-0123456789abcdef").decode()
KINDS = ("webhook", "sftp", "email", "azure_blob", "gcs")


def document(n: int, size: int) -> bytes:
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_every_new_kind_receives_each_document_byte_identical_through_the_worker(
    make_relay: Callable[..., Relay], tmp_path: Path
) -> None:
    from azure.storage.blob import BlobServiceClient

    with ExitStack() as stack:
        hook = stack.enter_context(webhook_receiver(SECRET))
        sftp = stack.enter_context(sftp_server(tmp_path / "sftp"))
        mail = stack.enter_context(smtp_server(tmp_path / "mail"))
        blob = stack.enter_context(azurite(tmp_path / "azurite"))
        gcs, tokens = stack.enter_context(fake_gcs(tmp_path / "gcs"))
        BlobServiceClient.from_connection_string(blob.connection_string).create_container("archive")
        account, public = service_account(tokens.url)
        tokens.known[account["client_email"]] = public

        def config_for(bucket: str, out: Path) -> str:
            destinations: list[dict[str, Any]] = [
                {"id": "d_webhook", "kind": "webhook", "url": hook.url, "secret": SECRET},
                {
                    "id": "d_sftp",
                    "kind": "sftp",
                    "host": "127.0.0.1",
                    "port": sftp.port,
                    "username": SFTP_USER,
                    "password": SFTP_PASSWORD,
                    "host_key": sftp.host_key_line,
                    "root": "/",
                },
                {
                    "id": "d_email",
                    "kind": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": mail.port,
                    "starttls": False,
                    "username": SMTP_USER,
                    "password": SMTP_PASSWORD,
                    "from": "sap@acme.example",
                    "to": ["ap@acme.example"],
                },
                {
                    "id": "d_azure_blob",
                    "kind": "azure_blob",
                    "container": "archive",
                    "account_url": blob.account_url,
                    "account_key": KEY,
                },
                {
                    "id": "d_gcs",
                    "kind": "gcs",
                    "bucket": bucket,
                    "credentials_json": json.dumps(account),
                    "endpoint_url": gcs.endpoint,
                },
            ]
            for d in destinations:
                d.update(name=d["id"], path="/{repo_id}/{doc_id}{ext}")
            workspace = {
                "owner": "acme",
                "slug": "production",
                "retry": {"max_retries": 2, "ttl": "1h", "backoff_base": "1s", "backoff_max": "2s"},
                "destinations": destinations,
                "repositories": [
                    {
                        "id": "Z1",
                        "description": "Invoices",
                        "signature": "none",
                        "destinations": [d["id"] for d in destinations],
                    }
                ],
            }
            return yaml.safe_dump({"workspaces": [workspace]})

        relay = make_relay(config_for=config_for)
        gcs_client = _gcs_bucket(gcs.endpoint, account, relay.bucket, create=True)
        documents = {f"E2E{n}": document(n, size) for n, size in enumerate([70_000, 6 * 1024 * 1024 + 5])}
        for doc_id, data in documents.items():
            assert relay.sap.create(doc_id, "data", data, "application/pdf").status == 201
        relay.start("worker", "worker", "--queues", ",".join(KINDS), "--concurrency", "4")

        def all_delivered() -> bool:
            with session_scope(relay.runtime.sessions) as session:
                found = list(session.scalars(select(Delivery.status)))
            return len(found) == len(KINDS) * len(documents) and set(found) == {"delivered"}

        wait_until(all_delivered, timeout=120, what="every delivery to every new kind")

        container = BlobServiceClient.from_connection_string(blob.connection_string).get_container_client("archive")
        for doc_id, data in documents.items():
            expected = hashlib.sha256(data).hexdigest()
            assert any(r.sha256 == expected for r in hook.received), doc_id
            assert hashlib.sha256((sftp.root / "Z1" / f"{doc_id}.pdf").read_bytes()).hexdigest() == expected
            blob_bytes = container.get_blob_client(f"Z1/{doc_id}.pdf").download_blob().readall()
            assert hashlib.sha256(blob_bytes).hexdigest() == expected
            assert hashlib.sha256(gcs_client.blob(f"Z1/{doc_id}.pdf").download_as_bytes()).hexdigest() == expected
        attachments = [
            part.get_content() for n in range(len(mail.received)) for part in mail.message(n).iter_attachments()
        ]
        assert sorted(hashlib.sha256(a).hexdigest() for a in attachments) == sorted(
            hashlib.sha256(d).hexdigest() for d in documents.values()
        )


def _gcs_bucket(endpoint: str, account: dict[str, object], name: str, *, create: bool) -> Any:
    from filerelay.destinations import gcs

    settings, secrets = gcs.KIND.validate(
        {"bucket": name, "credentials_json": json.dumps(account), "endpoint_url": endpoint}, LOOPBACK
    )
    bucket = gcs.GcsDestination(settings, secrets, LOOPBACK).bucket
    if create:
        bucket.client.create_bucket(name)
    return bucket
