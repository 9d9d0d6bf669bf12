"""The API keys the test workspaces are configured with, and the header that presents one."""

from __future__ import annotations

ADMIN_KEY = "fr_live_admin_0123456789abcdef"
VIEWER_KEY = "fr_live_viewer_0123456789abcdef"
MEMBER_KEY = "fr_live_member_0123456789abcdef"
OTHER_KEY = "fr_live_other_0123456789abcdefgh"


def headers(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
