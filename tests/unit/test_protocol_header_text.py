"""Text FileRelay puts into HTTP headers from what SAP sent: the X-ErrorDescription of a refused
request (which echoes the offending token) and the charset/version of a stored Content-Type.

Both must stay a valid, bounded header value whatever arrived: control and non-ASCII bytes shown as
"?", long tokens cut at 40 characters with "...", quotes and backslashes escaped inside a quoted
string. A header that breaks here breaks the response SAP gets, not just a log line.
"""

from __future__ import annotations

import pytest

from filerelay.api.archivelink.protocol import ContentType, ProtocolError, parse_query


def description(raw: bytes) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_query(raw)
    return caught.value.description


def test_a_token_of_40_characters_is_echoed_whole() -> None:
    token = "!" + "a" * 39
    assert description(token.encode() + b"&pVersion=0047") == f"invalid command {token!r}"


def test_a_longer_token_is_cut_at_40_characters() -> None:
    token = "!" + "a" * 40
    assert description(token.encode()) == f"invalid command {token[:40] + '...'!r}"


def test_control_characters_in_an_echoed_token_are_shown_as_question_marks() -> None:
    assert description(b"inf\x7fo&pVersion=0047") == "invalid command 'inf?o'"
    assert description(b"info&p\x01V=1") == "invalid parameter name 'p?V'"


@pytest.mark.parametrize(
    ("content_type", "header"),
    [
        (ContentType("text/plain", charset="utf-8"), "text/plain; charset=utf-8"),
        (ContentType("text/plain", version="1.0"), "text/plain; version=1.0"),
        (ContentType("text/plain", charset="utf-8", version="2"), "text/plain; charset=utf-8; version=2"),
        (ContentType("text/plain", charset="a b"), 'text/plain; charset="a b"'),
        (ContentType("text/plain", charset='say "hi"'), 'text/plain; charset="say \\"hi\\""'),
        (ContentType("text/plain", charset="back\\slash"), 'text/plain; charset="back\\\\slash"'),
        (ContentType("text/plain", charset="tab\there\u00e9"), 'text/plain; charset="tab?here?"'),
        (ContentType("application/pdf"), "application/pdf"),
    ],
)
def test_a_content_type_header_quotes_and_escapes_what_is_not_a_token(content_type: ContentType, header: str) -> None:
    assert content_type.header() == header
