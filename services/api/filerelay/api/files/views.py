"""Files for pull integrations: list changes, info, content, export status, soft delete."""

from __future__ import annotations

from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint

blueprint = RestBlueprint(
    "files", __name__, url_prefix=f"{WORKSPACE_PREFIX}/files", description="Files for pull integrations"
)
