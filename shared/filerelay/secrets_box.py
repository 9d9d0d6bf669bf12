"""Secret settings sealed at rest: AES-256-GCM under keys from FILERELAY_ENCRYPTION_KEYS.

A key is any string of at least 32 bytes (UTF-8) that is not a template placeholder, e.g. the output of
`python -c 'import secrets; print(secrets.token_urlsafe(32))'`. The AES key is derived from it with
HKDF-SHA256, so a random token, a long passphrase from a secret manager or 32 base64-decoded bytes
written out all work the same way, and no format has to be guessed.

A sealed value is the text `fr1:<key id>:<base64url(nonce || ciphertext || tag)>`:
  - `fr1` names this format, so a later one can be told apart;
  - the key id (8 hex digits, derived from the key, revealing nothing of it) says which key sealed it,
    so the right one of several is picked to open it and `filerelay secrets rotate` knows which rows
    are not yet under the first key;
  - the associated data binds the ciphertext to what it is for (e.g. `destinations.secrets`) and to the
    key id in its prefix: a value copied into another column, or a prefix edited, does not open.

Opening never falls back to plaintext: a value that is not sealed, a key id not in the keyring, or a
ciphertext that fails its tag raise SecretsBoxError, whose message names the key id, never a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "fr1"
MIN_KEY_BYTES = 32
NONCE_BYTES = 12  # AES-GCM's standard nonce; random per seal (2**32 seals per key stay far from collisions)

# Words the shipped templates and common examples use where a real value belongs. Compared with the value
# lower-cased and without '-', '_' and spaces, so `CHANGE-ME`, `change_me` and `ChangeMe` are all caught.
PLACEHOLDER_MARKERS = (
    "changeme",
    "replaceme",
    "placeholder",
    "example",
    "yoursecret",
    "yourkey",
    "generate",
    "notsecret",
    "insecure",
    "dontuse",
    "donotuse",
    "secretkey",
    "encryptionkey",
)
# A typed filler ("aaaa…", "0000…", "0123456701234567…") shows a handful of different characters, or a short
# pattern typed again; a generated key almost never does. The bound is low because a random hex key of 32
# characters shows fewer than 10 different ones about once in 6,000 draws (`openssl rand -hex 16`), and
# fewer than 6 about once in 10^10: a real key must never be refused.
MIN_DISTINCT_CHARACTERS = 6
LONGEST_FILLER_PATTERN = 8


class SecretsBoxError(Exception):
    """A sealed value cannot be opened (or a value cannot be sealed). Never carries a secret."""


def weakness(value: str) -> str | None:
    """Why `value` cannot serve as a secret or encryption key, or None when it can."""
    size = len(value.encode())
    if size < MIN_KEY_BYTES:
        return f"is {size} bytes long; at least {MIN_KEY_BYTES} are needed"
    folded = value.lower().replace("-", "").replace("_", "").replace(" ", "")
    marker = next((m for m in PLACEHOLDER_MARKERS if m in folded), None)
    if marker is not None or "<" in value or ">" in value:
        return "is a template placeholder, not a generated key"
    if len(set(value)) < MIN_DISTINCT_CHARACTERS or _repeated_pattern(value):
        return "repeats too few characters to be a generated key"
    return None


def _repeated_pattern(value: str) -> bool:
    """Whether `value` is a pattern of at most LONGEST_FILLER_PATTERN characters typed again and again."""
    return any(
        value == (value[:period] * (len(value) // period + 1))[: len(value)]
        for period in range(1, LONGEST_FILLER_PATTERN + 1)
    )


def _derive(key: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key.encode())


@dataclass(frozen=True)
class Key:
    id: str
    aead: AESGCM = field(repr=False, compare=False)

    @classmethod
    def from_text(cls, text: str) -> Key:
        key_id = _derive(text, b"filerelay key id", 4).hex()
        return cls(id=key_id, aead=AESGCM(_derive(text, b"filerelay secrets aes-256-gcm", 32)))


@dataclass(frozen=True)
class Keyring:
    """The first key seals; every key opens."""

    keys: tuple[Key, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretsBoxError("no encryption key")

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Keyring:
        return cls(tuple(Key.from_text(t) for t in texts))

    @property
    def primary(self) -> Key:
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def find(self, key_id: str) -> Key:
        for key in self.keys:
            if key.id == key_id:
                return key
        raise SecretsBoxError(
            f"sealed under key id {key_id}, which is not among FILERELAY_ENCRYPTION_KEYS "
            f"(key ids {', '.join(self.ids)}): list the key it was sealed with"
        )


def _associated_data(purpose: str, key_id: str) -> bytes:
    return f"{FORMAT}|{purpose}|{key_id}".encode()


def seal(keyring: Keyring, value: Mapping[str, Any], *, purpose: str) -> str:
    """`value` as JSON, encrypted under the keyring's first key."""
    key = keyring.primary
    plaintext = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    nonce = os.urandom(NONCE_BYTES)
    sealed = key.aead.encrypt(nonce, plaintext, _associated_data(purpose, key.id))
    return f"{FORMAT}:{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(f"{FORMAT}:")


def key_id_of(sealed: object) -> str:
    """The id of the key that sealed `sealed`; SecretsBoxError when it is not a sealed value."""
    if not is_sealed(sealed):
        raise SecretsBoxError(
            f"a plaintext value where a sealed one belongs (a {type(sealed).__name__}): "
            "run `filerelay migrate` to encrypt the rows written before encryption"
        )
    assert isinstance(sealed, str)
    parts = sealed.split(":", 2)
    if len(parts) != 3 or not parts[1]:
        raise SecretsBoxError(f"a value marked {FORMAT} without a key id and ciphertext: it was altered")
    return parts[1]


def open_sealed(keyring: Keyring, sealed: object, *, purpose: str) -> dict[str, Any]:
    """The mapping `seal` sealed. Raises SecretsBoxError, naming the key id, on any failure."""
    key_id = key_id_of(sealed)
    assert isinstance(sealed, str)
    key = keyring.find(key_id)
    try:
        blob = base64.urlsafe_b64decode(sealed.split(":", 2)[2])
        plaintext = key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _associated_data(purpose, key_id))
    except (InvalidTag, ValueError, binascii.Error):
        raise SecretsBoxError(
            f"a value sealed under key id {key_id} does not open with that key: it was altered, "
            f"or belongs elsewhere than {purpose}"
        ) from None
    value = json.loads(plaintext)
    if not isinstance(value, dict):
        raise SecretsBoxError(f"a value sealed under key id {key_id} is not a mapping")
    return value
