"""Pure tests of secKey handling (filerelay.api.archivelink.signatures): the signed message, the
s-mandatory companions, freshness, access modes, and CMS verification against signatures made by the
test client and by OpenSSL itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

# Importing the commands registers them, each with its signature guard.
from filerelay.api.archivelink import commands, signatures
from filerelay.api.archivelink.protocol import ProtocolError, parse_query
from filerelay.api.archivelink.signatures import (
    SignatureError,
    SignedRequest,
    check_access,
    check_fresh,
    read_signed_request,
    signed_message,
    verify,
)
from tests.support import signing
from tests.support.signing import (
    KeyKind,
    cached_signer,
    cms_signature,
    ripemd160_signer,
    signed_query,
    url_encode_sec_key,
)

SAP_EXAMPLE = (
    "get&pVersion=0046&contRep=K1&docId=361A524A3ECB5459E0000800099245EC"
    "&accessMode=r&authId=pawdf054_BCE_26&expiration=19981104091537"
)
NOW = dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC)


def message(query: str, command: str | None = None) -> bytes:
    req = parse_query(query.encode("ascii"))
    return signed_message(req, command or req.command.lower())


# --- the signed message ---------------------------------------------------------------------------


def test_sap_own_example() -> None:
    """docs/archivelink.md#signatures-seckey: values only, no names, no separators; pVersion and the command left out."""
    assert message(SAP_EXAMPLE) == b"K1361A524A3ECB5459E0000800099245ECrpawdf054_BCE_2619981104091537"


def test_values_are_signed_raw_not_decoded() -> None:
    query = "get&pVersion=0046&contRep=K1&docId=D1&accessMode=r&authId=CN%3DMNDT,OU%3DDEV&expiration=20260404103000"
    assert message(query) == b"K1D1rCN%3DMNDT,OU%3DDEV20260404103000"
    req = parse_query(query.encode())
    assert req.get("authId") == "CN=MNDT,OU=DEV"  # decoded for everything else


def test_url_order_is_kept() -> None:
    query = "get&expiration=20260404103000&authId=S4H&docId=D1&pVersion=0047&accessMode=r&contRep=K1"
    assert message(query) == b"20260404103000S4HD1rK1"


def test_unsigned_parameters_are_left_out() -> None:
    query = (
        "get&pVersion=0047&contRep=K1&docId=D1&compId=data&fromOffset=0&toOffset=9&resultAs=ascii"
        "&accessMode=r&authId=S4H&expiration=20260404103000&secKey=MAo%3D&unknown=zz"
    )
    assert message(query) == b"K1D1rS4H20260404103000"


@pytest.mark.parametrize(
    ("command", "comp_id_signed", "doc_prot_signed"),
    [
        ("info", False, False),
        ("get", False, False),
        ("docget", False, False),
        ("search", False, False),
        ("create", True, True),
        ("mcreate", False, True),
        ("update", True, False),
        ("append", True, False),
        ("delete", True, False),
    ],
)
def test_which_commands_sign_comp_id_and_doc_prot(command: str, comp_id_signed: bool, doc_prot_signed: bool) -> None:
    query = f"{command}&pVersion=0047&contRep=K1&docId=D1&compId=C9&docProt=rd&accessMode=x&authId=A&expiration=E"
    expected = b"K1D1" + (b"C9" if comp_id_signed else b"") + (b"rd" if doc_prot_signed else b"") + b"xAE"
    assert message(query, command) == expected


def test_the_test_client_tables_match_the_server() -> None:
    """The signing client is written from the spec; the server's commands must declare the same guards."""
    signed = {c: g for c, g in signatures.GUARDS.items() if g.access is not None}
    assert {c.lower(): names for c, names in signing.SIGNED_BY_COMMAND.items()} == {
        c: g.signed for c, g in signed.items()
    }
    assert {c.lower(): letter for c, letter in signing.ACCESS_LETTER.items()} == {
        c: g.access for c, g in signed.items()
    }
    assert signing.ALWAYS_SIGNED == signatures.ALWAYS_SIGNED


def test_every_registered_command_declares_its_guard() -> None:
    assert {name for _, name in commands.ROUTES} == set(signatures.GUARDS)
    assert {c for c, g in signatures.GUARDS.items() if g.access is None} == {"serverinfo", "putcert"}


def test_a_command_cannot_be_registered_without_a_guard_or_with_a_second_one() -> None:
    with pytest.raises(TypeError):
        commands.command("frobnicate", "GET")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"guard must be a signatures\.Guard"):
        commands.command("frobnicate", "GET", guard="r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="declared with two guards"):
        commands.command("get", "POST", guard=signatures.Guard("c"))
    with pytest.raises(ValueError, match="access must be one of"):
        signatures.Guard("rw")
    assert "frobnicate" not in signatures.GUARDS


_NAMES = ["pVersion", "contRep", "docId", "compId", "docProt", "accessMode", "authId", "expiration", "pattern"]
_RAW = st.text(alphabet="ABCdef0123456789%,._-", max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    command=st.sampled_from(list(signing.SIGNED_BY_COMMAND)),
    params=st.lists(st.tuples(st.sampled_from(_NAMES), _RAW), unique_by=lambda p: p[0], max_size=9),
)
def test_server_and_client_build_the_same_message(command: str, params: list[tuple[str, str]]) -> None:
    query = command + "".join(f"&{k}={v}" for k, v in params)
    try:
        req = parse_query(query.encode("ascii"))
    except ProtocolError:
        return  # e.g. a bad %-escape that decodes to non-UTF-8: never gets as far as signing
    assert signed_message(req, command.lower()) == signing.signed_message(command, params)


# --- read_signed_request ------------------------------------------------------------------------

_SIGNED = "get&pVersion=0047&contRep=K1&docId=D1&accessMode=rd&authId=CN%3DS4H&expiration=20260404103000"


def test_unsigned_request_reads_as_none() -> None:
    assert read_signed_request(parse_query(b"get&pVersion=0047&contRep=K1&docId=D1&accessMode=r")) is None


@pytest.mark.parametrize(
    ("sec_key", "expected"),
    [
        ("MAo%3D", b"0\n"),  # %-encoded '='
        ("MAo=", b"0\n"),  # raw '=' (some clients do not encode it)
        ("%2B%2F8%3D", b"\xfb\xff"),  # %2B and %2F
        ("+/8=", b"\xfb\xff"),  # raw '+': data, never a blank
    ],
)
def test_sec_key_decoding(sec_key: str, expected: bytes) -> None:
    signed = read_signed_request(parse_query(f"{_SIGNED}&secKey={sec_key}".encode()))
    assert signed == SignedRequest(
        auth_id="CN=S4H",
        access_mode="rd",
        expiration=dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC),
        signature=expected,
    )


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (f"{_SIGNED}&secKey=not*base64", "secKey is not valid Base64"),
        (f"{_SIGNED}&secKey=MAo", "secKey is not valid Base64"),
        (f"{_SIGNED}&secKey=%25%25", "secKey is not valid Base64"),
        (
            "get&contRep=K1&docId=D1&authId=A&expiration=20260404103000&secKey=MAo%3D",
            "a signed request needs accessMode",
        ),
        (
            "get&contRep=K1&docId=D1&accessMode=r&expiration=20260404103000&secKey=MAo%3D",
            "a signed request needs authId",
        ),
        ("get&contRep=K1&docId=D1&accessMode=r&authId=A&secKey=MAo%3D", "a signed request needs expiration"),
        (
            "get&contRep=K1&accessMode=&authId=&expiration=&secKey=MAo%3D",
            "a signed request needs accessMode, authId, expiration",
        ),
        ("get&contRep=K1&accessMode=r&authId=A&expiration=202604041030&secKey=MAo%3D", "expiration must be 14 digits"),
        ("get&contRep=K1&accessMode=r&authId=A&expiration=20260230103000&secKey=MAo%3D", "expiration is not a valid"),
    ],
)
def test_malformed_signed_requests_are_400(query: str, error: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        read_signed_request(parse_query(query.encode()))
    assert raised.value.status == 400
    assert raised.value.description.startswith(error)
    assert not isinstance(raised.value, SignatureError)


# --- check_fresh, check_access ---------------------------------------------------------------------


def _signed(access_mode: str = "r", expiration: dt.datetime = NOW) -> SignedRequest:
    return SignedRequest(auth_id="CN=S4H", access_mode=access_mode, expiration=expiration, signature=b"")


@pytest.mark.parametrize(
    ("now_offset", "skew", "fresh"),
    [
        (-3600, 0, True),
        (0, 0, True),
        (1, 0, False),
        (300, 300, True),
        (301, 300, False),
        (86400, 300, False),
    ],
)
def test_check_fresh(now_offset: int, skew: int, fresh: bool) -> None:
    now = NOW + dt.timedelta(seconds=now_offset)
    if fresh:
        check_fresh(_signed(expiration=NOW), now=now, skew_seconds=skew)
    else:
        with pytest.raises(SignatureError) as raised:
            check_fresh(_signed(expiration=NOW), now=now, skew_seconds=skew)
        assert raised.value.status == 401
        assert raised.value.description == "the signed URL expired at 2026-04-04 10:30:00 UTC"


@pytest.mark.parametrize(
    ("access_mode", "command", "allowed"),
    [
        ("r", "get", True),
        ("r", "info", True),
        ("r", "docget", True),
        ("r", "search", True),
        ("r", "create", False),
        ("r", "delete", False),
        ("c", "create", True),
        ("c", "mcreate", True),
        ("c", "update", False),
        ("c", "delete", False),
        ("u", "update", True),
        ("u", "append", True),
        ("u", "create", False),
        ("d", "delete", True),
        ("d", "get", False),
        ("rd", "delete", True),
        ("rd", "get", True),
        ("rcud", "append", True),
        ("cud", "info", False),
        ("x", "get", False),
    ],
)
def test_check_access(access_mode: str, command: str, allowed: bool) -> None:
    if allowed:
        check_access(_signed(access_mode), command)
    else:
        with pytest.raises(SignatureError) as raised:
            check_access(_signed(access_mode), command)
        assert raised.value.status == 401
        assert f"does not allow {command}" in raised.value.description


# --- verify ---------------------------------------------------------------------------------------

KINDS: list[KeyKind] = ["dsa", "rsa", "ecdsa"]
# The key kinds with SAP's digests, plus RSA over RIPEMD-160 (which OpenSSL signs with RSA only).
SIGNERS = [*KINDS, "rsa-ripemd160"]


def signer_named(name: str, label: str = "main") -> signing.Signer:
    return ripemd160_signer(label) if name == "rsa-ripemd160" else cached_signer(name, label)


def _params(doc_id: str = "D1") -> list[tuple[str, str]]:
    return [
        ("pVersion", "0047"),
        ("contRep", "K1"),
        ("docId", doc_id),
        ("accessMode", "r"),
        ("authId", "CN%3DS4H"),
        ("expiration", "20260404103000"),
    ]


def _verify(query: str, *certificates: bytes) -> None:
    req = parse_query(query.encode("ascii"))
    signed = read_signed_request(req)
    assert signed is not None
    verify(req, req.command.lower(), signed, certificates)


@pytest.mark.parametrize("embed", [False, True])
@pytest.mark.parametrize("attributes", [False, True])
@pytest.mark.parametrize("kind", SIGNERS)
def test_verify_accepts_each_algorithm_and_layout(kind: str, attributes: bool, embed: bool) -> None:
    signer = signer_named(kind)
    query = signed_query("get", _params(), signer, attributes=attributes, embed_certificate=embed)
    _verify(query, signer.der)
    # Another trusted certificate first does not hide the right one.
    _verify(query, cached_signer("rsa", "other").der, signer.der)


@pytest.mark.parametrize("attributes", [False, True])
@pytest.mark.parametrize("kind", SIGNERS)
def test_verify_rejects_a_changed_message_and_a_wrong_certificate(kind: str, attributes: bool) -> None:
    signer = signer_named(kind)
    query = signed_query("get", _params(), signer, attributes=attributes)
    with pytest.raises(SignatureError, match="does not match"):
        _verify(query.replace("docId=D1", "docId=D2"), signer.der)
    with pytest.raises(SignatureError, match="does not match"):
        _verify(query, signer_named(kind, "other").der)


RIPEMD160_INFO = signing.RIPEMD160_DIGEST_INFO


@pytest.mark.parametrize(
    ("encoding", "accepted"),
    [
        (lambda d: RIPEMD160_INFO + d, True),
        (lambda d: bytes.fromhex("301f300706052b240302010414") + d, True),  # parameters absent (RFC 8017)
        (lambda d: bytes.fromhex("3021300906052b0e03021a05000414") + d, False),  # says SHA-1, also 20 bytes
        (lambda d: RIPEMD160_INFO + hashlib.new("ripemd160", b"other").digest(), False),
        (lambda d: bytes.fromhex("3022300906052b2403020105000415") + d + b"\0", False),  # 21-byte digest
        (lambda d: d, False),  # the bare digest, no DigestInfo
    ],
    ids=["null-parameters", "absent-parameters", "names-sha1", "other-digest", "longer-digest", "bare-digest"],
)
def test_ripemd160_checks_the_recovered_digest_info(encoding: Callable[[bytes], bytes], accepted: bool) -> None:
    """The RSA signature must recover a DigestInfo that names RIPEMD-160 and holds the message's digest."""
    signer = ripemd160_signer()
    assert isinstance(signer.key, rsa.RSAPrivateKey)
    params = _params()
    message_bytes = signing.signed_message("get", params)
    content = asn1_cms.ContentInfo.load(cms_signature(message_bytes, signer, attributes=False))
    raw = signing.rsa_pkcs1_v15(signer.key, encoding(hashlib.new("ripemd160", message_bytes).digest()))
    content["content"]["signer_infos"][0]["signature"] = raw
    query = "get" + "".join(f"&{k}={v}" for k, v in params) + "&secKey=" + url_encode_sec_key(content.dump(force=True))
    if accepted:
        _verify(query, signer.der)
    else:
        with pytest.raises(SignatureError, match="does not match"):
            _verify(query, signer.der)


def test_ripemd160_needs_an_rsa_certificate() -> None:
    """OpenSSL makes RIPEMD-160 CMS only with RSA; a DSA certificate named for it is refused clearly."""
    signer = ripemd160_signer()
    query = signed_query("get", _params(), signer, attributes=False)
    with pytest.raises(SignatureError, match="RIPEMD-160 is supported with RSA keys only, not"):
        _verify(query, cached_signer("dsa").der)


def test_verify_never_trusts_an_embedded_certificate() -> None:
    signer = cached_signer("dsa", "embedded")
    query = signed_query("get", _params(), signer, attributes=True, embed_certificate=True)
    with pytest.raises(SignatureError, match="no active certificate for authId 'CN=S4H'"):
        _verify(query)
    with pytest.raises(SignatureError, match="does not match"):
        _verify(query, cached_signer("dsa").der)


def test_verify_rejects_a_message_digest_attribute_for_other_bytes() -> None:
    signer = cached_signer("rsa")
    params = _params()
    forged = cms_signature(signing.signed_message("get", params), signer, attributes=True, message_digest=b"\1" * 32)
    query = "get" + "".join(f"&{k}={v}" for k, v in params) + "&secKey=" + url_encode_sec_key(forged)
    with pytest.raises(SignatureError, match="messageDigest differs"):
        _verify(query, signer.der)


@pytest.mark.parametrize("blob", [b"\x30\x00", b"not DER at all", b"\x30\x03\x02\x01\x01"])
def test_verify_rejects_what_is_not_signed_data(blob: bytes) -> None:
    query = "get" + "".join(f"&{k}={v}" for k, v in _params()) + "&secKey=" + url_encode_sec_key(blob)
    with pytest.raises(SignatureError) as raised:
        _verify(query, cached_signer("dsa").der)
    assert raised.value.status == 401


_OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(_OPENSSL is None, reason="needs the openssl command line tool")
@pytest.mark.parametrize("kind", SIGNERS)
@pytest.mark.parametrize("attributes", [False, True])
def test_openssl_and_the_server_agree_on_the_test_clients_signatures(
    tmp_path: Path, kind: str, attributes: bool
) -> None:
    """Both directions: OpenSSL verifies what the test client builds, and the server verifies what
    `openssl cms -sign -binary [-noattr] -md sha1|sha256|ripemd160` builds."""
    assert _OPENSSL is not None
    signer = signer_named(kind)
    (tmp_path / "cert.pem").write_bytes(signer.pem)
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(key_pem)
    params = _params()
    msg = signing.signed_message("get", params)
    (tmp_path / "msg").write_bytes(msg)

    (tmp_path / "ours.der").write_bytes(cms_signature(msg, signer, attributes=attributes))
    checked = subprocess.run(
        [
            *(_OPENSSL, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "ours.der")),
            *("-content", str(tmp_path / "msg"), "-certfile", str(tmp_path / "cert.pem"), "-noverify"),
            *("-out", "/dev/null"),
        ],
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr

    subprocess.run(
        [
            *(_OPENSSL, "cms", "-sign", "-binary", "-nocerts", "-md", signer.digest, "-outform", "DER"),
            *(() if attributes else ("-noattr",)),
            *("-signer", str(tmp_path / "cert.pem"), "-inkey", str(tmp_path / "key.pem")),
            *("-in", str(tmp_path / "msg"), "-out", str(tmp_path / "openssl.der")),
        ],
        capture_output=True,
        check=True,
    )
    theirs = (tmp_path / "openssl.der").read_bytes()
    query = "get" + "".join(f"&{k}={v}" for k, v in params) + "&secKey=" + url_encode_sec_key(theirs)
    _verify(query, signer.der)
    with pytest.raises(SignatureError):
        _verify(query.replace("docId=D1", "docId=D2"), signer.der)


def test_a_signature_for_one_document_does_not_authorize_another_by_percent_encoding() -> None:
    signer = cached_signer("dsa")
    params = [("pVersion", "0047"), ("contRep", "K1"), ("docId", "A%42")]
    params += [("accessMode", "d"), ("authId", "S4H"), ("expiration", "20260404110000")]
    query = signed_query("delete", params, signer, attributes=False)
    _verify(query, signer.der)  # genuine: deletes document "AB"
    other = query.replace("docId=A%42", "docId=A%2542")
    assert parse_query(other.encode()).get("docId") == "A%42"
    with pytest.raises(SignatureError):
        _verify(other, signer.der)
