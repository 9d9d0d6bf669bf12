"""GET /api/OWNER/WORKSPACE/audit: the audit log, newest first (admin). Read-only: entries are written
by filerelay.operations with the changes they record, and nothing edits or deletes them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from filerelay import audit
from filerelay.api.audit import schemas
from filerelay.api.auth import requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint, parse_cursor
from filerelay.db.models import Role
from filerelay.db.session import read_scope

blueprint = RestBlueprint(
    "audit", __name__, url_prefix=f"{WORKSPACE_PREFIX}/audit", description="Who changed what, and when (admin)"
)


@blueprint.route("")
@requires(Role.ADMIN)
@blueprint.arguments(schemas.AuditArgs, location="query", as_kwargs=True)
@blueprint.response(200, schemas.AuditList)
def list_audit(
    owner: str,
    slug: str,
    per_page: int,
    action: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every configuration change and operation, newest first, `per_page` at a time (`meta.next_cursor`
    for the next page); filtered by `action`, `target` and `since`."""
    after = parse_cursor(cursor, audit.decode_cursor)
    with read_scope(runtime().sessions) as session:
        found = audit.listing(
            session,
            workspace_id=workspace_id(),
            per_page=per_page,
            action=action,
            target=target,
            since=since,
            after=after,
        )
        meta = {"per_page": per_page, "next_cursor": found.next_cursor.encode() if found.next_cursor else None}
        return {"data": found.events, "meta": meta}
