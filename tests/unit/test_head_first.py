"""When the API's worker has a whole request head and hands the connection to a thread."""

from __future__ import annotations

import pytest

from filerelay.cli.head_first import head_complete


@pytest.mark.parametrize(
    ("received", "complete"),
    [
        (b"", False),
        (b"GET / HTTP/1.1", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody bytes", True),
        (b"GET / HTTP/1.1\nHost: a\n\n", True),
        (b"PUT / HTTP/1.1\r\nX-Slow: " + b"a" * 10_000, False),
    ],
)
def test_a_head_is_complete_at_its_empty_line(received: bytes, complete: bool) -> None:
    assert head_complete(received) is complete
    assert head_complete(bytearray(received)) is complete
