"""A workspace's destinations keep to the operator's policy, through the real server over HTTP: a folder
root outside FILERELAY_FOLDER_ROOTS is refused wherever it is written (REST, config file, and the
console's test), a root swapped for a symlink later is refused at delivery and at read-back, a destination
that holds a delivery keeps its location, and a copy replaced on disk after its delivery is never served.

The operator's folder root here is the test's own `out` directory (the configured folder destination's
root), so "outside" is a directory beside it that the test can look into afterwards."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from filerelay.cli import main
from filerelay.config_file import ConfigError, apply, load
from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.runtime import Runtime
from filerelay.settings import Settings
from tests.support.console import http_sign_in
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.keys import ADMIN_KEY
from tests.support.policy import LOOPBACK
from tests.support.sapclient import SapClient
from tests.support.workspaces import CONFIG

API = "/api/acme/production"
UI = "/ui/acme/production"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DOC = "4A1B2C3D4E5F60718293A4B5C6D7E8F9"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The tests' settings, with `out` as the operator's only folder root."""
    policy = dataclasses.replace(LOOPBACK, folder_roots=((tmp_path / "out").resolve(),))
    return settings.with_overrides(operator_policy=policy)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir(exist_ok=True)
    return tmp_path / "out"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory outside the operator's roots: another team's tree, say."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "theirs.txt").write_bytes(b"another team's file")
    return tmp_path / "elsewhere"


def call(server: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{server}{API}{path}", json=body, headers=ADMIN, timeout=30)


def error(reply: requests.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    entry: dict[str, Any] = reply.json()["errors"][0]
    return entry


def folder(root: str, destination_id: str = "dest_new") -> dict[str, Any]:
    return {"id": destination_id, "name": "New Folder", "kind": "folder", "settings": {"root": root}}


# --- refused when written ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "root",
    [
        "/proc/self",
        "/proc/self/root{tmp}/out",  # the same directory, reached through the process's own /proc entry
        "/etc",
        "{tmp}/elsewhere",
        "{tmp}/out/../elsewhere",
        "{tmp}/out/link",  # a symlink inside the root to a directory outside it
        "{tmp}/out/link/sub",
        "out/relative",
    ],
)
def test_a_folder_root_outside_the_operator_roots_is_refused_on_post_and_patch(
    server: str, tmp_path: Path, out: Path, elsewhere: Path, root: str
) -> None:
    (out / "link").symlink_to(elsewhere)
    root = root.format(tmp=tmp_path)

    refused = error(call(server, "POST", "/destinations", folder(root)), 400)
    assert refused["source"] == {"pointer": "/settings/root"}
    assert root in refused["detail"]
    assert call(server, "GET", "/destinations/dest_new").status_code == 404

    patched = error(call(server, "PATCH", "/destinations/dest_folder", {"settings": {"root": root}}), 400)
    assert patched["source"] == {"pointer": "/settings/root"}
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out)}


def test_the_reason_names_the_operator_roots_and_the_variable(server: str, tmp_path: Path, elsewhere: Path) -> None:
    detail = error(call(server, "POST", "/destinations", folder(str(elsewhere))), 400)["detail"]
    assert detail == (
        f"settings.root: root '{elsewhere}' ({elsewhere.resolve()}) is outside the operator's folder roots "
        f"({(tmp_path / 'out').resolve()}; FILERELAY_FOLDER_ROOTS)"
    )


def test_a_root_inside_or_equal_to_an_operator_root_is_accepted(server: str, out: Path) -> None:
    assert call(server, "POST", "/destinations", folder(str(out / "team-b"))).status_code == 201
    assert call(server, "POST", "/destinations", folder(str(out), "dest_same")).status_code == 201


def test_a_config_file_with_a_root_outside_the_roots_is_refused_and_changes_nothing(
    configured: Runtime, server: str, out: Path
) -> None:
    env = {"ADMIN_KEY": ADMIN_KEY, "OUT_DIR": "/proc/self", "S3_SECRET": "s3cr3t"}
    with pytest.raises(ConfigError) as refused, session_scope(configured.sessions) as session:
        apply(session, load(CONFIG, env), now=configured.clock.now(), policy=configured.settings.policy)
    assert str(refused.value).startswith(
        "acme/production: destination dest_folder: settings.root: root '/proc/self' is in /proc"
    )
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out)}


def test_config_apply_on_the_command_line_answers_the_reason(
    configured: Runtime, server: str, db_url: str, tmp_path: Path, out: Path, elsewhere: Path
) -> None:
    config = tmp_path / "filerelay.yaml"
    config.write_text(CONFIG)
    environ = {
        "FILERELAY_DATABASE_URL": db_url,
        "FILERELAY_HOME": str(tmp_path / "cli-home"),
        "FILERELAY_FOLDER_ROOTS": str(out),  # as the operator set it for every process
        "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,  # the server's: the CLI opens its secrets too
        "FILERELAY_EGRESS_ALLOW": "127.0.0.0/8,::1",  # the file's S3 is the tests' server on loopback
        "ADMIN_KEY": ADMIN_KEY,
        "S3_SECRET": "s3cr3t",
    }
    refused = CliRunner(env={**environ, "OUT_DIR": str(elsewhere)}).invoke(main, ["config", "apply", str(config)])
    assert refused.exit_code == 1
    assert "destination dest_folder: settings.root:" in refused.output
    assert "is outside the operator's folder roots" in refused.output
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out)}

    applied = CliRunner(env={**environ, "OUT_DIR": str(out / "cli")}).invoke(main, ["config", "apply", str(config)])
    assert applied.exit_code == 0, applied.output
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out / "cli")}


# --- refused when used: the world changed after the settings were written ----------------------------


def only_to_the_folder(server: str) -> None:
    """Z1 wired to the folder alone, so a delivered document's staging can be purged."""
    assert call(server, "PATCH", "/repositories/Z1", {"destinations": ["dest_folder"]}).status_code == 200


def create(sap: SapClient, runtime: Runtime, doc_id: str = DOC, content: bytes = PDF) -> tuple[str, str]:
    """A document created as SAP creates one, one attempt at each of its deliveries by the real delivery
    service: (file id, the folder delivery's id)."""
    assert sap.create(doc_id, "data", content).status == 201
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(Document.id, Delivery.id, Destination.kind)
            .join(Delivery, Delivery.document_id == Document.id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Document.doc_id == doc_id)
        ).all()
    for _, delivery_id, _ in rows:
        service.run(runtime, delivery_id, rand=lambda: 0.5)
    [(document_id, delivery_id)] = [(d, i) for d, i, kind in rows if kind == "folder"]
    return document_id, delivery_id


def delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    with session_scope(runtime.sessions) as session:
        return session.get_one(Delivery, delivery_id)


def purge_staging(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session:
        keys = sweep.purgeable(session, now=runtime.clock.now(), retention_seconds=0, limit=10)
    assert keys
    for key in keys:
        runtime.staging.delete(key)


def content(server: str, document_id: str) -> requests.Response:
    return requests.get(f"{server}{API}/files/{document_id}/content", headers=ADMIN, timeout=30)


def test_a_root_swapped_for_a_symlink_to_outside_is_refused_at_delivery_and_read_back(
    server: str, sap: SapClient, configured: Runtime, out: Path, elsewhere: Path
) -> None:
    only_to_the_folder(server)
    document_id, first = create(sap, configured)
    assert delivery(configured, first).status == "delivered"
    purge_staging(configured)
    assert content(server, document_id).content == PDF

    # The directory the settings name becomes a symlink to another team's tree, with a file where the
    # delivered one was: neither its bytes come back nor does a delivery write there.
    (elsewhere / "Z1").mkdir()
    (elsewhere / "Z1" / f"{DOC}_data.pdf").write_bytes(PDF)
    out.rename(out.with_name("out-moved"))
    out.symlink_to(elsewhere)

    assert error(content(server, document_id), 409)["code"] == "content_unavailable"
    assert sap.get(DOC, "data").status == 409
    _, second = create(sap, configured, "0000000000000000000000000000SWAP")
    refused = delivery(configured, second)
    assert refused.status == "failed"  # not retried: the configuration must change
    assert "refused: root" in (refused.last_error or "")
    assert sorted(p.name for p in (elsewhere / "Z1").iterdir()) == [f"{DOC}_data.pdf"]

    # The console's connection test builds the same client under the same policy.
    browser = http_sign_in(server, UI, ADMIN_KEY)
    token = browser.csrf(f"{UI}/destinations")
    browser.post(f"{UI}/destinations/dest_folder/test", data={"csrf_token": token})
    page = browser.get(f"{UI}/destinations").text
    assert "Connection failed: refused: root" in page


def test_the_consoles_test_refuses_a_root_written_behind_the_policys_back(
    server: str, configured: Runtime, elsewhere: Path
) -> None:
    # A row written before the policy existed (or by hand): the check refuses it, and creates nothing.
    with session_scope(configured.sessions) as session:
        row = session.scalars(select(Destination).where(Destination.public_id == "dest_folder")).one()
        row.settings = {"root": str(elsewhere / "made-by-the-check")}
    browser = http_sign_in(server, UI, ADMIN_KEY)
    token = browser.csrf(f"{UI}/destinations")
    browser.post(f"{UI}/destinations/dest_folder/test", data={"csrf_token": token})
    assert "is outside the operator&#39;s folder roots" in browser.get(f"{UI}/destinations").text
    assert not (elsewhere / "made-by-the-check").exists()
    assert call(server, "POST", "/destinations/dest_folder/test").json()["data"]["ok"] is False


# --- a copy replaced after its delivery ---------------------------------------------------------------


@pytest.mark.parametrize(
    "replacement",
    [PDF[:-1] + b"X", PDF + b"appended", b"%PDF short"],
    ids=["same-size", "longer", "shorter"],
)
def test_a_copy_replaced_on_disk_is_never_served_once_staging_is_purged(
    server: str, sap: SapClient, configured: Runtime, out: Path, replacement: bytes
) -> None:
    only_to_the_folder(server)
    document_id, _ = create(sap, configured)
    purge_staging(configured)
    copy = out / "Z1" / f"{DOC}_data.pdf"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == hashlib.sha256(PDF).hexdigest()

    copy.write_bytes(replacement)

    assert error(content(server, document_id), 409)["code"] == "content_unavailable"
    got = sap.get(DOC, "data")
    assert got.status == 409
    assert replacement not in got.body
    ranged = sap.get(DOC, "data", fromOffset="0", toOffset="3")
    assert ranged.status == 409
    assert b"%PDF" not in ranged.body
    browser = http_sign_in(server, UI, ADMIN_KEY)
    download = browser.get(f"{UI}/documents/{document_id}/content")
    assert download.status_code == 409
    assert replacement not in download.content

    # The original bytes back in place: served again (the check is of the bytes, not a verdict kept).
    copy.write_bytes(PDF)
    assert content(server, document_id).content == PDF
    assert browser.get(f"{UI}/documents/{document_id}/content").content == PDF
    assert sap.get(DOC, "data", fromOffset="9", toOffset="12").body == PDF[9:13]


# --- the location is fixed once a delivery holds it --------------------------------------------------


def test_the_root_moves_freely_until_a_delivery_then_409(
    server: str, sap: SapClient, configured: Runtime, out: Path
) -> None:
    moved = call(server, "PATCH", "/destinations/dest_folder", {"settings": {"root": str(out / "v2")}})
    assert moved.status_code == 200, moved.text
    create(sap, configured)

    refused = error(call(server, "PATCH", "/destinations/dest_folder", {"settings": {"root": str(out / "v3")}}), 409)
    assert refused["detail"] == (
        "destination dest_folder holds 1 delivery record(s) at its current location, which changing root "
        "would move: create a new destination instead"
    )
    to_s3 = {"kind": "s3", "settings": {"bucket": "archive", "access_key_id": "x", "secret_access_key": "y"}}
    assert error(call(server, "PATCH", "/destinations/dest_folder", to_s3), 409)["detail"].endswith(
        "which changing kind would move: create a new destination instead"
    )
    # The same root, said again, and settings that are not the location still change.
    same = call(
        server, "PATCH", "/destinations/dest_folder", {"settings": {"root": str(out / "v2")}, "name": "Renamed"}
    )
    assert same.status_code == 200, same.text
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out / "v2")}


def test_an_s3_bucket_is_fixed_once_it_holds_a_delivery_but_its_secret_rotates(
    server: str, sap: SapClient, configured: Runtime
) -> None:
    create(sap, configured)  # the S3 attempt fails (nothing listens), but its delivery record exists
    refused = error(call(server, "PATCH", "/destinations/dest_s3prod", {"settings": {"bucket": "other"}}), 409)
    assert "changing bucket would move" in refused["detail"]
    rotated = call(server, "PATCH", "/destinations/dest_s3prod", {"settings": {"secret_access_key": "n3w-s3cret"}})
    assert rotated.status_code == 200, rotated.text


def test_a_config_file_cannot_move_a_destination_that_holds_a_delivery(
    server: str, sap: SapClient, configured: Runtime, out: Path
) -> None:
    create(sap, configured)
    env = {"ADMIN_KEY": ADMIN_KEY, "OUT_DIR": str(out / "moved"), "S3_SECRET": "s3cr3t"}
    with (
        pytest.raises(ConfigError, match="create a new destination instead"),
        session_scope(configured.sessions) as session,
    ):
        apply(session, load(CONFIG, env), now=configured.clock.now(), policy=configured.settings.policy)
    assert call(server, "GET", "/destinations/dest_folder").json()["data"]["settings"] == {"root": str(out)}
