"""The `email` destination through the delivery engine against a real SMTP server on loopback
(aiosmtpd, tests/support/smtp_server.py): the message as a mail reader sees it, a large document as a
link, a stable Message-ID, outages, refused credentials and recipients."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from marshmallow import ValidationError

from filerelay.clock import FrozenClock
from filerelay.delivery import service
from filerelay.destinations import email as email_kind
from filerelay.destinations.base import DestinationError
from filerelay.runtime import Runtime, build_runtime
from tests.support.clock import half
from tests.support.destination_kinds import PDF, attempted, create, delivered, sized, wire
from tests.support.documents import attempts, delivery, failed_at_once
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard
from tests.support.smtp_server import PASSWORD, USER, SmtpServer, smtp_server


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path / "mail") as live:
        yield live


def settings_for(mail: SmtpServer, **changes: object) -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mail.port,
        "starttls": False,
        "username": USER,
        "password": PASSWORD,
        "from": "sap@acme.example",
        "to": ["ap@acme.example", "audit@acme.example"],
        "subject": "Invoice {doc_id} from {repo_id}",
        **changes,
    }


@pytest.mark.parametrize("size", [len(PDF), 9 * 1024 * 1024 + 5])
def test_a_document_arrives_as_an_identical_attachment(
    runtime: Runtime, mail: SmtpServer, engine: object, size: int
) -> None:
    data = sized(size)
    delivery_id = delivered(runtime, "email", settings_for(mail), data)
    message = mail.message()
    assert message["Subject"] == "Invoice DOC1 from Z1"
    assert message["From"] == "sap@acme.example"
    assert message["To"] == "ap@acme.example, audit@acme.example"
    assert message["Message-ID"] == f"<{delivery_id}.1@filerelay>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "DOC1.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert hashlib.sha256(attachment.get_content()).hexdigest() == hashlib.sha256(data).hexdigest()
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert hashlib.sha256(data).hexdigest() in text.get_content()


def test_a_plain_relay_without_tls_or_login_gets_its_greeting_first(runtime: Runtime, mail: SmtpServer) -> None:
    # An internal relay on port 25, common in SAP landscapes: no STARTTLS, no AUTH. Nothing else says
    # EHLO then, and a server refuses MAIL before it ("503 send HELO first").
    delivery_id = delivered(runtime, "email", settings_for(mail, username=None, password=None), PDF)
    assert mail.message()["Message-ID"] == f"<{delivery_id}.1@filerelay>"


def test_a_document_above_the_attachment_limit_goes_as_a_link(
    runtime: Runtime, mail: SmtpServer, server: str, clock: FrozenClock
) -> None:
    data = sized(21 * 1024 * 1024)
    wire(runtime, "email", settings_for(mail, max_attachment_bytes=1024 * 1024))
    worker = build_runtime(runtime.settings.with_overrides(public_url=server), clock=clock)
    delivery_id = create(runtime, "email", data)

    assert service.run(worker, delivery_id, rand=half) is True

    assert delivery(runtime, delivery_id).status == "delivered"
    message = mail.message()
    assert list(message.iter_attachments()) == []
    assert mail.received[0].stat().st_size < 10_000  # the 21 MiB stayed home
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    [link] = [line for line in text.get_content().splitlines() if line.startswith("http")]
    reply = requests.get(link, timeout=30)
    assert reply.status_code == 200
    assert hashlib.sha256(reply.content).hexdigest() == hashlib.sha256(data).hexdigest()
    worker.close()


def test_a_stopped_server_means_retrying_then_delivered_once_with_one_message_id(
    runtime: Runtime, mail: SmtpServer, clock: FrozenClock, engine: object
) -> None:
    wire(runtime, "email", settings_for(mail))
    delivery_id = create(runtime, "email", PDF)
    mail.stop()

    row = attempted(runtime, delivery_id)
    assert row.status == "retrying"
    assert "cannot be reached" in (row.last_error or "")

    mail.start()
    mail.busy = 1  # then a full mailbox: 452, try later
    clock.advance(60)
    assert attempted(runtime, delivery_id).status == "retrying"
    assert "452" in (delivery(runtime, delivery_id).last_error or "")

    clock.advance(60)
    assert attempted(runtime, delivery_id).status == "delivered"
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["failed", "failed", "delivered"]
    assert len(mail.received) == 1
    assert mail.message()["Message-ID"] == f"<{delivery_id}.1@filerelay>"


@pytest.mark.parametrize(
    ("changes", "unknown", "expected"),
    [
        ({"password": "wrong"}, set(), "login refused: 535"),
        ({}, {"audit@acme.example"}, "did not take the recipient audit@acme.example: 550"),
    ],
)
def test_refused_credentials_or_recipients_fail_at_once(
    runtime: Runtime, mail: SmtpServer, engine: object, changes: dict[str, object], unknown: set[str], expected: str
) -> None:
    wire(runtime, "email", settings_for(mail, **changes))
    mail.unknown |= unknown
    delivery_id = create(runtime, "email", PDF)

    assert expected in failed_at_once(runtime, delivery_id)
    assert mail.received == []


def test_check_logs_in_and_sends_nothing(mail: SmtpServer) -> None:
    settings, secrets = email_kind.KIND.validate(settings_for(mail), LOOPBACK)
    email_kind.EmailDestination(settings, secrets, LOOPBACK).check()
    assert mail.received == []
    wrong, secrets = email_kind.KIND.validate(settings_for(mail, password="wrong"), LOOPBACK)
    with pytest.raises(DestinationError, match="login refused"):
        email_kind.EmailDestination(wrong, secrets, LOOPBACK).check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"to": []}, "to"),
        ({"to": ["not-an-address"]}, "to"),
        ({"from": "nobody"}, "from"),
        ({"subject": "Invoice {amount}"}, "unknown fields"),
        ({"tls": True, "starttls": True}, "not both"),
        ({"password": None}, "needs a password"),
        ({"max_attachment_bytes": 100 * 1024 * 1024}, "max_attachment_bytes"),
    ],
)
def test_settings_are_checked(mail: SmtpServer, changes: dict[str, object], message: str) -> None:
    values = {k: v for k, v in settings_for(mail, **changes).items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        email_kind.KIND.validate(values, LOOPBACK)


def test_the_password_is_a_secret(mail: SmtpServer) -> None:
    settings, secrets = email_kind.KIND.validate(settings_for(mail), LOOPBACK)
    assert "password" not in settings
    assert secrets == {"password": PASSWORD}
    assert settings["from"] == "sap@acme.example"


@pytest.mark.parametrize("doc_id", ["DOC1\r\nBcc: thief@evil.example", "DOC1\nX-Injected: yes", "DOC1\u2028Bcc: x@y.z"])
def test_a_subject_rendering_a_line_break_fails_the_delivery_and_sends_nothing(
    runtime: Runtime, mail: SmtpServer, engine: object, doc_id: str
) -> None:
    wire(runtime, "email", settings_for(mail))
    delivery_id = create(runtime, "email", PDF, doc_id=doc_id)

    row = attempted(runtime, delivery_id)
    assert row.status == "failed"  # final: the same values would render the same header again
    assert "the e-mail header Subject would hold the control character U+" in (row.last_error or "")
    assert "nothing was sent" in (row.last_error or "")
    assert mail.received == []


@pytest.mark.parametrize("tls", [False, True])
def test_the_default_policy_refuses_the_loopback_server_at_connect(mail: SmtpServer, tls: bool) -> None:
    """Written under LOOPBACK (the tests' policy), connected under the defaults: plain and implicit TLS."""
    settings, secrets = email_kind.KIND.validate(settings_for(mail, tls=tls), LOOPBACK)
    with pytest.raises(DestinationError) as info:
        email_kind.EmailDestination(settings, secrets, DEFAULT).check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable


def test_a_host_the_policy_refuses_is_refused_when_written(mail: SmtpServer) -> None:
    with pytest.raises(ValidationError, match="smtp_host"):
        email_kind.KIND.validate(settings_for(mail, smtp_host="localhost"), DEFAULT)
