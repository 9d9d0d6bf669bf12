"""`filerelay keys create | list | revoke` against the test database, through click's runner."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.cli import main
from filerelay.db.models import ApiKey
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from filerelay.workspace_config.api_keys import hash_key
from tests.support.audit import audit_entries
from tests.support.keys import ADMIN_KEY


def keys(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, ["keys", *args])


def test_create_prints_the_key_once_on_stdout_and_stores_its_hash(run: CliRunner, configured: Runtime) -> None:
    result = keys(run, "create", "acme/production", "robot", "--role", "member")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("fr_live_")
    assert "\n" not in key
    assert "store it now, it is not shown again" in result.stderr
    with session_scope(configured.sessions) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == "robot")).one()
        assert (row.role, row.key_hash, row.prefix) == ("member", hash_key(key), key[:12])


def test_list_shows_names_roles_and_prefixes_never_keys(run: CliRunner) -> None:
    key = keys(run, "create", "acme/production", "robot").stdout.strip()
    result = keys(run, "list", "acme/production")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "ROLE", "PREFIX", "CREATED", "LAST", "USED", "REVOKED"]
    assert [row.split()[:3] for row in rows] == [["ops", "admin", "fr_live_admi"], ["robot", "viewer", key[:12]]]
    assert key not in result.output


def test_revoke_marks_the_key_and_list_shows_when(run: CliRunner) -> None:
    keys(run, "create", "acme/production", "robot")
    result = keys(run, "revoke", "acme/production", "robot")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("revoked key 'robot' of acme/production at ")
    robot = next(r for r in keys(run, "list", "acme/production").stdout.splitlines() if r.startswith("robot"))
    revoked = " ".join(robot.split()[-2:])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", revoked), robot


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "acme/staging", "robot"], "Error: no workspace acme/staging"),
        (["create", "acme/production", "ops"], "Error: an API key named 'ops' already exists"),
        (["create", "acme-production", "robot"], "write the workspace as OWNER/SLUG"),
        (
            ["create", "acme/production", "robot", "--role", "owner"],
            "'owner' is not one of 'viewer', 'member', 'admin'",
        ),
        (["list", "nobody/nothing"], "Error: no workspace nobody/nothing"),
        (["revoke", "acme/production", "nobody"], "Error: no API key named 'nobody'"),
    ],
)
def test_clear_errors(run: CliRunner, args: list[str], message: str) -> None:
    result = keys(run, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_create_and_revoke_are_audited_as_the_command_line(run: CliRunner, configured: Runtime) -> None:
    key = keys(run, "create", "acme/production", "robot", "--role", "member").stdout.strip()
    keys(run, "revoke", "acme/production", "robot")
    assert keys(run, "revoke", "acme/production", "nobody").exit_code != 0  # refused: no entry
    entries = [
        e
        for e in audit_entries(create_app(runtime=configured).test_client(), ADMIN_KEY)
        if e["channel"] != "config-file"
    ]
    assert [(e["actor"], e["channel"], e["action"], e["target"]) for e in entries] == [
        ({"name": "cli", "key_prefix": None}, "cli", "api_key.revoke", "robot"),
        ({"name": "cli", "key_prefix": None}, "cli", "api_key.create", "robot"),
    ]
    assert entries[1]["changes"]["role"] == {"before": None, "after": "member"}
    assert entries[1]["changes"]["prefix"] == {"before": None, "after": key[:12]}
    assert entries[0]["changes"] == {"revoked": {"before": False, "after": True}}
    assert key not in repr(entries)
