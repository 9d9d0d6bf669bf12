"""Signed, expiring links to a file's content that need no API key: what a webhook notification carries
instead of the bytes. `GET /api/OWNER/WORKSPACE/files/ID/content?token=…` serves the file while the token is
valid; the token names the workspace and the file, so it opens nothing else, and is signed with the
installation's secret key (filerelay.secret_key), so a worker makes links the API accepts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from filerelay.secret_key import secret_key
from filerelay.settings import Settings

SALT = "filerelay.file-link"


class LinkError(Exception):
    """No link can be made (FILERELAY_PUBLIC_URL is not set): what a receiver would download from is unknown."""


@dataclass
class FileLinks:
    settings: Settings
    _serializer: URLSafeSerializer | None = field(default=None, repr=False)

    def _signer(self) -> URLSafeSerializer:
        # Resolved on first use: most processes never make or check a link.
        if self._serializer is None:
            self._serializer = URLSafeSerializer(secret_key(self.settings), salt=SALT)
        return self._serializer

    def make(self, *, workspace: str, document_id: str, now: dt.datetime) -> tuple[str, dt.datetime]:
        """The link to the file's content and when it expires."""
        base = self.settings.public_url
        if not base:
            raise LinkError("set FILERELAY_PUBLIC_URL (where receivers reach the API) to send download links")
        # Never longer than staging keeps the bytes: they are purged a retention after the document was
        # last rolled up, which is after this attempt, so a link always expires before its bytes go.
        lifetime = min(self.settings.file_link_seconds, self.settings.staging_retention_seconds)
        expires = now + dt.timedelta(seconds=lifetime)
        token = self._signer().dumps([workspace, document_id, int(expires.timestamp())])
        path = f"/api/{workspace}/files/{quote(document_id)}/content"
        return f"{base.rstrip('/')}{path}?token={token}", expires

    def valid(self, token: str, *, workspace: str, document_id: str, now: dt.datetime) -> bool:
        """Whether `token` was made for this file of this workspace and has not expired."""
        try:
            signed = self._signer().loads(token)
        except BadSignature:
            return False
        if not (isinstance(signed, list) and len(signed) == 3):
            return False
        return signed[:2] == [workspace, document_id] and isinstance(signed[2], int) and now.timestamp() < signed[2]
