"""`filerelay certs list | activate | revoke`, through click's runner against the test database."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from filerelay import certificates
from filerelay.api import create_app
from filerelay.cli import main
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.audit import audit_entries
from tests.support.documents import acme_repository
from tests.support.keys import ADMIN_KEY
from tests.support.signing import certificate


@pytest.fixture
def received(configured: Runtime) -> str:
    """A certificate SAP sent for Z1, as putCert stores it; returns its fingerprint."""
    cert = certificate(dt.datetime.now(dt.UTC))  # noqa: TID251 - the CLI checks validity against the real clock
    with session_scope(configured.sessions) as session:
        row = certificates.store(
            session,
            repository=acme_repository(session),
            auth_id="CN=S4H",
            body=cert.public_bytes(serialization.Encoding.PEM),
            now=configured.clock.now(),
        )
        return row.fingerprint


def test_list_activate_revoke(run: CliRunner, received: str, configured: Runtime) -> None:
    listed = run.invoke(main, ["certs", "list"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["REPO", "STATE", "AUTH"]
    assert row.split()[:3] == ["Z1", "inactive", "CN=S4H"]
    assert received in row

    activated = run.invoke(main, ["certs", "activate", "Z1", received])
    assert activated.exit_code == 0, activated.output
    assert activated.stdout.startswith("Z1 active: signed URLs by CN=S4H")
    with session_scope(configured.sessions) as session:
        assert certificates.list_for(session, repo_id="Z1")[0].active

    revoked = run.invoke(main, ["certs", "revoke", "Z1", received, "--workspace", "acme/production"])
    assert revoked.exit_code == 0, revoked.output
    with session_scope(configured.sessions) as session:
        assert not certificates.list_for(session, repo_id="Z1")[0].active


def test_unknown_repository_or_fingerprint_is_a_clear_error(run: CliRunner, received: str) -> None:
    unknown_repo = run.invoke(main, ["certs", "activate", "QQ", received])
    assert unknown_repo.exit_code == 1
    assert "no workspace has a repository QQ" in unknown_repo.output
    unknown_print = run.invoke(main, ["certs", "activate", "Z1", "ab" * 32])
    assert unknown_print.exit_code == 1
    assert f"no certificate {'ab' * 32} for repository Z1" in unknown_print.output


def test_activate_and_revoke_are_audited_as_the_command_line(
    run: CliRunner, received: str, configured: Runtime
) -> None:
    assert run.invoke(main, ["certs", "activate", "Z1", received.upper()]).exit_code == 0
    assert run.invoke(main, ["certs", "revoke", "Z1", received, "--workspace", "acme/production"]).exit_code == 0
    assert run.invoke(main, ["certs", "activate", "Z1", "ab" * 32]).exit_code == 1  # refused: no entry
    entries = [
        (e["actor"]["name"], e["channel"], e["action"], e["target"], e["changes"])
        for e in audit_entries(create_app(runtime=configured).test_client(), ADMIN_KEY)
        if e["channel"] != "config-file"
    ]
    assert entries == [
        ("cli", "cli", "certificate.revoke", f"Z1/{received}", {"active": {"before": True, "after": False}}),
        ("cli", "cli", "certificate.activate", f"Z1/{received}", {"active": {"before": False, "after": True}}),
    ]
