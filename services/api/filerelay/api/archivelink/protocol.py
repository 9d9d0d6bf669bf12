"""Pure ArchiveLink wire-format helpers: query parsing, record bodies, offsets, ranges and search."""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
import urllib.parse
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_OFFSET = re.compile(r"-?[0-9]{1,18}")
_EXPIRATION = re.compile(r"[0-9]{14}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MIME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_FIELD = re.compile(r'[ \t]*([A-Za-z][A-Za-z0-9_-]*)="((?:[\x20\x21\x23-\x7e]|"")*)"[ \t]*(;|$)')


class ProtocolError(Exception):
    """A request SAP should not have sent; the caller answers with `status` and X-ErrorDescription."""

    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.status = status


def _shown(text: str, limit: int = 40) -> str:
    # Error descriptions end up in an HTTP header, so never echo raw control or non-ASCII bytes.
    cut = text if len(text) <= limit else text[:limit] + "..."
    return _NOT_PRINTABLE.sub("?", cut)


@dataclass(frozen=True)
class Param:
    name: str
    raw: str
    value: str


@dataclass(frozen=True)
class ArchiveLinkRequest:
    command: str
    params: tuple[Param, ...]

    def _find(self, name: str) -> Param | None:
        exact = next((p for p in self.params if p.name == name), None)
        return exact or next((p for p in self.params if p.name.casefold() == name.casefold()), None)

    def get(self, name: str) -> str | None:
        return param.value if (param := self._find(name)) else None

    def raw(self, name: str) -> str | None:
        return param.raw if (param := self._find(name)) else None

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ProtocolError(f"missing mandatory parameter {name}")
        return value


def _decode_value(name: str, raw: str) -> str:
    try:
        # Not unquote_plus: a literal "+" is data (base64 secKeys), never an encoded blank.
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise ProtocolError(f"parameter {name} is not valid UTF-8 after %-decoding") from None
    if _CONTROL.search(value):
        raise ProtocolError(f"parameter {name} contains a control character")
    return value


def parse_query(raw: bytes) -> ArchiveLinkRequest:
    try:
        query = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("the query string must be 7-bit ASCII") from None
    command, _, rest = query.partition("&")
    if "=" in command:
        raise ProtocolError("the first query token must be the command, e.g. ?info&pVersion=0047&...")
    if not command:
        raise ProtocolError("no command given")
    if not _NAME.fullmatch(command):
        raise ProtocolError(f"invalid command {_shown(command)!r}")
    params: list[Param] = []
    seen: set[str] = set()
    for token in rest.split("&"):
        if not token:
            continue
        name, _, raw_value = token.partition("=")
        if not _NAME.fullmatch(name):
            raise ProtocolError(f"invalid parameter name {_shown(name)!r}")
        if name.casefold() in seen:
            raise ProtocolError(f"parameter {name} appears more than once")
        seen.add(name.casefold())
        params.append(Param(name, raw_value, _decode_value(name, raw_value)))
    return ArchiveLinkRequest(command, tuple(params))


def format_records(records: Iterable[Sequence[tuple[str, str]]]) -> bytes:
    lines: list[str] = []
    for record in records:
        fields: list[str] = []
        for key, value in record:
            if not _NAME.fullmatch(key):
                raise ValueError(f"invalid record key {key!r}")
            printable = _NOT_PRINTABLE.sub("?", value).replace('"', '""')
            fields.append(f'{key}="{printable}";')
        lines.append("".join(fields) + "\r\n")
    return "".join(lines).encode("ascii")


def _parse_record_line(line: str, number: int) -> dict[str, str]:
    record: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        match = _FIELD.match(line, pos)
        if match is None:
            raise ProtocolError(f"malformed record in line {number}")
        key, value = match.group(1), match.group(2).replace('""', '"')
        if key in record:
            raise ProtocolError(f"key {key} appears more than once in line {number}")
        record[key] = value
        pos = match.end()
    return record


def parse_records(body: bytes) -> list[dict[str, str]]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("a record body must be ASCII") from None
    records: list[dict[str, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.removesuffix("\r").strip(" \t")
        if stripped:
            records.append(_parse_record_line(stripped, number))
    return records


# What is kept of a Content-Type as SAP sent it: the column's length, and no control characters.
MAX_CONTENT_TYPE_LENGTH = 255
_HEADER_NAME = re.compile(r"content-type\s*:", re.IGNORECASE)
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class ContentType:
    """A component's type: `mime` (+ charset, version) parsed for destinations and `{ext}`; `sent`, the
    header as the client sent it, served back on get/info the way SAP's own handler does (less any
    parameter it left empty)."""

    mime: str
    charset: str | None = None
    version: str | None = None
    sent: str | None = None

    def header(self) -> str:
        if self.sent:
            return without_empty_parameters(self.sent)
        parts = [self.mime]
        for name, value in (("charset", self.charset), ("version", self.version)):
            if value is not None:
                parts.append(f"{name}={_header_value(value)}")
        return "; ".join(parts)


def without_empty_parameters(header: str) -> str:
    """`header` as sent, less the parameters whose value is empty (`charset=`, `version=""`).

    SAP may send `charset=` when a component has none. RFC 9110 gives a parameter's value one character
    at least, and strict parsers (Go's `mime.ParseMediaType`, JavaMail's `ContentType`) refuse the whole
    header over one empty value, so a viewer would lose the media type too; an empty value says nothing.
    """
    pieces = _split_parameters(header)
    kept = [pieces[0], *(p for p in pieces[1:] if not _EMPTY_PARAMETER.fullmatch(p))]
    return ";".join(kept)


_EMPTY_PARAMETER = re.compile(r'\s*[^=";\s]+\s*=\s*(?:""\s*)?')


def _split_parameters(header: str) -> list[str]:
    """`header` cut at each `;` outside a quoted string (a quoted value may hold `;` and `\\"`)."""
    pieces: list[str] = []
    start, quoted, escaped = 0, False, False
    for position, char in enumerate(header):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            pieces.append(header[start:position])
            start = position + 1
    pieces.append(header[start:])
    return pieces


def _header_value(value: str) -> str:
    if _TOKEN.fullmatch(value):
        return value
    escaped = _NOT_PRINTABLE.sub("?", value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _media_type(text: str) -> str | None:
    """`type/subtype` lower-cased, or the type a bare extension names (`pdf`, `TIF`), or None."""
    mime = text.strip().lower()
    if _MIME.fullmatch(mime):
        return mime
    if _TOKEN.fullmatch(mime):
        guessed, _ = mimetypes.guess_type(f"x.{mime}", strict=False)
        return guessed
    return None


def parse_content_type(header: str | None) -> ContentType:
    """Never refuses: SAP must not lose an archiving over a label (SAP's handler stores any type).

    The header is kept as sent (control characters dropped, non-ASCII as "?", cut at 255 characters).
    What parses gives the media type, charset and version; a value that repeats the header's name
    (`Content-Type: application/pdf`) is read past it, and a bare extension (`pdf`) names its type.
    Anything else is `application/octet-stream` for destinations.
    """
    # Non-ASCII becomes "?": servers disagree on how to put it back into a header (Latin-1, UTF-8).
    sent = _NOT_PRINTABLE.sub("?", _CONTROL.sub("", header or "")).strip()[:MAX_CONTENT_TYPE_LENGTH] or None
    if sent is None:
        return ContentType(OCTET_STREAM)
    mime_text, *params = _HEADER_NAME.sub("", sent, count=1).split(";")
    mime = _media_type(mime_text)
    if mime is None:
        return ContentType(OCTET_STREAM, sent=sent)
    found: dict[str, str | None] = {}
    for param in params:
        name, sep, value = param.partition("=")
        name, value = name.strip().lower(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if sep and name in ("charset", "version") and name not in found:
            found[name] = value[:64] or None
    return ContentType(mime, found.get("charset"), found.get("version"), sent=sent)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(dt.UTC)


def sap_date(value: dt.datetime) -> str:
    return _utc(value).strftime("%Y-%m-%d")


def sap_time(value: dt.datetime) -> str:
    return _utc(value).strftime("%H:%M:%S")


def parse_expiration(value: str) -> dt.datetime:
    if not _EXPIRATION.fullmatch(value):
        raise ProtocolError("expiration must be 14 digits YYYYMMDDHHMMSS (UTC)")
    month, day, hour, minute, second = (int(value[i : i + 2]) for i in range(4, 14, 2))
    try:
        return dt.datetime(int(value[:4]), month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        raise ProtocolError("expiration is not a valid date and time") from None


def parse_offset(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not _OFFSET.fullmatch(value) or int(value) < -1:
        raise ProtocolError(f"parameter {name} must be an integer >= -1")
    return int(value)


def _clamp(offset: int, size: int) -> int:
    # As in SAP's own handler: -1 (any negative) and anything past the end both mean "the last byte".
    return size - 1 if offset < 0 or offset >= size else offset


def byte_range(size: int, from_offset: int, to_offset: int) -> tuple[int, int]:
    if size <= 0:
        return 0, 0
    if from_offset >= size and to_offset >= size:
        # SAP's handler special-cases a range wholly past the end as empty rather than clamping it.
        return size, 0
    start, end = _clamp(from_offset, size), _clamp(to_offset, size)
    return start, max(end - start + 1, 0)


def validate_id(kind: str, value: str, max_length: int) -> str:
    if not value:
        reason = "empty"
    elif len(value) > max_length:
        reason = f"longer than {max_length} characters"
    elif _NOT_PRINTABLE.search(value):
        reason = "only printable ASCII characters are allowed"
    elif value != value.strip(" "):
        reason = "leading or trailing blanks are not allowed"
    else:
        return value
    raise ProtocolError(f"invalid {kind}: {reason}")


class Seekable(Protocol):
    """What a search reads from: a staged file, or a range spooled back from a destination."""

    def seek(self, offset: int, /) -> object: ...

    def read(self, size: int, /) -> bytes: ...


def search_span(size: int, from_offset: int, to_offset: int) -> tuple[int, int]:
    """The bytes a search looks at, as (first, last) offsets, whichever way it runs."""
    start, end = _clamp(from_offset, size), _clamp(to_offset, size)
    return min(start, end), max(start, end)


def _read_at(fp: Seekable, offset: int, length: int) -> bytes:
    fp.seek(offset)
    parts: list[bytes] = []
    missing = length
    while missing > 0:
        part = fp.read(missing)
        if not part:
            raise EOFError(f"content ended before offset {offset + length}")
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def _forward(fp: Seekable, lo: int, hi: int, size: int, pattern: bytes, fold: bool, limit: int, step: int) -> list[int]:
    """Every offset p in [lo, hi) where the pattern starts, ascending; a hit may run past `hi` (the range
    bounds where hits start) and hits may overlap (`aa` in `aaa` is at 0 and 1)."""
    hits: list[int] = []
    keep = len(pattern) - 1
    read_end = min(size, hi + keep)
    buf, buf_start, pos, resume = b"", lo, lo, lo
    while pos < read_end and len(hits) < limit:
        chunk = _read_at(fp, pos, min(step, read_end - pos))
        pos += len(chunk)
        buf += chunk.lower() if fold else chunk
        index = max(resume - buf_start, 0)
        while len(hits) < limit and (index := buf.find(pattern, index)) >= 0 and buf_start + index < hi:
            hits.append(buf_start + index)
            index += 1
        resume = buf_start + index if index >= 0 else buf_start + max(len(buf) - keep, 0)
        # Only the last len(pattern)-1 bytes can still start a match that ends in the next chunk.
        cut = max(len(buf) - keep, 0)
        buf, buf_start = buf[cut:], buf_start + cut
    return hits


def _backward(
    fp: Seekable, lo: int, hi: int, size: int, pattern: bytes, fold: bool, limit: int, step: int
) -> list[int]:
    """The same offsets as `_forward`, descending from `hi` - 1."""
    hits: list[int] = []
    keep = len(pattern) - 1
    pos = min(size, hi + keep)
    bound = pos  # a further hit ends at or before this offset (overlapping the last one is allowed)
    buf = b""
    while pos > lo and len(hits) < limit:
        step_size = min(step, pos - lo)
        pos -= step_size
        chunk = _read_at(fp, pos, step_size)
        buf = (chunk.lower() if fold else chunk) + buf
        while len(hits) < limit and (index := buf.rfind(pattern, 0, bound - pos)) >= 0:
            bound = pos + index + keep
            if pos + index < hi:
                hits.append(pos + index)
        # Only the first len(pattern)-1 bytes can still end a match that starts in the previous chunk.
        buf = buf[:keep]
    return hits


# search and attrSearch answer at most this many hits whatever numResults asks: the answer (and the list
# behind it) must not grow with the component, e.g. 8 MiB of `a` searched for `a` is 8 million offsets.
MAX_SEARCH_HITS = 10_000


def search(
    fp: Seekable,
    size: int,
    pattern: bytes,
    *,
    case_sensitive: bool,
    from_offset: int,
    to_offset: int,
    num_results: int,
    chunk_size: int = 1 << 20,
) -> list[int]:
    if not pattern:
        raise ProtocolError("the search pattern must not be empty")
    if num_results <= 0:
        raise ProtocolError("numResults must be a positive integer")
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if size <= 0:
        return []
    start, end = _clamp(from_offset, size), _clamp(to_offset, size)
    fold = not case_sensitive
    needle = pattern.lower() if fold else pattern
    limit = min(num_results, MAX_SEARCH_HITS)
    if start <= end:
        return _forward(fp, start, end + 1, size, needle, fold, limit, chunk_size)
    return _backward(fp, end, start + 1, size, needle, fold, limit, chunk_size)


def format_search_result(offsets: Sequence[int]) -> bytes:
    return "".join(f"{value};" for value in (len(offsets), *offsets)).encode("ascii")


def content_disposition(file_name: str) -> str:
    """`attachment` with the name as a quoted string (RFC 6266), and as RFC 8187 `filename*` when it is not
    plain ASCII: a name with a quote or a backslash stays one parameter."""
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F else "_" for c in file_name)
    quoted = ascii_name.replace("\\", "\\\\").replace('"', '\\"')
    value = f'attachment; filename="{quoted}"'
    if ascii_name != file_name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(file_name, safe='')}"
    return value


# --- attrSearch: attribute values in a print list's description component (docs/archivelink.md#attrsearch) ---

# A description line longer than this is not an ALF line; it is skipped rather than buffered whole.
MAX_DESCR_LINE = 64 * 1024
_PART_SEPARATOR = re.compile("#|%23", re.IGNORECASE)
_DESCR_LINE = re.compile(rb"\s*([0-9]+)\s+([0-9]+)\s*DAIN(.*)", re.DOTALL)


@dataclass(frozen=True)
class AttrPattern:
    """`position+length+value`: `value` must occur in columns [position, position+length) of a DAIN
    line's attribute text (counted from the first byte after `DAIN`, as ARCHIVELINK_DEFINE_KEY does)."""

    position: int
    length: int
    value: bytes


# position, length (digits) and the value (the rest), the two separators `+` or, from clients that encode
# it, `%2B`: digits hold no `+`, so either spelling splits the same way.
_ATTR_PART = re.compile(r"([0-9]+)(?:\+|%2[Bb])([0-9]+)(?:\+|%2[Bb])(.*)", re.DOTALL)


def parse_attr_patterns(raw: str) -> list[AttrPattern]:
    """The raw (still %-encoded) pattern: parts joined by `#`, each `position+length+value`.

    Split before decoding, as SAP's handler does; the value keeps any further `+` (the third field is
    the rest of the part) and is then %-decoded to bytes. The `#` may also come as `%23`: a literal
    one starts a URL's fragment, which HTTP servers such as gunicorn cut off before the application.
    """
    patterns: list[AttrPattern] = []
    for part in _PART_SEPARATOR.split(raw):
        fields = _ATTR_PART.fullmatch(part)
        if fields is None:
            raise ProtocolError(f"invalid attrSearch pattern part {_shown(part)!r}: expected position+length+value")
        position, length, value = fields.groups()
        decoded = urllib.parse.unquote_to_bytes(value)
        if int(length) == 0 or not decoded:
            raise ProtocolError(f"attrSearch pattern part {_shown(part)!r} has an empty column range or value")
        patterns.append(AttrPattern(int(position), int(length), decoded))
    return patterns


def descr_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines (LF or CRLF) of a description component streamed in chunks; over-long lines are dropped."""
    buf = b""
    skipping = False
    for chunk in chunks:
        buf += chunk
        # Walk the lines by index: cutting the buffer after each line would copy the rest every time.
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            if not skipping:
                yield buf[start:end].removesuffix(b"\r")
            skipping = False
            start = end + 1
        buf = buf[start:]
        if len(buf) > MAX_DESCR_LINE:
            buf, skipping = b"", True
    if buf and not skipping:
        yield buf.removesuffix(b"\r")


def attr_search(
    lines: Iterable[bytes],
    patterns: Sequence[AttrPattern],
    *,
    case_sensitive: bool,
    from_offset: int,
    to_offset: int,
    num_results: int,
) -> list[tuple[int, int]]:
    """(offset, length) in the data component of each DAIN line whose attribute text holds every
    pattern's value in its columns. Lines are taken by their data offset within [fromOffset, toOffset]
    (toOffset -1: no end); fromOffset > toOffset reports them last first, like a backward search."""
    if num_results <= 0:
        raise ProtocolError("numResults must be a positive integer")
    backward = 0 <= to_offset < from_offset
    lo, hi = (to_offset, from_offset) if backward else (from_offset, to_offset)
    wanted = [(p.position, p.position + p.length, p.value if case_sensitive else p.value.lower()) for p in patterns]
    num_results = min(num_results, MAX_SEARCH_HITS)
    # Backwards, the last num_results lines in range are the answer: keep only those.
    hits: deque[tuple[int, int]] = deque(maxlen=num_results if backward else None)
    for line in lines:
        match = _DESCR_LINE.fullmatch(line)
        if match is None:
            continue  # DKEY, DPRL, DEPL and anything that is not an attribute line
        offset, length, text = int(match[1]), int(match[2]), match[3]
        if offset < lo or (hi >= 0 and offset > hi):
            continue
        text = text if case_sensitive else text.lower()
        if all(value in text[start:end] for start, end, value in wanted):
            hits.append((offset, length))
            if not backward and len(hits) == num_results:
                break
    return list(reversed(hits)) if backward else list(hits)


def format_attr_search_result(hits: Sequence[tuple[int, int]]) -> bytes:
    """`count;offset;length;offset;length;…;` (`0;` when nothing matched)."""
    return "".join(f"{value};" for value in (len(hits), *(v for hit in hits for v in hit))).encode("ascii")
