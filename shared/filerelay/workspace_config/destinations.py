"""Destinations: kind settings checked by the kind, secrets write-only, a check on demand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from filerelay import egress
from filerelay.audit import Secret
from filerelay.db.models import Delivery, Destination, Route
from filerelay.delivery import health, transitions
from filerelay.delivery.paths import TemplateError, validate_template
from filerelay.delivery.transitions import Wake
from filerelay.destinations.base import (
    DestinationError,
    build_client,
    get_kind,
    is_pushed,
    location_change,
)
from filerelay.policy import OperatorPolicy
from filerelay.workspace_config.common import (
    Conflict,
    InvalidInput,
    NotFound,
    assign_changed,
    flush_or_conflict,
    invalid,
    record,
    storable,
)
from filerelay.workspace_config.schemas import DEFAULT_PATH


@dataclass(frozen=True)
class DestinationInfo:
    id: str
    name: str
    kind: str
    settings: dict[str, Any]
    secrets_set: list[str]
    path: str
    enabled: bool
    max_retries: int | None
    retry_ttl: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    health: HealthInfo


@dataclass(frozen=True)
class HealthInfo:
    """Operational state, apart from the configuration: an admin's pause and the circuit breaker."""

    paused: bool
    paused_at: dt.datetime | None
    breaker: str  # closed | open | probing
    breaker_opened_at: dt.datetime | None
    consecutive_failures: int
    held_since: dt.datetime | None


def _destination_info(destination: Destination) -> DestinationInfo:
    state = HealthInfo(
        paused=destination.paused_at is not None,
        paused_at=destination.paused_at,
        breaker=transitions.breaker_state(destination).value,
        breaker_opened_at=destination.breaker_opened_at,
        consecutive_failures=destination.consecutive_failures or 0,
        held_since=destination.held_since,
    )
    return record(
        DestinationInfo,
        destination,
        id=destination.public_id,
        # What viewers read: a URL without the user:password@ it may carry (kept in storage, and used).
        settings={k: egress.without_userinfo(v) if isinstance(v, str) else v for k, v in destination.settings.items()},
        # An optional secret left out is stored as None: it is not "set".
        secrets_set=sorted(k for k, v in destination.secrets.items() if v not in (None, "")),
        path=destination.path_template,
        retry_ttl=destination.retry_ttl_seconds,
        health=state,
    )


def find_destination(session: Session, workspace_id: int, destination_id: str) -> Destination | None:
    if not storable(destination_id):
        return None
    return session.scalar(
        select(Destination).where(Destination.workspace_id == workspace_id, Destination.public_id == destination_id)
    )


def _existing_destination(session: Session, workspace_id: int, destination_id: str) -> Destination:
    destination = find_destination(session, workspace_id, destination_id)
    if destination is None:
        raise NotFound(f"no destination {destination_id}")
    return destination


def list_destinations(session: Session, *, workspace_id: int) -> list[DestinationInfo]:
    rows = session.scalars(
        select(Destination).where(Destination.workspace_id == workspace_id).order_by(Destination.public_id)
    )
    return [_destination_info(d) for d in rows]


def get_destination(session: Session, *, workspace_id: int, destination_id: str) -> DestinationInfo:
    return _destination_info(_existing_destination(session, workspace_id, destination_id))


# Request fields that are plain columns; `kind` and `settings` go through the kind's schema.
_DESTINATION_COLUMNS = {
    "name": "name",
    "path": "path_template",
    "enabled": "enabled",
    "max_retries": "max_retries",
    "retry_ttl": "retry_ttl_seconds",
}


def _kind_settings(
    kind: str, values: Mapping[str, Any], policy: OperatorPolicy
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        destination_kind = get_kind(kind)
    except ValidationError as exc:
        raise InvalidInput("; ".join(exc.messages), field="kind") from None
    try:
        return destination_kind.validate(values, policy)
    except ValidationError as exc:
        raise invalid(exc, "settings") from None


def _destination_columns(
    current: Destination | None, values: Mapping[str, Any], policy: OperatorPolicy
) -> dict[str, Any]:
    """Column values for the fields given. Settings given for the same kind are merged over the stored
    ones (secrets included), so a PATCH that leaves a secret out keeps it; a new kind starts afresh."""
    columns = {_DESTINATION_COLUMNS[k]: v for k, v in values.items() if k in _DESTINATION_COLUMNS}
    if "path" in values:
        try:
            validate_template(values["path"])
        except TemplateError as exc:
            raise InvalidInput(f"path: {exc}", field="path") from None
    if current is None or "kind" in values or "settings" in values:
        kind = values["kind"] if "kind" in values or current is None else current.kind
        kept = {**current.settings, **current.secrets} if current is not None and current.kind == kind else {}
        settings, secret_values = _kind_settings(kind, {**kept, **values.get("settings", {})}, policy)
        columns.update(kind=kind, settings=settings, secrets=secret_values)
    return columns


def _deliveries(session: Session, destination: Destination) -> int:
    return session.scalar(select(func.count()).where(Delivery.destination_id == destination.id)) or 0


def _keep_location(session: Session, destination: Destination, columns: Mapping[str, Any]) -> None:
    """A destination that holds a delivery keeps its location (root, bucket, host and directory...):
    its deliveries are recorded relative to it, and moving it would leave them pointing at whatever the
    new place has at those paths, which read-back would serve as the archived documents."""
    if "settings" not in columns and "kind" not in columns:
        return
    moved = location_change(
        destination.kind,
        {**destination.settings, **destination.secrets},
        columns.get("kind", destination.kind),
        {**columns.get("settings", destination.settings), **columns.get("secrets", destination.secrets)},
    )
    if not moved:
        return
    deliveries = _deliveries(session, destination)
    if deliveries:
        field = "kind" if moved == ["kind"] else f"settings/{moved[0]}"
        raise Conflict(
            f"destination {destination.public_id} holds {deliveries} delivery record(s) at its current location, "
            f"which changing {', '.join(moved)} would move: create a new destination instead",
            field=field,
        )


def create_destination(
    session: Session, *, workspace_id: int, values: Mapping[str, Any], now: dt.datetime, policy: OperatorPolicy
) -> DestinationInfo:
    """`values`: id, name, kind, and optionally settings (secrets included), path, enabled,
    max_retries, retry_ttl (seconds)."""
    defaults = {"settings": {}, "path": DEFAULT_PATH, "enabled": True}
    columns = _destination_columns(None, {**defaults, **values}, policy)
    destination = Destination(
        workspace_id=workspace_id, public_id=values["id"], created_at=now, updated_at=now, **columns
    )
    session.add(destination)
    flush_or_conflict(session, f"a destination {values['id']} already exists", "id")
    return _destination_info(destination)


def destination_columns(values: Mapping[str, Any], policy: OperatorPolicy) -> dict[str, Any]:
    """Every column of a destination stated whole (a config file's entry, loaded by DestinationCreate):
    its settings are exactly these, nothing merged. Raises InvalidInput; touches no database."""
    return _destination_columns(None, values, policy)


def put_destination(
    session: Session, *, workspace_id: int, values: Mapping[str, Any], now: dt.datetime, policy: OperatorPolicy
) -> str | None:
    """Create the destination or bring it to exactly `values` (`config apply`). Answers "created",
    "updated" or None when nothing changed."""
    columns = destination_columns(values, policy)
    destination = find_destination(session, workspace_id, values["id"])
    if destination is None:
        session.add(
            Destination(workspace_id=workspace_id, public_id=values["id"], created_at=now, updated_at=now, **columns)
        )
        flush_or_conflict(session, f"a destination {values['id']} already exists", "id")
        return "created"
    _keep_location(session, destination, columns)
    if not assign_changed(destination, columns):
        return None
    destination.updated_at = now
    session.flush()
    return "updated"


def update_destination(
    session: Session,
    *,
    workspace_id: int,
    destination_id: str,
    changes: Mapping[str, Any],
    now: dt.datetime,
    policy: OperatorPolicy,
) -> DestinationInfo:
    destination = _existing_destination(session, workspace_id, destination_id)
    columns = _destination_columns(destination, changes, policy)
    _keep_location(session, destination, columns)
    if assign_changed(destination, columns):
        destination.updated_at = now
    session.flush()
    return _destination_info(destination)


def delete_destination(session: Session, *, workspace_id: int, destination_id: str) -> None:
    """Only a destination nothing was ever sent to: deleting one with deliveries would erase where
    documents went (deliveries cascade). Such a destination can be disabled instead."""
    destination = _existing_destination(session, workspace_id, destination_id)
    deliveries = _deliveries(session, destination)
    if deliveries:
        raise Conflict(
            f"destination {destination_id} has {deliveries} delivery record(s), which deleting it would erase; "
            'disable it instead with PATCH {"enabled": false}'
        )
    session.execute(delete(Route).where(Route.destination_id == destination.id))
    session.delete(destination)
    session.flush()


def pause_destination(session: Session, *, workspace_id: int, destination_id: str, now: dt.datetime) -> DestinationInfo:
    """Hold the destination's deliveries until resumed: none is attempted, none spends its TTL."""
    destination = _pushing(session, workspace_id, destination_id)
    try:
        transitions.paused(health.locked(session, destination.id), now=now)
    except transitions.IllegalTransition:
        raise Conflict(f"destination {destination_id} is already paused") from None
    session.flush()
    return _destination_info(destination)


def resume_destination(
    session: Session, *, workspace_id: int, destination_id: str, now: dt.datetime
) -> tuple[DestinationInfo, list[Wake]]:
    """Let the destination's deliveries go again (unless its breaker is open); their TTL deadlines move by
    the time they were held. Returns the deliveries to wake after commit."""
    destination = _pushing(session, workspace_id, destination_id)
    row = health.locked(session, destination.id)
    try:
        held = transitions.resumed(row, now=now)
    except transitions.IllegalTransition:
        raise Conflict(f"destination {destination_id} is not paused") from None
    wake = health.release(session, row, held, now=now)
    session.flush()
    return _destination_info(row), wake


def _pushing(session: Session, workspace_id: int, destination_id: str) -> Destination:
    destination = _existing_destination(session, workspace_id, destination_id)
    if not is_pushed(destination.kind):
        raise Conflict(f"destination {destination_id} is a pull destination: its integration fetches, nothing to pause")
    return destination


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def _check(
    destination_id: str,
    kind: str,
    settings: Mapping[str, Any],
    secret_values: Mapping[str, Any],
    policy: OperatorPolicy,
) -> CheckResult:
    try:
        build_client(kind, settings, secret_values, policy).check()
    except DestinationError as exc:
        return CheckResult(ok=False, detail=str(exc))
    return CheckResult(ok=True, detail=f"{destination_id}: the {kind} destination passed its check")


def destination_check(
    session: Session, *, workspace_id: int, destination_id: str, policy: OperatorPolicy
) -> Callable[[], CheckResult]:
    """The check of a destination's credentials and reachability, to run after the session is closed:
    it may wait on the network for seconds, and must not hold a transaction (SQLite's write lock) meanwhile."""
    destination = _existing_destination(session, workspace_id, destination_id)
    return partial(
        _check, destination_id, destination.kind, dict(destination.settings), dict(destination.secrets), policy
    )


def audit_view(session: Session, *, workspace_id: int, destination_id: str) -> dict[str, Any] | None:
    """The destination as the audit log compares it before and after a change (None: there is none):
    its fields and each kind setting (`settings.NAME`), a secret only as audit.Secret, never its value."""
    destination = find_destination(session, workspace_id, destination_id)
    if destination is None:
        return None
    view: dict[str, Any] = {
        "name": destination.name,
        "kind": destination.kind,
        "path": destination.path_template,
        "enabled": destination.enabled,
        "max_retries": destination.max_retries,
        "retry_ttl": destination.retry_ttl_seconds,
    }
    view |= {f"settings.{k}": v for k, v in destination.settings.items()}
    view |= {f"settings.{k}": Secret.of(v) for k, v in destination.secrets.items()}
    return view
