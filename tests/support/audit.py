"""Reading the audit log the way an admin does: GET /api/OWNER/WORKSPACE/audit, every page by its cursor."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def audit_entries(
    client: FlaskClient, key: str, workspace: str = "acme/production", **filters: str
) -> list[dict[str, Any]]:
    """The workspace's entries, newest first, every page followed by its cursor."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"per_page": 100, **filters}
    while True:
        reply = client.get(f"/api/{workspace}/audit", query_string=params, headers={"Authorization": f"Bearer {key}"})
        assert reply.status_code == 200, reply.get_json()
        body = reply.get_json()
        found += body["data"]
        if body["meta"]["next_cursor"] is None:
            return found
        params["cursor"] = body["meta"]["next_cursor"]
