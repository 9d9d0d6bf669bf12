"""Who is signed in to the console, and what their key's role lets them do.

A session is a signed cookie (Flask's, HttpOnly, SameSite=Lax) naming an API key by its row id; the key
itself never enters the cookie. Every request reads the key row again, so revoking the key ends its
sessions at once, and a session only ever opens the workspace its key belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort, g, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.wrappers.response import Response

from filerelay import audit
from filerelay.api.auth import RANK
from filerelay.api.context import runtime
from filerelay.audit import Actor
from filerelay.db.models import ApiKey, Role, Workspace
from filerelay.db.session import session_scope
from filerelay.workspace_config.api_keys import live_key

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Person:
    """The signed-in key: its name, its role, its workspace."""

    key_id: int
    key_name: str
    key_prefix: str
    role: Role
    workspace_id: int
    owner: str
    slug: str

    def may(self, minimum: Role) -> bool:
        return RANK[self.role] >= RANK[minimum]

    @property
    def actor(self) -> Actor:
        return Actor(name=self.key_name, channel=audit.CONSOLE, key_prefix=self.key_prefix)


def _person(api_key: ApiKey, workspace: Workspace) -> Person:
    return Person(
        key_id=api_key.id,
        key_name=api_key.name,
        key_prefix=api_key.prefix,
        role=Role(api_key.role),
        workspace_id=workspace.id,
        owner=workspace.owner_slug,
        slug=workspace.slug,
    )


def sign_in(owner: str, slug: str, key: str) -> Person | None:
    """Start a session for `key` if it is a live key of this workspace; None otherwise (whatever the reason,
    so the form tells nobody whether a key exists elsewhere)."""
    rt = runtime()
    with session_scope(rt.sessions) as db:
        found = live_key(db, key)
        if found is None:
            return None
        api_key, workspace = found
        if (workspace.owner_slug, workspace.slug) != (owner, slug):
            return None
        api_key.last_used_at = rt.clock.now()
        person = _person(api_key, workspace)
    session.clear()  # a new session id for a new sign-in: nothing of an earlier session carries over
    session.permanent = True  # expires after FILERELAY_CONSOLE_IDLE_MINUTES without a request
    session["key"] = person.key_id
    return person


def sign_out() -> None:
    session.clear()


def current(owner: str, slug: str) -> Person | None:
    """The session's key if it is still live and belongs to the workspace in the URL."""
    key_id = session.get("key")
    if not isinstance(key_id, int):
        return None
    with session_scope(runtime().sessions) as db:
        row = db.execute(
            select(ApiKey, Workspace).join(Workspace).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        ).one_or_none()
        if row is None:
            session.clear()  # revoked (or deleted): this session is over
            return None
        person = _person(*row)
    return person if (person.owner, person.slug) == (owner, slug) else None


def page(minimum: Role = Role.VIEWER) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Console views: the signed-in person in `g.person`; a reader without a session is sent to sign in,
    a form sent without one, or by a role below `minimum`, is refused (and changes nothing)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            owner, slug = str(kwargs["owner"]), str(kwargs["slug"])
            person = current(owner, slug)
            if person is None:
                if request.method != "GET":
                    abort(401)
                return redirect(url_for("console.login", owner=owner, slug=slug, next=request.full_path.rstrip("?")))
            if not person.may(minimum):
                abort(403)
            g.person = person
            return view(*args, **kwargs)

        return wrapper

    return decorate


def person() -> Person:
    value = g.person
    assert isinstance(value, Person)
    return value
