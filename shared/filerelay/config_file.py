"""`filerelay config apply`: workspaces, keys, destinations, repositories and routes from YAML.

A file states a workspace's configuration whole; applying it calls the same functions and schemas as
the admin API (filerelay.workspace_config), so a file and a request are held to the same rules and
store the same rows. Applying the same file twice changes nothing. Secrets come from the environment
via `${VAR}`; API keys are stored only as their sha256.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.orm import Session

from filerelay.audit import CONFIG_FILE_ACTOR
from filerelay.delivery.paths import TemplateError, validate_template
from filerelay.destinations import get_kind
from filerelay.operations import configuration
from filerelay.operations.transaction import Transaction
from filerelay.policy import OperatorPolicy
from filerelay.workspace_config import api_keys, schemas
from filerelay.workspace_config.common import ConfigurationError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A destination entry's own fields; every other key of the entry is a setting of its kind.
_DESTINATION_FIELDS = frozenset(schemas.DestinationCreate().fields) - {"settings"}


class ConfigError(ValueError):
    """The file cannot be applied; nothing was changed."""


class WorkspaceSchema(Schema):
    """The file's outline; each entry is then held to its resource's schema, the admin API's."""

    owner = fields.String(required=True, validate=schemas.SLUG)
    slug = fields.String(required=True, validate=schemas.SLUG)
    retry = fields.Dict(load_default=dict)
    api_keys = fields.List(fields.Dict(), load_default=list)
    destinations = fields.List(fields.Dict(), load_default=list)
    repositories = fields.List(fields.Dict(), load_default=list)


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


def load(text: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse, substitute and validate a config document; raise ConfigError listing every problem.

    Each workspace comes back with `retry` as the settings body, and `api_keys`, `destinations` and
    `repositories` as the admin API's create bodies (a destination's settings gathered under `settings`,
    a repository's `id` as `repo_id`)."""
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
        raise ConfigError("; ".join(schemas.flatten_messages(exc.messages))) from None
    problems: list[str] = []
    for w, ws in enumerate(data["workspaces"]):
        _load_workspace(ws, f"workspaces.{w}", problems)
    _check_unique([{"k": (w["owner"], w["slug"])} for w in data["workspaces"]], "k", "workspaces", problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return data


def _entry(schema: Schema, values: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = schema.load(values)
    except ValidationError as exc:
        problems.extend(schemas.flatten_messages(exc.messages, where))
        return None
    return loaded


def _load_workspace(ws: dict[str, Any], where: str, problems: list[str]) -> None:
    ws["retry"] = _entry(schemas.RetrySettingsSchema(), ws["retry"], f"{where}.retry", problems)
    keys = [
        _entry(api_keys.ApiKeyWithValue(), k, f"{where}.api_keys.{i}", problems) for i, k in enumerate(ws["api_keys"])
    ]
    dests = [_load_destination(d, f"{where}.destinations.{i}", problems) for i, d in enumerate(ws["destinations"])]
    repos = [
        _entry(schemas.RepositoryCreate(), _repository_body(r), f"{where}.repositories.{i}", problems)
        for i, r in enumerate(ws["repositories"])
    ]
    ws["api_keys"] = [k for k in keys if k is not None]
    ws["destinations"] = [d for d in dests if d is not None]
    ws["repositories"] = [r for r in repos if r is not None]
    _check_unique(ws["destinations"], "id", f"{where}.destinations", problems)
    _check_unique(ws["repositories"], "repo_id", f"{where}.repositories", problems)
    _check_unique(ws["api_keys"], "name", f"{where}.api_keys", problems)
    # Names, never the secret itself: the message may end up in a log.
    seen_keys: dict[str, str] = {}
    for item in ws["api_keys"]:
        if item["key"] in seen_keys:
            problems.append(f"{where}.api_keys: {item['name']!r} reuses the key of {seen_keys[item['key']]!r}")
        seen_keys.setdefault(item["key"], item["name"])
    known = {d["id"] for d in ws["destinations"]}
    for r, repo in enumerate(ws["repositories"]):
        for missing in [i for i in repo["destinations"] if i not in known]:
            problems.append(f"{where}.repositories.{r}.destinations: no destination with id {missing!r}")


def _repository_body(entry: Mapping[str, Any]) -> dict[str, Any]:
    # The file names a repository `id` (the contract); the API body names it `repo_id`.
    body = {k: v for k, v in entry.items() if k != "id"}
    if "id" in entry:
        body["repo_id"] = entry["id"]
    return body


def _load_destination(entry: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any] | None:
    """A file's destination (kind settings inline) as the API's create body, checked as the API checks it."""
    body = {k: v for k, v in entry.items() if k in _DESTINATION_FIELDS}
    body["settings"] = {k: v for k, v in entry.items() if k not in _DESTINATION_FIELDS}
    loaded = _entry(schemas.DestinationCreate(), body, where, problems)
    if loaded is None:
        return None
    try:
        # The kind's messages name the setting as the file places it: inline, not under `settings`.
        get_kind(loaded["kind"]).load(loaded["settings"])
    except ValidationError as exc:
        problems.extend(schemas.flatten_messages(exc.messages, where))
        return None
    try:
        validate_template(loaded["path"])
    except TemplateError as exc:
        problems.append(f"{where}.path: {exc}")
        return None
    # What the settings reach is checked against the operator's policy when they are applied.
    return loaded


def _check_unique(items: list[dict[str, Any]], key: str, where: str, problems: list[str]) -> None:
    seen: set[Any] = set()
    for item in items:
        if item[key] in seen:
            label = "id" if key == "repo_id" else key
            problems.append(f"{where}: {label} {item[key]!r} appears more than once")
        seen.add(item[key])


@dataclass
class Summary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    # Every workspace the file names, as owner/slug, changed or not.
    workspaces: list[str] = field(default_factory=list)

    def note(self, change: str | None, label: str) -> None:
        if change == "created":
            self.created.append(label)
        elif change == "updated":
            self.updated.append(label)

    def __str__(self) -> str:
        if not self.created and not self.updated:
            return "configuration applied: nothing changed"
        parts = [
            f"created {', '.join(self.created)}" if self.created else "",
            f"updated {', '.join(self.updated)}" if self.updated else "",
        ]
        return "configuration applied: " + "; ".join(p for p in parts if p)


def apply(session: Session, data: Mapping[str, Any], *, now: dt.datetime, policy: OperatorPolicy) -> Summary:
    """Create or update everything the (loaded) config names, each change through filerelay.operations
    with its audit entry (actor and channel `config-file`); the caller commits. Raises ConfigError (and
    the caller rolls back, entries included) if the database refuses what the file says, e.g. a key
    already used by another workspace, or the operator's policy refuses what a destination would reach."""
    tx = Transaction(session=session, actor=CONFIG_FILE_ACTOR, now=now)
    summary = Summary()
    try:
        for ws in data["workspaces"]:
            _apply_workspace(tx, ws, policy, summary)
    except ConfigurationError as exc:
        raise ConfigError(str(exc)) from None
    session.flush()
    return summary


def _apply_workspace(tx: Transaction, ws: Mapping[str, Any], policy: OperatorPolicy, summary: Summary) -> None:
    label = f"{ws['owner']}/{ws['slug']}"
    summary.workspaces.append(label)
    workspace_id, created, retried = configuration.put_workspace(
        tx, owner=ws["owner"], slug=ws["slug"], retry=ws["retry"]
    )
    summary.note("created" if created else "updated" if retried else None, f"workspace {label}")
    for key in ws["api_keys"]:
        change = configuration.put_key(
            tx, workspace_id=workspace_id, name=key["name"], role=key["role"], key=key["key"]
        )
        summary.note(change, f"api key {key['name']}")
    for body in ws["destinations"]:
        try:
            change = configuration.put_destination(tx, workspace_id=workspace_id, values=body, policy=policy)
        except ConfigurationError as exc:
            # Which entry of which workspace: a policy's refusal names only the setting.
            raise ConfigError(f"{label}: destination {body['id']}: {exc}") from None
        summary.note(change, f"destination {body['id']}")
    for body in ws["repositories"]:
        # The file states the wiring completely: routes not listed are removed.
        change, rewired = configuration.put_repository(tx, workspace_id=workspace_id, values=body)
        summary.note(change, f"repository {body['repo_id']}")
        summary.note("updated" if rewired else None, f"routes of {body['repo_id']}")


def apply_file(
    session: Session,
    path: Path,
    *,
    now: dt.datetime,
    policy: OperatorPolicy,
    environ: Mapping[str, str] | None = None,
) -> Summary:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return apply(session, load(text, environ), now=now, policy=policy)
