"""The shared functions behind the admin API and `filerelay keys`, against a real database."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.clock import FrozenClock
from filerelay.config_file import apply, load
from filerelay.db.models import ApiKey, Destination, Route
from filerelay.runtime import Runtime
from filerelay.workspace_config import api_keys, destinations, repositories, retry_settings
from filerelay.workspace_config.api_keys import KEY_PREFIX, ApiKeyWithValue, hash_key
from filerelay.workspace_config.common import Conflict, InvalidInput, NotFound, get_workspace
from filerelay.workspace_config.schemas import DEFAULT_PATH, MAX_DURATION_SECONDS, format_duration, parse_duration
from tests.support.policy import LOOPBACK

SECRET = "unit-secret-0123456789"


@pytest.fixture
def session(configured: Runtime) -> Iterator[Session]:
    # Never committed: each test sees the configured workspace and leaves nothing behind.
    session = configured.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def ws(session: Session) -> int:
    return get_workspace(session, "acme", "production").id


def s3(**settings: object) -> dict[str, object]:
    return {
        "id": "dest_unit",
        "name": "Unit S3",
        "kind": "s3",
        "settings": {"bucket": "unit-bucket", "access_key_id": "unit", "secret_access_key": SECRET, **settings},
    }


# --- durations as answered --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1s"), (90, "90s"), (60, "1m"), (3600, "1h"), (5400, "90m"), (86400, "1d"), (93600, "26h")],
)
def test_format_duration_uses_the_largest_exact_unit(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=MAX_DURATION_SECONDS))
def test_format_duration_reads_back_as_the_same_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_duration_beyond_ten_years_is_refused_before_it_overflows_its_column() -> None:
    assert parse_duration("3650d") == MAX_DURATION_SECONDS
    with pytest.raises(ValidationError, match="a duration must not exceed 3650d"):
        parse_duration("3651d")


# --- workspaces -------------------------------------------------------------------------------------


def test_an_unknown_workspace_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound, match="no workspace acme/staging"):
        get_workspace(session, "acme", "staging")


# --- destinations -----------------------------------------------------------------------------------


def test_create_destination_applies_defaults_and_keeps_secrets_apart(
    session: Session, ws: int, clock: FrozenClock
) -> None:
    info = destinations.create_destination(session, workspace_id=ws, values=s3(), now=clock.now(), policy=LOOPBACK)
    assert (info.path, info.enabled, info.max_retries, info.retry_ttl) == (DEFAULT_PATH, True, None, None)
    assert info.secrets_set == ["secret_access_key"]
    assert "secret_access_key" not in info.settings
    assert SECRET not in repr(info)
    row = session.scalars(select(Destination).where(Destination.public_id == "dest_unit")).one()
    assert row.secrets == {"secret_access_key": SECRET}


def test_update_merges_settings_of_the_same_kind_and_keeps_secrets(
    session: Session, ws: int, clock: FrozenClock
) -> None:
    now = clock.now()
    destinations.create_destination(session, workspace_id=ws, values=s3(region="eu-west-1"), now=now, policy=LOOPBACK)
    info = destinations.update_destination(
        session,
        workspace_id=ws,
        destination_id="dest_unit",
        changes={"settings": {"bucket": "bucket-two"}},
        now=now,
        policy=LOOPBACK,
    )
    assert (info.settings["bucket"], info.settings["region"], info.secrets_set) == (
        "bucket-two",
        "eu-west-1",
        ["secret_access_key"],
    )


def test_an_update_that_changes_nothing_keeps_updated_at(session: Session, ws: int, clock: FrozenClock) -> None:
    before = destinations.get_destination(session, workspace_id=ws, destination_id="dest_folder")
    clock.advance(60)
    after = destinations.update_destination(
        session,
        workspace_id=ws,
        destination_id="dest_folder",
        changes={"name": before.name},
        now=clock.now(),
        policy=LOOPBACK,
    )
    assert after.updated_at == before.updated_at


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"kind": "ftp"}, "kind", "unknown destination kind 'ftp'; known kinds: "),
        ({"settings": {"bucket": "NO"}}, "settings/bucket", "settings.bucket: not a valid bucket name"),
        ({"settings": {}}, "settings/bucket", "settings.bucket: Missing data for required field."),
        ({"path": "{doc_id"}, "path", "path: unbalanced braces"),
    ],
)
def test_invalid_destinations_name_the_field(
    session: Session, ws: int, clock: FrozenClock, values: dict[str, object], field: str, message: str
) -> None:
    body = {**s3(), **values}
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        destinations.create_destination(session, workspace_id=ws, values=body, now=clock.now(), policy=LOOPBACK)
    assert caught.value.field == field


def test_a_duplicate_destination_id_is_a_conflict(session: Session, ws: int, clock: FrozenClock) -> None:
    with pytest.raises(Conflict, match="a destination dest_folder already exists") as caught:
        destinations.create_destination(
            session, workspace_id=ws, values={**s3(), "id": "dest_folder"}, now=clock.now(), policy=LOOPBACK
        )
    assert caught.value.field == "id"


def test_another_workspace_sees_none_of_these_destinations(session: Session, clock: FrozenClock) -> None:
    other = textwrap.dedent("workspaces: [{owner: globex, slug: main}]")
    apply(session, load(other, {}), now=clock.now(), policy=LOOPBACK)
    globex = get_workspace(session, "globex", "main").id
    assert destinations.list_destinations(session, workspace_id=globex) == []
    with pytest.raises(NotFound):
        destinations.get_destination(session, workspace_id=globex, destination_id="dest_folder")


def test_deleting_a_destination_without_deliveries_removes_its_routes(session: Session, ws: int) -> None:
    destinations.delete_destination(session, workspace_id=ws, destination_id="dest_s3prod")
    assert [r.destination_id for r in repositories.list_routes(session, workspace_id=ws)] == ["dest_folder"]
    assert len(session.scalars(select(Route)).all()) == 1


def test_the_check_runs_without_the_session_and_reports_what_failed(
    session: Session, ws: int, clock: FrozenClock, tmp_path: Path
) -> None:
    check = destinations.destination_check(session, workspace_id=ws, destination_id="dest_folder", policy=LOOPBACK)
    session.rollback()  # the check needs nothing of the session any more
    assert check() == destinations.CheckResult(ok=True, detail="dest_folder: the folder destination passed its check")

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    destinations.update_destination(
        session,
        workspace_id=ws,
        destination_id="dest_folder",
        changes={"settings": {"root": str(blocker / "out")}},
        now=clock.now(),
        policy=LOOPBACK,
    )
    result = destinations.destination_check(session, workspace_id=ws, destination_id="dest_folder", policy=LOOPBACK)()
    assert not result.ok
    assert result.detail.startswith(f"cannot create {blocker / 'out'}")


# --- repositories and routes ------------------------------------------------------------------------


def test_repository_wiring_is_replaced_as_a_whole(session: Session, ws: int, clock: FrozenClock) -> None:
    created = repositories.create_repository(
        session, workspace_id=ws, values={"repo_id": "Z7", "destinations": ["dest_folder"]}, now=clock.now()
    )
    assert created.destinations == ["dest_folder"]
    updated = repositories.update_repository(
        session, workspace_id=ws, repo_id="Z7", changes={"destinations": ["dest_s3prod", "dest_folder"]}
    )
    assert updated.destinations == ["dest_folder", "dest_s3prod"]
    emptied = repositories.update_repository(session, workspace_id=ws, repo_id="Z7", changes={"destinations": []})
    assert emptied.destinations == []


def test_an_unknown_destination_names_every_missing_id(session: Session, ws: int, clock: FrozenClock) -> None:
    with pytest.raises(InvalidInput, match="destinations: no destination dest_x, dest_y") as caught:
        repositories.create_repository(
            session,
            workspace_id=ws,
            values={"repo_id": "Z7", "destinations": ["dest_y", "dest_folder", "dest_x"]},
            now=clock.now(),
        )
    assert caught.value.field == "destinations"


def test_an_unknown_route_end_is_bad_input_when_wiring_and_not_found_when_unwiring(session: Session, ws: int) -> None:
    with pytest.raises(InvalidInput, match="no destination dest_x") as bad:
        repositories.add_route(session, workspace_id=ws, repo_id="Z2", destination_id="dest_x")
    assert bad.value.field == "destination_id"
    with pytest.raises(NotFound, match="no repository Q9"):
        repositories.remove_route(session, workspace_id=ws, repo_id="Q9", destination_id="dest_folder")
    with pytest.raises(NotFound, match="repository Z2 is not wired to dest_folder"):
        repositories.remove_route(session, workspace_id=ws, repo_id="Z2", destination_id="dest_folder")
    with pytest.raises(Conflict, match="repository Z1 is already wired to dest_folder"):
        repositories.add_route(session, workspace_id=ws, repo_id="Z1", destination_id="dest_folder")


# --- retry settings ---------------------------------------------------------------------------------


def test_retry_settings_merge_and_are_checked_as_a_whole(session: Session, ws: int) -> None:
    assert retry_settings.update_retry_settings(session, workspace_id=ws, changes={"ttl": 7200}) == (
        retry_settings.RetrySettings(max_retries=3, ttl=7200, backoff_base=1, backoff_max=10)
    )
    with pytest.raises(InvalidInput, match=r"^backoff_base must not exceed backoff_max$") as caught:
        retry_settings.update_retry_settings(session, workspace_id=ws, changes={"backoff_base": 11})
    assert caught.value.field is None
    with pytest.raises(InvalidInput, match="max_retries: Must be greater than or equal to 0") as caught:
        retry_settings.update_retry_settings(session, workspace_id=ws, changes={"max_retries": -1})
    assert caught.value.field == "max_retries"


# --- API keys ---------------------------------------------------------------------------------------


def test_a_created_key_is_stored_only_as_its_hash_and_fits_a_config_file(
    session: Session, ws: int, clock: FrozenClock
) -> None:
    new = api_keys.create_key(session, workspace_id=ws, name="robot", role="member", now=clock.now())
    assert new.key.startswith(KEY_PREFIX)
    ApiKeyWithValue().load({"name": "robot", "role": "member", "key": new.key})  # the same rules as a config file's key
    row = session.scalars(select(ApiKey).where(ApiKey.name == "robot")).one()
    assert (row.key_hash, row.prefix) == (hash_key(new.key), new.key[:12])
    assert new.key not in repr(new.info)
    assert api_keys.create_key(session, workspace_id=ws, name="r2", role="viewer", now=clock.now()).key != new.key


@pytest.mark.parametrize(
    ("name", "role", "field"), [("", "admin", "name"), ("x" * 101, "admin", "name"), ("ok", "owner", "role")]
)
def test_key_names_and_roles_are_checked(
    session: Session, ws: int, clock: FrozenClock, name: str, role: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        api_keys.create_key(session, workspace_id=ws, name=name, role=role, now=clock.now())
    assert caught.value.field == field


def test_revoking_keeps_the_first_time_and_the_name(session: Session, ws: int, clock: FrozenClock) -> None:
    first = api_keys.revoke_key(session, workspace_id=ws, name="ops", now=clock.now())
    clock.advance(60)
    again = api_keys.revoke_key(session, workspace_id=ws, name="ops", now=clock.now())
    assert again.revoked_at == first.revoked_at is not None
    assert [k.name for k in api_keys.list_keys(session, workspace_id=ws)] == ["ops"]
    with pytest.raises(Conflict, match="an API key named 'ops' already exists"):
        api_keys.create_key(session, workspace_id=ws, name="ops", role="admin", now=clock.now())
    session.rollback()  # as the request that met the conflict would
    with pytest.raises(NotFound, match="no API key named 'nobody'"):
        api_keys.revoke_key(session, workspace_id=ws, name="nobody", now=clock.now())
