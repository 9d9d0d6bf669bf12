"""The `sharepoint` destination: a SharePoint Online document library over SharePoint REST
(office365-rest-python-client), app-only with an Entra ID certificate (README.md#sharepoint-online).

Uploads use the path-based API (`Files/AddUsingPath`), so names with `#` or `%` work; content larger
than one chunk goes through an upload session on the file itself (never an empty overwrite first: the
new content becomes current at the last chunk, and a failed session is cancelled), one chunk at a
time from staging. A throttled request is sent again after its `Retry-After` (a chunk, not the file)
when that is at most INLINE_WAIT_MAX; a longer one, or a failure without one (an outage), ends the
attempt at once and the delivery engine schedules the next. Names
are made acceptable to SharePoint before they are sent (`clean_name`), and the per-column results of
ValidateUpdateListItem are checked, since SharePoint reports a refused column with HTTP 200.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from filerelay import egress
from filerelay.destinations.base import DestinationError, DestinationKind, Payload, admit_host, filled, register
from filerelay.destinations.transport import guarded_session, peer_code
from filerelay.policy import OperatorPolicy

log = logging.getLogger(__name__)

CHUNK_SIZE = 8 * 1024 * 1024
# Requests per step, each waiting as long as SharePoint's Retry-After asks.
STEP_RETRIES = 5
# The longest Retry-After waited out inside an attempt. A longer one ends the attempt at once and the
# delivery engine schedules the next no sooner than asked, instead of a worker sleeping on its lease.
INLINE_WAIT_MAX = 30
# SharePoint's longest decoded path.
MAX_PATH = 400
# Characters SharePoint refuses in file and folder names.
_REFUSED = re.compile(r'["*:<>?/\\|\x00-\x1f]')
# In folder names also '#' and '%': folders are created through the string-URL API.
_REFUSED_IN_FOLDERS = re.compile(r'["*:<>?/\\|#%\x00-\x1f]')
# Whole names SharePoint refuses for files and folders, case-insensitively ("Restrictions and
# limitations in OneDrive and SharePoint"); ".lock" cannot survive the leading-dot strip.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "desktop.ini"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}
)
_VTI = re.compile(r"_vti_", re.IGNORECASE)
_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL)
_COLUMN_SOURCE = re.compile(r"^(doc_id|repo_id|comp_id|content_type|meta\.[A-Za-z0-9_.-]+)$")


class SharePointSettings(Schema):
    site_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    library = fields.String(load_default="Shared Documents", validate=validate.Length(min=1, max=255))
    tenant_id = fields.String(load_default=None)
    client_id = fields.String(load_default=None)
    thumbprint = fields.String(load_default=None, validate=validate.Regexp(r"^[0-9A-Fa-f]{40}$"))
    # PEM text of the app's private key (its certificate may follow), stored with the secrets. Never a
    # path: a workspace's settings name nothing on the host (it could name any key file there).
    certificate = fields.String(load_default=None)
    # Accepted once; named only to say what replaced it.
    certificate_path = fields.Raw(allow_none=True, load_only=True)
    # For emulators and local testing only: a fixed bearer token instead of the certificate flow.
    access_token = fields.String(load_default=None)
    # SharePoint column name → document field (doc_id, repo_id, comp_id, content_type, meta.NAME).
    columns = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.String(validate=validate.Regexp(_COLUMN_SOURCE)),
        load_default=dict,
    )

    @validates("certificate_path")
    def _no_path(self, value: Any, **_: Any) -> None:
        if value is not None:
            raise ValidationError(
                "a file on FileRelay's host is no longer accepted: give the PEM private key inline as `certificate` "
                "(and certificate_path: null)"
            )

    @validates("certificate")
    def _certificate(self, value: str | None, **_: Any) -> None:
        if value is not None:
            private_key_pem(value)

    @validates_schema
    def _credentials(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("access_token") or data.get("certificate_path"):
            return
        needed = ["tenant_id", "client_id", "thumbprint", "certificate"]
        missing = [n for n in needed if not data.get(n)]
        if missing:
            raise ValidationError(f"certificate auth needs {', '.join(missing)} (or access_token for an emulator)")


def private_key_pem(text: str) -> None:
    """`text` holds a PEM private key block (its certificate may be beside it): what MSAL signs the client
    assertion with. Its shape only: whether Entra ID accepts the key is for the destination's `test`, and
    a deployment's templates hold placeholders until the real key is filled in."""
    if _PEM_KEY.search(text) is None:
        raise ValidationError(
            "certificate is the PEM text of a private key (-----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY-----), "
            "not a path"
        )


def clean_name(segment: str, *, folder: bool = False, library_root: bool = False) -> str:
    """One path segment made acceptable to SharePoint Online, the same way every time so a redelivery
    overwrites: refused characters become '_', no leading/trailing blanks or dots, "_vti_" becomes
    "_vti-", a "~$" prefix becomes "_$", a reserved name (CON, LPT1, desktop.ini, ...) gets '_' before
    its extension, and a folder "forms" directly in the library (its system folder) becomes "forms_"."""
    cleaned = (_REFUSED_IN_FOLDERS if folder else _REFUSED).sub("_", segment).strip(" .")
    while _VTI.search(cleaned):
        cleaned = _VTI.sub(lambda m: m.group(0)[:-1] + "-", cleaned)
    if cleaned.startswith("~$"):
        cleaned = "_" + cleaned[1:]
    if cleaned.lower() in _RESERVED or (folder and library_root and cleaned.lower() == "forms"):
        stem, dot, extension = cleaned.rpartition(".")
        cleaned = f"{stem}_.{extension}" if dot else f"{cleaned}_"
    return cleaned or "_"


def _retry_after(exc: Exception) -> float | None:
    """Seconds from a throttled answer's Retry-After (SharePoint sends whole seconds)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    header = response.headers.get("Retry-After", "").strip()
    return float(header) if header.replace(".", "", 1).isdigit() else None


def _fetch_digest_once(request: Any) -> None:
    """Make the request object fetch its form digest (POST /_api/contextinfo, before a fresh context's
    first write) in one request. The library's own fetch retries 5 times with backoff from 5 s, which hid
    an outage inside the attempt for a minute per delivery; a failure here instead surfaces through the
    request that needed the digest, into `_run`: throttling waited out there, anything else ends the
    attempt. The steps are the library's (office365.sharepoint.request), without its retry loop."""
    if not hasattr(request, "_fetch_context_web_information"):
        return  # another library version: its own digest policy applies
    from office365.runtime.http.http_method import HttpMethod
    from office365.runtime.http.request_options import RequestOptions
    from office365.runtime.odata.request import ODataRequest
    from office365.runtime.odata.v3.json_light_format import JsonLightFormat
    from office365.sharepoint.webs.context_web_information import ContextWebInformation

    def once() -> Any:
        client = ODataRequest(request._base_url, JsonLightFormat())
        client._transport = request._transport
        client.beforeExecute += request._authenticate_request
        options = RequestOptions(f"{request.service_root_url}/contextInfo")
        options.method = HttpMethod.Post
        response = client.execute_request_direct(options)
        json_format = JsonLightFormat()
        json_format.function = "GetContextWebInformation"
        info = ContextWebInformation()
        client.map_json(response.json(), info, json_format)
        return info

    request._fetch_context_web_information = once


class SharePointError(DestinationError):
    """A failed SharePoint request, with the HTTP status and SharePoint's error code when there was an answer."""

    def __init__(
        self, message: str, *, status: int | None, retryable: bool, retry_after: float | None, code: str | None = None
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.code = code


# SharePoint's code for "a file with that name already exists" (an Overwrite=false add).
FILE_EXISTS = "-2130575257"


def _error(exc: Exception, what: str) -> SharePointError:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    retry_after = _retry_after(exc)
    refused = egress.refused_in(exc)
    if refused is not None:
        return SharePointError(f"{what}: {refused}", status=None, retryable=False, retry_after=None)
    # 400/404 on our own requests mean the library or path is wrong: a retry will not fix that.
    retryable = status not in (400, 404)
    if not status:
        # No answer (a refused connection, a library error): the library's words, not a peer's.
        message = f"{what}: {type(exc).__name__}: {egress.scrub(str(exc))[:300]}"
        return SharePointError(message, status=None, retryable=retryable, retry_after=retry_after)
    # An answer: its status and SharePoint's own error code, never its message (the site URL is the
    # workspace's, and so is whatever answers there).
    code = getattr(exc, "code", None)
    shown = f" {peer_code(code)}" if code else ""
    return SharePointError(
        f"{what}: HTTP {status}{shown}",
        status=status,
        retryable=retryable,
        retry_after=retry_after,
        code=str(code) if code else None,
    )


class SharePointDestination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> None:
        self.policy = policy
        self.settings = settings
        self.secrets = secrets
        self.site_url: str = settings["site_url"].rstrip("/")
        self.site_path = urlsplit(self.site_url).path.rstrip("/")
        self.library: str = settings.get("library") or "Shared Documents"
        # Whether this client found the library at its URL; deliveries look once (clients are reused).
        self._library_found = False

    def _context(self) -> Any:
        """A fresh client context per delivery: a failed request leaves state in the old one."""
        from office365.sharepoint.client_context import ClientContext

        ctx = ClientContext(self.site_url)
        token = self.secrets.get("access_token")
        if token:
            ctx = ctx.with_access_token(lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        else:
            certificate = self.secrets.get("certificate")
            if not certificate:
                # A destination stored when a path on the host was accepted: never opened any more.
                raise DestinationError(
                    "no certificate: give the PEM private key inline as `certificate` (a path is no longer accepted)",
                    retryable=False,
                )
            ctx = ctx.with_client_certificate(
                self.settings["tenant_id"],
                self.settings["client_id"],
                thumbprint=self.settings["thumbprint"],
                private_key=certificate,
            )
        # The library's default read timeout is unbounded; a stuck request must not hold a worker forever.
        # Its requests to the site go through the egress guard, and follow no redirect.
        ctx = ctx.with_transport(timeout=(10, 300), session=guarded_session(self.policy))
        _fetch_digest_once(ctx.pending_request())
        return ctx

    def _server_path(self, path: str, *, folder_only: bool = False) -> tuple[str, str]:
        """(server-relative folder, file name) for a template path like /Z1/2026/x.pdf."""
        segments = [s for s in path.split("/") if s]
        folders = [clean_name(s, folder=True, library_root=i == 0) for i, s in enumerate(segments[:-1])]
        name = clean_name(segments[-1]) if segments else "_"
        folder = "/".join([self.site_path, self.library, *folders])
        return folder, name

    def _run(self, ctx: Any, what: str) -> None:
        """Run the queued request, waiting out throttling (429/503 with a Retry-After of at most
        INLINE_WAIT_MAX) up to STEP_RETRIES times, so a throttled chunk is sent again rather than the
        file. Anything else ends the attempt at once as a DestinationError: an outage (no Retry-After,
        a refused connection) becomes `retrying` on FileRelay's schedule, and the worker moves on."""

        def after_failure(attempt: int, exc: Exception) -> float | None:
            wait = _retry_after(exc)
            # The library sleeps after every failure, the last one too: give up before that sleep,
            # and before a wait too long to spend holding this delivery's lease.
            if wait is None or wait > INLINE_WAIT_MAX or attempt >= STEP_RETRIES:
                raise _error(exc, what) from exc
            return wait

        try:
            ctx.execute_query_retry(max_retry=STEP_RETRIES, failure_callback=after_failure)
        except DestinationError:
            raise
        except Exception as exc:
            raise _error(exc, what) from exc

    def deliver(self, payload: Payload) -> str | None:
        ctx = self._context()
        if not self._library_found:
            # A library's title (`Documents`) in `library` addresses a plain folder of the site, outside
            # any library: refused as `test` refuses it, before anything is written there.
            self._find_library(ctx)
            self._library_found = True
        try:
            self._deliver(payload, ctx)
        except SharePointError as exc:
            if exc.status != 401:
                raise
            # A token the site no longer accepts: rebuild context and token once, then start over.
            self._deliver(payload, self._context())
        return self.landed(payload.path)

    def landed(self, path: str) -> str:
        """The path within the library where a template path lands, names made acceptable; `read`
        takes it as it takes the template path (cleaning a clean name changes nothing)."""
        folder_path, name = self._server_path(path)
        library_root = f"{self.site_path}/{self.library}"
        return f"{folder_path.removeprefix(library_root)}/{name}"

    def _deliver(self, payload: Payload, ctx: Any) -> None:
        folder_path, name = self._server_path(payload.path)
        relative_folder = folder_path[len(self.site_path) + 1 :]
        ctx.web.ensure_folder_path(relative_folder)
        self._run(ctx, f"cannot create folder {relative_folder}")
        if payload.size <= CHUNK_SIZE:
            with payload.open() as source:
                # One request that replaces the content whole: a new version, never a partial file.
                target = self._add(ctx, folder_path, name, source.read(CHUNK_SIZE), overwrite=True)
            moved = False
        else:
            target, moved = self._upload_large(ctx, folder_path, name, payload)
        self._set_columns(ctx, target, payload)
        if not moved:
            # Written in place: the version is known once it is current (a kill before this line
            # leaves nothing recorded, and the next attempt sends again).
            self._record(payload, etag=self._etag(ctx, target, name, refresh=bool(self.settings.get("columns"))))

    def _add(self, ctx: Any, folder_path: str, name: str, content: bytes, *, overwrite: bool) -> Any:
        from office365.runtime.queries.service_operation import ServiceOperationQuery
        from office365.sharepoint.files.file import File

        folder = ctx.web.get_folder_by_server_relative_path(folder_path)
        target = File(ctx)
        ctx.add_query(
            ServiceOperationQuery(
                folder.files, "AddUsingPath", {"DecodedUrl": name, "Overwrite": overwrite}, content, None, target
            )
        )
        self._run(ctx, f"cannot add {name}")
        return target

    def _upload_large(self, ctx: Any, folder_path: str, name: str, payload: Payload) -> tuple[Any, bool]:
        """(the file, whether it was moved into place). A new file goes up under a temporary name in the
        same folder and is moved to its name when whole, so the name never holds an empty or partial
        file, whatever happens meanwhile. An existing file takes the upload session itself: its content
        changes at the last chunk only ("the current file content is not changed" until FinishUpload),
        and it keeps its list item, versions and links, which a move over it would replace."""
        final = f"{folder_path}/{name}"
        temp_name = _temp_name(name, payload, limit=MAX_PATH - len(folder_path) - 1)
        existing = ctx.web.get_file_by_server_relative_path(final)
        if self._exists(ctx, existing, name):
            # A temporary file an earlier attempt left (killed, or during an outage) goes first.
            self._discard(ctx, f"{folder_path}/{temp_name}")
            self._upload_into(ctx, existing, payload, name)
            return existing, False
        temp = self._fresh_temp(ctx, folder_path, temp_name)
        try:
            self._upload_into(ctx, temp, payload, name)
            # Recorded before the move, the one step that makes it current: the file keeps its UniqueId.
            self._record(payload, uid=str(temp.unique_id))
            if self._moved(ctx, temp, final, name):
                return ctx.web.get_file_by_server_relative_path(final), True
        except BaseException:
            self._discard(ctx, f"{folder_path}/{temp_name}")
            raise
        # A file took the name meanwhile: it is never replaced by a move (that would drop its item and
        # history) but takes the content as a new version, as any existing file does.
        self._discard(ctx, f"{folder_path}/{temp_name}")
        existing = ctx.web.get_file_by_server_relative_path(final)
        self._upload_into(ctx, existing, payload, name)
        return existing, False

    def _fresh_temp(self, ctx: Any, folder_path: str, temp_name: str) -> Any:
        """An empty file under the temporary name; one left there by an earlier attempt is removed first."""
        try:
            return self._add(ctx, folder_path, temp_name, b"", overwrite=False)
        except SharePointError as exc:
            if exc.status != 400 or not (exc.code or "").startswith(FILE_EXISTS):
                raise
        self._discard(ctx, f"{folder_path}/{temp_name}", quiet=False)
        return self._add(ctx, folder_path, temp_name, b"", overwrite=False)

    def _moved(self, ctx: Any, temp: Any, final: str, name: str) -> bool:
        """Move the whole temporary file to its name (MoveToUsingPath, never over a file: without the
        Overwrite flag SharePoint refuses an existing target); False if a file holds the name."""
        from office365.runtime.queries.service_operation import ServiceOperationQuery

        ctx.add_query(ServiceOperationQuery(temp, "MoveToUsingPath", {"DecodedUrl": final, "moveOperations": 0}))
        try:
            self._run(ctx, f"cannot move the uploaded {name} into place")
        except SharePointError as exc:
            if exc.status != 400 or not (exc.code or "").startswith(FILE_EXISTS):
                raise
            return False
        return True

    def _discard(self, ctx: Any, path: str, *, quiet: bool = True) -> None:
        """Delete a temporary file if it is there (nothing else ever has its name)."""
        ctx.web.get_file_by_server_relative_path(path).delete_object()
        try:
            self._run(ctx, f"cannot remove the temporary {path.rsplit('/', 1)[-1]}")
        except SharePointError as exc:
            if exc.status == 404:
                return
            if not quiet:
                raise
            # During an outage: the next attempt removes it.
            log.warning("%s", exc)

    def _upload_into(self, ctx: Any, target: Any, payload: Payload, name: str) -> None:
        upload_id = str(uuid.uuid4())
        with payload.open() as source:
            try:
                self._upload_session(ctx, target, upload_id, source, payload.size, name)
            except BaseException:
                self._cancel(ctx, target, upload_id, name)
                raise

    def _record(self, payload: Payload, **identity: str) -> None:
        if payload.landing is not None:
            payload.landing(" ".join([f"sha256={payload.sha256}", *(f"{k}={v}" for k, v in identity.items())]))

    def _etag(self, ctx: Any, target: Any, name: str, *, refresh: bool) -> str:
        """The file's ETag ("{UniqueId},version"): as the last write answered, or read again after the
        columns were set (a metadata update is a new version too)."""
        if refresh or not target.properties.get("ETag"):
            target.get().select(["ETag"])
            self._run(ctx, f"cannot look up {name}")
        return str(target.properties.get("ETag"))

    def _exists(self, ctx: Any, target: Any, name: str) -> bool:
        target.get()
        try:
            self._run(ctx, f"cannot look up {name}")
        except SharePointError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _cancel(self, ctx: Any, target: Any, upload_id: str, name: str) -> None:
        try:
            target.cancel_upload(upload_id)
            self._run(ctx, f"cannot cancel the upload of {name}")
        except DestinationError as exc:
            # SharePoint drops an abandoned session on its own after a while; the delivery's own error
            # is the one to report.
            log.warning("%s", exc)

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        """Without a record of the upload SharePoint cannot tell (it keeps no hash of a file), and a
        2 GiB read is dearer than sending again: False."""
        return False

    def holds_landed(self, path: str, *, sha256: str, size: int, landed: str | None) -> bool:
        """The file at `path` is the version the last attempt recorded (`deliver`'s `landing`) for this
        content: the same UniqueId (a new file moved into place) or ETag (a file written in place), and
        the size; one request for the file's properties. A file written in place in one request is
        recorded only once SharePoint answered: a worker killed in between leaves no record, so a file
        of one chunk at most is then read back and hashed (one request, as its upload was) unless
        columns are set (matching content would not tell whether the columns were: it is sent again)."""
        recorded = dict(part.split("=", 1) for part in (landed or "").split() if "=" in part)
        folder_path, name = self._server_path(path)
        ctx = self._context()
        target = ctx.web.get_file_by_server_relative_path(f"{folder_path}/{name}")
        if not self._exists(ctx, target, name) or int(target.length or 0) != size:
            return False
        if recorded.get("sha256") == sha256:
            if "uid" in recorded and str(target.unique_id).lower() == recorded["uid"].lower():
                return True
            if "etag" in recorded and str(target.properties.get("ETag")) == recorded["etag"]:
                return True
        if size > CHUNK_SIZE or self.settings.get("columns"):
            return False
        with self._spooled(path, ctx) as spool:
            return _digest(spool) == (size, sha256)

    def _upload_session(self, ctx: Any, target: Any, upload_id: str, source: BinaryIO, size: int, name: str) -> None:
        offset = 0
        # One chunk's buffer for the whole session, each chunk read into it: the library and requests
        # send a bytearray as it is.
        for chunk in filled(source, size, bytearray(CHUNK_SIZE)):
            if offset == 0:
                target.start_upload(upload_id, chunk)
            elif offset + len(chunk) >= size:
                target.finish_upload(upload_id, offset, chunk)
            else:
                target.continue_upload(upload_id, offset, chunk)
            self._run(ctx, f"upload of {name} failed at byte {offset}")
            offset += len(chunk)

    def _set_columns(self, ctx: Any, target: Any, payload: Payload) -> None:
        columns: Mapping[str, str] = self.settings.get("columns") or {}
        if not columns:
            return
        values = {column: _column_value(source, payload) for column, source in columns.items()}
        result = target.listItemAllFields.validate_update_list_item({k: v for k, v in values.items() if v is not None})
        self._run(ctx, "cannot set the metadata columns")
        # SharePoint answers 200 even when fields fail and then saves none of them: each field's
        # outcome is in the result. A missing or read-only column is the configuration's fault, and a
        # value the column refuses comes back the same on a retry, so neither is retried.
        failed = [value for value in result.value if value.HasException]
        if failed:
            # Each field's error code, not its message: SharePoint's text is the site's to show, not ours.
            details = "; ".join(f"{v.FieldName}: error {peer_code(v.ErrorCode)}" for v in failed)
            names = ", ".join(str(v.FieldName) for v in failed)
            raise DestinationError(
                f"SharePoint did not set the columns {names} on {payload.path} ({details}); "
                "check the destination's columns against the library",
                retryable=False,
            )

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        return _range(self._spooled(path), start, length)

    def read_checked(
        self, path: str, *, sha256: str, size: int, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """The file, spooled whole as every read is, hashed from the spool before any of it is served:
        one download (where `holds` and then `read` would be two), and the bytes checked are the bytes
        streamed."""
        spool = self._spooled(path)
        try:
            held = _digest(spool)
        except BaseException:
            spool.close()
            raise
        if held != (size, sha256):
            spool.close()
            raise DestinationError(
                f"{path} in {self.library!r} is not the delivered document (it changed since: size or sha256 differ)",
                retryable=False,
            )
        return _range(spool, start, length)

    def _spooled(self, path: str, ctx: Any = None) -> Any:
        """The file at `path`, downloaded to a temporary file (on disk past one chunk) through `ctx` (the
        caller's context after a successful request, or a fresh one); the caller closes it."""
        folder_path, name = self._server_path(path)
        ctx = ctx if ctx is not None else self._context()
        spool = tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE)  # noqa: SIM115 - the caller closes it
        try:
            ctx.web.get_file_by_server_relative_path(f"{folder_path}/{name}").download_session(
                spool, chunk_size=CHUNK_SIZE
            )
            self._run(ctx, f"cannot read {folder_path}/{name}")
        except BaseException:
            spool.close()
            raise
        return spool

    def check(self) -> None:
        self._find_library(self._context())

    def _find_library(self, ctx: Any) -> None:
        # By URL, as deliveries address it: a library's title differs from its URL name (the default
        # "Shared Documents" library is titled "Documents"), so a lookup by title fails for it.
        url = f"{self.site_path}/{self.library}"
        ctx.web.get_list(url).get()
        try:
            self._run(ctx, f"library {self.library!r} on {self.site_url} is not usable")
        except DestinationError as exc:
            if "HTTP 404" in str(exc):
                raise DestinationError(
                    f"no document library at {url} on {self.site_url}: 'library' must be the library's "
                    "URL name (as in its address, e.g. 'Shared Documents'), not its title",
                    retryable=False,
                ) from exc
            raise


def _temp_name(name: str, payload: Payload, *, limit: int) -> str:
    """The name a new file is uploaded under before it is moved to `name`: the same for every attempt of
    one delivery (so the next attempt finds and removes what a killed one left), distinct between
    deliveries, and within SharePoint's path length (the name is shortened, never the marker)."""
    delivery = payload.delivery_key.rpartition(".")[0] or payload.delivery_key or payload.path
    marker = f".{hashlib.sha256(delivery.encode()).hexdigest()[:12]}.filerelay-part"
    return name[: max(1, limit - len(marker))] + marker


def _digest(spool: Any) -> tuple[int, str]:
    """(size, sha256) of a spooled file."""
    digest, seen = hashlib.sha256(), 0
    spool.seek(0)
    while chunk := spool.read(CHUNK_SIZE):
        digest.update(chunk)
        seen += len(chunk)
    return seen, digest.hexdigest()


def _column_value(source: str, payload: Payload) -> str | None:
    if source.startswith("meta."):
        return payload.metadata.get(source[5:])
    if source == "content_type":
        return payload.content_type
    return payload.identity.get(source)


def _range(spool: Any, start: int, length: int | None) -> Iterator[bytes]:
    with spool:
        spool.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = spool.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


def _admit_hosts(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """The site URL's host, if an address or `localhost`, must be one the egress policy lets a destination
    reach. The sign-in goes to Entra ID's fixed authority with the tenant in its path: the tenant must be
    a tenant id or domain, nothing that could change where the sign-in goes."""
    admit_host("site_url", egress.url_host(values["site_url"]), policy)
    tenant = values.get("tenant_id")
    if tenant and not _TENANT.match(tenant):
        raise ValidationError({"tenant_id": ["a tenant id (a GUID) or the tenant's domain name"]})


KIND = register(
    DestinationKind(
        name="sharepoint",
        schema=SharePointSettings,
        build=SharePointDestination,
        pushed=True,
        readable=True,
        secret_fields=frozenset({"certificate", "access_token"}),
        admit=_admit_hosts,
        location_fields=frozenset({"site_url", "library"}),
    )
)
