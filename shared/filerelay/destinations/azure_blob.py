"""The `azure_blob` destination: block blobs in an Azure Storage container (azure-storage-blob).

Up to BLOCK_SIZE one Put Blob carries the whole document (read into memory: at most one block); above
it, the document goes block by block (Put Block, each with its Content-MD5, one block in memory), its
sha256 is checked against the document's while the blocks go, and only then does Put Block List make
them the blob. Until that last call the previous blob stays exactly as it was: a failed or interrupted
re-delivery changes nothing (uncommitted blocks are discarded by the service). The sha256 rides in the
blob's metadata, so a later attempt can tell whether the blob already holds this content.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from filerelay import egress
from filerelay.destinations.base import (
    DestinationError,
    DestinationKind,
    Payload,
    admit_host,
    pieces,
    register,
    require_sha256,
)
from filerelay.destinations.transport import guarded_session, peer_code
from filerelay.policy import OperatorPolicy

BLOCK_SIZE = 4 * 1024 * 1024
CHUNK = 1024 * 1024
# Answers no retry can change until someone fixes the configuration.
PERMANENT_CODES = frozenset(
    {
        "ContainerNotFound",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "InvalidAuthenticationInfo",
        "AccountIsDisabled",
        "InsufficientAccountPermissions",
    }
)


class AzureBlobSettings(Schema):
    # Azure's container naming rules: 3-63 lowercase letters, digits and single hyphens.
    container = fields.String(
        required=True,
        validate=validate.Regexp(r"^(?!-)(?!.*--)[a-z0-9-]{3,63}(?<!-)$", error="not a valid container name"),
    )
    account_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    account_key = fields.String(load_default=None)
    connection_string = fields.String(load_default=None)
    sas_token = fields.String(load_default=None)

    @validates_schema
    def _credentials(self, data: Mapping[str, Any], **_: Any) -> None:
        # Always credentials of the destination's own: there is no path to the installation's identity
        # (no DefaultAzureCredential, managed or workload identity), whatever the operator's policy says.
        if data.get("connection_string"):
            return
        if not data.get("account_url"):
            raise ValidationError("give a connection_string, or an account_url", field_name="account_url")
        if not data.get("account_key") and not data.get("sas_token"):
            raise ValidationError("with an account_url, give an account_key or a sas_token", field_name="account_key")


def _error(exc: Exception, what: str) -> DestinationError:
    from azure.core.exceptions import HttpResponseError

    if isinstance(exc, HttpResponseError):
        # The SDK's StorageErrorCode, or the service's own string (its x-ms-error-code): never its message.
        code = peer_code(getattr(exc, "error_code", None))
        status = exc.status_code
        headers: Any = getattr(exc.response, "headers", None) or {}
        after = str(headers.get("retry-after", ""))
        return DestinationError(
            f"{what}: {code} (HTTP {status})",
            retryable=code not in PERMANENT_CODES and status not in (401, 403),
            retry_after=float(after) if after.isdigit() else None,
        )
    refused = egress.refused_in(exc)
    if refused is not None:
        return DestinationError(f"{what}: {refused}", retryable=False)
    return DestinationError(f"{what}: {type(exc).__name__}: {egress.scrub(str(exc))}")


def _transport(policy: OperatorPolicy) -> Any:
    """azure-core's requests transport on a guarded session (filerelay.destinations.transport), which
    stays this client's: not owned by the transport, so closing a client never makes the transport open
    a plain session of its own."""
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    # As azure-core sets up a session of its own: retries and redirects are the pipeline's business.
    session = guarded_session(policy, max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    return RequestsTransport(session=session, session_owner=False, connection_timeout=10, read_timeout=120)


class AzureBlobDestination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> None:
        from azure.storage.blob import BlobServiceClient

        self.container_name: str = settings["container"]
        # FileRelay schedules its own retries, with backoff, in the database: one quick retry here only
        # smooths over a dropped connection. No redirect is followed: what answers is what was configured.
        options: dict[str, Any] = {"retry_total": 1, "permit_redirects": False, "transport": _transport(policy)}
        if secrets.get("connection_string"):
            service = BlobServiceClient.from_connection_string(secrets["connection_string"], **options)
        else:
            credential = secrets.get("account_key") or secrets.get("sas_token")
            if secrets.get("account_key"):
                credential = {
                    "account_name": _account_name(settings["account_url"]),
                    "account_key": secrets["account_key"],
                }
            service = BlobServiceClient(settings["account_url"], credential=credential, **options)
        self.container = service.get_container_client(self.container_name)

    def _where(self, path: str) -> str:
        return f"azure://{self.container_name}/{path.lstrip('/')}"

    def deliver(self, payload: Payload) -> str | None:
        from azure.storage.blob import ContentSettings

        blob = self.container.get_blob_client(payload.path.lstrip("/"))
        settings = ContentSettings(content_type=payload.content_type)
        metadata = {**_metadata(payload.metadata), "sha256": payload.sha256}
        try:
            with payload.open() as body:
                if payload.size <= BLOCK_SIZE:
                    data = _read_exactly(body, payload.size)
                    require_sha256(hashlib.sha256(data).hexdigest(), payload.sha256)
                    blob.upload_blob(
                        data, overwrite=True, validate_content=True, content_settings=settings, metadata=metadata
                    )
                else:
                    blocks = _stage_blocks(blob, body, payload)
                    blob.commit_block_list(blocks, content_settings=settings, metadata=metadata)
        except DestinationError:
            raise
        except Exception as exc:
            raise _error(exc, f"upload to {self._where(payload.path)} failed") from exc
        return None

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        blob = self.container.get_blob_client(path.lstrip("/"))
        try:
            stream = blob.download_blob(offset=start or None, length=length)
        except Exception as exc:
            raise _error(exc, f"read of {self._where(path)} failed") from exc
        return iter(stream.chunks())

    def check(self) -> None:
        try:
            self.container.get_container_properties()
        except Exception as exc:
            raise _error(exc, f"container {self.container_name} is not usable") from exc

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.container.get_blob_client(path.lstrip("/"))
        try:
            found = blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise _error(exc, f"cannot look at {self._where(path)}") from exc
            return False
        except Exception as exc:
            raise _error(exc, f"cannot look at {self._where(path)}") from exc
        return found.size == size and (found.metadata or {}).get("sha256") == sha256


def location(values: Mapping[str, Any]) -> dict[str, Any]:
    """The account's blob endpoint and the container. From a connection string only its endpoint parts
    (not its AccountKey or SharedAccessSignature, which are rotated without moving anything)."""
    url = values.get("account_url")
    connection = values.get("connection_string")
    if connection:
        parts = _connection_parts(connection)
        url = parts.get("blobendpoint") or (
            f"{parts.get('defaultendpointsprotocol', 'https')}://{parts.get('accountname', '')}"
            f".blob.{parts.get('endpointsuffix', 'core.windows.net')}"
        )
    return {"account": url.rstrip("/").lower() if url else None, "container": values.get("container")}


def _connection_parts(text: str) -> dict[str, str]:
    """An Azure Storage connection string's `Name=value;` pairs, names lower-cased (as the SDK reads them)."""
    parts = {}
    for pair in text.split(";"):
        name, _, value = pair.partition("=")
        if name.strip():
            parts[name.strip().lower()] = value.strip()
    return parts


def _account_name(url: str) -> str:
    """The account in an account URL: https://ACCOUNT.blob.core.windows.net, or http://host:port/ACCOUNT (emulators)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    path = parsed.path.strip("/")
    return path.split("/")[0] if path else (parsed.hostname or "").split(".")[0]


def _metadata(values: Mapping[str, str]) -> dict[str, str]:
    # Metadata names are C# identifiers; values ASCII.
    return {
        "".join(c if c.isalnum() or c == "_" else "_" for c in k): v.encode("ascii", "replace").decode()
        for k, v in values.items()
    }


def _read_exactly(body: BinaryIO, size: int) -> bytes:
    data = body.read(size)
    if len(data) != size or body.read(1):
        raise DestinationError(f"staging held other than {size} bytes", retryable=False)
    return data


def _stage_blocks(blob: Any, body: BinaryIO, payload: Payload) -> list[Any]:
    """Every block staged with its MD5, the whole hashed as it goes; nothing visible yet."""
    from azure.storage.blob import BlobBlock

    blocks: list[Any] = []
    whole = hashlib.sha256()
    for data in pieces(body, payload.size, BLOCK_SIZE):
        whole.update(data)
        # Block ids: base64, all of one length within a blob.
        block_id = base64.b64encode(f"{len(blocks):08d}".encode()).decode()
        blob.stage_block(block_id, data, length=len(data), validate_content=True)
        blocks.append(BlobBlock(block_id=block_id))
    require_sha256(whole.hexdigest(), payload.sha256)
    return blocks


def _connection_string_host(text: str) -> str | None:
    """The host a connection string sends requests to when it names one (BlobEndpoint, or the local
    emulator); None when it is the account's name under an endpoint suffix (a name, judged at connect)."""
    parts = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    found = {key.strip().lower(): value.strip() for key, value in parts.items()}
    if found.get("usedevelopmentstorage", "").lower() == "true":
        return "127.0.0.1"
    return egress.url_host(found["blobendpoint"]) if found.get("blobendpoint") else None


def _admit_hosts(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """The account URL's (or the connection string's endpoint's) host, if an address or `localhost`,
    must be one the egress policy lets a destination reach."""
    for field, host in (
        ("account_url", egress.url_host(values["account_url"]) if values.get("account_url") else None),
        ("connection_string", _connection_string_host(values.get("connection_string") or "")),
    ):
        admit_host(field, host, policy)


KIND = register(
    DestinationKind(
        name="azure_blob",
        schema=AzureBlobSettings,
        build=AzureBlobDestination,
        pushed=True,
        readable=True,
        secret_fields=frozenset({"account_key", "connection_string", "sas_token"}),
        admit=_admit_hosts,
        location_fields=frozenset({"account_url", "connection_string", "container"}),
        locate=location,
    )
)
