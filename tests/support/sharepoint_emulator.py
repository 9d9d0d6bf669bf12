"""A SharePoint Online REST emulator for tests: the real office365-rest-python-client talks to it over
plain HTTP on 127.0.0.1.

It speaks the wire protocol the SharePoint destination relies on: the form digest from
``POST /_api/contextInfo``, folder creation one segment at a time, ``Files/add`` and upload sessions
(``startUpload``/``continueUpload``/``finishUpload``), reads by path or id, ``$value`` and list item
metadata (``ValidateUpdateListItem`` and MERGE). Answers are OData verbose JSON (``{"d": {...}}``) and
errors carry SharePoint's ``"<HRESULT>, <.NET type>"`` codes, which the library maps to its exceptions.

Usage::

    with sharepoint_emulator() as sp:
        ctx = ClientContext(sp.site_url).with_access_token(lambda: {"access_token": sp.token, ...})
        ...
        assert sp.files["/sites/team/Shared Documents/Z1/x.pdf"] == data
        sp.inject(429, match="continueUpload", retry_after=1)   # next continueUpload is throttled

State is kept in memory and may be read (and seeded) directly: ``files`` (bytes per server-relative
path), ``versions`` (earlier contents per path, oldest first), ``folders`` (server-relative paths; the
site root and ``Shared Documents`` exist from the start), ``libraries`` (:class:`Library` per root
folder; ``library()`` / ``add_library()`` to configure columns, read-only columns and versioning),
``list_items`` (the columns set on each file's list item, keyed by file path) and ``requests``
(method, decoded path without query, status) in arrival order; ``statuses(match)`` filters that log and
``file_id(path)`` gives a file's UniqueId.

Faults: ``inject(status, times, match, retry_after)`` answers the next matching requests with an error
(the library reads ``Retry-After`` as whole seconds only), ``expire_digests()`` makes the next POST with
an old digest fail with 403 -2130575251 (the library refreshes and resends once), ``fail_always(status)``
and ``heal()`` model a site that is down. Setting ``refuse_special_in_legacy_urls`` makes the string-URL
forms refuse names with ``#`` or ``%`` (SharePoint documents them as unsupported there).

What SharePoint Online refuses, refused the same way:

* Lists: ``lists/GetByTitle('…')`` matches the list's Title only (the default library is titled
  ``Documents``; ``GetByTitle('Shared Documents')`` is 404 ``-1, System.ArgumentException`` "List '…' does
  not exist at site with URL '…'."); ``getList('/sites/x/Shared Documents')`` finds it by its URL.
* Names (Microsoft Learn, "Restrictions and limitations in OneDrive and SharePoint"): ``" * : < > ? / \\ |``,
  leading/trailing spaces, ``_vti_`` anywhere, a ``~$`` prefix, the names ``.lock``, ``CON``, ``PRN``,
  ``AUX``, ``NUL``, ``COM0``-``COM9``, ``LPT0``-``LPT9``, ``desktop.ini``, a folder ``forms`` directly in a
  library: 400 ``-2130575245, Microsoft.SharePoint.SPException``. Decoded paths over 400 characters: 400.
* ``ValidateUpdateListItem`` answers 200 with a result per field; a column the library does not have, or
  a read-only one, reports ``HasException: true`` with ``ErrorCode``/``ErrorMessage``, and then none of
  the fields is saved. MERGE of an unknown property is 400.
* Upload sessions (``File.StartUpload``/``ContinueUpload``/``FinishUpload``/``CancelUpload``): the uploadId
  must be a GUID, the file must exist, a session belongs to its file, ``fileOffset`` must equal the bytes
  received so far, StartUpload is idempotent for the same id and fragment, the content changes only at
  FinishUpload, CancelUpload ends the session (and removes an empty stub that held nothing before).
* ``File.MoveTo(newUrl, flags)`` / ``File.MoveToUsingPath(DecodedUrl, moveOperations)``: the file keeps
  its UniqueId, list item and history under the new URL; an existing target is refused with 400
  -2130575257 unless the Overwrite flag (1) is given, and then replaced whole; the new name is checked
  like an add's; other flags than the documented ones are 400. ``content_served`` counts the bytes of
  file content the emulator answered.
* With versioning on (the default), an overwrite keeps the previous content in ``versions`` and bumps
  ``MajorVersion``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import SHUT_RDWR, socket
from typing import Any
from urllib.parse import unquote

JSON_TYPE = "application/json;odata=verbose;charset=utf-8"

# SharePoint error codes ("<HRESULT>, <.NET type>") as the library classifies them.
FILE_NOT_FOUND = "-2147024894, System.IO.FileNotFoundException"
DIGEST_INVALID = "-2130575251, Microsoft.SharePoint.SPException"
FILE_EXISTS = "-2130575257, Microsoft.SharePoint.SPException"
INVALID_NAME = "-2130575245, Microsoft.SharePoint.SPException"
ACCESS_DENIED = "-2147024891, System.UnauthorizedAccessException"
INVALID_QUERY = "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
ARGUMENT = "-2147024809, System.ArgumentException"
# GetByTitle of a missing list: 404 with this code (not FileNotFoundException).
LIST_MISSING = "-1, System.ArgumentException"
GENERIC = "-2146233088, System.Exception"
# SP.MoveOperations accepted by File.MoveTo/MoveToUsingPath: Overwrite, AllowBrokenThickets,
# BypassApprovePermission, RetainEditorAndModifiedOnMove.
MOVE_OVERWRITE = 1
MOVE_FLAGS = MOVE_OVERWRITE | 8 | 64 | 2048
# Per-field ErrorCode values of ValidateUpdateListItem (ints, as SharePoint reports them).
FIELD_MISSING_CODE = -2147024809  # ArgumentException: "Column 'X' does not exist. ..."
FIELD_READ_ONLY_CODE = -2146232832  # SPFieldValidationException-style refusal

DOCUMENTS_LIBRARY = "Shared Documents"
DOCUMENTS_TITLE = "Documents"
MAX_PATH = 400
# "Restrictions and limitations in OneDrive and SharePoint" (Microsoft Learn), "Invalid file names
# and file types": these characters anywhere, these whole names (case-insensitive), "_vti_" anywhere,
# a "~$" prefix, leading or trailing spaces, and a folder "forms" at the root of a library.
_INVALID_CHARS = set('"*:<>?/\\|')
_RESERVED_NAMES = {".lock", "con", "prn", "aux", "nul", "desktop.ini"} | {
    f"{p}{n}" for p in ("com", "lpt") for n in range(10)
}
# Columns every document library has that a client may set through ValidateUpdateListItem
# (Author/Editor/Created/Modified included: SharePoint lets app-only callers set them this way).
BUILTIN_COLUMNS = frozenset({"Title", "FileLeafRef", "Author", "Editor", "Created", "Modified", "ContentTypeId"})
# Columns SharePoint computes; setting one reports HasException with "This field cannot be updated."
READ_ONLY_COLUMNS = frozenset(
    {
        "ID",
        "Id",
        "GUID",
        "UniqueId",
        "FileRef",
        "FileDirRef",
        "FSObjType",
        "File_x0020_Size",
        "_UIVersionString",
        "Created_x0020_Date",
        "Last_x0020_Modified",
        "DocIcon",
        "EncodedAbsUrl",
        "ServerUrl",
        "LinkFilename",
    }
)


class SharePointError(Exception):
    """An error answer: HTTP status plus SharePoint's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Fault:
    status: int
    times: int
    match: str
    retry_after: float | None


@dataclass
class _FileMeta:
    unique_id: str
    item_id: int
    created: str
    modified: str
    version: int = 1


@dataclass
class _Upload:
    path: str
    first: bytes  # StartUpload's fragment: a repeat with the same id and bytes is idempotent
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Library:
    """A document library. ``url`` is its root folder (server-relative; the URL name, such as
    ``Shared Documents``), ``title`` what ``GetByTitle`` matches (``Documents`` for the default one).
    ``columns`` are the custom columns ValidateUpdateListItem and MERGE accept besides the built-in
    ones; ``read_only`` are refused with "This field cannot be updated."; with ``versioning`` on
    (SharePoint Online's default) an overwrite keeps the old content as a version."""

    url: str
    title: str
    columns: set[str] = field(default_factory=set)
    read_only: set[str] = field(default_factory=lambda: set(READ_ONLY_COLUMNS))
    versioning: bool = True

    def entity_type(self) -> str:
        return _entity_type(self.url.rsplit("/", 1)[-1])


# Resolved targets of an /_api/ path.
@dataclass(frozen=True)
class _Web:
    pass


@dataclass(frozen=True)
class _Lists:
    pass


@dataclass(frozen=True)
class _List:
    path: str  # root folder of an existing library


@dataclass(frozen=True)
class _Folder:
    path: str


@dataclass(frozen=True)
class _Folders:
    parent: str


@dataclass(frozen=True)
class _File:
    path: str


@dataclass(frozen=True)
class _Files:
    folder: str


@dataclass(frozen=True)
class _Value:
    path: str


@dataclass(frozen=True)
class _Item:
    path: str


@dataclass(frozen=True)
class _Operation:
    target: object
    name: str  # lower case
    args: dict[str, object]  # keys lower case; positional arguments under "0", "1", …


_Target = _Web | _Lists | _List | _Folder | _Folders | _File | _Files | _Value | _Item | _Operation


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _json(status: int, payload: object) -> _Answer:
    return _Answer(status, json.dumps(payload).encode())


def _error_answer(status: int, code: str, message: str) -> _Answer:
    return _json(status, {"error": {"code": code, "message": {"lang": "en-US", "value": message}}})


def _fault_answer(status: int, retry_after: float | None) -> _Answer:
    codes = {401: ACCESS_DENIED, 403: ACCESS_DENIED, 404: FILE_NOT_FOUND}
    answer = _error_answer(status, codes.get(status, GENERIC), f"Injected fault: HTTP {status} (emulator).")
    if retry_after is not None:
        # The library parses integer seconds only; whole numbers are sent as integers.
        answer.headers["Retry-After"] = f"{retry_after:g}"
    return answer


def split_segments(path: str) -> list[str]:
    """Split an OData path on "/" outside parentheses and quoted literals ('' escapes a quote)."""
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    i = 0
    while i < len(path):
        char = path[i]
        if quoted:
            current.append(char)
            if char == "'":
                if path[i + 1 : i + 2] == "'":
                    current.append("'")
                    i += 1
                else:
                    quoted = False
        elif char == "'" and depth > 0:
            quoted = True
            current.append(char)
        elif char == "(":
            depth += 1
            current.append(char)
        elif char == ")":
            depth -= 1
            current.append(char)
        elif char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if quoted or depth != 0:
        raise SharePointError(400, INVALID_QUERY, f'The expression "{path}" is not valid.')
    segments.append("".join(current))
    return [s for s in segments if s]


def _split_arguments(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'":
            if quoted and text[i + 1 : i + 2] == "'":
                current.append("''")
                i += 2
                continue
            quoted = not quoted
            current.append(char)
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_literal(text: str, aliases: dict[str, str]) -> object:
    """An OData literal: 'string' ('' is a quote), guid'…', true/false/null, numbers, @alias."""
    if text.startswith("@"):
        if text not in aliases:
            raise SharePointError(400, INVALID_QUERY, f"Parameter alias {text} has no value.")
        return parse_literal(aliases[text], {})
    match = re.fullmatch(r"(?:guid|datetime|date)?'(.*)'", text, flags=re.DOTALL | re.IGNORECASE)
    if match:
        return match.group(1).replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text.startswith("{"):
        try:
            value: object = json.loads(text)
        except ValueError:
            pass
        else:
            return value
    return text


def parse_segment(segment: str, aliases: dict[str, str]) -> tuple[str, dict[str, object] | None]:
    """``Name(args)`` → ("name", {"key": value} or {"0": positional}); no parentheses → (name, None)."""
    if "(" not in segment:
        return segment.lower(), None
    if not segment.endswith(")"):
        raise SharePointError(400, INVALID_QUERY, f'The expression "{segment}" is not valid.')
    name, inner = segment[: segment.index("(")], segment[segment.index("(") + 1 : -1]
    args: dict[str, object] = {}
    for position, part in enumerate(_split_arguments(inner)):
        equals = part.find("=")
        quote = part.find("'")
        if equals > 0 and (quote < 0 or equals < quote) and re.fullmatch(r"[A-Za-z_]\w*", part[:equals].strip()):
            args[part[:equals].strip().lower()] = parse_literal(part[equals + 1 :].strip(), aliases)
        else:
            value = parse_literal(part, aliases)
            if isinstance(value, dict):  # a JSON parameter object (name(@v)?@v={...})
                args.update({str(k).lower(): v for k, v in value.items() if k != "__metadata"})
            else:
                args[str(position)] = value
    return name.lower(), args


def refused_name(name: str, *, library_root_folder: bool = False) -> bool:
    """Whether SharePoint Online refuses ``name`` for a file or folder (Microsoft's documented rules)."""
    return (
        not name
        or any(c in _INVALID_CHARS for c in name)
        or name != name.strip(" ")
        or "_vti_" in name.lower()
        or name.startswith("~$")
        or name.lower() in _RESERVED_NAMES
        or (library_root_folder and name.lower() == "forms")
    )


def _check_name(name: str, *, library_root_folder: bool = False) -> None:
    if refused_name(name, library_root_folder=library_root_folder):
        raise SharePointError(
            400,
            INVALID_NAME,
            f"The file or folder name '{name}' contains characters that are not permitted. Please use a different name.",
        )


def _entity_type(path: str) -> str:
    return "SP.Data." + path.replace("_", "_x005f_").replace(" ", "_x0020_") + "Item"


class Emulator:
    """The emulated site: state, fault switches and the request router (thread-safe)."""

    def __init__(self, site: str = "team", token: str = "test-token") -> None:  # noqa: S107
        self.site_path = f"/sites/{site}"
        self.token = token
        self.base_url = ""  # set when the server is bound
        self._lock = threading.RLock()
        self.files: dict[str, bytes] = {}
        self.folders: set[str] = {self.site_path}
        self.libraries: dict[str, Library] = {}
        self.add_library(DOCUMENTS_LIBRARY, DOCUMENTS_TITLE)
        self.list_items: dict[str, dict[str, object]] = {}
        # Earlier contents of each file, oldest first, kept when its library has versioning on.
        self.versions: dict[str, list[bytes]] = {}
        self.requests: list[tuple[str, str, int]] = []
        # Bytes of file content answered (``$value``): what reading a file back has cost.
        self.content_served = 0
        # time.monotonic() of each entry in `requests`, to check waits such as Retry-After.
        self.request_times: list[float] = []
        self._digests: set[str] = set()
        self._faults: list[_Fault] = []
        self._always: tuple[int, float | None] | None = None
        self._file_meta: dict[str, _FileMeta] = {}
        self._folder_ids: dict[str, str] = {}
        self._uploads: dict[str, _Upload] = {}
        self._next_item_id = 1
        # SharePoint documents that the string-URL APIs (Files/add(url=…), Folders/Add('…'),
        # Folders('…'), getFileByServerRelativeUrl, …) do not support # and % in names. Off by
        # default; set True to make those forms answer 400 for such names, as a check that a caller
        # uses the …UsingPath(DecodedUrl=…) forms.
        self.refuse_special_in_legacy_urls = False
        # Called with (method, path) before each request is answered, outside the emulator's lock: what
        # happens elsewhere while a request is in flight (a sweeper taking the lease back, SAP
        # replacing the content), at a point the test chooses.
        self.before_request: Callable[[str, str], None] | None = None

    # ----------------------------------------------------------------------------------- public

    @property
    def site_url(self) -> str:
        return f"{self.base_url}{self.site_path}"

    def add_library(
        self,
        url_name: str,
        title: str | None = None,
        *,
        columns: tuple[str, ...] = (),
        read_only: tuple[str, ...] = (),
        versioning: bool = True,
    ) -> Library:
        """Create a document library at ``/sites/<site>/<url_name>`` titled ``title`` (default: the URL name)."""
        with self._lock:
            url = f"{self.site_path}/{url_name}"
            library = Library(url, title or url_name, set(columns), set(READ_ONLY_COLUMNS) | set(read_only), versioning)
            self.libraries[url] = library
            self.folders.add(url)
            return library

    def library(self, url_name: str = DOCUMENTS_LIBRARY) -> Library:
        """A library by its URL name, to configure columns or versioning."""
        return self.libraries[f"{self.site_path}/{url_name}"]

    def inject(self, status: int, times: int = 1, match: str = "", retry_after: float | None = None) -> None:
        """Answer the next ``times`` requests whose decoded path contains ``match`` (case-insensitive;
        "" matches every request, contextInfo included) with ``status``, plus ``Retry-After`` if given.
        The request body is read and discarded; no state changes."""
        with self._lock:
            self._faults.append(_Fault(status, times, match.lower(), retry_after))

    def expire_digests(self) -> None:
        """Invalidate every digest handed out so far: the next POST carrying one gets 403 -2130575251."""
        with self._lock:
            self._digests.clear()

    def fail_always(self, status: int, retry_after: float | None = 0) -> None:
        """Answer every request with ``status`` until :meth:`heal` (``Retry-After: 0`` by default, so a
        client honouring it gives up fast)."""
        with self._lock:
            self._always = (status, retry_after)

    def heal(self) -> None:
        """Undo :meth:`fail_always` and drop pending injected faults."""
        with self._lock:
            self._always = None
            self._faults.clear()

    def statuses(self, match: str = "", method: str = "") -> list[int]:
        """Statuses of logged requests whose path contains ``match`` (case-insensitive)."""
        with self._lock:
            return [
                s for m, p, s in self.requests if match.lower() in p.lower() and (not method or m == method.upper())
            ]

    def file_id(self, path: str) -> str:
        """The UniqueId of an existing file."""
        with self._lock:
            return self._meta(self._existing_file(path)).unique_id

    # ----------------------------------------------------------------------------------- HTTP

    def handle(self, method: str, raw_target: str, headers: dict[str, str], body: bytes) -> _Answer:
        raw_path, _, raw_query = raw_target.partition("?")
        path = unquote(raw_path)
        if self.before_request is not None:
            self.before_request(method, path)
        with self._lock:
            try:
                answer = self._answer(method, path, raw_query, headers, body)
            except SharePointError as e:
                answer = _error_answer(e.status, e.code, e.message)
            self.requests.append((method, path, answer.status))
            self.request_times.append(time.monotonic())
            return answer

    def _take_fault(self, path: str) -> _Fault | None:
        if self._always is not None:
            return _Fault(self._always[0], 1, "", self._always[1])
        lowered = path.lower()
        for fault in self._faults:
            if fault.times > 0 and fault.match in lowered:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _answer(self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes) -> _Answer:
        fault = self._take_fault(path)
        if fault is not None:
            return _fault_answer(fault.status, fault.retry_after)
        prefix = f"{self.site_path}/_api/"
        if not path.lower().startswith(prefix.lower()):
            raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
        if headers.get("authorization") != f"Bearer {self.token}":
            answer = _error_answer(401, ACCESS_DENIED, "Access denied. Unsupported or invalid token.")
            answer.headers["WWW-Authenticate"] = (
                'Bearer realm="emulator",client_id="00000003-0000-0ff1-ce00-000000000000"'
            )
            return answer
        method = headers.get("x-http-method", method).upper() if method == "POST" else method
        api_path = path[len(prefix) :]
        if api_path.lower() == "contextinfo":
            if method != "POST":
                raise SharePointError(405, ARGUMENT, "contextInfo requires POST.")
            return self._context_info()
        if method != "GET" and headers.get("x-requestdigest") not in self._digests:
            raise SharePointError(
                403,
                DIGEST_INVALID,
                "The security validation for this page is invalid and might be corrupted. "
                "Please use your web browser's Back button to try your operation again.",
            )
        aliases = self._aliases(raw_query)
        target = self._resolve(split_segments(api_path), aliases)
        return self._dispatch(method, target, body)

    @staticmethod
    def _aliases(raw_query: str) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for pair in raw_query.split("&"):
            key, _, value = pair.partition("=")
            if key.startswith("@"):
                aliases[unquote(key)] = unquote(value)
        return aliases

    def _context_info(self) -> _Answer:
        digest = "0x" + secrets.token_hex(64).upper() + "," + time.strftime("%d %b %Y %H:%M:%S -0000", time.gmtime())
        self._digests.add(digest)
        info = {
            "__metadata": {"type": "SP.ContextWebInformation"},
            "FormDigestValue": digest,
            "FormDigestTimeoutSeconds": 1800,
            "LibraryVersion": "16.0.0.0",
            "SiteFullUrl": self.site_url,
            "WebFullUrl": self.site_url,
            "SupportedSchemaVersions": {
                "__metadata": {"type": "Collection(Edm.String)"},
                "results": ["14.0.0.0", "15.0.0.0"],
            },
        }
        return _json(200, {"d": {"GetContextWebInformation": info}})

    # ----------------------------------------------------------------------------------- paths

    def _server_relative(self, url: object) -> str:
        if not isinstance(url, str):
            raise SharePointError(400, ARGUMENT, "A server-relative URL is required.")
        # No trimming: a name with a trailing blank must reach the name check and be refused.
        if url.lower().startswith(("http://", "https://")):
            url = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        if not url.startswith("/"):
            url = f"{self.site_path}/{url}"
        url = re.sub(r"/+", "/", url)
        return url.rstrip("/") or "/"

    def _find_folder(self, path: str) -> str | None:
        if path in self.folders:
            return path
        lowered = path.lower()
        return next((f for f in self.folders if f.lower() == lowered), None)

    def _find_file(self, path: str) -> str | None:
        if path in self.files:
            return path
        lowered = path.lower()
        return next((f for f in self.files if f.lower() == lowered), None)

    def _existing_folder(self, path: str) -> str:
        found = self._find_folder(path)
        if found is None:
            raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
        return found

    def _existing_file(self, path: str) -> str:
        found = self._find_file(path)
        if found is None:
            raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
        return found

    def _folder_id(self, path: str) -> str:
        return self._folder_ids.setdefault(path, str(uuid.uuid4()))

    def _meta(self, path: str) -> _FileMeta:
        meta = self._file_meta.get(path)
        if meta is None:
            now = _now()
            meta = _FileMeta(str(uuid.uuid4()), self._next_item_id, now, now)
            self._next_item_id += 1
            self._file_meta[path] = meta
            self.list_items.setdefault(path, {})
        return meta

    def _library_at(self, url: str) -> Library | None:
        lowered = url.rstrip("/").lower()
        return next((lib for url_, lib in self.libraries.items() if url_.lower() == lowered), None)

    def _library_of(self, path: str) -> Library | None:
        """The library whose root folder holds ``path`` (files outside libraries have no list item)."""
        lowered = path.lower()
        return next((lib for url, lib in self.libraries.items() if lowered.startswith(url.lower() + "/")), None)

    def _existing_library_of(self, path: str) -> Library:
        library = self._library_of(path)
        if library is None:
            raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
        return library

    def _argument(self, args: dict[str, object], *names: str) -> object:
        for name in names:
            if name in args:
                value = args[name]
                legacy = self.refuse_special_in_legacy_urls and name != "decodedurl"
                if legacy and isinstance(value, str) and ("#" in value or "%" in value):
                    raise SharePointError(
                        400, ARGUMENT, f"'{value}' contains # or %: use the ResourcePath (…UsingPath) API."
                    )
                return value
        raise SharePointError(400, ARGUMENT, f"Parameter {names[0]} is missing.")

    def _resolve(self, segments: list[str], aliases: dict[str, str]) -> _Target:
        target: _Target | None = None
        for segment in segments:
            if isinstance(target, _Operation):
                raise SharePointError(400, INVALID_QUERY, f'The expression "{segment}" is not valid.')
            name, args = parse_segment(segment, aliases)
            step = self._step(target, name, args)
            if step is None:
                raise SharePointError(
                    400, INVALID_QUERY, f'The expression "{"/".join(segments)}" is not valid (at "{segment}").'
                )
            target = step
        if target is None:
            raise SharePointError(400, INVALID_QUERY, "Empty request path.")
        return target

    def _step(  # noqa: C901 - one branch per OData segment kind
        self, target: _Target | None, name: str, args: dict[str, object] | None
    ) -> _Target | None:
        a = args or {}
        if target is None:
            return _Web() if name == "web" and args is None else None
        if isinstance(target, _Web):
            if name == "rootfolder":
                return _Folder(self.site_path)
            if name in ("getfolderbyserverrelativeurl", "getfolderbyserverrelativepath") and args is not None:
                return _Folder(self._server_relative(self._argument(a, "decodedurl", "0")))
            if name in ("getfilebyserverrelativeurl", "getfilebyserverrelativepath") and args is not None:
                return _File(self._server_relative(self._argument(a, "decodedurl", "0")))
            if name == "getfolderbyid" and args is not None:
                wanted = str(self._argument(a, "0", "uniqueid")).lower()
                found = next((p for p, i in self._folder_ids.items() if i == wanted and p in self.folders), None)
                if found is None:
                    raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
                return _Folder(found)
            if name == "getfilebyid" and args is not None:
                wanted = str(self._argument(a, "0", "uniqueid")).lower()
                found = next((p for p, m in self._file_meta.items() if m.unique_id == wanted and p in self.files), None)
                if found is None:
                    raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
                return _File(found)
            if name == "lists" and args is None:
                return _Lists()
            if name in ("getlist", "getlistusingpath") and args is not None:
                url = self._server_relative(self._argument(a, "decodedurl", "0"))
                library = self._library_at(url)
                if library is None:
                    raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
                return _List(library.url)
            if name == "folders":
                return _Folders(self.site_path) if args is None else _Folder(self._child(self.site_path, a))
            return None
        if isinstance(target, _Lists) and name == "getbytitle" and args is not None:
            # The Title only: the default library is titled "Documents", its URL name "Shared Documents"
            # does not find it.
            title = str(self._argument(a, "0"))
            titled = next((lib for lib in self.libraries.values() if lib.title.lower() == title.lower()), None)
            if titled is None:
                raise SharePointError(
                    404, LIST_MISSING, f"List '{title}' does not exist at site with URL '{self.site_url}'."
                )
            return _List(titled.url)
        if isinstance(target, _List) and name == "rootfolder":
            return _Folder(target.path)
        if isinstance(target, _Folder):
            if name == "folders":
                return _Folders(target.path) if args is None else _Folder(self._child(target.path, a))
            if name == "files":
                return _Files(target.path) if args is None else _File(self._child(target.path, a))
            if name == "parentfolder" and args is None:
                return _Folder(target.path.rsplit("/", 1)[0] or "/")
            if name == "addsubfolderusingpath" and args is not None:
                return _Operation(_Folders(target.path), "addusingpath", a)
            return None
        if isinstance(target, (_Folders, _Files)) and name in ("add", "addusingpath") and args is not None:
            return _Operation(target, name, a)
        if isinstance(target, _File):
            if name in ("$value", "openbinarystream") and args in (None, {}):
                return _Value(target.path)
            if name == "listitemallfields" and args is None:
                return _Item(target.path)
            if name == "parentfolder" and args is None:
                return _Folder(target.path.rsplit("/", 1)[0])
            if name in ("startupload", "continueupload", "finishupload") and args is not None:
                return _Operation(target, name, a)
            if name == "cancelupload":  # the library sends uploadId in the JSON body
                return _Operation(target, name, a)
            if name in ("moveto", "movetousingpath") and args is not None:
                return _Operation(target, name, a)
            return None
        if isinstance(target, _Item):
            if name == "parentlist" and args is None:
                return _List(self._existing_library_of(target.path).url)
            if name == "validateupdatelistitem":
                return _Operation(target, name, a)
        return None

    def _child(self, parent: str, args: dict[str, object]) -> str:
        name = self._argument(args, "0", "decodedurl")
        if not isinstance(name, str):
            raise SharePointError(400, ARGUMENT, "A name is required.")
        return name if name.startswith("/") else f"{parent.rstrip('/')}/{name}"

    # ----------------------------------------------------------------------------------- dispatch

    def _dispatch(self, method: str, target: _Target, body: bytes) -> _Answer:
        if isinstance(target, _Operation):
            if method != "POST":
                raise SharePointError(405, ARGUMENT, "Service operations require POST.")
            return self._operation(target, body)
        if method == "GET":
            return self._get(target)
        if isinstance(target, _Item) and method == "MERGE":
            return self._merge_item(target.path, body)
        if isinstance(target, _File) and method == "DELETE":
            self._forget(self._existing_file(target.path))
            return _Answer(200, b"")
        if isinstance(target, _Folder) and method == "DELETE":
            path = self._existing_folder(target.path)
            for p in [f for f in self.folders if f == path or f.startswith(path + "/")]:
                self.folders.discard(p)
            for p in [f for f in self.files if f.startswith(path + "/")]:
                self._forget(p)
            return _Answer(200, b"")
        if isinstance(target, _Value) and method == "PUT":
            path = self._existing_file(target.path)
            self._store(path, body)
            return _Answer(204)
        raise SharePointError(405, ARGUMENT, f"{method} is not supported on this resource.")

    def _get(self, target: _Target) -> _Answer:
        if isinstance(target, _Web):
            return _json(200, {"d": self._web_entity()})
        if isinstance(target, _Folder):
            return _json(200, {"d": self._folder_entity(self._existing_folder(target.path))})
        if isinstance(target, _Folders):
            parent = self._existing_folder(target.parent)
            children = sorted(f for f in self.folders if f.rsplit("/", 1)[0] == parent and f != parent)
            return _json(200, {"d": {"results": [self._folder_entity(f) for f in children]}})
        if isinstance(target, _Files):
            folder = self._existing_folder(target.folder)
            names = sorted(f for f in self.files if f.rsplit("/", 1)[0] == folder)
            return _json(200, {"d": {"results": [self._file_entity(f) for f in names]}})
        if isinstance(target, _File):
            return _json(200, {"d": self._file_entity(self._existing_file(target.path))})
        if isinstance(target, _Value):
            data = self.files[self._existing_file(target.path)]
            self.content_served += len(data)
            return _Answer(200, data, "application/octet-stream")
        if isinstance(target, _Item):
            return _json(200, {"d": self._item_entity(self._existing_file(target.path))})
        if isinstance(target, _List):
            return _json(200, {"d": self._list_entity(self.libraries[target.path])})
        if isinstance(target, _Lists):
            return _json(200, {"d": {"results": [self._list_entity(lib) for lib in self.libraries.values()]}})
        raise SharePointError(400, INVALID_QUERY, "This resource cannot be read.")

    def _operation(self, op: _Operation, body: bytes) -> _Answer:
        if isinstance(op.target, _Folders):
            name = str(self._argument(op.args, "0", "decodedurl", "url"))
            return self._add_folder(op.target.parent, name)
        if isinstance(op.target, _Files):
            name = str(self._argument(op.args, "url", "decodedurl", "0"))
            overwrite = op.args.get("overwrite", False) is True
            return self._add_file(op.target.folder, name, overwrite, body)
        if isinstance(op.target, _File):
            path = self._existing_file(op.target.path)
            if op.name in ("moveto", "movetousingpath"):
                if not {"newurl", "decodedurl"} & op.args.keys():  # parameters sent in the JSON body
                    params = {k.lower(): v for k, v in self._json_body(body).items()}
                    op = _Operation(op.target, op.name, {**op.args, **params})
                return self._move(op, path)
            if op.name == "cancelupload" and "uploadid" not in op.args:
                params = {k.lower(): v for k, v in self._json_body(body).items()}
                op = _Operation(op.target, op.name, {**op.args, **params})
            return self._upload_step(op, path, body)
        if isinstance(op.target, _Item) and op.name == "validateupdatelistitem":
            return self._validate_update(self._existing_file(op.target.path), body)
        raise SharePointError(400, INVALID_QUERY, f"Operation {op.name} is not supported.")

    def _add_folder(self, parent: str, name: str) -> _Answer:
        path = name if name.startswith("/") else f"{parent.rstrip('/')}/{name}"
        path = self._server_relative(path)
        existing = self._find_folder(path)
        if existing is None:
            parent_path, leaf = path.rsplit("/", 1)
            if self._find_folder(parent_path) is None:
                raise SharePointError(404, FILE_NOT_FOUND, "File Not Found.")
            _check_name(leaf, library_root_folder=self._library_at(parent_path) is not None)
            self._check_length(path)
            if self._find_file(path) is not None:
                raise SharePointError(400, FILE_EXISTS, f"A file with the name {path} already exists.")
            existing = f"{self._find_folder(parent_path)}/{leaf}"
            self.folders.add(existing)
        return _json(200, {"d": self._folder_entity(existing)})

    def _add_file(self, folder: str, name: str, overwrite: bool, body: bytes) -> _Answer:
        folder_path = self._existing_folder(folder)
        path = self._server_relative(name if name.startswith("/") else f"{folder_path}/{name}")
        parent_path, leaf = path.rsplit("/", 1)
        parent = self._existing_folder(parent_path)
        _check_name(leaf)
        self._check_length(path)
        existing = self._find_file(path)
        if existing is not None and not overwrite:
            raise SharePointError(
                400, FILE_EXISTS, f"A file with the name {existing[len(self.site_path) + 1 :]} already exists."
            )
        if self._find_folder(path) is not None:
            raise SharePointError(400, FILE_EXISTS, f"A folder with the name {path} already exists.")
        path = existing or f"{parent}/{leaf}"
        self._store(path, body)
        return _json(200, {"d": self._file_entity(path)})

    def _store(self, path: str, data: bytes) -> None:
        previous = self.files.get(path)
        self.files[path] = data
        meta = self._meta(path)
        library = self._library_of(path)
        if previous is not None and (library is None or library.versioning):
            # An overwrite in a versioned library is a new major version; the old content stays.
            self.versions.setdefault(path, []).append(previous)
            meta.version += 1
        meta.modified = _now()

    def _forget(self, path: str) -> None:
        del self.files[path]
        self._file_meta.pop(path, None)
        self.list_items.pop(path, None)
        self.versions.pop(path, None)
        for upload_id in [u for u, session in self._uploads.items() if session.path == path]:
            del self._uploads[upload_id]

    def _move(self, op: _Operation, path: str) -> _Answer:
        """File.MoveTo(newUrl, flags) / File.MoveToUsingPath(DecodedUrl, moveOperations): the file, its list
        item, UniqueId and history take the new URL in one step. Without the Overwrite flag (1) a file
        already at the target is refused (400 -2130575257, "already exists"); with it that file is replaced
        whole, its own item and history gone. The target's name is checked as for an add, its folder must
        exist, and only the documented flags are accepted."""
        using_path = op.name == "movetousingpath"
        url = self._argument(op.args, "decodedurl") if using_path else self._argument(op.args, "newurl", "0")
        flags = self._argument(op.args, "moveoperations") if using_path else self._argument(op.args, "flags", "1")
        if not isinstance(flags, int) or flags & ~MOVE_FLAGS:
            raise SharePointError(400, ARGUMENT, "The value of the flags is not valid.")
        target = self._server_relative(url)
        if not target.lower().startswith(self.site_path.lower() + "/"):
            raise SharePointError(400, ARGUMENT, "URL must refer to the current site collection.")
        parent_path, leaf = target.rsplit("/", 1)
        parent = self._existing_folder(parent_path)
        _check_name(leaf)
        self._check_length(target)
        if self._find_folder(target) is not None:
            raise SharePointError(400, FILE_EXISTS, f"A folder with the name {target} already exists.")
        existing = self._find_file(target)
        if existing == path:
            return _json(200, {"d": {op.name: None}})
        if existing is not None:
            if not flags & MOVE_OVERWRITE:
                raise SharePointError(
                    400, FILE_EXISTS, f"A file with the name {existing[len(self.site_path) + 1 :]} already exists."
                )
            self._forget(existing)
        moved = f"{parent}/{leaf}"
        self.files[moved] = self.files.pop(path)
        self._file_meta[moved] = self._file_meta.pop(path)
        for state in (self.list_items, self.versions):
            if path in state:
                state[moved] = state.pop(path)  # type: ignore[assignment]
        for session in self._uploads.values():
            if session.path == path:
                session.path = moved
        return _json(200, {"d": {op.name: None}})

    def _check_length(self, path: str) -> None:
        if len(path) > MAX_PATH:
            raise SharePointError(400, ARGUMENT, f"The URL is too long ({len(path)} > {MAX_PATH} characters).")

    def _upload_step(self, op: _Operation, path: str, body: bytes) -> _Answer:
        """File.StartUpload/ContinueUpload/FinishUpload/CancelUpload (Microsoft.SharePoint.Client.File):
        the session is keyed by the uploadId GUID and bound to its file (which must exist); the file's
        content changes only at FinishUpload; StartUpload is idempotent for the same id and fragment;
        CancelUpload drops the session and deletes a file that held nothing before it."""
        raw_id = str(self._argument(op.args, "uploadid"))
        try:
            upload_id = str(uuid.UUID(raw_id.strip("{}")))
        except ValueError:
            raise SharePointError(
                400, INVALID_QUERY, f"The value '{raw_id}' of parameter 'uploadId' is not a valid Edm.Guid."
            ) from None
        session = self._uploads.get(upload_id)
        if op.name == "startupload":
            if session is not None and (session.path != path or session.first != body):
                raise SharePointError(400, ARGUMENT, f"Upload session {upload_id} already exists.")
            if session is None:
                self._uploads[upload_id] = _Upload(path, body, bytearray(body))
            return _json(200, {"d": {"StartUpload": str(len(body))}})
        if session is None or session.path != path:
            raise SharePointError(404, FILE_NOT_FOUND, f"Upload session {upload_id} was not found.")
        if op.name == "cancelupload":
            del self._uploads[upload_id]
            if not self.files[path] and self._meta(path).version == 1:
                # "If the file doesn't already exist in the library, the partially updated file will be
                # deleted": the empty stub a client adds to open the session goes too.
                self._forget(path)
            return _json(200, {"d": {"CancelUpload": None}})
        offset = self._argument(op.args, "fileoffset")
        if offset != len(session.data):
            raise SharePointError(
                400, ARGUMENT, f"fileOffset {offset} does not match the {len(session.data)} bytes received so far."
            )
        session.data += body
        if op.name == "continueupload":
            return _json(200, {"d": {"ContinueUpload": str(len(session.data))}})
        del self._uploads[upload_id]
        self._store(path, bytes(session.data))
        session.data = bytearray()
        return _json(200, {"d": self._file_entity(path)})

    def _merge_item(self, path: str, body: bytes) -> _Answer:
        path = self._existing_file(path)
        library = self._existing_library_of(path)
        values = {k: v for k, v in self._json_body(body).items() if k != "__metadata"}
        for name in values:
            if name not in library.columns and name not in BUILTIN_COLUMNS and name not in library.read_only:
                raise SharePointError(
                    400,
                    INVALID_QUERY,
                    f"The property '{name}' does not exist on type '{library.entity_type()}'. "
                    "Make sure to only use property names that are defined by the type.",
                )
        self._meta(path)
        self.list_items.setdefault(path, {}).update(values)
        return _Answer(204)

    def _validate_update(self, path: str, body: bytes) -> _Answer:
        """ListItem.ValidateUpdateListItem: HTTP 200 and one result per field, each with HasException,
        ErrorCode and ErrorMessage; a field SharePoint cannot set fails alone in its result, and when any
        field fails the item is left unchanged."""
        payload = self._json_body(body)
        form_values = payload.get("formValues")
        if isinstance(form_values, dict):  # {"results": [...]} in verbose JSON
            form_values = form_values.get("results")
        if not isinstance(form_values, list):
            raise SharePointError(400, ARGUMENT, "formValues is required.")
        library = self._existing_library_of(path)
        item_id = self._meta(path).item_id
        updates: dict[str, object] = {}
        results = []
        for value in form_values:
            if not isinstance(value, dict) or "FieldName" not in value:
                raise SharePointError(400, ARGUMENT, "Each form value needs a FieldName.")
            name = str(value["FieldName"])
            error: tuple[int, str] | None = None
            if name in library.read_only:
                error = (FIELD_READ_ONLY_CODE, "This field cannot be updated.")
            elif name not in library.columns and name not in BUILTIN_COLUMNS:
                error = (
                    FIELD_MISSING_CODE,
                    f"Column '{name}' does not exist. It may have been deleted by another user.  {library.url}",
                )
            else:
                updates[name] = value.get("FieldValue")
            results.append(
                {
                    "__metadata": {"type": "SP.ListItemFormUpdateValue"},
                    "ErrorCode": error[0] if error else 0,
                    "ErrorMessage": error[1] if error else None,
                    "FieldName": name,
                    "FieldValue": value.get("FieldValue"),
                    "HasException": error is not None,
                    "ItemId": item_id,
                }
            )
        if len(updates) == len(form_values):
            self.list_items.setdefault(path, {}).update(updates)
        return _json(200, {"d": {"ValidateUpdateListItem": {"results": results}}})

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError as e:
            raise SharePointError(400, ARGUMENT, f"Invalid JSON body: {e}") from e
        if not isinstance(value, dict):
            raise SharePointError(400, ARGUMENT, "A JSON object is required.")
        return value

    # ----------------------------------------------------------------------------------- entities

    def _uri(self, kind: str, path: str) -> str:
        escaped = path.replace("'", "''")
        return f"{self.site_url}/_api/Web/{kind}('{escaped}')"

    def _web_entity(self) -> dict[str, object]:
        return {
            "__metadata": {"type": "SP.Web", "uri": f"{self.site_url}/_api/Web"},
            "Title": self.site_path.rsplit("/", 1)[-1],
            "ServerRelativeUrl": self.site_path,
            "Url": self.site_url,
        }

    def _folder_entity(self, path: str) -> dict[str, object]:
        items = sum(1 for f in self.files if f.rsplit("/", 1)[0] == path) + sum(
            1 for f in self.folders if f != path and f.rsplit("/", 1)[0] == path
        )
        uri = self._uri("GetFolderByServerRelativePath", path)
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.Folder"},
            "Exists": True,
            "IsWOPIEnabled": False,
            "ItemCount": items,
            "Name": "" if path == self.site_path else path.rsplit("/", 1)[-1],
            "ProgID": None,
            "ServerRelativeUrl": path,
            "TimeCreated": _now(),
            "TimeLastModified": _now(),
            "UniqueId": self._folder_id(path),
            "WelcomePage": "",
        }

    def _file_entity(self, path: str) -> dict[str, object]:
        meta = self._meta(path)
        uri = self._uri("GetFileByServerRelativePath", path)
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.File"},
            "CheckInComment": "",
            "CheckOutType": 2,
            "ContentTag": f"{{{meta.unique_id.upper()}}},{meta.version},{meta.version}",
            "CustomizedPageStatus": 0,
            "ETag": f'"{{{meta.unique_id.upper()}}},{meta.version}"',
            "Exists": True,
            "Length": str(len(self.files[path])),
            "Level": 1,
            "MajorVersion": meta.version,
            "MinorVersion": 0,
            "Name": path.rsplit("/", 1)[-1],
            "ServerRelativeUrl": path,
            "TimeCreated": meta.created,
            "TimeLastModified": meta.modified,
            "Title": None,
            "UIVersion": 512 * meta.version,
            "UIVersionLabel": f"{meta.version}.0",
            "UniqueId": meta.unique_id,
        }

    def _item_entity(self, path: str) -> dict[str, object]:
        meta = self._meta(path)
        fields = self.list_items.setdefault(path, {})
        entity: dict[str, object] = {
            "__metadata": {
                "type": self._existing_library_of(path).entity_type(),
                "etag": f'"{meta.version}"',
            },
            "FileSystemObjectType": 0,
            "Id": meta.item_id,
            "ID": meta.item_id,
            "Title": None,
            "FileLeafRef": path.rsplit("/", 1)[-1],
            "FileRef": path,
            "GUID": str(uuid.uuid5(uuid.NAMESPACE_URL, path)),
        }
        entity.update(fields)
        return entity

    def _list_entity(self, library: Library) -> dict[str, object]:
        return {
            "__metadata": {"type": "SP.DocumentLibrary"},
            "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, library.url)),
            "Title": library.title,
            "BaseTemplate": 101,
            "EnableVersioning": library.versioning,
            "ListItemEntityTypeFullName": library.entity_type(),
            "ParentWebUrl": self.site_path,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        server = self.server
        assert isinstance(server, _Server)
        answer = server.emulator.handle(self.command, self.path, headers, body)
        self.send_response(answer.status)
        if answer.body or answer.status != 204:
            self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.body:
            self.wfile.write(answer.body)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_MERGE(self) -> None:
        self._serve()

    def setup(self) -> None:
        super().setup()
        if isinstance(self.server, _Server):
            self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if isinstance(self.server, _Server):
                self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator
        self._connections: set[socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections so their handler threads end with the emulator."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(SHUT_RDWR)


@contextmanager
def sharepoint_emulator(site: str = "team", token: str = "test-token") -> Iterator[Emulator]:  # noqa: S107
    """Serve an emulated site at ``http://127.0.0.1:<free port>/sites/<site>`` for the block."""
    emulator = Emulator(site, token)
    server = _Server(emulator)
    host, port = server.server_address[:2]
    emulator.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield emulator
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)


def app_certificate() -> str:
    """What an admin pastes as a SharePoint destination's `certificate`: the Entra app's PEM private key
    followed by its self-signed certificate (the emulator takes a token instead; nothing signs with it)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "filerelay-test")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # nothing checks its validity
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (pem_key + certificate.public_bytes(serialization.Encoding.PEM)).decode()
