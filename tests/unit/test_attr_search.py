"""attrSearch as pure functions: the pattern, the description component's lines, and the matching of
DAIN lines, the way SAP's own content-server handler reads a print list's ALF description."""

from __future__ import annotations

import re

import pytest

from filerelay.api.archivelink.protocol import (
    MAX_DESCR_LINE,
    AttrPattern,
    ProtocolError,
    attr_search,
    descr_lines,
    format_attr_search_result,
    parse_attr_patterns,
)

# A print list's description: a header, two key definitions (name, 3-digit position, 3-digit length,
# as ARCHIVELINK_DEFINE_KEY writes them) and one DAIN line per indexed stretch of the data component.
DESCR = [
    b"0 0 DPRLV0200",
    b"0 0 DKEYcompany_code" + b" " * 28 + b"000004",
    b"0 0 DKEYdocument_no" + b" " * 29 + b"004010",
    b"73 138 DAIN10000000004711Acme plc",
    b"211 120 DAIN20000000004712Globex",
    b"331 90 DAIN10000000004713acme PLC",
    b"421 12 DEPL",
]


def search(
    *patterns: AttrPattern, case: bool = False, start: int = 0, end: int = -1, n: int = 10
) -> list[tuple[int, int]]:
    return attr_search(DESCR, patterns, case_sensitive=case, from_offset=start, to_offset=end, num_results=n)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0+4+1000", [AttrPattern(0, 4, b"1000")]),
        ("0+4+1000%234+10+0000004711", [AttrPattern(0, 4, b"1000"), AttrPattern(4, 10, b"0000004711")]),
        ("0+4+1000#4+10+4711", [AttrPattern(0, 4, b"1000"), AttrPattern(4, 10, b"4711")]),
        ("14+20+Acme+plc", [AttrPattern(14, 20, b"Acme+plc")]),  # the value is the rest of the part
        ("14+20+Acme%20plc", [AttrPattern(14, 20, b"Acme plc")]),
        ("14+20+a%2Bb", [AttrPattern(14, 20, b"a+b")]),
        # Clients that percent-encode the separators too (other implementations' suites send this).
        ("0%2B4%2B1000", [AttrPattern(0, 4, b"1000")]),
        ("0%2b4%2B1000%234%2B10%2Ba%2Bb", [AttrPattern(0, 4, b"1000"), AttrPattern(4, 10, b"a+b")]),
        ("14+20+Br%F6sel", [AttrPattern(14, 20, b"Br\xf6sel")]),  # bytes as the code page has them
    ],
)
def test_parse_attr_patterns(raw: str, expected: list[AttrPattern]) -> None:
    assert parse_attr_patterns(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("1000", "expected position+length+value"),
        ("0+4", "expected position+length+value"),
        ("x+4+1000", "expected position+length+value"),
        ("0+-4+1000", "expected position+length+value"),
        ("0+4+1000#", "expected position+length+value"),
        ("0+0+1000", "has an empty column range or value"),
        ("0+4+", "has an empty column range or value"),
        ("0+4+a%23b", "part 'b'"),  # %23 separates parts, like '#': a value cannot hold one
    ],
)
def test_parse_attr_patterns_refuses(raw: str, error: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(error)):
        parse_attr_patterns(raw)


def test_only_dain_lines_whose_columns_hold_every_value_match() -> None:
    assert search(AttrPattern(0, 4, b"1000")) == [(73, 138), (331, 90)]
    assert search(AttrPattern(0, 4, b"1000"), AttrPattern(4, 10, b"4713")) == [(331, 90)]
    # The value is looked for inside the columns, not at their start...
    assert search(AttrPattern(4, 10, b"4712")) == [(211, 120)]
    # ...and only inside them: "4711" sits in columns 4-13, not 0-3.
    assert search(AttrPattern(0, 4, b"4711")) == []
    # Columns past the end of a line hold nothing more than the line has.
    assert search(AttrPattern(14, 200, b"Globex")) == [(211, 120)]
    assert search(AttrPattern(40, 10, b"Acme")) == []
    # DKEY, DPRL and DEPL lines are never results, whatever they contain.
    assert search(AttrPattern(0, 60, b"company")) == []


def test_case_folding_follows_case_sensitive() -> None:
    assert search(AttrPattern(14, 20, b"ACME")) == [(73, 138), (331, 90)]
    assert search(AttrPattern(14, 20, b"Acme"), case=True) == [(73, 138)]


def test_offsets_pick_lines_by_their_place_in_the_data_and_backwards_reverses() -> None:
    assert search(AttrPattern(1, 3, b"000")) == [(73, 138), (211, 120), (331, 90)]
    assert search(AttrPattern(1, 3, b"000"), start=100) == [(211, 120), (331, 90)]
    assert search(AttrPattern(1, 3, b"000"), start=73, end=211) == [(73, 138), (211, 120)]
    # fromOffset > toOffset: the same range, last line first; numResults counts from that end.
    assert search(AttrPattern(1, 3, b"000"), start=400, end=0) == [(331, 90), (211, 120), (73, 138)]
    assert search(AttrPattern(1, 3, b"000"), start=400, end=0, n=2) == [(331, 90), (211, 120)]
    assert search(AttrPattern(1, 3, b"000"), n=1) == [(73, 138)]
    assert search(AttrPattern(1, 3, b"000"), start=500) == []


def test_num_results_must_be_positive() -> None:
    with pytest.raises(ProtocolError, match="numResults must be a positive integer"):
        search(AttrPattern(0, 4, b"1000"), n=0)


def test_result_format() -> None:
    assert format_attr_search_result([]) == b"0;"
    assert format_attr_search_result([(73, 138), (331, 90)]) == b"2;73;138;331;90;"


def test_descr_lines_across_chunks_with_crlf_and_without_a_final_newline() -> None:
    text = b"73 138 DAIN1000\r\n211 120 DAIN2000\n\n331 90 DAIN3000"
    for size in (1, 2, 5, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert list(descr_lines(chunks)) == [b"73 138 DAIN1000", b"211 120 DAIN2000", b"", b"331 90 DAIN3000"]


def test_an_over_long_line_is_dropped_not_buffered() -> None:
    huge = b"1 1 DAIN" + b"x" * (MAX_DESCR_LINE + 10)
    chunks = [b"73 138 DAIN1000\n", huge[:40000], huge[40000:], b"\n211 120 DAIN2000\n", huge]
    assert list(descr_lines(chunks)) == [b"73 138 DAIN1000", b"211 120 DAIN2000"]
