"""API keys: `Authorization: Bearer fr_live_…` or `x-api-key`, hashed at rest, one workspace each.

Every REST URL names its workspace; a key of another workspace gets 404, exactly like a workspace
that does not exist, so a key never learns what else is on the server.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from filerelay import audit
from filerelay.api.context import operations_context, runtime
from filerelay.api.errors import ApiError
from filerelay.audit import Actor
from filerelay.db.models import Role
from filerelay.db.session import session_scope
from filerelay.documents import find_workspace
from filerelay.operations import Context
from filerelay.workspace_config.api_keys import KEY_PREFIX, live_key

P = ParamSpec("P")
R = TypeVar("R")

RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def authenticate(owner: str, slug: str, minimum: Role) -> None:
    """Resolve the key and the URL's workspace into `g.workspace_id` and `g.role`, or raise."""
    key = presented_key()
    if not key or not key.startswith(KEY_PREFIX):
        raise ApiError(401, f"a valid API key is required: Authorization: Bearer {KEY_PREFIX}… or x-api-key")
    rt = runtime()
    with session_scope(rt.sessions) as session:
        found = live_key(session, key)
        if found is None:
            raise ApiError(401, "the API key is unknown or revoked")
        api_key, workspace = found
        if (workspace.owner_slug, workspace.slug) != (owner, slug):
            raise ApiError(404, f"no workspace {owner}/{slug}")
        role = Role(api_key.role)
        if RANK[role] < RANK[minimum]:
            raise ApiError(403, f"this needs the {minimum.value} role; the key has {role.value}")
        api_key.last_used_at = rt.clock.now()
        g.workspace_id = workspace.id
        g.role = role
        g.api_key_id = api_key.id
        g.api_key_name = api_key.name
        g.api_key_prefix = api_key.prefix


def authenticate_link(owner: str, slug: str, document_id: str) -> None:
    """A signed download link (`?token=`, filerelay.file_links) instead of a key: it opens this one file of
    this one workspace, read-only, until it expires."""
    rt = runtime()
    token = request.args.get("token", "")
    if not rt.links.valid(token, workspace=f"{owner}/{slug}", document_id=document_id, now=rt.clock.now()):
        raise ApiError(401, "this download link is not valid for this file, or it has expired")
    with session_scope(rt.sessions) as session:
        workspace = find_workspace(session, owner=owner, slug=slug)
        if workspace is None:
            raise ApiError(404, f"no workspace {owner}/{slug}")
        g.workspace_id = workspace.id
        g.role = Role.VIEWER
        g.api_key_id = None
        g.api_key_name = "download link"
        g.api_key_prefix = None


def requires(minimum: Role, *, link_for: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Views under /api/<owner>/<slug>/…: authenticate and check the role before anything else. With
    `link_for` (the URL parameter naming a file), a signed download link may stand in for a key."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            owner, slug = str(kwargs["owner"]), str(kwargs["slug"])
            if link_for is not None and "token" in request.args:
                authenticate_link(owner, slug, str(kwargs[link_for]))
            else:
                authenticate(owner, slug, minimum)
            return view(*args, **kwargs)

        wrapper.__dict__["required_role"] = minimum
        return wrapper

    return decorate


def actor() -> Actor:
    """The authenticated key, as the audit log names whoever acted through the REST API."""
    return Actor(name=str(g.api_key_name), channel=audit.API, key_prefix=g.api_key_prefix)


def acting() -> Context:
    """The operations context of a change made by the authenticated key."""
    return operations_context(actor())


def workspace_id() -> int:
    value = g.workspace_id
    assert isinstance(value, int)
    return value
