"""The multipart reader and writer on their own: what the handler sees however the body is cut into
reads, the header limits, and the errors a client gets."""

from __future__ import annotations

import io
from email.message import Message
from email.parser import BytesParser

import pytest

from filerelay.api.archivelink.multipart import MultipartWriter, boundary_of, read_parts
from filerelay.api.archivelink.protocol import ProtocolError

BODY = (
    b"--B\r\nX-compId: data\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\nfirst part\r\n"
    b"--B\r\nX-compId: note\r\n\r\nsecond\r\n--B--\r\n"
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def start_part(self, headers: dict[str, str]) -> None:
        self.events.append(("start", headers))

    def part_data(self, data: bytes) -> None:
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + data)  # type: ignore[operator]
        else:
            self.events.append(("data", data))

    def end_part(self) -> None:
        self.events.append(("end", None))


def parse(
    body: bytes, read_size: int | None = None, content_type: str = "multipart/form-data; boundary=B"
) -> list[tuple[str, object]]:
    stream = io.BytesIO(body)
    recorder = Recorder()
    read = (lambda n: stream.read(min(n, read_size))) if read_size else stream.read
    read_parts(read, content_type, recorder)
    return recorder.events


EXPECTED = [
    ("start", {"x-compid": "data", "content-type": "text/plain; charset=ISO-8859-1"}),
    ("data", b"first part"),
    ("end", None),
    ("start", {"x-compid": "note"}),
    ("data", b"second"),
    ("end", None),
]


@pytest.mark.parametrize("read_size", [None, 1, 2, 3, 7])
def test_the_handler_sees_the_same_parts_however_the_body_is_cut(read_size: int | None) -> None:
    """Header names and values split over reads arrive whole, and each part ends exactly once."""
    assert parse(BODY, read_size) == EXPECTED


def test_a_part_may_carry_up_to_32_headers() -> None:
    many = "".join(f"X-H{n}: {n}\r\n" for n in range(31))
    ok = f"--B\r\nX-compId: a\r\n{many}\r\nx\r\n--B--\r\n".encode()
    assert len(parse(ok)[0][1]) == 32  # type: ignore[arg-type]
    too_many = f"--B\r\nX-compId: a\r\n{many}X-H99: 1\r\n\r\nx\r\n--B--\r\n".encode()
    with pytest.raises(ProtocolError, match=r"^malformed multipart body: "):
        parse(too_many)


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        (None, "a multipart body needs a Content-Type header with a boundary"),
        ("", "a multipart body needs a Content-Type header with a boundary"),
        ("application/pdf", "expected a multipart/form-data body, got application/pdf"),
        ("multipart/form-data", "the multipart Content-Type has no boundary"),
    ],
)
def test_boundary_errors(content_type: str | None, error: str) -> None:
    with pytest.raises(ProtocolError) as info:
        boundary_of(content_type)
    assert str(info.value.description) == error


def test_a_body_cut_before_its_closing_boundary_is_refused() -> None:
    with pytest.raises(ProtocolError, match="it ends before the closing boundary"):
        parse(BODY[:-8])


def test_the_writer_s_parts_read_back_with_a_standard_parser() -> None:
    writer = MultipartWriter()
    body = (
        writer.part_head([("X-compId", "data"), ("Content-Type", "text/plain")])
        + b"hello"
        + writer.part_tail()
        + writer.part_head([("X-compId", "scan.tif")])
        + b"II*"
        + writer.part_tail()
        + writer.closing()
    )
    message = BytesParser().parsebytes(f"Content-Type: {writer.content_type}\r\n\r\n".encode() + body)
    payload = message.get_payload()
    assert isinstance(payload, list)
    parts = [(p["X-compId"], p.get_payload(decode=True)) for p in payload if isinstance(p, Message)]
    assert parts == [("data", b"hello"), ("scan.tif", b"II*")]
    assert writer.boundary != MultipartWriter().boundary  # a fresh boundary per response
