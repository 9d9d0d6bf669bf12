"""Configuration endpoints (admin role)."""

from __future__ import annotations

from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint

blueprint = RestBlueprint("admin", __name__, url_prefix=WORKSPACE_PREFIX, description="Configuration (admin)")
