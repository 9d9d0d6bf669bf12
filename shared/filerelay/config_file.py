"""`filerelay config apply`: workspaces, keys, destinations, repositories and routes from YAML.

Applying the same file twice changes nothing. Secrets come from the environment via `${VAR}`;
API keys are stored only as their sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.db.models import ApiKey, Destination, Repository, Role, Route, SignatureMode, Workspace
from filerelay.delivery.paths import TemplateError, validate_template
from filerelay.destinations import get_kind

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,62}$", error="use lowercase letters, digits and '-'")
KEY_PREFIX = "fr_live_"
DEFAULT_PATH = "/{repo_id}/{doc_id}_{comp_id}{ext}"

# Stored in a 32-bit column; ten years is beyond any sensible retry window.
MAX_DURATION_SECONDS = 3650 * 86400

# Field rules shared with the admin API, so a file and a request are held to the same ones. Lengths
# are the columns'; PostgreSQL text cannot hold NUL, so free text refuses it here rather than fail there.
_NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")
DESTINATION_ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="use 1 to 64 letters, digits, '_' or '-'")
DESTINATION_NAME = [validate.Length(min=1, max=255), _NO_NUL]
PATH_TEMPLATE = [validate.Length(min=1, max=512), _NO_NUL]
REPO_ID = validate.Regexp(r"^[A-Za-z0-9_]{1,30}$", error="use 1 to 30 letters, digits or '_'")
DESCRIPTION = [validate.Length(max=255), _NO_NUL]
SIGNATURE = validate.OneOf([m.value for m in SignatureMode])
KEY_NAME = [validate.Length(min=1, max=100), _NO_NUL]
ROLE = validate.OneOf([r.value for r in Role])
MAX_RETRIES = validate.Range(min=0, max=100)


class ConfigError(ValueError):
    """The file cannot be applied; nothing was changed."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_columns(key: str) -> dict[str, str]:
    """What is stored of a key: its hash, and a prefix short enough to reveal nothing but which key it is."""
    return {"key_hash": hash_key(key), "prefix": key[:12]}


def parse_duration(value: object) -> int:
    """`30s`, `5m`, `24h`, `7d`, or a number of seconds."""
    if isinstance(value, bool):
        raise ValidationError("not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(f"{value!r} is not a duration; write e.g. 30s, 5m, 24h or 7d")
        seconds = int(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValidationError(f"{value!r} is not a duration; write e.g. 30s, 5m, 24h or 7d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValidationError("a duration must be positive")
    if seconds > MAX_DURATION_SECONDS:
        raise ValidationError(f"a duration must not exceed {MAX_DURATION_SECONDS // 86400}d")
    return seconds


def format_duration(seconds: int) -> str:
    """The inverse of parse_duration, in the largest unit that divides exactly: 86400 -> `1d`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Duration(fields.Field[int]):
    """Reads a duration in any form parse_duration accepts; writes the short form (`24h` as `1d`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        return parse_duration(value)

    def _serialize(self, value: int | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_duration(value)


class RetrySchema(Schema):
    max_retries = fields.Integer(load_default=5, validate=MAX_RETRIES)
    ttl = Duration(load_default=24 * 3600)
    backoff_base = Duration(load_default=30)
    backoff_max = Duration(load_default=3600)

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["backoff_base"] > data["backoff_max"]:
            raise ValidationError("backoff_base must not exceed backoff_max")


class ApiKeySchema(Schema):
    name = fields.String(required=True, validate=KEY_NAME)
    role = fields.String(required=True, validate=ROLE)
    key = fields.String(
        required=True,
        validate=validate.Regexp(
            rf"^{KEY_PREFIX}[A-Za-z0-9_-]{{16,}}$",
            error=f"an API key starts with {KEY_PREFIX} followed by at least 16 letters, digits, '_' or '-'",
        ),
    )


class DestinationSchema(Schema):
    class Meta:
        unknown = INCLUDE  # kind settings; checked by the kind's own schema

    id = fields.String(required=True, validate=DESTINATION_ID)
    name = fields.String(required=True, validate=DESTINATION_NAME)
    kind = fields.String(required=True)
    path = fields.String(load_default=DEFAULT_PATH, validate=PATH_TEMPLATE)
    enabled = fields.Boolean(load_default=True)


class RepositorySchema(Schema):
    id = fields.String(required=True, validate=REPO_ID)
    description = fields.String(load_default="", validate=DESCRIPTION)
    signature = fields.String(load_default=SignatureMode.REQUIRED.value, validate=SIGNATURE)
    destinations = fields.List(fields.String(), load_default=list)


class WorkspaceSchema(Schema):
    owner = fields.String(required=True, validate=_SLUG)
    slug = fields.String(required=True, validate=_SLUG)
    retry = fields.Nested(RetrySchema, load_default=lambda: RetrySchema().load({}))
    api_keys = fields.List(fields.Nested(ApiKeySchema), load_default=list)
    destinations = fields.List(fields.Nested(DestinationSchema), load_default=list)
    repositories = fields.List(fields.Nested(RepositorySchema), load_default=list)


class ConfigSchema(Schema):
    workspaces = fields.List(fields.Nested(WorkspaceSchema), required=True)


def substitute_env(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Replace `${VAR}` in every string; a variable that is not set is an error, never ''."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{where or 'value'}: environment variable {name} is not set")
            return environ[name]

        return _ENV_REF.sub(lookup, value)
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    return value


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested {"field": ["message"]} as ["field: message", ...]."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += flatten_messages(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" for m in messages]
    return [f"{prefix}: {messages}"]


def load(text: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse, substitute and validate a config document; raise ConfigError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("the config file must be a mapping with a 'workspaces' list")
    raw = substitute_env(raw, os.environ if environ is None else environ)
    try:
        data: dict[str, Any] = ConfigSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(flatten_messages(exc.messages))) from None
    problems: list[str] = []
    for w, ws in enumerate(data["workspaces"]):
        where = f"workspaces.{w}"
        _check_unique(ws["destinations"], "id", f"{where}.destinations", problems)
        _check_unique(ws["repositories"], "id", f"{where}.repositories", problems)
        _check_unique(ws["api_keys"], "name", f"{where}.api_keys", problems)
        # Names, never the secret itself: the message may end up in a log.
        seen_keys: dict[str, str] = {}
        for item in ws["api_keys"]:
            if item["key"] in seen_keys:
                problems.append(f"{where}.api_keys: {item['name']!r} reuses the key of {seen_keys[item['key']]!r}")
            seen_keys.setdefault(item["key"], item["name"])
        known = {d["id"] for d in ws["destinations"]}
        for d, dest in enumerate(ws["destinations"]):
            _check_destination(dest, f"{where}.destinations.{d}", problems)
        for r, repo in enumerate(ws["repositories"]):
            for missing in [i for i in repo["destinations"] if i not in known]:
                problems.append(f"{where}.repositories.{r}.destinations: no destination with id {missing!r}")
    _check_unique([{"k": (w["owner"], w["slug"])} for w in data["workspaces"]], "k", "workspaces", problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return data


def _check_unique(items: list[dict[str, Any]], key: str, where: str, problems: list[str]) -> None:
    seen: set[Any] = set()
    for item in items:
        if item[key] in seen:
            problems.append(f"{where}: {key} {item[key]!r} appears more than once")
        seen.add(item[key])


_DESTINATION_FIELDS = ("id", "name", "kind", "path", "enabled")


def _check_destination(dest: dict[str, Any], where: str, problems: list[str]) -> None:
    try:
        validate_template(dest["path"])
    except TemplateError as exc:
        problems.append(f"{where}.path: {exc}")
    try:
        kind = get_kind(dest["kind"])
        settings, secrets = kind.validate({k: v for k, v in dest.items() if k not in _DESTINATION_FIELDS})
    except ValidationError as exc:
        problems += flatten_messages(exc.messages, where)
        return
    dest["settings"], dest["secrets"] = settings, secrets


@dataclass
class Summary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.created and not self.updated:
            return "configuration applied: nothing changed"
        parts = [
            f"created {', '.join(self.created)}" if self.created else "",
            f"updated {', '.join(self.updated)}" if self.updated else "",
        ]
        return "configuration applied: " + "; ".join(p for p in parts if p)


def assign_changed(obj: Any, values: Mapping[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def retry_columns(retry: Mapping[str, int]) -> dict[str, int]:
    """A loaded `retry` section as Workspace column values."""
    return {
        "max_retries": retry["max_retries"],
        "retry_ttl_seconds": retry["ttl"],
        "backoff_base_seconds": retry["backoff_base"],
        "backoff_max_seconds": retry["backoff_max"],
    }


def apply(session: Session, data: Mapping[str, Any], *, now: dt.datetime) -> Summary:
    """Create or update everything the (validated) config names; the caller commits."""
    summary = Summary()
    for ws in data["workspaces"]:
        label = f"{ws['owner']}/{ws['slug']}"
        workspace = session.scalar(
            select(Workspace).where(Workspace.owner_slug == ws["owner"], Workspace.slug == ws["slug"])
        )
        values = retry_columns(ws["retry"])
        if workspace is None:
            workspace = Workspace(owner_slug=ws["owner"], slug=ws["slug"], created_at=now, **values)
            session.add(workspace)
            session.flush()
            summary.created.append(f"workspace {label}")
        elif assign_changed(workspace, values):
            summary.updated.append(f"workspace {label}")
        _apply_keys(session, workspace, ws["api_keys"], now, summary)
        by_public_id = _apply_destinations(session, workspace, ws["destinations"], now, summary)
        _apply_repositories(session, workspace, ws["repositories"], by_public_id, now, summary)
    session.flush()
    return summary


def _apply_keys(
    session: Session, workspace: Workspace, keys: list[dict[str, Any]], now: dt.datetime, summary: Summary
) -> None:
    existing = {k.name: k for k in session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace.id))}
    for item in keys:
        values = {"role": item["role"], **key_columns(item["key"])}
        key = existing.get(item["name"])
        if key is None:
            session.add(ApiKey(workspace_id=workspace.id, name=item["name"], created_at=now, **values))
            summary.created.append(f"api key {item['name']}")
        elif assign_changed(key, values):
            summary.updated.append(f"api key {item['name']}")


def _apply_destinations(
    session: Session, workspace: Workspace, items: list[dict[str, Any]], now: dt.datetime, summary: Summary
) -> dict[str, Destination]:
    existing = {
        d.public_id: d for d in session.scalars(select(Destination).where(Destination.workspace_id == workspace.id))
    }
    for item in items:
        values = {
            "name": item["name"],
            "kind": item["kind"],
            "settings": item["settings"],
            "secrets": item["secrets"],
            "path_template": item["path"],
            "enabled": item["enabled"],
        }
        destination = existing.get(item["id"])
        if destination is None:
            destination = Destination(
                workspace_id=workspace.id, public_id=item["id"], created_at=now, updated_at=now, **values
            )
            session.add(destination)
            existing[item["id"]] = destination
            summary.created.append(f"destination {item['id']}")
        elif assign_changed(destination, values):
            destination.updated_at = now
            summary.updated.append(f"destination {item['id']}")
    session.flush()
    return existing


def _apply_repositories(
    session: Session,
    workspace: Workspace,
    items: list[dict[str, Any]],
    destinations: Mapping[str, Destination],
    now: dt.datetime,
    summary: Summary,
) -> None:
    existing = {
        r.repo_id: r for r in session.scalars(select(Repository).where(Repository.workspace_id == workspace.id))
    }
    for item in items:
        values = {"description": item["description"], "signature": item["signature"]}
        repository = existing.get(item["id"])
        if repository is None:
            repository = Repository(workspace_id=workspace.id, repo_id=item["id"], created_at=now, **values)
            session.add(repository)
            session.flush()
            summary.created.append(f"repository {item['id']}")
        elif assign_changed(repository, values):
            summary.updated.append(f"repository {item['id']}")
        # The file states the wiring completely: routes not listed are removed.
        rewired = replace_routes(session, repository, {destinations[d].id for d in item["destinations"]})
        if rewired and item["id"] in existing:
            summary.updated.append(f"routes of {item['id']}")


def replace_routes(session: Session, repository: Repository, destination_ids: set[int]) -> bool:
    """Wire the repository to exactly these destinations (row ids); True when anything changed."""
    routes = {r.destination_id: r for r in session.scalars(select(Route).where(Route.repository_id == repository.id))}
    for destination_id in destination_ids - routes.keys():
        session.add(Route(repository_id=repository.id, destination_id=destination_id))
    for destination_id in routes.keys() - destination_ids:
        session.delete(routes[destination_id])
    return destination_ids != routes.keys()


def apply_file(session: Session, path: Path, *, now: dt.datetime, environ: Mapping[str, str] | None = None) -> Summary:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return apply(session, load(text, environ), now=now)
