"""A signing test client: keys, self-signed certificates and secKeys built the way SAP builds them
(docs/archivelink.md#signatures-seckey).

SAP concatenates the *raw* (still %-encoded) values of the signed parameters in URL order, signs that
message with a detached PKCS#7/CMS SignedData (DSA-1024/SHA-1 from SAPSECULIB, RSA/SHA-256 from
CommonCryptoLib), Base64-encodes the DER and %-encodes `+`, `/` and `=`. Everything here is written
from the spec, independent of the server's own code, so the tests catch a server that signs
differently from SAP.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from tests.support.sapclient import Part, Reply, SapClient, multipart_body

KeyKind = Literal["dsa", "rsa", "ecdsa"]
PrivateKey = dsa.DSAPrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Signed besides contRep, accessMode, authId and expiration: docs/archivelink.md#signatures-seckey.
ALWAYS_SIGNED = ("contRep", "accessMode", "authId", "expiration")
SIGNED_BY_COMMAND: dict[str, tuple[str, ...]] = {
    "info": ("docId",),
    "get": ("docId",),
    "docGet": ("docId",),
    "search": ("docId",),
    "attrSearch": ("docId",),
    "create": ("docId", "compId", "docProt"),
    "mCreate": ("docId", "docProt"),
    "update": ("docId", "compId"),
    "append": ("docId", "compId"),
    "delete": ("docId", "compId"),
}
ACCESS_LETTER = {
    "info": "r",
    "get": "r",
    "docGet": "r",
    "search": "r",
    "attrSearch": "r",
    "create": "c",
    "mCreate": "c",
    "update": "u",
    "append": "u",
    "delete": "d",
}
# (key kind) -> (digest used for the CMS signature, signatureAlgorithm OID name in asn1crypto)
ALGORITHMS: dict[KeyKind, tuple[str, str]] = {
    "dsa": ("sha1", "sha1_dsa"),
    "rsa": ("sha256", "sha256_rsa"),
    "ecdsa": ("sha256", "sha256_ecdsa"),
}
_HASH = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
# RIPEMD-160 with RSA (SAP's specification: "MD5 or RIPEMD-160"), as `openssl cms -sign -md ripemd160`
# makes it: digestAlgorithm by OID (asn1crypto has no name for it), signatureAlgorithm rsaEncryption.
RIPEMD160_OID = "1.3.36.3.2.1"
VALID_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
VALID_UNTIL = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Signer:
    """A private key with its self-signed certificate: what an SAP system's PSE holds."""

    kind: KeyKind
    key: PrivateKey
    certificate: x509.Certificate
    ripemd160: bool = False  # RSA only: sign RIPEMD-160 digests instead of SHA-256

    @property
    def digest(self) -> str:
        return "ripemd160" if self.ripemd160 else ALGORITHMS[self.kind][0]

    @property
    def digest_oid(self) -> str:
        return RIPEMD160_OID if self.ripemd160 else self.digest

    @property
    def signature_algorithm(self) -> str:
        return "rsassa_pkcs1v15" if self.ripemd160 else ALGORITHMS[self.kind][1]

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def pkcs7_certs_only(self, encoding: serialization.Encoding = serialization.Encoding.DER) -> bytes:
        return pkcs7.serialize_certificates([self.certificate], encoding)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the DER, lowercase hex, as `filerelay certs list` shows it."""
        return hashlib.sha256(self.der).hexdigest()

    def raw_signature(self, data: bytes) -> bytes:
        key = self.key
        if self.ripemd160:
            assert isinstance(key, rsa.RSAPrivateKey), "OpenSSL signs RIPEMD-160 CMS with RSA only"
            return rsa_pkcs1_v15(key, RIPEMD160_DIGEST_INFO + hashlib.new("ripemd160", data).digest())
        algorithm = _HASH[self.digest]()
        if isinstance(key, dsa.DSAPrivateKey):
            return key.sign(data, algorithm)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), algorithm)
        return key.sign(data, ec.ECDSA(algorithm))


# DER of DigestInfo{ripemd160, NULL} up to the 20 digest bytes (RFC 8017 §9.2: the encoding T).
RIPEMD160_DIGEST_INFO = bytes.fromhex("3021300906052b2403020105000414")


def rsa_pkcs1_v15(key: rsa.RSAPrivateKey, digest_info: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 by the textbook (RFC 8017 §8.2.1): `cryptography` has no RIPEMD-160 to sign with."""
    numbers = key.private_numbers()
    size = (key.key_size + 7) // 8
    encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    signature = pow(int.from_bytes(encoded, "big"), numbers.d, numbers.public_numbers.n)
    return signature.to_bytes(size, "big")


def generate_key(kind: KeyKind) -> PrivateKey:
    if kind == "dsa":
        return dsa.generate_private_key(key_size=1024)  # noqa: S505 - what SAPSECULIB PSEs hold
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_signer(
    kind: KeyKind,
    common_name: str = "S4H",
    *,
    not_before: dt.datetime = VALID_FROM,
    not_after: dt.datetime = VALID_UNTIL,
    serial: int | None = None,
    key: PrivateKey | None = None,
) -> Signer:
    """A fresh key (unless given) and a self-signed X.509 v3 certificate `CN=<common_name>`."""
    key = key or generate_key(kind)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Signer(kind, key, certificate)


@functools.cache
def cached_signer(kind: KeyKind, label: str = "main") -> Signer:
    """One signer per (kind, label) for the whole run: key generation is the slow part."""
    return make_signer(kind)


@functools.cache
def ripemd160_signer(label: str = "main") -> Signer:
    """The RSA signer of `cached_signer("rsa", label)`, signing RIPEMD-160 digests."""
    return dataclasses.replace(cached_signer("rsa", label), ripemd160=True)


# --- the message and the CMS ---------------------------------------------------------------------


def signed_names(command: str) -> tuple[str, ...]:
    return (*ALWAYS_SIGNED, *SIGNED_BY_COMMAND[command])


def signed_message(command: str, params: Sequence[tuple[str, str]]) -> bytes:
    """The raw values of the command's signed parameters, in URL order, no names, no separators."""
    names = signed_names(command)
    return "".join(raw for name, raw in params if name in names).encode("ascii")


def cms_signature(
    message: bytes,
    signer: Signer,
    *,
    attributes: bool,
    embed_certificate: bool = False,
    signing_time: dt.datetime = VALID_FROM,
    message_digest: bytes | None = None,
) -> bytes:
    """A detached CMS SignedData (DER) over `message`.

    Without attributes the signature covers the message itself; with them it covers the DER of the
    signed attributes (content-type, message-digest, signing-time) encoded as a SET OF (tag 0x31), as
    RFC 5652 §5.4 says. `message_digest` overrides the digest attribute (to forge a mismatch).
    """
    certificate = asn1_x509.Certificate.load(signer.der)
    digest_algorithm = algos.DigestAlgorithm({"algorithm": signer.digest_oid})
    signer_info: dict[str, object] = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            {
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
                )
            }
        ),
        "digest_algorithm": digest_algorithm,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": signer.signature_algorithm}),
    }
    if attributes:
        digest = message_digest if message_digest is not None else hashlib.new(signer.digest, message).digest()
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
                cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}),
            ]
        )
        der_set = signed_attrs.dump()
        assert der_set[0] == 0x31, "signed attributes are signed as a universal SET OF"
        signer_info["signed_attrs"] = cms.CMSAttributes.load(der_set)
        signer_info["signature"] = signer.raw_signature(der_set)
    else:
        signer_info["signature"] = signer.raw_signature(message)
    signed_data: dict[str, object] = {
        "version": "v1",
        "digest_algorithms": [digest_algorithm],
        "encap_content_info": cms.ContentInfo({"content_type": "data", "content": None}),
        "signer_infos": [cms.SignerInfo(signer_info)],
    }
    if embed_certificate:
        signed_data["certificates"] = [cms.CertificateChoices({"certificate": certificate})]
    content_info = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
    der: bytes = content_info.dump()
    return der


def url_encode_sec_key(signature: bytes) -> str:
    """Base64, then %-encoding of the three Base64 characters that are reserved in a URL."""
    text = base64.b64encode(signature).decode("ascii")
    return text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


def signed_query(
    command: str,
    params: Sequence[tuple[str, str]],
    signer: Signer,
    *,
    attributes: bool,
    embed_certificate: bool = False,
) -> str:
    """`command&name=raw&...&secKey=...`: `params` are (name, raw value) pairs in URL order."""
    message = signed_message(command, params)
    signature = cms_signature(message, signer, attributes=attributes, embed_certificate=embed_certificate)
    query = command + "".join(f"&{name}={raw}" for name, raw in params)
    return f"{query}&secKey={url_encode_sec_key(signature)}"


def expiration(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def replace_param(query: str, name: str, raw: str) -> str:
    """The same query with one parameter's raw value changed (to tamper after signing)."""
    command, *tokens = query.split("&")
    out = [command]
    for token in tokens:
        key, sep, _ = token.partition("=")
        out.append(f"{key}={raw}" if key == name and sep else token)
    assert out != [command, *tokens], f"{name} is not in the query"
    return "&".join(out)


def drop_param(query: str, name: str) -> str:
    command, *tokens = query.split("&")
    return "&".join([command, *(t for t in tokens if t.partition("=")[0] != name)])


# --- the client ----------------------------------------------------------------------------------


@dataclass
class SigningSap:
    """SapClient's commands, sent as signed URLs in SAP's parameter order:
    `command&pVersion&contRep&<command's own>&accessMode&authId&expiration&secKey`.

    `signer=None` sends the same URLs unsigned (no accessMode/authId/expiration/secKey).
    """

    sap: SapClient
    signer: Signer | None
    now: dt.datetime
    auth_id: str = "CN%3DS4H"  # raw, as SAP sends it
    valid_for: dt.timedelta = dt.timedelta(minutes=10)
    attributes: bool = False
    embed_certificate: bool = False
    access_mode: str | None = None  # None: the command's own letter
    overrides: dict[str, str] = field(default_factory=dict)  # raw values replaced *before* signing
    tamper: Callable[[str], str] | None = None  # applied to the query *after* signing
    sent: list[tuple[str, str]] = field(default_factory=list)  # (HTTP method, command) of every request

    def params(self, command: str, **params: str | None) -> list[tuple[str, str]]:
        ordered: list[tuple[str, str]] = [("pVersion", self.sap.p_version), ("contRep", self.sap.cont_rep)]
        ordered += [(k, v) for k, v in params.items() if v is not None]
        if self.signer is not None:
            ordered += [
                ("accessMode", self.access_mode or ACCESS_LETTER[command]),
                ("authId", self.auth_id),
                ("expiration", expiration(self.now + self.valid_for)),
            ]
        return [(k, self.overrides.get(k, v)) for k, v in ordered]

    def query(self, command: str, **params: str | None) -> str:
        ordered = self.params(command, **params)
        if self.signer is None:
            return command + "".join(f"&{k}={v}" for k, v in ordered)
        return signed_query(
            command, ordered, self.signer, attributes=self.attributes, embed_certificate=self.embed_certificate
        )

    def send(self, method: str, query: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        self.sent.append((method, query.partition("&")[0]))
        if self.tamper is not None:
            query = self.tamper(query)
        return self.sap.raw(method, query, body, headers)

    def put_cert(self, body: bytes, *, method: str = "PUT", auth_id: str | None = None) -> Reply:
        """OAC0's "Send certificate": unsigned, authId in the URL, the certificate as the body."""
        query = f"putCert&pVersion={self.sap.p_version}&contRep={self.sap.cont_rep}&authId={auth_id or self.auth_id}"
        return self.sap.raw(method, query, body, {"Content-Type": "application/octet-stream"})

    def create(
        self, doc_id: str, comp_id: str, content: bytes, content_type: str = "application/pdf", **params: str | None
    ) -> Reply:
        query = self.query("create", docId=doc_id, compId=comp_id, **params)
        return self.send("PUT", query, content, {"Content-Type": content_type})

    def create_multipart(self, doc_id: str, parts: Sequence[Part], **params: str | None) -> Reply:
        body, content_type = multipart_body(parts)
        return self.send("POST", self.query("create", docId=doc_id, **params), body, {"Content-Type": content_type})

    def m_create(self, parts: Sequence[Part], **params: str | None) -> Reply:
        body, content_type = multipart_body(parts)
        first = parts[0].doc_id if parts else None
        query = self.query("mCreate", docId=first, **params)
        return self.send("POST", query, body, {"Content-Type": content_type})

    def get(self, doc_id: str, comp_id: str | None = None, method: str = "GET", **params: str | None) -> Reply:
        return self.send(method, self.query("get", docId=doc_id, compId=comp_id, **params))

    def info(self, doc_id: str, comp_id: str | None = None) -> Reply:
        return self.send("GET", self.query("info", docId=doc_id, compId=comp_id))

    def doc_get(self, doc_id: str) -> Reply:
        return self.send("GET", self.query("docGet", docId=doc_id))

    def delete(self, doc_id: str, comp_id: str | None = None) -> Reply:
        return self.send("GET", self.query("delete", docId=doc_id, compId=comp_id))

    def update(self, doc_id: str, comp_id: str, content: bytes, content_type: str = "application/pdf") -> Reply:
        query = self.query("update", docId=doc_id, compId=comp_id)
        return self.send("PUT", query, content, {"Content-Type": content_type})

    def update_multipart(self, doc_id: str, parts: Sequence[Part]) -> Reply:
        body, content_type = multipart_body(parts)
        return self.send("POST", self.query("update", docId=doc_id), body, {"Content-Type": content_type})

    def append(self, doc_id: str, comp_id: str, content: bytes) -> Reply:
        return self.send("PUT", self.query("append", docId=doc_id, compId=comp_id), content)

    def search(self, doc_id: str, comp_id: str, pattern: str, **params: str | None) -> Reply:
        return self.send("GET", self.query("search", docId=doc_id, compId=comp_id, pattern=pattern, **params))

    def attr_search(self, doc_id: str, pattern: str, **params: str | None) -> Reply:
        return self.send("GET", self.query("attrSearch", docId=doc_id, pattern=pattern, **params))


def certificate(now: dt.datetime) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "S4H")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
