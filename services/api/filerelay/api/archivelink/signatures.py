"""secKey: SAP's signed content-server URLs (docs/archivelink.md#signatures-seckey). Pure: no Flask, no database.

The signed message is the concatenation of the signed parameters' values, raw (still %-encoded) and in
the order they appear in the URL. secKey is a detached PKCS#7/CMS SignedData over that message, made by
DSA, RSA or ECDSA, with or without signed attributes, over MD5, SHA-1, SHA-2 or RIPEMD-160 digests.
It is verified only against a certificate SAP sent with putCert and an admin activated, never against
one embedded in the signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from asn1crypto import algos, cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

from filerelay.api.archivelink.protocol import ArchiveLinkRequest, ProtocolError, parse_expiration

ALWAYS_SIGNED = ("contRep", "accessMode", "authId", "expiration")


@dataclass(frozen=True)
class Guard:
    """What a command's signature protects, declared where the command is defined
    (filerelay.api.archivelink.commands.command): the accessMode letter a signed URL must grant (None: the
    command is never signed, as serverInfo and putCert) and the parameters signed besides ALWAYS_SIGNED
    (docs/archivelink.md#signatures-seckey)."""

    access: str | None
    signed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.access is not None and (len(self.access) != 1 or self.access not in "rcud"):
            raise ValueError(f"access must be one of r, c, u, d (or None: never signed), not {self.access!r}")
        if self.access is None and self.signed:
            raise ValueError("a command that is never signed signs no parameters")


UNSIGNED = Guard(None)
# Every command's guard, by lower-case name, as the commands declare them when they are registered.
GUARDS: dict[str, Guard] = {}


def guard_of(command: str) -> Guard:
    """The command's declared guard; KeyError for a command nobody registered."""
    return GUARDS[command]


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# RIPEMD-160 (SAP's specification allows "MD5 or RIPEMD-160"): asn1crypto knows it only by OID and
# `cryptography` has no such hash, but OpenSSL's default provider does (hashlib.new("ripemd160")).
RIPEMD160 = "1.3.36.3.2.1"


class SignatureError(ProtocolError):
    """A signature problem: 401 unless the request itself is malformed."""

    def __init__(self, description: str, status: int = 401) -> None:
        super().__init__(description, status)


def signed_message(req: ArchiveLinkRequest, command: str) -> bytes:
    """The raw values of the signed parameters, in URL order, concatenated (docs/archivelink.md#signatures-seckey)."""
    names = {n.lower() for n in (*ALWAYS_SIGNED, *guard_of(command).signed)}
    return "".join(p.raw for p in req.params if p.name.lower() in names).encode("ascii")


@dataclass(frozen=True)
class SignedRequest:
    auth_id: str
    access_mode: str
    expiration: dt.datetime
    signature: bytes


def read_signed_request(req: ArchiveLinkRequest) -> SignedRequest | None:
    """The secKey and its companions, or None when the request is unsigned. Malformed → 400."""
    raw = req.get("secKey")
    if raw is None:
        return None
    missing = [n for n in ("accessMode", "authId", "expiration") if not req.get(n)]
    if missing:
        raise ProtocolError(f"a signed request needs {', '.join(missing)}")
    try:
        # Base64 and then %-encoded; '+' may arrive raw or as %2B, which unquote leaves or restores.
        signature = base64.b64decode(unquote(req.raw("secKey") or raw), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("secKey is not valid Base64") from None
    return SignedRequest(
        auth_id=str(req.get("authId")),
        access_mode=str(req.get("accessMode")),
        expiration=parse_expiration(str(req.get("expiration"))),
        signature=signature,
    )


def check_fresh(signed: SignedRequest, *, now: dt.datetime, skew_seconds: int) -> None:
    if now > signed.expiration + dt.timedelta(seconds=skew_seconds):
        raise SignatureError(f"the signed URL expired at {signed.expiration:%Y-%m-%d %H:%M:%S} UTC")


def check_access(signed: SignedRequest, command: str) -> None:
    needed = guard_of(command).access
    if needed is None or needed not in signed.access_mode:
        raise SignatureError(f"accessMode {signed.access_mode!r} does not allow {command} (needs {needed!r})")


def _public_key_verify(
    certificate: x509.Certificate, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm
) -> None:
    key = certificate.public_key()
    if isinstance(key, dsa.DSAPublicKey):
        key.verify(signature, data, algorithm)
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        raise SignatureError(f"unsupported key type {type(key).__name__} in the certificate")


def _ripemd160_verify(certificate: x509.Certificate, signature: bytes, data: bytes) -> None:
    """RSA PKCS#1 v1.5 over RIPEMD-160, checked by hand: recover the DigestInfo and compare.

    OpenSSL signs RIPEMD-160 CMS only with RSA, and the recovery checks the padding; the DigestInfo
    must name RIPEMD-160 (NULL or absent parameters, RFC 8017 §9.2 note 1) and carry the digest.
    """
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError(f"RIPEMD-160 is supported with RSA keys only, not {type(key).__name__}")
    recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    try:
        info = algos.DigestInfo.load(recovered, strict=True)
        named = info["digest_algorithm"]["algorithm"].dotted
        parameters = info["digest_algorithm"]["parameters"].native
        digest = info["digest"].native
    except (ValueError, TypeError):
        raise InvalidSignature from None
    expected = hashlib.new("ripemd160", data).digest()
    if named != RIPEMD160 or parameters is not None or not hmac.compare_digest(digest, expected):
        raise InvalidSignature


def _verify_one(signer: cms.SignerInfo, message: bytes, certificate: x509.Certificate) -> None:
    digest_oid = signer["digest_algorithm"]["algorithm"]
    digest_name = "ripemd160" if digest_oid.dotted == RIPEMD160 else digest_oid.native
    if digest_name not in _HASHES and digest_name != "ripemd160":
        raise SignatureError(f"unsupported digest algorithm {digest_name}")
    signature = signer["signature"].native
    signed_attrs = signer["signed_attrs"]
    if signed_attrs.native:
        # With signed attributes the signature covers their DER (re-tagged as SET OF), and the
        # messageDigest attribute binds them to the message (RFC 5652 §5.4).
        digests = [a["values"][0].native for a in signed_attrs if a["type"].native == "message_digest"]
        expected = hashlib.new(digest_name, message).digest()
        if len(digests) != 1 or not hmac.compare_digest(digests[0], expected):
            raise SignatureError("the signature does not match the URL (messageDigest differs)")
        data = b"\x31" + signed_attrs.dump()[1:]
    else:
        data = message
    try:
        if digest_name == "ripemd160":
            _ripemd160_verify(certificate, signature, data)
        else:
            _public_key_verify(certificate, signature, data, _HASHES[digest_name]())
    except InvalidSignature:
        raise SignatureError("the signature does not match the URL") from None
    except UnsupportedAlgorithm as exc:
        raise SignatureError(f"unsupported signature algorithm: {exc}") from None


def verify(req: ArchiveLinkRequest, command: str, signed: SignedRequest, certificates: Iterable[bytes]) -> None:
    """Check the detached CMS signature against each trusted certificate (DER); raise unless one fits."""
    try:
        content = cms.ContentInfo.load(signed.signature)
        if content["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signers = list(content["content"]["signer_infos"])
    except (ValueError, TypeError, KeyError):
        raise SignatureError("secKey is not a PKCS#7 SignedData structure") from None
    if not signers:
        raise SignatureError("secKey carries no signer")
    trusted = [x509.load_der_x509_certificate(der) for der in certificates]
    if not trusted:
        raise SignatureError(
            f"no active certificate for authId {signed.auth_id!r}; send it with putCert and activate it"
        )
    # Raw values only, as SAP signs them. A decoded-text fallback would let `docId=A%2542` pass with a
    # signature made for `docId=A%42`: two different documents, one message.
    message = signed_message(req, command)
    last: SignatureError | None = None
    for certificate in trusted:
        try:
            _verify_one(signers[0], message, certificate)
            return
        except SignatureError as exc:
            last = exc
    assert last is not None
    raise last
