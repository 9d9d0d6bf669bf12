"""The `gcs` destination: objects in a Google Cloud Storage bucket (google-cloud-storage).

The staged bytes are checked against the document's sha256 first (a local read), then sent: in one
request up to 8 MiB, above that as a resumable upload in 8 MiB chunks (one chunk in memory). The server
computes the object's CRC32C and the client compares it with its own, so what was sent is what is
stored; an upload that fails before its last chunk creates nothing, and the previous object stays. The
sha256 rides in the object's metadata, so a later attempt can tell whether the object holds this content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate, validates

from filerelay import egress
from filerelay.destinations.base import DestinationError, DestinationKind, Payload, admit_every, admit_host, register
from filerelay.destinations.transport import NoRedirects, guard, guarded_session, peer_code
from filerelay.policy import OperatorPolicy, ambient_refused

CHUNK_SIZE = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
READ = 1024 * 1024
TIMEOUT = (10, 120)


class GcsSettings(Schema):
    bucket = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", error="not a valid bucket name"),
    )
    # A service account key of the destination's own; without one, the installation's identity (its
    # GOOGLE_APPLICATION_CREDENTIALS, the instance's or pod's account), only where the operator allows it.
    credentials_json = fields.String(load_default=None)
    # An emulator (fake-gcs-server) or a private endpoint instead of https://storage.googleapis.com.
    endpoint_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})

    @validates("credentials_json")
    def _credentials(self, value: str | None, **_: Any) -> None:
        if value is not None:
            service_account_info(value)


def admit_credentials(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """A gcs destination, when written, brings its own key unless the operator allows ambient ones."""
    if not values.get("credentials_json") and not policy.allow_ambient_credentials:
        raise ValidationError({"credentials_json": [ambient_refused("gcs", "credentials_json")]})


def service_account_info(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        raise ValidationError("credentials_json is a service account key file's JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValidationError('credentials_json must be a service account key ("type": "service_account")')
    missing = sorted({"client_email", "private_key", "token_uri", "project_id"} - set(info))
    if missing:
        raise ValidationError(f"credentials_json lacks {', '.join(missing)}")
    return info


def _error(exc: Exception, what: str) -> DestinationError:
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    refused = egress.refused_in(exc)
    if refused is not None:
        return DestinationError(f"{what}: {refused}", retryable=False)
    if isinstance(exc, auth.RefreshError):
        # The token endpoint refused the key (revoked, deleted, wrong account): no retry fixes that. Of
        # its answer only the OAuth error code is shown (`invalid_grant`): the endpoint is the key's
        # token_uri, which the workspace wrote, so the rest of its body is not for us to repeat.
        return DestinationError(f"{what}: the service account key was refused: {_oauth_code(exc)}", retryable=False)
    if isinstance(exc, api.GoogleAPICallError):
        status = exc.code or 0
        # The message is the server's text: it decides, it is not shown.
        permanent = status in (401, 403) or (status == 404 and "bucket" in str(exc.message).lower())
        headers: Any = getattr(exc.response, "headers", None) or {}
        after = str(headers.get("retry-after", ""))
        return DestinationError(
            f"{what}: HTTP {status} {_reason(exc)}",
            retryable=not permanent,
            retry_after=float(after) if after.isdigit() else None,
        )
    return DestinationError(f"{what}: {type(exc).__name__}: {egress.scrub(str(exc))}")


def _oauth_code(exc: Exception) -> str:
    """The `error` of an OAuth token endpoint's JSON answer (RFC 6749 5.2), as google-auth keeps it."""
    answer = next((arg for arg in exc.args if isinstance(arg, dict)), {})
    return peer_code(answer.get("error"))


def _reason(exc: Any) -> str:
    """The JSON API's error reason (`notFound`, `forbidden`), the API's own code."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return peer_code(first.get("reason") or getattr(exc, "reason", None))


def _session(credentials: Any, policy: OperatorPolicy) -> Any:
    """google-auth's AuthorizedSession with every connection through the egress guard and no redirect
    followed, for the storage API and for the token endpoint (the key's token_uri) alike."""
    from google.auth.transport.requests import AuthorizedSession, Request

    class Session(NoRedirects, AuthorizedSession):
        pass

    token_requests = Request(session=guarded_session(policy))
    return guard(Session(credentials, auth_request=token_requests), policy)  # type: ignore[no-untyped-call]


class GcsDestination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> None:
        from google.cloud import storage
        from google.oauth2 import service_account

        options = {"api_endpoint": settings["endpoint_url"]} if settings.get("endpoint_url") else None
        scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
        if secrets.get("credentials_json"):
            info = service_account_info(secrets["credentials_json"])
            # Explicit credentials and project: the client never looks for the installation's own.
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=scopes
            )
            project = info["project_id"]
        elif policy.allow_ambient_credentials:
            # The installation's Application Default Credentials, as the operator allowed. Their tokens
            # come through the egress guard too: on GCE/GKE the operator also allows the metadata address.
            import google.auth

            credentials, project = google.auth.default(scopes=scopes)
        else:
            raise DestinationError(ambient_refused("gcs", "credentials_json"), retryable=False)
        # `_http`: google-cloud-core's way to give a client its HTTP session.
        client = storage.Client(
            project=project,
            credentials=credentials,
            client_options=options,
            _http=_session(credentials, policy),
        )
        self.bucket_name: str = settings["bucket"]
        self.bucket = client.bucket(self.bucket_name)

    def _where(self, path: str) -> str:
        return f"gs://{self.bucket_name}/{path.lstrip('/')}"

    def deliver(self, payload: Payload) -> str | None:
        blob = self.bucket.blob(payload.path.lstrip("/"), chunk_size=CHUNK_SIZE)
        blob.metadata = {**payload.metadata, "sha256": payload.sha256}
        with payload.open() as body:
            _check(body, payload)
            body.seek(0)
            try:
                # FileRelay schedules its own retries (with backoff, in the database): none in the client.
                blob.upload_from_file(
                    body,
                    size=payload.size,
                    content_type=payload.content_type,
                    checksum="crc32c",
                    retry=None,
                    timeout=TIMEOUT,
                )
            except Exception as exc:
                raise _error(exc, f"upload to {self._where(payload.path)} failed") from exc
        return None

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Ranged GETs of READ bytes each: the first tells a missing object before anything is yielded."""
        from google.api_core.exceptions import RequestRangeNotSatisfiable

        blob = self.bucket.blob(path.lstrip("/"))
        at, end = start, None if length is None else start + length  # end: exclusive
        while end is None or at < end:
            stop = at + READ if end is None else min(end, at + READ)
            try:
                chunk = blob.download_as_bytes(start=at, end=stop - 1, retry=None, timeout=TIMEOUT)
            except RequestRangeNotSatisfiable:
                if at == start:
                    raise DestinationError(f"read of {self._where(path)} failed: nothing at byte {at}") from None
                return  # the object ended exactly where a chunk did
            except Exception as exc:
                raise _error(exc, f"read of {self._where(path)} failed") from exc
            if chunk:
                yield chunk
            if len(chunk) < stop - at:
                return
            at = stop

    def check(self) -> None:
        try:
            self.bucket.reload(retry=None, timeout=TIMEOUT)
        except Exception as exc:
            raise _error(exc, f"bucket {self.bucket_name} is not usable") from exc

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        try:
            found = self.bucket.get_blob(path.lstrip("/"), retry=None, timeout=TIMEOUT)
        except Exception as exc:
            raise _error(exc, f"cannot look at {self._where(path)}") from exc
        return found is not None and found.size == size and (found.metadata or {}).get("sha256") == sha256


def _check(body: BinaryIO, payload: Payload) -> None:
    """The staged bytes are the document's, before any of them is sent (a local read)."""
    digest, seen = hashlib.sha256(), 0
    while chunk := body.read(READ):
        digest.update(chunk)
        seen += len(chunk)
    if seen != payload.size or digest.hexdigest() != payload.sha256:
        raise DestinationError("staged bytes do not match their sha256", retryable=False)


def _admit_hosts(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """The endpoint's and the key's token_uri's hosts, if addresses or `localhost`, must be ones the egress
    policy lets a destination reach."""
    key = values.get("credentials_json")
    token_uri = service_account_info(key).get("token_uri") if key else None
    for field, url in (("endpoint_url", values.get("endpoint_url")), ("credentials_json", token_uri)):
        host = egress.url_host(url) if isinstance(url, str) else None
        admit_host(field, host, policy, prefix="the token_uri's host: " if field == "credentials_json" else "")


KIND = register(
    DestinationKind(
        name="gcs",
        schema=GcsSettings,
        build=GcsDestination,
        pushed=True,
        readable=True,
        secret_fields=frozenset({"credentials_json"}),
        admit=admit_every(admit_credentials, _admit_hosts),
        # Bucket names are global; the endpoint says which service (an emulator, a private endpoint) holds it.
        location_fields=frozenset({"bucket", "endpoint_url"}),
    )
)
