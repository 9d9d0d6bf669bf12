"""Unit tests for the pure ArchiveLink protocol helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filerelay.api.archivelink.protocol import (
    MAX_CONTENT_TYPE_LENGTH,
    ArchiveLinkRequest,
    ContentType,
    Param,
    ProtocolError,
    byte_range,
    format_records,
    format_search_result,
    parse_content_type,
    parse_expiration,
    parse_offset,
    parse_query,
    parse_records,
    sap_date,
    sap_time,
    search,
    validate_id,
    without_empty_parameters,
)
from tests.support.archivelink_search import search_bytes, search_file

SAP_EXAMPLE = (
    b"get&pVersion=0046&contRep=K1&docId=361A524A3ECB5459E0000800099245EC"
    b"&accessMode=r&authId=pawdf054_BCE_26&expiration=19981104091537"
)


# --- parse_query -----------------------------------------------------------------------------------


def test_sap_example_keeps_url_order_and_raw_values() -> None:
    request = parse_query(SAP_EXAMPLE)
    assert request.command == "get"
    assert [p.name for p in request.params] == [
        "pVersion",
        "contRep",
        "docId",
        "accessMode",
        "authId",
        "expiration",
    ]
    signed = {"contRep", "docId", "accessMode", "authId", "expiration"}
    message = "".join(p.raw for p in request.params if p.name in signed)
    assert message == "K1361A524A3ECB5459E0000800099245ECrpawdf054_BCE_2619981104091537"


def test_raw_value_stays_percent_encoded_and_value_is_decoded() -> None:
    request = parse_query(b"info&authId=CN%3DMNDT,OU%3DDEV&contRep=K1")
    assert request.raw("authId") == "CN%3DMNDT,OU%3DDEV"
    assert request.get("authId") == "CN=MNDT,OU=DEV"
    assert request.params[0] == Param("authId", "CN%3DMNDT,OU%3DDEV", "CN=MNDT,OU=DEV")


def test_plus_is_data_not_a_blank() -> None:
    request = parse_query(b"get&secKey=MIIB+abc%2Bdef%2F%3D%3D")
    assert request.get("secKey") == "MIIB+abc+def/=="
    assert request.raw("secKey") == "MIIB+abc%2Bdef%2F%3D%3D"


def test_utf8_values_are_decoded() -> None:
    assert parse_query(b"info&x=%C3%A4%20b").get("x") == "\u00e4 b"


def test_tokens_without_value_and_empty_tokens() -> None:
    request = parse_query(b"create&&docProt&contRep=K1&")
    assert request.command == "create"
    assert request.params == (Param("docProt", "", ""), Param("contRep", "K1", "K1"))
    assert request.has("docProt")
    assert request.get("docProt") == ""


def test_command_alone() -> None:
    assert parse_query(b"serverInfo") == ArchiveLinkRequest("serverInfo", ())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (b"", "no command given"),
        (b"&contRep=K1", "no command given"),
        (b"command=info&contRep=K1", "the first query token must be the command"),
        (b"contRep=K1&info", "the first query token must be the command"),
        (b"=info", "the first query token must be the command"),
        (b"in%20fo&contRep=K1", "invalid command"),
        (b"info&contRep=\xc3\xa4", "the query string must be 7-bit ASCII"),
        (b"info\xff", "the query string must be 7-bit ASCII"),
        (b"info&contRep=K1&contRep=K2", "parameter contRep appears more than once"),
        (b"info&contRep=K1&CONTREP=K2", "parameter CONTREP appears more than once"),
        (b"info&docProt&docprot=r", "parameter docprot appears more than once"),
        (b"info&x=%FF", "parameter x is not valid UTF-8"),
        (b"info&x=%C3", "parameter x is not valid UTF-8"),
        (b"info&x=a%0Ab", "parameter x contains a control character"),
        (b"info&x=a%7F", "parameter x contains a control character"),
        (b"info&x=a\tb", "parameter x contains a control character"),
        (b"info&=K1", "invalid parameter name"),
        (b"info&1x=K1", "invalid parameter name"),
        (b"info&con%52ep=K1", "invalid parameter name"),
        (b"info&a b=K1", "invalid parameter name"),
    ],
)
def test_parse_query_rejects(query: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match="^" + message) as info:
        parse_query(query)
    assert info.value.status == 400
    assert info.value.description.startswith(message)
    assert all(0x20 <= ord(c) < 0x7F for c in info.value.description)


def test_lookup_prefers_exact_name_then_case_insensitive() -> None:
    request = ArchiveLinkRequest("get", (Param("CONTREP", "A", "A"), Param("contRep", "B%41", "BA")))
    assert request.get("contRep") == "BA"
    assert request.raw("contRep") == "B%41"
    assert request.get("contrep") == "A"
    assert request.get("docId") is None
    assert request.raw("docId") is None
    assert not request.has("docId")
    assert request.has("ContRep")


def test_require() -> None:
    request = parse_query(b"get&contRep=K1&docId=&compid=data")
    assert request.require("contRep") == "K1"
    assert request.require("compId") == "data"
    for name in ("docId", "pVersion"):
        with pytest.raises(ProtocolError, match=f"^missing mandatory parameter {name}$"):
            request.require(name)


# --- records -----------------------------------------------------------------------------------------


def test_format_records() -> None:
    body = format_records(
        [
            [("serverStatus", "running"), ("serverStatusDescription", 'say "hi"')],
            [("contRep", "K1"), ("contRepDescription", "Gr\u00fc\u00dfe\tund\r\n")],
            [],
        ]
    )
    assert body == (
        b'serverStatus="running";serverStatusDescription="say ""hi""";\r\n'
        b'contRep="K1";contRepDescription="Gr??e?und??";\r\n'
        b"\r\n"
    )
    assert format_records([]) == b""


def test_format_records_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match="invalid record key"):
        format_records([[('a"b', "x")]])


def test_parse_records_tolerates_lf_blank_lines_and_missing_final_semicolon() -> None:
    body = b'\r\na="1";b="x "";y";\n\n  c="";d="q""" \r\n'
    assert parse_records(body) == [{"a": "1", "b": 'x ";y'}, {"c": "", "d": 'q"'}]
    assert parse_records(b"") == []


@pytest.mark.parametrize(
    "body",
    [
        b'a="1"b="2";',
        b'a="1',
        b'a="x"";',
        b"a=1;",
        b'"a"="1";',
        b'a="1";;',
        b'a ="1";',
        b'a="1";a="2";',
        b'a="\xe4";',
        b'a="x\ry";',
        b'a="x\ty";',
    ],
)
def test_parse_records_rejects(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_records(body)


_KEYS = st.sampled_from(["a", "B", "contRep", "x-1", "k_2", "serverStatusDescription"])
_VALUES = st.text(alphabet="a \";='\\x~", max_size=12)


@settings(max_examples=100, database=None, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=5), max_size=5))
def test_records_round_trip(records: list[dict[str, str]]) -> None:
    assert parse_records(format_records(list(r.items()) for r in records)) == records


# --- content types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ContentType("application/octet-stream")),
        ("", ContentType("application/octet-stream")),
        ("   ", ContentType("application/octet-stream")),
        ("application/pdf", ContentType("application/pdf")),
        ("Image/TIFF", ContentType("image/tiff")),
        ("application/x-alf; charset=", ContentType("application/x-alf")),
        ("application/x-alf; charset=\"\"; version=''", ContentType("application/x-alf", version="''")),
        (
            "text/plain; charset=ISO-8859-1; version=1.0",
            ContentType("text/plain", "ISO-8859-1", "1.0"),
        ),
        ('text/plain;CHARSET="utf-8";Version="0.1 beta"', ContentType("text/plain", "utf-8", "0.1 beta")),
        ("text/plain; boundary=x; foo; charset=UTF-8", ContentType("text/plain", "UTF-8")),
        ("text/plain; charset=a; charset=b", ContentType("text/plain", "a")),
        (" text/plain ;", ContentType("text/plain")),
        # What clients send that is not a media type: read what can be read, never refuse.
        ("Content-Type: application/pdf", ContentType("application/pdf")),
        ("content-type:image/tiff; charset=x", ContentType("image/tiff", "x")),
        ("pdf", ContentType("application/pdf")),
        ("TIF", ContentType("image/tiff")),
        ("text", ContentType("text/plain")),
        ("invoice", ContentType("application/octet-stream")),
        ("/plain", ContentType("application/octet-stream")),
        ("text/", ContentType("application/octet-stream")),
        ("text/pl ain", ContentType("application/octet-stream")),
        (";charset=x", ContentType("application/octet-stream")),
        ("a/b/c", ContentType("application/octet-stream")),
        ("\xe9/\xe9", ContentType("application/octet-stream")),
    ],
)
def test_parse_content_type(header: str | None, expected: ContentType) -> None:
    parsed = parse_content_type(header)
    assert dataclasses.replace(parsed, sent=None) == expected
    # The header itself is kept as sent, to be served back on get/info.
    assert parsed.sent == ((header or "").strip().encode("ascii", "replace").decode() or None)
    assert parsed.header() == without_empty_parameters(parsed.sent or "application/octet-stream")


@pytest.mark.parametrize(
    ("sent", "served"),
    [
        ("application/pdf; charset=; version=1.7", "application/pdf; version=1.7"),
        ("application/x-alf; charset=", "application/x-alf"),
        ('application/pdf; charset=""; version= ', "application/pdf"),
        ("application/pdf;charset=;version=1.7", "application/pdf;version=1.7"),
        ("text/plain; CHARSET = ; version=1.0", "text/plain; version=1.0"),
        ('application/pdf; name="a;b=;c"; charset=', 'application/pdf; name="a;b=;c"'),
        ('application/pdf; name="q\\";x=;"; v=1', 'application/pdf; name="q\\";x=;"; v=1'),
        ("text/plain; charset=ISO-8859-1; version=1.0", "text/plain; charset=ISO-8859-1; version=1.0"),
        ("text/plain ;", "text/plain ;"),  # an empty list item is valid: kept
        ("text/plain; foo", "text/plain; foo"),  # not a parameter SAP left empty: as sent
        ("x-sap/ein typ!", "x-sap/ein typ!"),
    ],
)
def test_a_served_type_leaves_out_the_parameters_sent_empty(sent: str, served: str) -> None:
    assert without_empty_parameters(sent) == served
    assert parse_content_type(sent).header() == served


def test_a_sent_content_type_loses_control_characters_and_is_bounded() -> None:
    parsed = parse_content_type("application/pdf;\x01 version=\x7f1.4")
    assert (parsed.sent, parsed.mime, parsed.version) == ("application/pdf; version=1.4", "application/pdf", "1.4")
    long = "application/" + "x" * 300
    kept = parse_content_type(long)
    assert kept.sent == long[:MAX_CONTENT_TYPE_LENGTH]
    assert len(kept.sent) == 255
    assert kept.mime == long[:255]
    assert parse_content_type("text/plain; charset=" + "u" * 100).charset == "u" * 64  # the column's size


@pytest.mark.parametrize(
    ("content_type", "header"),
    [
        (ContentType("application/pdf"), "application/pdf"),
        (ContentType("text/plain", "ISO-8859-1", "1.0"), "text/plain; charset=ISO-8859-1; version=1.0"),
        (ContentType("text/plain", version="2"), "text/plain; version=2"),
        (ContentType("text/plain", 'a "b"'), 'text/plain; charset="a \\"b\\""'),
    ],
)
def test_content_type_header(content_type: ContentType, header: str) -> None:
    """Without the header as sent (documents stored before it was kept), the parsed type is served."""
    assert content_type.header() == header
    assert dataclasses.replace(parse_content_type(header), sent=None) == content_type
    assert dataclasses.replace(content_type, sent="pdf").header() == "pdf"


# --- dates, offsets, ids -------------------------------------------------------------------------------


def test_sap_date_and_time_are_utc() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    value = dt.datetime(2025, 1, 1, 1, 2, 3, 999999, tzinfo=berlin)
    assert sap_date(value) == "2024-12-31"
    assert sap_time(value) == "23:02:03"
    with pytest.raises(ValueError, match="timezone-aware"):
        sap_date(dt.datetime(2025, 1, 1))


def test_parse_expiration() -> None:
    assert parse_expiration("19981104091537") == dt.datetime(1998, 11, 4, 9, 15, 37, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1998110409153",
        "199811040915370",
        "1998110409153a",
        "19981304091537",
        "1998-11-04091",
        "19981104091537\n",
    ],
)
def test_parse_expiration_rejects(value: str) -> None:
    with pytest.raises(ProtocolError, match="expiration"):
        parse_expiration(value)


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        (None, 0, 0),
        ("", -1, -1),
        ("0", 5, 0),
        ("-1", 0, -1),
        ("007", 0, 7),
        ("123456789012", 0, 123456789012),
    ],
)
def test_parse_offset(value: str | None, default: int, expected: int) -> None:
    assert parse_offset("fromOffset", value, default) == expected


@pytest.mark.parametrize("value", ["-2", "+1", " 1", "1.0", "abc", "1e3", "\u0661", "9" * 30])
def test_parse_offset_rejects(value: str) -> None:
    with pytest.raises(ProtocolError, match=r"^parameter toOffset must be an integer >= -1$"):
        parse_offset("toOffset", value, 0)


@pytest.mark.parametrize(
    ("size", "from_offset", "to_offset", "expected"),
    [
        (10, 0, -1, (0, 10)),
        (10, 2, 5, (2, 4)),
        (10, 5, 5, (5, 1)),
        (10, 6, 5, (6, 0)),
        (10, 3, -1, (3, 7)),
        (10, 0, 9, (0, 10)),
        (10, 0, 100, (0, 10)),
        (10, 8, 100, (8, 2)),
        (10, 9, -1, (9, 1)),
        (10, -1, -1, (9, 1)),
        (10, 100, -1, (9, 1)),
        (10, 100, 200, (10, 0)),
        (10, 10, 10, (10, 0)),
        (10, 7, 0, (7, 0)),
        (1, 0, -1, (0, 1)),
        (0, 0, -1, (0, 0)),
        (0, 5, 10, (0, 0)),
    ],
)
def test_byte_range(size: int, from_offset: int, to_offset: int, expected: tuple[int, int]) -> None:
    assert byte_range(size, from_offset, to_offset) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("K" * 33, "longer than 32 characters"),
        ("K\u00e41", "only printable ASCII"),
        ("K\t1", "only printable ASCII"),
        ("K\x7f", "only printable ASCII"),
        (" K1", "leading or trailing blanks"),
        ("K1 ", "leading or trailing blanks"),
    ],
)
def test_validate_id_rejects(value: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=f"^invalid docId: {reason}"):
        validate_id("docId", value, 32)


@pytest.mark.parametrize("value", ["K", "K" * 32, "a b", "~!\"#$%&'()*+,-./:;<=>?@[]^_`{|}"])
def test_validate_id_accepts(value: str) -> None:
    assert validate_id("docId", value, 32) == value


# --- search ----------------------------------------------------------------------------------------------


class SpyFile(io.BytesIO):
    """Records every read so tests can prove the search streams."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


def reference_search(
    data: bytes, pattern: bytes, case_sensitive: bool, from_offset: int, to_offset: int, num_results: int
) -> list[int]:
    """Byte-by-byte, whole-content version of the documented semantics: every offset in the (inclusive)
    range where the pattern starts, overlapping ones too, a match free to run past the range's end."""
    size, length = len(data), len(pattern)
    if size == 0:
        return []
    start = size - 1 if from_offset < 0 or from_offset >= size else from_offset
    end = size - 1 if to_offset < 0 or to_offset >= size else to_offset
    if not case_sensitive:
        data, pattern = data.lower(), pattern.lower()
    forward = start <= end
    lo, hi = (start, end) if forward else (end, start)
    every = [p for p in range(lo, hi + 1) if data[p : p + length] == pattern]
    return (every if forward else every[::-1])[:num_results]


@pytest.mark.parametrize(
    ("data", "pattern", "options", "expected"),
    [
        (b"abcabcabc", b"abc", {}, [0, 3, 6]),
        (b"abcabcabc", b"abc", {"num_results": 2}, [0, 3]),
        (b"abcabcabc", b"abc", {"num_results": 1}, [0]),
        (b"abcabcabc", b"abc", {"from_offset": 1}, [3, 6]),
        (b"abcabcabc", b"abc", {"from_offset": 1, "to_offset": 5}, [3]),
        (b"abcabcabc", b"abc", {"to_offset": 7}, [0, 3, 6]),  # 6 starts within the range
        (b"abcabcabc", b"abc", {"to_offset": 8}, [0, 3, 6]),
        (b"abcabcabc", b"abc", {"from_offset": 3, "to_offset": 3}, [3]),
        (b"abcabcabc", b"abc", {"from_offset": -1, "to_offset": 0}, [6, 3, 0]),
        (b"abcabcabc", b"abc", {"from_offset": 8, "to_offset": 0, "num_results": 1}, [6]),
        (b"abcabcabc", b"abc", {"from_offset": 7, "to_offset": 0}, [6, 3, 0]),
        (b"abcabcabc", b"abc", {"from_offset": 8, "to_offset": 1}, [6, 3]),
        (b"abcabcabc", b"abc", {"from_offset": 100, "to_offset": 2}, [6, 3]),
        (b"aaaa", b"aa", {}, [0, 1, 2]),  # overlapping hits
        (b"aaaaa", b"aa", {"from_offset": -1, "to_offset": 0}, [3, 2, 1, 0]),
        (b"xABCxabc", b"abc", {"case_sensitive": False}, [1, 5]),
        (b"xABCxabc", b"ABC", {"case_sensitive": False}, [1, 5]),
        (b"xABCxabc", b"abc", {"case_sensitive": True}, [5]),
        (b"\xc4\xe4", b"\xe4", {"case_sensitive": False}, [1]),
        (b"xxabcxxabc", b"abc", {"chunk_size": 3}, [2, 7]),
        (b"xxabcxxabc", b"abc", {"chunk_size": 3, "from_offset": -1, "to_offset": 0}, [7, 2]),
        (b"abc", b"abcd", {}, []),
        (b"", b"a", {}, []),
        (b"a", b"a", {"from_offset": 0, "to_offset": 0}, [0]),
    ],
)
def test_search(data: bytes, pattern: bytes, options: dict[str, int], expected: list[int]) -> None:
    assert search_bytes(data, pattern, **options) == expected


@pytest.mark.parametrize(
    ("pattern", "num_results", "message"),
    [(b"", 1, "pattern must not be empty"), (b"a", 0, "numResults"), (b"a", -1, "numResults")],
)
def test_search_rejects(pattern: bytes, num_results: int, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        search_bytes(b"abc", pattern, num_results=num_results)


def test_search_streams_in_chunks_and_stops_early() -> None:
    data = b"x" * 1000 + b"needle" + b"y" * 10_000 + b"needle"
    spy = SpyFile(data)
    hits = search_file(spy, len(data), b"NEEDLE", case_sensitive=False, num_results=1, chunk_size=64)
    assert hits == [1000]
    assert max(spy.reads) <= 64
    assert sum(spy.reads) < 1200

    spy = SpyFile(data)
    hits = search_file(spy, len(data), b"needle", from_offset=-1, to_offset=0, num_results=1, chunk_size=64)
    assert hits == [len(data) - 6]
    assert max(spy.reads) <= 64
    assert sum(spy.reads) < 200


def test_search_reports_truncated_content() -> None:
    with pytest.raises(EOFError):
        search(io.BytesIO(b"abc"), 10, b"z", case_sensitive=True, from_offset=0, to_offset=-1, num_results=1)


@settings(max_examples=200, database=None, deadline=None)
@given(
    data=st.binary(max_size=40).map(lambda b: bytes(b"aAbB\x00"[x % 5] for x in b)),
    pattern=st.sampled_from([b"a", b"A", b"ab", b"aa", b"aba", b"AbA", b"bb\x00", b"aaaa"]),
    case_sensitive=st.booleans(),
    from_offset=st.integers(-1, 45),
    to_offset=st.integers(-1, 45),
    num_results=st.integers(1, 6),
    chunk_size=st.integers(1, 7),
)
def test_search_matches_reference(
    data: bytes,
    pattern: bytes,
    case_sensitive: bool,
    from_offset: int,
    to_offset: int,
    num_results: int,
    chunk_size: int,
) -> None:
    expected = reference_search(data, pattern, case_sensitive, from_offset, to_offset, num_results)
    options = {"from_offset": from_offset, "to_offset": to_offset, "num_results": num_results, "chunk_size": chunk_size}
    assert search_bytes(data, pattern, case_sensitive=case_sensitive, **options) == expected


def test_format_search_result() -> None:
    assert format_search_result([122, 222]) == b"2;122;222;"
    assert format_search_result([]) == b"0;"
