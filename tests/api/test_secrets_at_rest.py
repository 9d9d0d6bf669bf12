"""Destination secrets at rest, through the real server over HTTP and the real `filerelay` command: what
the database holds (the SQLite file, a PostgreSQL dump) is ciphertext, an older key still opens it,
`filerelay secrets rotate` moves every row to the first key, and a wrong key is an error, never plaintext."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import StatementError

from filerelay.cli.main import main as cli
from filerelay.db.models import AuditEvent, Destination, Workspace
from filerelay.db.session import make_engine, make_session_factory, read_scope, session_scope
from filerelay.runtime import Runtime
from filerelay.secrets_box import Keyring, SecretsBoxError
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.keys import ADMIN_KEY

NEW_KEY = "nk_" + "Vb7Qw2Lr9Xz4Tn6Jp1Ks8Hd3Fg5Mc0Ay"  # a second key, put first to rotate


def fresh(prefix: str) -> str:
    """A secret value no other test wrote: finding it in the database can only mean this test's row."""
    return f"{prefix}-{secrets.token_hex(12)}"


def api(server: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{server}/api/acme/production{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def destinations_with_secrets() -> tuple[list[dict[str, Any]], list[str]]:
    """Three kinds' bodies for POST /destinations, and every secret value they carry."""
    s3_secret, smtp_password = fresh("s3secret"), fresh("smtppass")
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver_token = fresh("receivertoken")
    bodies = [
        {
            "id": "dest_s3_sealed",
            "name": "S3",
            "kind": "s3",
            "settings": {"bucket": "sealed-archive", "access_key_id": "AKIA-SEALED", "secret_access_key": s3_secret},
        },
        {
            "id": "dest_mail_sealed",
            "name": "Mail",
            "kind": "email",
            "settings": {
                "smtp_host": "smtp.example.com",
                "username": "relay",
                "password": smtp_password,
                "from": "relay@example.com",
                "to": ["archive@example.com"],
            },
        },
        {
            "id": "dest_hook_sealed",
            "name": "Hook",
            "kind": "webhook",
            "settings": {
                "url": "https://receiver.example.com/in",
                "secret": webhook_secret,
                "headers": {"Authorization": f"Bearer {receiver_token}"},
            },
        },
    ]
    return bodies, [s3_secret, smtp_password, webhook_secret, receiver_token]


def database_bytes(db_url: str, tmp_path: Path) -> bytes:
    """Everything the database server or file holds: a pg_dump of the database, or the SQLite file with its
    write-ahead log (recent commits live there until a checkpoint)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        return b"".join(
            Path(url.database + suffix).read_bytes() for suffix in ("", "-wal") if Path(url.database + suffix).exists()
        )
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is needed to check what a PostgreSQL database holds")
    dump = tmp_path / "dump.sql"
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run([pg_dump, "--data-only", "--file", str(dump), libpq], check=True, timeout=120)
    return dump.read_bytes()


def raw_secrets(engine: Engine) -> dict[str, Any]:
    """The secrets column as stored, by destination id: no model type in between."""
    table = sa.table("destinations", sa.column("public_id", sa.String), sa.column("secrets", sa.JSON))
    with engine.connect() as conn:
        return {row.public_id: row.secrets for row in conn.execute(sa.select(table.c.public_id, table.c.secrets))}


def opened(engine: Engine) -> dict[str, dict[str, Any]]:
    with read_scope(make_session_factory(engine)) as session:
        return {d.public_id: dict(d.secrets) for d in session.scalars(select(Destination))}


def test_secrets_created_over_http_are_stored_encrypted_and_never_answered_or_audited(
    server: str, configured: Runtime, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bodies, values = destinations_with_secrets()
    answers = []
    for body in bodies:
        status, answer = api(server, "POST", "/destinations", body)
        assert status == 201, answer
        answers.append(answer)
    for body in bodies:
        answers.append(api(server, "GET", f"/destinations/{body['id']}")[1])
    answers.append(api(server, "PATCH", "/destinations/dest_s3_sealed", {"name": "S3 renamed"})[1])
    answers.append(api(server, "GET", "/destinations")[1])

    stored = database_bytes(db_url, tmp_path)
    assert b"AKIA-SEALED" in stored, "the dump holds the settings: it is the real database"
    for value in values:
        assert value.encode() not in stored
        assert value not in "".join(answers)
        assert value not in caplog.text
    with read_scope(configured.sessions) as session:
        audit = json.dumps([[e.action, e.target, e.detail] for e in session.scalars(select(AuditEvent))])
    assert not any(value in audit for value in values)

    raw = raw_secrets(configured.engine)
    for body in bodies:
        assert isinstance(raw[body["id"]], str)
        assert raw[body["id"]].startswith(f"fr1:{Keyring.from_texts([TEST_ENCRYPTION_KEY]).primary.id}:")
    # Every reader of the model gets the plain values back.
    assert opened(configured.engine)["dest_mail_sealed"] == {"password": values[1]}


def run_cli(db_url: str, home: Path, keys: str, *args: str) -> tuple[int, str]:
    env = {"FILERELAY_DATABASE_URL": db_url, "FILERELAY_HOME": str(home), "FILERELAY_ENCRYPTION_KEYS": keys}
    result = CliRunner(env=env).invoke(cli, list(args))
    return result.exit_code, result.output


def test_an_older_key_listed_second_opens_and_rotate_moves_every_row_to_the_first(
    server: str, configured: Runtime, db_url: str, tmp_path: Path
) -> None:
    bodies, values = destinations_with_secrets()
    for body in bodies:
        assert api(server, "POST", "/destinations", body)[0] == 201
    before = opened(configured.engine)
    old_id, new_id = (Keyring.from_texts([k]).primary.id for k in (TEST_ENCRYPTION_KEY, NEW_KEY))

    both = make_engine(db_url, keyring=Keyring.from_texts([NEW_KEY, TEST_ENCRYPTION_KEY]))
    new_only = make_engine(db_url, keyring=Keyring.from_texts([NEW_KEY]))
    try:
        assert opened(both) == before  # the old key, listed second, still opens every row
        with pytest.raises(SecretsBoxError, match=rf"key id {old_id}, which is not among"):
            opened(new_only)

        code, output = run_cli(db_url, tmp_path / "home", f"{NEW_KEY},{TEST_ENCRYPTION_KEY}", "secrets", "rotate")
        assert code == 0, output
        assert output.strip() == f"re-encrypted {len(before)} destination(s) under key id {new_id}"
        assert {value.split(":")[1] for value in raw_secrets(both).values()} == {new_id}

        # The old key can go: the new one alone opens everything, and a second run has nothing to do.
        assert opened(new_only) == before
        code, output = run_cli(db_url, tmp_path / "home", NEW_KEY, "secrets", "rotate", "--batch", "1")
        assert (code, output.strip()) == (0, f"re-encrypted 0 destination(s) under key id {new_id}")
        for value in values:
            assert value.encode() not in database_bytes(db_url, tmp_path)
    finally:
        both.dispose()
        new_only.dispose()


def test_a_wrong_or_missing_key_is_a_clear_error_never_plaintext(
    server: str, configured: Runtime, db_url: str, tmp_path: Path
) -> None:
    bodies, values = destinations_with_secrets()
    assert api(server, "POST", "/destinations", bodies[0])[0] == 201
    old_id = Keyring.from_texts([TEST_ENCRYPTION_KEY]).primary.id

    code, output = run_cli(db_url, tmp_path / "home", NEW_KEY, "secrets", "rotate")
    assert code != 0
    assert f"sealed under key id {old_id}, which is not among FILERELAY_ENCRYPTION_KEYS" in output
    assert NEW_KEY not in output
    assert TEST_ENCRYPTION_KEY not in output

    wrong = make_engine(db_url, keyring=Keyring.from_texts([NEW_KEY]))
    keyless = make_engine(db_url)
    try:
        for engine in (wrong, keyless):
            with pytest.raises(SecretsBoxError) as caught:
                opened(engine)
            assert not any(value in str(caught.value) for value in values)
        with pytest.raises(SecretsBoxError, match="no encryption keys"):
            opened(keyless)
        # Nor is a secret written in clear, and the error (bound for a log) does not carry it.
        secret = fresh("neverwritten")
        with pytest.raises(StatementError) as failed, session_scope(make_session_factory(keyless)) as session:
            workspace = session.scalars(select(Workspace)).first()
            assert workspace is not None
            now = configured.clock.now()
            session.add(
                Destination(
                    workspace_id=workspace.id,
                    public_id="dest_keyless",
                    name="x",
                    kind="s3",
                    settings={"bucket": "sealed-archive"},
                    secrets={"secret_access_key": secret},
                    path_template="/{doc_id}",
                    created_at=now,
                    updated_at=now,
                )
            )
        assert isinstance(failed.value.orig, SecretsBoxError)
        assert secret not in str(failed.value)
        assert "dest_keyless" not in raw_secrets(configured.engine)
    finally:
        wrong.dispose()
        keyless.dispose()


def filerelay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed `filerelay` console script, as an operator runs it."""
    script = Path(sys.executable).parent / "filerelay"
    command = str(script) if script.exists() else shutil.which("filerelay")
    assert command, "the filerelay console script is installed with the package"
    return subprocess.run([command, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", [["api", "--port", "0"], ["worker"], ["sweeper", "--once"]])
@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("FILERELAY_SECRET_KEY", "change-me-to-a-long-random-string", "is a template placeholder"),
        ("FILERELAY_SECRET_KEY", "CHANGE-ME", "is 9 bytes long; at least 32 are needed"),
        ("FILERELAY_ENCRYPTION_KEYS", "CHANGE-ME", "key 1 of 1 is 9 bytes long"),
        ("FILERELAY_ENCRYPTION_KEYS", f"{TEST_ENCRYPTION_KEY},too-short", "key 2 of 2 is 9 bytes long"),
    ],
)
def test_the_services_refuse_to_start_with_a_short_or_placeholder_key(
    command: list[str], variable: str, value: str, reason: str, tmp_path: Path
) -> None:
    env = {**os.environ, "FILERELAY_HOME": str(tmp_path / "home"), variable: value}
    env.pop("FILERELAY_DATABASE_URL", None)
    ran = filerelay(*command, env=env)
    assert ran.returncode != 0
    assert f"{variable}" in ran.stderr
    assert reason in ran.stderr
    assert "token_urlsafe(32)" in ran.stderr  # how to make one that works
    assert value not in ran.stderr.replace(TEST_ENCRYPTION_KEY, "")
    assert not (tmp_path / "home" / "filerelay.db").exists(), "refused before touching anything"


def test_with_a_database_server_the_services_refuse_to_start_without_encryption_keys(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "FILERELAY_ENCRYPTION_KEYS"},
        "FILERELAY_HOME": str(tmp_path / "home"),
        "FILERELAY_DATABASE_URL": "postgresql+psycopg://filerelay@127.0.0.1:9/filerelay",
    }
    ran = filerelay("sweeper", "--once", env=env)
    assert ran.returncode != 0
    assert "FILERELAY_ENCRYPTION_KEYS is required with a database server" in ran.stderr
    assert not (tmp_path / "home" / "encryption_key").exists(), "no key of its own that other hosts lack"
