"""The e-mail destination's rule for rendered headers: no control character reaches the wire."""

from __future__ import annotations

import pytest

from filerelay.destinations.base import DestinationError
from filerelay.destinations.email import check_headers


@pytest.mark.parametrize("value", ["Invoice 4711 from Z1", "Rechnung Müller (Z1)", 'a;b,c <d@e.f> "g"'])
def test_printable_headers_pass(value: str) -> None:
    check_headers([("From", "sap@acme.example"), ("Subject", value)])


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Invoice\r\nBcc: thief@evil.example", "U+000D"),
        ("Invoice\nBcc: thief@evil.example", "U+000A"),
        ("Invoice\x00", "U+0000"),
        ("Invoice\tA", "U+0009"),
        ("Invoice\x85Bcc: x", "U+0085"),
        ("Invoice\u2028Bcc: x", "U+2028"),
        ("Invoice\x7f", "U+007F"),
    ],
)
def test_a_control_character_fails_for_good_naming_header_and_character(value: str, code: str) -> None:
    with pytest.raises(DestinationError) as raised:
        check_headers([("From", "sap@acme.example"), ("Subject", value)])
    assert raised.value.retryable is False
    assert f"the e-mail header Subject would hold the control character {code}" in str(raised.value)
