"""Unit tests for `filerelay.config_file`: durations, `${VAR}` substitution, validation and apply."""

from __future__ import annotations

import copy
import hashlib
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from filerelay.api import create_app
from filerelay.config_file import ConfigError, Summary, apply, apply_file, load, substitute_env
from filerelay.db.models import ApiKey, AuditEvent, Base, Destination, Repository, Route, Workspace
from filerelay.db.session import session_scope
from filerelay.destinations import REGISTRY
from filerelay.runtime import Runtime
from filerelay.workspace_config.schemas import parse_duration
from tests.support.audit import audit_entries
from tests.support.policy import LOOPBACK

ADMIN_KEY = "fr_live_admin_0123456789abcdef"
MEMBER_KEY = "fr_live_member_0123456789abcdef"
S3_SECRET = "s3-secret-value-do-not-store-in-settings"

# --- parse_duration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("24h", 86_400),
        ("7d", 604_800),
        ("1s", 1),
        (" 5m ", 300),
        ("90", 90),
        (45, 45),
        (1, 1),
        (2.0, 2),
    ],
)
def test_parse_duration_accepts(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is not a duration"),
        ("soon", "'soon' is not a duration"),
        ("5w", "'5w' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("-5", "'-5' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        ("5 m s", "is not a duration"),
        ("h", "is not a duration"),
        (None, "is not a duration"),
        ([30], "is not a duration"),
        (0, "must be positive"),
        ("0", "must be positive"),
        ("0s", "must be positive"),
        ("0d", "must be positive"),
        (-1, "must be positive"),
        (-3600, "must be positive"),
        (True, "not a duration"),
        (False, "not a duration"),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_parse_duration_rejects_non_finite_floats(value: float) -> None:
    with pytest.raises(ValidationError):
        parse_duration(value)


def test_load_reports_infinite_duration_as_config_error() -> None:
    with pytest.raises(ConfigError, match=r"workspaces\.0\.retry\.ttl"):
        load("workspaces: [{owner: acme, slug: production, retry: {ttl: .inf}}]", {})


# --- substitute_env --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${A}", {"A": "alpha"}, "alpha"),
        ("pre-${A}-mid-${B}/post", {"A": "1", "B": "2"}, "pre-1-mid-2/post"),
        ("${A}${A}", {"A": "x"}, "xx"),
        ("no reference: $A {A} $ {}", {}, "no reference: $A {A} $ {}"),
        ("${A}", {"A": "${B}", "B": "never"}, "${B}"),  # a value is not expanded again
        (42, {}, 42),
        (None, {}, None),
        (True, {}, True),
    ],
)
def test_substitute_env_strings_and_scalars(value: object, environ: dict[str, str], expected: object) -> None:
    assert substitute_env(value, environ) == expected


def test_substitute_env_walks_nested_lists_and_dicts() -> None:
    value = {
        "top": "${A}",
        "list": ["${A}", 1, {"deep": "x-${B}"}],
        "map": {"inner": ["${B}", None], "n": 3.5, "flag": False},
    }
    result = substitute_env(value, {"A": "alpha", "B": "beta"})
    assert result == {
        "top": "alpha",
        "list": ["alpha", 1, {"deep": "x-beta"}],
        "map": {"inner": ["beta", None], "n": 3.5, "flag": False},
    }
    assert value["top"] == "${A}"  # the input is left alone


@pytest.mark.parametrize(
    ("value", "where", "location"),
    [
        ({"workspaces": [{"api_keys": [{"key": "${MISSING_KEY}"}]}]}, "", "workspaces[0].api_keys[0].key"),
        ({"a": {"b": ["ok", "x-${MISSING_KEY}-y"]}}, "", "a.b[1]"),
        (["${MISSING_KEY}"], "root", "root[0]"),
        ("${MISSING_KEY}", "", "value"),
        ("${MISSING_KEY}", "field", "field"),
    ],
)
def test_substitute_env_missing_variable_names_variable_and_location(value: Any, where: str, location: str) -> None:
    with pytest.raises(ConfigError) as info:
        substitute_env(value, {"OTHER": "x"}, where)
    message = str(info.value)
    assert message.startswith(f"{location}: ")
    assert "MISSING_KEY" in message
    assert "not set" in message


def test_substitute_env_missing_variable_never_becomes_empty_string() -> None:
    with pytest.raises(ConfigError, match="MISSING"):
        substitute_env("a-${MISSING}-b", {})


def test_load_reports_missing_variable_with_its_location() -> None:
    text = "workspaces: [{owner: acme, slug: production, api_keys: [{name: ops, role: admin, key: '${NOPE}'}]}]"
    with pytest.raises(ConfigError, match=r"workspaces\[0\]\.api_keys\[0\]\.key: environment variable NOPE"):
        load(text, {})


# --- load: validation errors -----------------------------------------------------------------------

WS = "workspaces: [{owner: acme, slug: production, "
FOLDER = "{id: d1, name: D, kind: folder, root: /srv/out}"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("workspaces: [", ["not valid YAML"], id="not-yaml"),
        pytest.param("- a\n- b\n", ["must be a mapping", "workspaces"], id="list"),
        pytest.param("just text", ["must be a mapping"], id="scalar"),
        pytest.param("", ["must be a mapping"], id="empty"),
        pytest.param("{}", ["workspaces: Missing data for required field"], id="no-workspaces"),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: ftp}]}]",
            ["workspaces.0.destinations.0: ", "unknown destination kind 'ftp'", "known kinds: "],
            id="unknown-kind",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: s3, bucket: Bad_Bucket}]}]",
            ["workspaces.0.destinations.0.bucket: ", "not a valid bucket name"],
            id="bad-bucket",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: s3, bucket: ab}]}]",
            ["workspaces.0.destinations.0.bucket: ", "not a valid bucket name"],
            id="short-bucket",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: s3, bucket: archive, buckett: x}]}]",
            ["workspaces.0.destinations.0.buckett: ", "Unknown field"],
            id="unknown-s3-setting",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: folder}]}]",
            ["workspaces.0.destinations.0.root: ", "Missing data for required field"],
            id="folder-without-root",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: folder, root: /x, path: '/{doc_id'}]}]",
            ["workspaces.0.destinations.0.path: ", "unbalanced braces"],
            id="unbalanced-template",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: folder, root: /x, path: '/{docid}{ext}'}]}]",
            ["workspaces.0.destinations.0.path: ", "unknown field {docid}"],
            id="unknown-template-field",
        ),
        pytest.param(
            WS + "destinations: [{id: d1, name: D, kind: folder, root: /x, path: '/static.pdf'}]}]",
            ["workspaces.0.destinations.0.path: ", "names no field"],
            id="template-without-field",
        ),
        pytest.param(
            WS + f"destinations: [{FOLDER}], repositories: [{{id: Z1, destinations: [d1, dest_nope]}}]}}]",
            ["workspaces.0.repositories.0.destinations: ", "no destination with id 'dest_nope'"],
            id="route-to-unknown-destination",
        ),
        pytest.param(
            WS + f"destinations: [{FOLDER}, {FOLDER}]}}]",
            ["workspaces.0.destinations: ", "id 'd1' appears more than once"],
            id="duplicate-destination-id",
        ),
        pytest.param(
            WS + "repositories: [{id: Z1}, {id: Z2}, {id: Z1}]}]",
            ["workspaces.0.repositories: ", "id 'Z1' appears more than once"],
            id="duplicate-repository-id",
        ),
        pytest.param(
            WS + "api_keys: [{name: ops, role: admin, key: fr_live_aaaaaaaaaaaaaaaa},"
            " {name: ops, role: viewer, key: fr_live_bbbbbbbbbbbbbbbb}]}]",
            ["workspaces.0.api_keys: ", "name 'ops' appears more than once"],
            id="duplicate-key-name",
        ),
        pytest.param(
            "workspaces: [{owner: acme, slug: production}, {owner: acme, slug: test}, {owner: acme, slug: production}]",
            ["workspaces: ", "'acme', 'production'", "appears more than once"],
            id="duplicate-workspace",
        ),
        pytest.param(
            WS + "api_keys: [{name: ops, role: admin, key: sk_live_0123456789abcdef}]}]",
            ["workspaces.0.api_keys.0.key: ", "starts with fr_live_"],
            id="key-without-prefix",
        ),
        pytest.param(
            WS + "api_keys: [{name: ops, role: admin, key: fr_live_short}]}]",
            ["workspaces.0.api_keys.0.key: ", "at least 16"],
            id="key-too-short",
        ),
        pytest.param(
            WS + "api_keys: [{name: ops, role: root, key: fr_live_0123456789abcdef}]}]",
            ["workspaces.0.api_keys.0.role: ", "viewer, member, admin"],
            id="unknown-role",
        ),
        pytest.param(
            WS + "retry: {backoff_base: 2h, backoff_max: 1h}}]",
            ["workspaces.0.retry", "backoff_base must not exceed backoff_max"],
            id="backoff-base-above-max",
        ),
        pytest.param(
            WS + "retry: {backoff_base: 2h}}]",  # the default backoff_max is 1h
            ["workspaces.0.retry", "backoff_base must not exceed backoff_max"],
            id="backoff-base-above-default-max",
        ),
        pytest.param(
            WS + "retry: {ttl: soon}}]",
            ["workspaces.0.retry.ttl: ", "'soon' is not a duration"],
            id="bad-duration",
        ),
        pytest.param(
            WS + "retry: {ttl: 0}}]",
            ["workspaces.0.retry.ttl: ", "must be positive"],
            id="zero-duration",
        ),
        pytest.param(
            "workspaces: [{owner: Acme, slug: production}]",
            ["workspaces.0.owner: ", "lowercase"],
            id="bad-owner-slug",
        ),
        pytest.param(
            WS + "repositories: [{id: Z1, signature: maybe}]}]",
            ["workspaces.0.repositories.0.signature: "],
            id="bad-signature-mode",
        ),
    ],
)
def test_load_rejects_with_what_and_where(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(text, {})
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_unknown_kind_lists_every_known_kind() -> None:
    assert {"folder", "s3"} <= set(REGISTRY)
    with pytest.raises(ConfigError) as info:
        load(WS + "destinations: [{id: d1, name: D, kind: ftp}]}]", {})
    assert f"known kinds: {', '.join(sorted(REGISTRY))}" in str(info.value)


def test_load_lists_every_problem_at_once() -> None:
    text = textwrap.dedent(
        """
        workspaces:
          - owner: acme
            slug: production
            destinations:
              - {id: d1, name: D, kind: s3, bucket: Bad_Bucket}
              - {id: d2, name: E, kind: folder, root: /x, path: "/{nope}"}
            repositories:
              - {id: Z1, destinations: [d9]}
        """
    )
    with pytest.raises(ConfigError) as info:
        load(text, {})
    message = str(info.value)
    assert "workspaces.0.destinations.0.bucket" in message
    assert "workspaces.0.destinations.1.path" in message
    assert "workspaces.0.repositories.0.destinations: no destination with id 'd9'" in message


def test_load_rejects_the_same_key_twice() -> None:
    text = WS + (
        "api_keys: [{name: one, role: admin, key: fr_live_0123456789abcdef},"
        " {name: two, role: viewer, key: fr_live_0123456789abcdef}]}]"
    )
    with pytest.raises(ConfigError, match=r"workspaces\.0\.api_keys"):
        load(text, {})


def test_load_returns_defaults_durations_and_split_secrets() -> None:
    text = textwrap.dedent(
        """
        workspaces:
          - owner: acme
            slug: production
            retry: {ttl: 2h, backoff_base: 5s, backoff_max: 10m}
            destinations:
              - {id: d1, name: S3, kind: s3, bucket: archive, access_key_id: AK, secret_access_key: "${SECRET}"}
            repositories:
              - {id: Z1, destinations: [d1]}
        """
    )
    data = load(text, {"SECRET": "sssh"})
    ws = data["workspaces"][0]
    assert ws["retry"] == {"max_retries": 5, "ttl": 7200, "backoff_base": 5, "backoff_max": 600}
    dest = ws["destinations"][0]
    # The admin API's create body: the kind's settings, secrets included, gathered under `settings`.
    assert dest["settings"] == {"bucket": "archive", "access_key_id": "AK", "secret_access_key": "sssh"}
    assert dest["path"] == "/{repo_id}/{doc_id}_{comp_id}{ext}"
    assert (dest["max_retries"], dest["retry_ttl"]) == (None, None)
    assert ws["repositories"][0]["signature"] == "required"
    assert ws["api_keys"] == []


# --- apply against a real database -----------------------------------------------------------------

# Under the tests' folder roots (the system's temporary directory): nothing is written there.
OUT_DIR = str(LOOPBACK.folder_roots[0] / "filerelay" / "out")
ENV = {"ADMIN_KEY": ADMIN_KEY, "MEMBER_KEY": MEMBER_KEY, "S3_SECRET": S3_SECRET, "OUT_DIR": OUT_DIR}

BASE: dict[str, Any] = {
    "workspaces": [
        {
            "owner": "acme",
            "slug": "production",
            "retry": {"max_retries": 3, "ttl": "1h", "backoff_base": "1s", "backoff_max": "10s"},
            "api_keys": [
                {"name": "ops", "role": "admin", "key": "${ADMIN_KEY}"},
                {"name": "robot", "role": "member", "key": "${MEMBER_KEY}"},
            ],
            "destinations": [
                {
                    "id": "dest_folder",
                    "name": "Local Folder",
                    "kind": "folder",
                    "root": "${OUT_DIR}",
                    "path": "/{repo_id}/{doc_id}_{comp_id}{ext}",
                },
                {
                    "id": "dest_s3prod",
                    "name": "S3 Production Archive",
                    "kind": "s3",
                    "bucket": "archive",
                    "region": "eu-central-1",
                    "access_key_id": "AKIDEXAMPLE",
                    "secret_access_key": "${S3_SECRET}",
                    "path": "/{received:%Y/%m/%d}/{doc_id}{ext}",
                },
            ],
            "repositories": [
                {
                    "id": "Z1",
                    "description": "Invoices",
                    "signature": "none",
                    "destinations": ["dest_folder", "dest_s3prod"],
                },
                {"id": "Z2", "description": "Unwired scans", "signature": "none", "destinations": []},
            ],
        }
    ]
}


def base_config() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def run_apply(runtime: Runtime, config: dict[str, Any]) -> Summary:
    data = load(yaml.safe_dump(config), ENV)
    with session_scope(runtime.sessions) as session:
        return apply(session, data, now=runtime.clock.now(), policy=LOOPBACK)


def row_counts(session: Session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def routes_of(session: Session, repo_id: str) -> set[str]:
    return set(
        session.scalars(
            select(Destination.public_id)
            .join(Route, Route.destination_id == Destination.id)
            .join(Repository, Repository.id == Route.repository_id)
            .where(Repository.repo_id == repo_id)
        )
    )


def test_apply_creates_everything(engine: Engine, runtime: Runtime) -> None:
    summary = run_apply(runtime, base_config())

    assert summary.created == [
        "workspace acme/production",
        "api key ops",
        "api key robot",
        "destination dest_folder",
        "destination dest_s3prod",
        "repository Z1",
        "repository Z2",
    ]
    assert summary.updated == []
    assert str(summary).startswith("configuration applied: created workspace acme/production")
    with session_scope(runtime.sessions) as session:
        workspace = session.scalars(select(Workspace)).one()
        assert (workspace.owner_slug, workspace.slug) == ("acme", "production")
        assert (
            workspace.max_retries,
            workspace.retry_ttl_seconds,
            workspace.backoff_base_seconds,
            workspace.backoff_max_seconds,
        ) == (3, 3600, 1, 10)
        keys = {k.name: k for k in session.scalars(select(ApiKey))}
        assert {n: k.role for n, k in keys.items()} == {"ops": "admin", "robot": "member"}
        assert all(k.workspace_id == workspace.id and k.revoked_at is None for k in keys.values())
        destinations = {d.public_id: d for d in session.scalars(select(Destination))}
        assert {i: d.kind for i, d in destinations.items()} == {"dest_folder": "folder", "dest_s3prod": "s3"}
        assert destinations["dest_folder"].settings == {"root": OUT_DIR}
        assert destinations["dest_folder"].path_template == "/{repo_id}/{doc_id}_{comp_id}{ext}"
        assert destinations["dest_s3prod"].name == "S3 Production Archive"
        assert destinations["dest_s3prod"].enabled is True
        repositories = {r.repo_id: r for r in session.scalars(select(Repository))}
        assert {i: (r.description, r.signature) for i, r in repositories.items()} == {
            "Z1": ("Invoices", "none"),
            "Z2": ("Unwired scans", "none"),
        }
        assert routes_of(session, "Z1") == {"dest_folder", "dest_s3prod"}
        assert routes_of(session, "Z2") == set()


def test_apply_stores_api_keys_only_as_sha256(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    with session_scope(runtime.sessions) as session:
        rows = session.execute(select(Base.metadata.tables["api_keys"])).mappings().all()
        by_name = {row["name"]: row for row in rows}
        assert by_name["ops"]["key_hash"] == hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
        assert by_name["robot"]["key_hash"] == hashlib.sha256(MEMBER_KEY.encode()).hexdigest()
        for row in rows:
            for column, value in row.items():
                for key in (ADMIN_KEY, MEMBER_KEY):
                    assert key not in str(value), f"api_keys.{column} holds the plain key"
            assert str(row["prefix"]).startswith("fr_live_")


def test_apply_keeps_s3_secret_out_of_settings(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    with session_scope(runtime.sessions) as session:
        s3 = session.scalars(select(Destination).where(Destination.public_id == "dest_s3prod")).one()
        assert s3.secrets == {"secret_access_key": S3_SECRET}
        assert "secret_access_key" not in s3.settings
        assert S3_SECRET not in repr(s3.settings)
        assert s3.settings["bucket"] == "archive"
        assert s3.settings["region"] == "eu-central-1"
        assert s3.settings["access_key_id"] == "AKIDEXAMPLE"
        folder = session.scalars(select(Destination).where(Destination.public_id == "dest_folder")).one()
        assert folder.secrets == {}


def test_apply_twice_changes_nothing(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    with session_scope(runtime.sessions) as session:
        before = row_counts(session)
        stamps = {d.public_id: d.updated_at for d in session.scalars(select(Destination))}

    second = run_apply(runtime, base_config())

    assert (second.created, second.updated) == ([], [])
    assert str(second) == "configuration applied: nothing changed"
    with session_scope(runtime.sessions) as session:
        assert row_counts(session) == before
        assert before["workspaces"] == 1
        assert before["api_keys"] == 2
        assert before["destinations"] == 2
        assert before["repositories"] == 2
        assert before["routes"] == 2
        assert {d.public_id: d.updated_at for d in session.scalars(select(Destination))} == stamps


def test_apply_updates_changed_key_and_role(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    config = base_config()
    new_key = "fr_live_rotated_0123456789abcdef"
    config["workspaces"][0]["api_keys"][0]["key"] = new_key
    config["workspaces"][0]["api_keys"][1]["role"] = "viewer"

    summary = run_apply(runtime, config)

    assert summary.created == []
    assert sorted(summary.updated) == ["api key ops", "api key robot"]
    with session_scope(runtime.sessions) as session:
        keys = {k.name: k for k in session.scalars(select(ApiKey))}
        assert len(keys) == 2
        assert keys["ops"].key_hash == hashlib.sha256(new_key.encode()).hexdigest()
        assert keys["ops"].role == "admin"
        assert keys["robot"].role == "viewer"
        assert keys["robot"].key_hash == hashlib.sha256(MEMBER_KEY.encode()).hexdigest()
        old = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
        assert session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.key_hash == old)) == 0


def test_apply_updates_workspace_destination_and_repository(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    config = base_config()
    ws = config["workspaces"][0]
    ws["retry"]["max_retries"] = 7
    ws["destinations"][1]["secret_access_key"] = "rotated-secret"
    ws["repositories"][0]["signature"] = "required"

    summary = run_apply(runtime, config)

    assert summary.created == []
    assert summary.updated == ["workspace acme/production", "destination dest_s3prod", "repository Z1"]
    with session_scope(runtime.sessions) as session:
        assert session.scalars(select(Workspace)).one().max_retries == 7
        s3 = session.scalars(select(Destination).where(Destination.public_id == "dest_s3prod")).one()
        assert s3.secrets == {"secret_access_key": "rotated-secret"}
        z1 = session.scalars(select(Repository).where(Repository.repo_id == "Z1")).one()
        assert z1.signature == "required"


def test_apply_adds_and_removes_routes(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    config = base_config()
    repos = config["workspaces"][0]["repositories"]
    repos[0]["destinations"] = ["dest_s3prod"]  # dest_folder is no longer listed
    repos[1]["destinations"] = ["dest_folder"]

    summary = run_apply(runtime, config)

    assert summary.created == []
    assert sorted(summary.updated) == ["routes of Z1", "routes of Z2"]
    with session_scope(runtime.sessions) as session:
        assert routes_of(session, "Z1") == {"dest_s3prod"}
        assert routes_of(session, "Z2") == {"dest_folder"}
        assert row_counts(session)["routes"] == 2
        # Removing a route keeps the destination itself.
        assert row_counts(session)["destinations"] == 2


def test_apply_removes_every_route_when_list_is_emptied(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    config = base_config()
    config["workspaces"][0]["repositories"][0]["destinations"] = []

    summary = run_apply(runtime, config)

    assert summary.updated == ["routes of Z1"]
    with session_scope(runtime.sessions) as session:
        assert routes_of(session, "Z1") == set()
        assert row_counts(session)["routes"] == 0


def test_apply_two_workspaces_keeps_them_apart(engine: Engine, runtime: Runtime) -> None:
    config = base_config()
    other = copy.deepcopy(config["workspaces"][0])
    other["slug"] = "test"
    other["api_keys"] = [{"name": "ops", "role": "viewer", "key": "fr_live_other_0123456789abcdef"}]
    config["workspaces"].append(other)

    run_apply(runtime, config)
    again = run_apply(runtime, config)

    assert str(again) == "configuration applied: nothing changed"
    with session_scope(runtime.sessions) as session:
        counts = row_counts(session)
        assert (counts["workspaces"], counts["api_keys"], counts["destinations"], counts["routes"]) == (2, 3, 4, 4)


def test_apply_file_reads_and_applies(engine: Engine, runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "filerelay.yaml"
    path.write_text(yaml.safe_dump(base_config()), encoding="utf-8")
    with session_scope(runtime.sessions) as session:
        summary = apply_file(session, path, now=runtime.clock.now(), environ=ENV, policy=LOOPBACK)
    assert "workspace acme/production" in summary.created
    with session_scope(runtime.sessions) as session:
        assert row_counts(session)["repositories"] == 2


def test_apply_file_missing_file_is_config_error(engine: Engine, runtime: Runtime, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with session_scope(runtime.sessions) as session, pytest.raises(ConfigError, match=r"cannot read .*nope\.yaml"):
        apply_file(session, missing, now=runtime.clock.now(), environ=ENV, policy=LOOPBACK)
    with session_scope(runtime.sessions) as session:
        assert row_counts(session)["workspaces"] == 0


# --- the audit log: what a file changed, read as an admin reads it ------------------------------------


def audit_log(runtime: Runtime, key: str = ADMIN_KEY) -> list[dict[str, Any]]:
    return audit_entries(create_app(runtime=runtime).test_client(), key)


def test_apply_records_each_change_as_the_config_file_once(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    first = audit_log(runtime)
    assert {(e["actor"]["name"], e["actor"]["key_prefix"], e["channel"]) for e in first} == {
        ("config-file", None, "config-file")
    }
    assert sorted((e["action"], e["target"]) for e in first) == [
        ("api_key.create", "ops"),
        ("api_key.create", "robot"),
        ("destination.create", "dest_folder"),
        ("destination.create", "dest_s3prod"),
        ("repository.create", "Z1"),
        ("repository.create", "Z2"),
        ("settings.update", "retry"),
        ("workspace.create", "acme/production"),
    ]
    s3 = next(e for e in first if e["target"] == "dest_s3prod")
    assert s3["changes"]["settings.secret_access_key"] == "changed"
    assert s3["changes"]["settings.bucket"] == {"before": None, "after": "archive"}

    # Applying the same file again changes nothing, and records nothing.
    run_apply(runtime, base_config())
    assert audit_log(runtime) == first

    config = base_config()
    ws = config["workspaces"][0]
    ws["retry"]["max_retries"] = 7
    ws["api_keys"][0]["key"] = rotated = "fr_live_rotated_0123456789abcdef"
    ws["destinations"][1]["secret_access_key"] = "rotated-secret-value"
    ws["repositories"][0]["signature"] = "required"
    ws["repositories"][0]["destinations"] = ["dest_folder"]
    run_apply(runtime, config)
    new = {(e["action"], e["target"]): e["changes"] for e in audit_log(runtime, rotated)[: -len(first)]}
    assert new == {
        ("settings.update", "retry"): {"max_retries": {"before": 3, "after": 7}},
        ("api_key.update", "ops"): {"key": "changed", "prefix": {"before": ADMIN_KEY[:12], "after": rotated[:12]}},
        ("destination.update", "dest_s3prod"): {"settings.secret_access_key": "changed"},
        ("repository.update", "Z1"): {
            "signature": {"before": "none", "after": "required"},
            "destinations": {"before": ["dest_folder", "dest_s3prod"], "after": ["dest_folder"]},
        },
    }
    with session_scope(runtime.sessions) as session:
        stored = repr(session.execute(select(AuditEvent.changes, AuditEvent.detail)).all())
    for secret in (S3_SECRET, "rotated-secret-value", ADMIN_KEY, MEMBER_KEY, rotated):
        assert secret not in stored


def test_a_file_the_database_refuses_records_nothing(engine: Engine, runtime: Runtime) -> None:
    run_apply(runtime, base_config())
    before = audit_log(runtime)
    config = base_config()
    config["workspaces"][0]["retry"]["max_retries"] = 9  # a change that would be recorded ...
    other = copy.deepcopy(config["workspaces"][0]) | {"slug": "staging"}  # ... but the key is taken
    config["workspaces"].append(other)
    with pytest.raises(ConfigError, match="an API key with this value exists"):
        run_apply(runtime, config)
    assert audit_log(runtime) == before


def test_a_repositorys_metadata_wait_is_set_changed_and_checked_by_the_file(engine: Engine, runtime: Runtime) -> None:
    config = base_config()
    config["workspaces"][0]["repositories"][0]["metadata_wait"] = "15m"
    run_apply(runtime, config)
    with session_scope(runtime.sessions) as session:
        waits = dict(session.execute(select(Repository.repo_id, Repository.metadata_wait_seconds)).all())
    assert waits == {"Z1": 900, "Z2": 0}

    # Left out, it is the default again: a file states each repository completely.
    del config["workspaces"][0]["repositories"][0]["metadata_wait"]
    assert run_apply(runtime, config).updated == ["repository Z1"]
    with session_scope(runtime.sessions) as session:
        assert session.scalar(select(Repository.metadata_wait_seconds).where(Repository.repo_id == "Z1")) == 0

    config["workspaces"][0]["repositories"][0]["metadata_wait"] = "8d"
    with pytest.raises(ConfigError, match=r"repositories\.0\.metadata_wait: must not exceed 7d"):
        load(yaml.safe_dump(config), ENV)
