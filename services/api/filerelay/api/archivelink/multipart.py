"""Streaming multipart: read SAP's request bodies part by part, write info/docGet responses."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Protocol

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from filerelay.api.archivelink.protocol import ProtocolError

READ_SIZE = 1024 * 1024
# A request's parts and each part's header bytes are bounded: the parser hands header bytes over as they
# arrive, and they are gathered until the line ends, so without a bound one endless header line (or
# millions of empty parts, each a staging file and a row) grows the process with the body.
MAX_PARTS = 100
MAX_PART_HEADER_BYTES = 16 * 1024


class PartHandler(Protocol):
    def start_part(self, headers: dict[str, str]) -> None: ...
    def part_data(self, data: bytes) -> None: ...
    def end_part(self) -> None: ...


def boundary_of(content_type: str | None) -> bytes:
    if not content_type:
        raise ProtocolError("a multipart body needs a Content-Type header with a boundary")
    mime, options = parse_options_header(content_type)
    if not mime.lower().startswith(b"multipart/"):
        raise ProtocolError(f"expected a multipart/form-data body, got {mime.decode('latin-1')}")
    boundary = options.get(b"boundary")
    if not boundary:
        raise ProtocolError("the multipart Content-Type has no boundary")
    return boundary


class _Bounds:
    """Counts parts and the current part's header bytes as the parser reports them."""

    def __init__(self) -> None:
        self.parts = 0
        self.bytes = 0

    def part(self) -> None:
        self.parts += 1
        self.bytes = 0
        if self.parts > MAX_PARTS:
            raise ProtocolError(f"the request has more than {MAX_PARTS} parts")

    def header_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > MAX_PART_HEADER_BYTES:
            raise ProtocolError(f"part {self.parts} has more than {MAX_PART_HEADER_BYTES} bytes of headers")


def read_parts(read: Callable[[int], bytes], content_type: str | None, handler: PartHandler) -> None:
    """Feed the body through the parser; the handler sees each part's headers, then its bytes in chunks."""
    headers: dict[str, str] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    state = {"ended": False, "in_part": False}
    bounds = _Bounds()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        bounds.header_bytes(end - start)
        field.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        bounds.header_bytes(end - start)
        value.append(data[start:end])

    def on_header_end() -> None:
        name = b"".join(field).decode("latin-1").strip().lower()
        headers[name] = b"".join(value).decode("latin-1").strip()
        field.clear()
        value.clear()

    def on_headers_finished() -> None:
        state["in_part"] = True
        handler.start_part(dict(headers))
        headers.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        handler.part_data(bytes(data[start:end]))

    def on_part_end() -> None:
        if state["in_part"]:
            state["in_part"] = False
            handler.end_part()

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": bounds.part,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
        max_header_count=32,
    )
    try:
        while chunk := read(READ_SIZE):
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ProtocolError(f"malformed multipart body: {exc}") from None
    if not state["ended"]:
        raise ProtocolError("malformed multipart body: it ends before the closing boundary")


class MultipartWriter:
    """Builds a multipart/form-data response around component contents streamed by the caller."""

    def __init__(self) -> None:
        self.boundary = f"FileRelay-{secrets.token_hex(12)}"

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def part_head(self, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [f"--{self.boundary}"] + [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def part_tail() -> bytes:
        return b"\r\n"

    def closing(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode("latin-1")
