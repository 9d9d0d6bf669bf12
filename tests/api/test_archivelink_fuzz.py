"""Hypothesis fuzzing of the ArchiveLink endpoint over real HTTP (raw sockets to the threaded test
server, so any byte can go into the query, any header value and any Content-Length).

Invariants, for every request: no 5xx; every 4xx carries X-ErrorDescription; a rejected request leaves
no document row, no certificate row, no staged file and no wake-up behind; and no staged file
ever exists without the component row that owns it.

Bounded: about 150 examples in all, well under 30 s. The bugs found this way are fixed; each has a
deterministic regression test at the end of this module.
"""

from __future__ import annotations

import gc
import http.client
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from filerelay.db.models import ArchiveDocument, Certificate, Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from filerelay.settings import DEFAULT_MAX_DOCUMENT_BYTES
from tests.support.documents import staged_files
from tests.support.sapclient import SapClient
from tests.support.wakeups import take_wakeups, woken_kinds
from tests.support.workspaces import SIGNATURE_MODES, configure

PATH = b"/archivelink/acme/production"
SEEDED = "FUZZ0000000000000000000000000001"

FUZZ = settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def configured(runtime: Runtime, tmp_path: Path) -> Runtime:
    """Overrides conftest's: one repository per signature mode."""
    return configure(runtime, SIGNATURE_MODES, {"OUT_DIR": str(tmp_path / "out")})


@pytest.fixture
def seeded(server: str, configured: Runtime) -> str:
    """A document in Z1 and in O1 (docProt=d), so commands on existing documents go deep."""
    for repo, doc_prot in (("Z1", ""), ("O1", "d")):
        sap = SapClient(server + PATH.decode(), cont_rep=repo)
        assert sap.create(SEEDED, "data", b"seeded content abc", "text/plain", docProt=doc_prot).status == 201
    return server


# --- sending anything -------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def send(server: str, method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> Raw:
    """One request, written byte for byte; the write side is closed afterwards so a Content-Length
    larger than the body ends in EOF rather than a wait."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
        head += [name + b": " + value for name, value in headers]
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Raw(response.status, response.headers, response.read())


@dataclass(frozen=True)
class State:
    documents: int
    components: int
    certificates: int
    staged: frozenset[str]
    keys: frozenset[str]
    woken: tuple[str, ...]


def state(runtime: Runtime) -> State:
    with session_scope(runtime.sessions) as session:

        def count(model: type) -> int:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

        keys = frozenset(k for k in session.scalars(select(Document.staging_key)) if k)
        return State(
            documents=count(ArchiveDocument),
            components=count(Document),
            certificates=count(Certificate),
            staged=frozenset(p.name for p in staged_files(runtime)),
            keys=keys,
            woken=tuple(woken_kinds(runtime)),
        )


def state_before(runtime: Runtime) -> State:
    """The state before a request, every wake-up sent so far taken (as a worker would): one outstanding
    per kind hides any more, so only thus would a rejected request's wake-up show."""
    take_wakeups(runtime)
    return state(runtime)


def check(runtime: Runtime, before: State, reply: Raw, what: str) -> None:
    after = state(runtime)
    assert reply.status < 500, (reply.status, reply.headers.get("X-ErrorDescription"), what)
    if 400 <= reply.status < 500:
        assert reply.headers.get("X-ErrorDescription"), (reply.status, reply.body[:200], what)
        assert after == before, (reply.status, reply.headers.get("X-ErrorDescription"), what)
    assert after.staged <= after.keys, ("staged files nobody owns", after.staged - after.keys, what)


# --- strategies -------------------------------------------------------------------------------

# Anything the HTTP request line can carry: no whitespace (it splits the line), no '#' (a fragment).
_LINE_SAFE = bytes(b for b in range(1, 256) if not chr(b).isspace() and b != ord("#"))
_COMMANDS = [
    "serverInfo", "putCert", "info", "get", "docGet", "create", "mCreate", "update", "append", "delete",
    "search", "attrSearch", "getCert", "adminContRep", "INFO", "Get", "frobnicate", "",
]  # fmt: skip
_NAMES = [
    "pVersion", "contRep", "docId", "compId", "docProt", "accessMode", "authId", "expiration", "secKey",
    "fromOffset", "toOffset", "pattern", "caseSensitive", "numResults", "resultAs", "Content-Length", "DOCID",
]  # fmt: skip
_GOOD_VALUES = [
    b"0047", b"0045", b"0031", b"Z1", b"S1", b"O1", b"QQ", SEEDED.encode(), b"FUZZNEW1", b"data", b"data1",
    b"-1", b"0", b"5", b"99999999999999999999", b"r", b"rcud", b"", b"CN%3DS4H", b"20260404110000",
    b"19981104091537", b"MAo%3D", b"abc", b"y", b"n", b"ascii", b"html",
]  # fmt: skip
_BAD_ESCAPES = [b"%", b"%G1", b"%zz", b"%FF%FE", b"%00", b"%0A", b"%0D%0A", b"%C3%28", b"%E9", b"%%", b"%2", b"%7F"]

line_bytes = st.binary(max_size=40).map(lambda b: bytes(_LINE_SAFE[x % len(_LINE_SAFE)] for x in b))
values = st.one_of(
    st.sampled_from(_GOOD_VALUES),
    st.sampled_from(_BAD_ESCAPES),
    line_bytes,
    st.integers(1000, 12000).map(lambda n: b"A" * n),  # huge
    st.lists(st.one_of(st.sampled_from(_GOOD_VALUES), st.sampled_from(_BAD_ESCAPES), line_bytes), max_size=4).map(
        b"".join
    ),
)
names = st.one_of(st.sampled_from(_NAMES).map(str.encode), line_bytes)
params = st.lists(
    st.tuples(names, st.one_of(st.none(), values)).map(lambda p: p[0] + (b"=" + p[1] if p[1] is not None else b"")),
    max_size=10,
)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    command = draw(st.one_of(st.sampled_from(_COMMANDS).map(str.encode), line_bytes))
    if draw(st.booleans()):  # mostly well-formed: SAP's prefix, then anything (duplicates included)
        repo = draw(st.sampled_from([b"Z1", b"S1", b"O1", b"QQ"]))
        doc = draw(st.sampled_from([SEEDED.encode(), b"FUZZNEW1", b"FUZZNEW2"]))
        prefix = [b"pVersion=0047", b"contRep=" + repo, b"docId=" + doc]
        rest = prefix + draw(params)
    else:
        rest = draw(params)
    return b"&".join([command, *rest])[:50000]


@given(method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE"]), query=queries(), body=st.binary(max_size=64))
def _query_case(runtime: Runtime, server: str, method: str, query: bytes, body: bytes) -> None:
    before = state_before(runtime)
    headers = [(b"Content-Length", str(len(body)).encode())] if method in ("PUT", "POST") else []
    reply = send(server, method, PATH + b"?" + query, headers, body if headers else b"")
    check(runtime, before, reply, f"{method} {query[:300]!r}")


_CONTENT_TYPES = [
    b"application/pdf",
    b"text/plain; charset=ISO-8859-1; version=1.4",
    b"application/x-alf; charset=",
    b"multipart/form-data",
    b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=B",
    b'multipart/form-data; boundary="B',
    b"multipart/mixed; boundary=B; boundary=C",
    b'application/pdf; charset="unterminated',
    b"/",
    b";;;",
    b"\xe9\xe8/\xff",
    b"x" * 3000,
]
header_values = st.one_of(st.sampled_from(_CONTENT_TYPES), line_bytes)


@st.composite
def header_cases(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[bytes, bytes]], bytes]:
    repo = draw(st.sampled_from(["Z1", "O1", "S1"]))
    method, query = draw(
        st.sampled_from(
            [
                ("PUT", f"create&pVersion=0047&contRep={repo}&docId=FUZZNEW1&compId=data"),
                ("PUT", f"update&pVersion=0047&contRep={repo}&docId={SEEDED}&compId=data"),
                ("PUT", f"append&pVersion=0047&contRep={repo}&docId={SEEDED}&compId=data"),
                ("POST", f"create&pVersion=0047&contRep={repo}&docId=FUZZNEW2"),
                ("POST", f"update&pVersion=0047&contRep={repo}&docId={SEEDED}"),
                ("POST", f"mCreate&pVersion=0047&contRep={repo}&docId=FUZZNEW3"),
                ("PUT", f"putCert&pVersion=0047&contRep={repo}&authId=CN%3DS4H"),
                ("POST", f"putCert&pVersion=0047&contRep={repo}&authId=CN%3DS4H"),
            ]
        )
    )
    body = draw(st.binary(max_size=200))
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"Content-Type", draw(header_values)))
    length = draw(
        st.one_of(
            st.just(str(len(body)).encode()),
            st.integers(0, max(len(body) - 1, 0)).map(lambda n: str(n).encode()),  # shorter: the rest is unread
            st.integers(len(body) + 1, len(body) + 5000).map(lambda n: str(n).encode()),  # longer: early EOF
            st.sampled_from([b"abc", b"-1", b"1e3", b" 5", b"0x10", b"99999999999999999999"]),
            st.none(),
        )
    )
    if length is not None:
        headers.append((b"Content-Length", length))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from([b"X-compId", b"X-docId", b"Content-Type", b"X-Garbage", b"Range"]))
        headers.append((name, draw(header_values)))
    return method, query.encode(), headers, body


@given(case=header_cases())
def _header_case(runtime: Runtime, server: str, case: tuple[str, bytes, list[tuple[bytes, bytes]], bytes]) -> None:
    method, query, headers, body = case
    before = state_before(runtime)
    reply = send(server, method, PATH + b"?" + query, headers, body)
    check(runtime, before, reply, f"{method} {query!r} {headers!r}")


@st.composite
def multipart_cases(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    boundary = draw(st.sampled_from([b"B", b"KPro0123", b"a" * 70, b"--", b"B B"]))
    declared = draw(st.sampled_from([boundary, boundary, boundary, b"OTHER", boundary[:-1] or b"x"]))
    newline = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    chunks: list[bytes] = []
    if draw(st.booleans()):
        chunks.append(draw(st.binary(max_size=30)) + newline)  # preamble
    for _ in range(draw(st.integers(0, 4))):
        content = draw(
            st.one_of(
                st.binary(max_size=80),
                st.just(b"--" + boundary),  # the boundary inside the content, not on its own line
                st.just(b"\r\n--" + boundary + b"X\r\n"),  # a longer line that merely starts like one
                st.just(b"--INNER\r\nX-compId: nested\r\n\r\nnested\r\n--INNER--"),  # nested multipart
            )
        )
        lines = [b"--" + boundary]
        if draw(st.integers(0, 4)):  # mostly present
            lines.append(
                b"X-compId: " + draw(st.one_of(st.sampled_from([b"data", b"data1", b"data", b""]), line_bytes))
            )
        if draw(st.booleans()):
            lines.append(b"X-docId: " + draw(st.sampled_from([b"FUZZNEW4", b"FUZZNEW5", SEEDED.encode(), b""])))
        if draw(st.booleans()):
            lines.append(b"Content-Type: " + draw(header_values))
        if draw(st.booleans()):
            lines.append(
                b"Content-Length: "
                + draw(st.sampled_from([str(len(content)).encode(), str(len(content) + 1).encode(), b"x", b"-1"]))
            )
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from([b"no colon here", b": empty name", b"X-compId data", b"\xff\xfe: v"])))
        chunks.append(newline.join(lines) + newline + newline + content + newline)
    chunks.append(
        draw(
            st.sampled_from(
                [b"--" + boundary + b"--" + newline, b"--" + boundary + b"--", b"--" + boundary + b"-", b"--", b""]
            )
        )
    )
    body = b"".join(chunks)
    if draw(st.integers(0, 4)) == 0:
        body = body[: draw(st.integers(0, len(body)))]  # truncated anywhere
    content_type = draw(
        st.sampled_from(
            [
                b"multipart/form-data; boundary=" + declared,
                b'multipart/form-data; boundary="' + declared + b'"',
                b"multipart/related; boundary=" + declared,
                b"text/plain; boundary=" + declared,
            ]
        )
    )
    query = draw(
        st.sampled_from(
            [
                b"create&pVersion=0047&contRep=Z1&docId=FUZZNEW6",
                b"create&pVersion=0047&contRep=O1&docId=FUZZNEW6&docProt=rd",
                b"update&pVersion=0047&contRep=Z1&docId=" + SEEDED.encode(),
                b"update&pVersion=0047&contRep=S1&docId=" + SEEDED.encode(),
                b"mCreate&pVersion=0047&contRep=Z1&docId=FUZZNEW4",
            ]
        )
    )
    return query, content_type, body


@given(case=multipart_cases())
def _multipart_case(runtime: Runtime, server: str, case: tuple[bytes, bytes, bytes]) -> None:
    query, content_type, body = case
    before = state_before(runtime)
    headers = [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode())]
    reply = send(server, "POST", PATH + b"?" + query, headers, body)
    # mCreate reads the whole body before it commits anything, so a malformed part stores nothing.
    check(runtime, before, reply, f"{query!r} {content_type!r} {body[:300]!r}")


def test_fuzz_query_strings(configured: Runtime, seeded: str) -> None:
    FUZZ(_query_case)(configured, seeded)


def test_fuzz_headers(configured: Runtime, seeded: str) -> None:
    FUZZ(_header_case)(configured, seeded)


def test_fuzz_multipart_bodies(configured: Runtime, seeded: str) -> None:
    FUZZ(_multipart_case)(configured, seeded)


# --- the fixed points of the fuzzing, and the bugs it found --------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "headers", "body", "status"),
    [
        ("GET", b"info&pVersion=0047&contRep=Z1&docId=\xe9", [], b"", 400),
        ("GET", b"info&pVersion=0047&contRep=Z1&docId=%FF%FE", [], b"", 400),
        ("GET", b"info&pVersion=0047&contRep=Z1&docId=%0A", [], b"", 400),
        ("GET", b"info&pVersion=0047&contRep=Z1&docId=" + b"A" * 20000, [], b"", 400),
        ("GET", b"info&pVersion=0047&pVersion=0047&contRep=Z1&docId=X", [], b"", 400),
        ("PUT", b"create&pVersion=0047&contRep=Z1&docId=N&compId=data", [(b"Content-Length", b"100")], b"short", 400),
        (
            "POST",
            b"create&pVersion=0047&contRep=Z1&docId=N",
            [(b"Content-Type", b"multipart/form-data; boundary=B")],
            b"--B\r\nX-compId: a\r\n\r\nx\r\n--B",
            400,
        ),
        (
            "PUT",
            b"putCert&pVersion=0047&contRep=Z1&authId=A",
            [(b"Content-Length", b"5")],
            b"\x30\x82\x01\x00\x00",
            406,
        ),
    ],
)
def test_malformed_requests_are_4xx_with_a_reason_and_store_nothing(
    configured: Runtime,
    seeded: str,
    method: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    status: int,
) -> None:
    before = state_before(configured)
    reply = send(seeded, method, PATH + b"?" + query, headers, body)
    assert reply.status == status, reply.headers.get("X-ErrorDescription")
    check(configured, before, reply, repr(query))


@pytest.mark.parametrize(
    ("query", "content_type"),
    [
        (b"create&pVersion=0047&contRep=Z1&docId=CHUNKED&compId=data", b"application/pdf"),
        (b"create&pVersion=0047&contRep=Z1&docId=CHUNKED", b"multipart/form-data; boundary=B"),
    ],
)
def test_a_malformed_chunked_body_is_400(configured: Runtime, seeded: str, query: bytes, content_type: bytes) -> None:
    before = state_before(configured)
    headers = [(b"Content-Type", content_type), (b"Transfer-Encoding", b"chunked")]
    reply = send(seeded, "PUT" if b"compId" in query else "POST", PATH + b"?" + query, headers, b"zz\r\n--B\r\n")
    check(configured, before, reply, "chunked")
    assert reply.status == 400


def test_put_cert_with_a_truncated_body_is_400(configured: Runtime, seeded: str) -> None:
    before = state_before(configured)
    query = PATH + b"?putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H"
    reply = send(seeded, "PUT", query, [(b"Content-Length", b"1000")], b"")  # the client went away
    check(configured, before, reply, "truncated putCert")
    assert reply.status == 400


def test_an_append_refused_as_too_large_closes_the_old_content(configured: Runtime, seeded: str) -> None:
    before = state_before(configured)
    query = PATH + b"?append&pVersion=0047&contRep=Z1&docId=" + SEEDED.encode() + b"&compId=data"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        reply = send(seeded, "PUT", query, [(b"Content-Length", str(DEFAULT_MAX_DOCUMENT_BYTES + 1).encode())], b"x")
        gc.collect()
    check(configured, before, reply, "oversized append")
    assert reply.status == 413
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_m_create_rejected_mid_body_stores_nothing(configured: Runtime, seeded: str) -> None:
    sap = SapClient(seeded + PATH.decode())
    body = (
        b"--B\r\nX-docId: M1\r\nX-compId: data\r\n\r\none\r\n"
        b"--B\r\nX-docId: M2\r\nX-compId: data\r\n\r\ntwo\r\n"
        b"--B\r\nX-docId: M3\r\nX-compId: data\r\nContent-Length: 50\r\n\r\ncut short\r\n--B--\r\n"
    )
    before = state_before(configured)
    reply = sap.raw("POST", sap.query("mCreate", docId="M1"), body, {"Content-Type": "multipart/form-data; boundary=B"})
    if reply.status >= 400:
        assert reply.error
        assert state(configured) == before
    else:  # the other consistent answer: report each document, as the spec's per-document retCodes allow
        assert {r["docId"]: r["retCode"] for r in reply.records()}.get("M1") == "201"
        assert "M3" in {r["docId"] for r in reply.records()}


def test_an_unknown_http_method_is_400_with_a_reason(configured: Runtime, seeded: str) -> None:
    reply = send(seeded, "PATCH", PATH + b"?info&pVersion=0047&contRep=Z1&docId=" + SEEDED.encode(), [], b"")
    assert reply.status == 400
    assert reply.headers.get("X-ErrorDescription")
