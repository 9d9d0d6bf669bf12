"""The `webhook` destination: each document POSTed to a URL, signed the Standard Webhooks way.

`mode: content` sends the document's bytes as the body; `mode: notification` a JSON event
(`document.available`) with a signed, expiring download link instead (filerelay.file_links), for receivers
that would rather fetch than be sent 2 GiB. Headers `webhook-id` (stable for one delivery of
one content generation, so a receiver drops a repeat: one comes after an attempt nobody saw end, since
a receiver cannot be asked what it got), `webhook-timestamp` and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the `whsec_` secret) follow
https://www.standardwebhooks.com; the document's identity rides in `x-filerelay-*` headers. The body is
read twice from staging, once to sign and once to send, so no document is held in memory.

The receiver's 2xx delivers. 410 Gone (the endpoint is retired), 401 and 403 (it refuses our signature)
fail the delivery at once; everything else, 429/503 with Retry-After included, is retried. A redirect is
not followed (it is an answer like any other non-2xx), and the receiver's body never reaches an error:
the receiver is whatever the workspace named, and what it says is not for FileRelay to repeat.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate, validates

from filerelay import egress
from filerelay.destinations.base import DestinationError, DestinationKind, Payload, admit_host_of, register
from filerelay.destinations.transport import guarded_session
from filerelay.file_links import LinkError
from filerelay.policy import OperatorPolicy

CHUNK = 1024 * 1024
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix Standard Webhooks secrets carry, not a secret
# No retry helps: the endpoint is gone, or it does not accept our signature or credentials.
PERMANENT_STATUSES = frozenset({401, 403, 410})
TIMEOUT = (10, 120)  # connect, read (seconds): a receiver may take a while to store a large body


class WebhookSettings(Schema):
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    secret = fields.String(required=True)
    mode = fields.String(load_default="content", validate=validate.OneOf(["content", "notification"]))
    # Extra request headers, e.g. the receiver's own API token: stored as a secret.
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)

    @validates("secret")
    def _secret(self, value: str, **_: Any) -> None:
        signing_key(value)


def signing_key(secret: str) -> bytes:
    """The key a `whsec_…` secret stands for: base64 after the prefix, as Standard Webhooks defines it."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValidationError(f"a webhook secret starts with {SECRET_PREFIX} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValidationError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 24:
        raise ValidationError("a webhook secret must carry at least 24 bytes of key")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: BinaryIO) -> str:
    """`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, the body read in chunks."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode(), hashlib.sha256)
    while chunk := body.read(CHUNK):
        mac.update(chunk)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    return signature(key, message_id, timestamp, io.BytesIO(body))


def _event(payload: Payload, timestamp: int) -> bytes:
    """The notification: what the document is, and where to fetch it until when (Standard Webhooks'
    `type`, `timestamp`, `data`)."""
    if payload.link is None:
        raise DestinationError("no download link can be made for this delivery", retryable=False)
    try:
        url, expires = payload.link()
    except LinkError as exc:
        raise DestinationError(str(exc), retryable=False) from exc
    data = {
        **payload.identity,
        "content_type": payload.content_type,
        "size_bytes": payload.size,
        "sha256": payload.sha256,
        "path": payload.path,
        "download_url": url,
        "download_expires_at": expires.isoformat().replace("+00:00", "Z"),
    }
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": "document.available", "timestamp": moment, "data": data}).encode()


class _Body:
    """The staged bytes as a request body: read in chunks by the HTTP client, with a known length."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self.len = size  # requests sends Content-Length from this instead of chunked encoding

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(CHUNK if size is None or size < 0 else size)


class WebhookDestination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> None:
        self.url: str = settings["url"]
        # What errors name: the URL without any user:password@ it carries.
        self.where = egress.without_userinfo(self.url)
        self.mode: str = settings.get("mode") or "content"
        self._key = signing_key(secrets["secret"])
        self._headers: dict[str, str] = dict(secrets.get("headers") or {})
        self._http = guarded_session(policy)

    def deliver(self, payload: Payload) -> str | None:
        message_id = f"msg_{payload.delivery_key or payload.sha256}"
        timestamp = int(time.time())  # the receiver compares it with its own clock: the wall clock
        headers = {
            **self._headers,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "x-filerelay-sha256": payload.sha256,
            "x-filerelay-path": payload.path,
            **{f"x-filerelay-{name.replace('_', '-')}": value for name, value in payload.identity.items()},
        }
        if self.mode == "notification":
            event = _event(payload, timestamp)
            headers.update(
                {"content-type": "application/json", "webhook-signature": sign(self._key, message_id, timestamp, event)}
            )
            self._post(_Body(io.BytesIO(event), len(event)), headers)
            return None
        with payload.open() as body:
            signed = signature(self._key, message_id, timestamp, body)
        headers.update({"content-type": payload.content_type, "webhook-signature": signed})
        with payload.open() as body:
            self._post(_Body(body, payload.size), headers)
        return None

    def _post(self, body: _Body, headers: Mapping[str, str]) -> None:
        import requests

        try:
            reply = self._http.post(self.url, data=body, headers=dict(headers), timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            raise _unreachable(exc, f"POST {self.where} failed") from exc
        with reply:
            if 200 <= reply.status_code < 300:
                return
        after = reply.headers.get("retry-after", "")
        raise DestinationError(
            f"POST {self.where} answered HTTP {reply.status_code}{_redirect(reply.status_code)}",
            retryable=reply.status_code not in PERMANENT_STATUSES,
            retry_after=float(after) if after.isdigit() else None,
        )

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        raise DestinationError("a webhook keeps no copy to read back", retryable=False)

    def check(self) -> None:
        """Reachable, and the URL exists: a HEAD (nothing is delivered); a server error or a 404/410 fails."""
        import requests

        try:
            reply = self._http.head(self.url, headers=self._headers, timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            raise _unreachable(exc, f"{self.where} cannot be reached") from exc
        status = reply.status_code
        if status >= 500 or status in (404, 410) or 300 <= status < 400:
            raise DestinationError(f"{self.where} answered HTTP {status}{_redirect(status)}", retryable=False)

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        return False  # a webhook cannot be asked what it received: the webhook-id lets it drop a repeat


def _redirect(status: int) -> str:
    return " (a redirect, not followed: configure the URL it points to)" if 300 <= status < 400 else ""


def _unreachable(exc: Exception, what: str) -> DestinationError:
    """A failure before any answer: the guard's refusal says why and is not retried (the policy or the
    URL must change first); any other is retried."""
    refused = egress.refused_in(exc)
    if refused is not None:
        return DestinationError(f"{what}: {refused}", retryable=False)
    return DestinationError(f"{what}: {type(exc).__name__}: {egress.scrub(str(exc))}")


KIND = register(
    DestinationKind(
        name="webhook",
        schema=WebhookSettings,
        build=WebhookDestination,
        pushed=True,
        secret_fields=frozenset({"secret", "headers"}),
        readable=False,
        admit=admit_host_of("url", url=True),
    )
)
