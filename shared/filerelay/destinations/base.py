"""The small interface every destination kind implements, and the registry of kinds.

A kind is one module: a marshmallow schema for its settings, the names of the settings that are
secrets, what the operator's policy requires of them, and a client that can deliver a staged object to a
path, read it back, and check itself. Every client is built under the operator's policy
(filerelay.policy), which bounds what a workspace's settings may reach.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, runtime_checkable

from marshmallow import Schema, ValidationError

from filerelay import egress
from filerelay.policy import OperatorPolicy


class DestinationError(Exception):
    """A delivery failed. `retryable` False means no retry will help (bad config, rejected content)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def pieces(body: BinaryIO, size: int, piece: int) -> Iterator[bytes]:
    """The `size` staged bytes in pieces of at most `piece` (a part, a block); staging that ends sooner is
    a broken copy, and no retry mends it."""
    sent = 0
    while sent < size:
        data = body.read(min(piece, size - sent))
        if not data:
            raise DestinationError(f"staging ended at {sent} of {size} bytes", retryable=False)
        sent += len(data)
        yield data


def filled(body: BinaryIO, size: int, buffer: bytearray) -> Iterator[bytearray]:
    """The `size` staged bytes read into `buffer`, one piece of its length at a time (the last one
    shorter: the buffer is cut to it), each piece overwriting the one before. One buffer serves a whole
    upload, where reading each piece anew would allocate a fresh one per piece and hold two while the
    next is read. A piece must be used (sent, hashed) before the next is asked for. Staging that ends
    sooner is a broken copy, and no retry mends it."""
    done = 0
    while done < size:
        want = min(len(buffer), size - done)
        if want < len(buffer):
            del buffer[want:]  # the last piece: shrunk in place, not copied
        got = _read_into(body, buffer)
        if got < want:
            raise DestinationError(f"staging ended at {done + got} of {size} bytes", retryable=False)
        done += want
        yield buffer


def _read_into(body: BinaryIO, buffer: bytearray) -> int:
    """Fill `buffer` from `body` (a raw reader may return less per call); the bytes read, fewer at its end."""
    got = 0
    with memoryview(buffer) as view:
        while got < len(buffer):
            with view[got:] as rest:
                count = body.readinto(rest)  # type: ignore[attr-defined]  # BinaryIO's stub omits it
            if not count:
                break
            got += count
    return got


def require_sha256(found: str, expected: str) -> None:
    """The staged bytes, hashed on their way out, must be the accepted document's before anything appears."""
    if found != expected:
        raise DestinationError("staged bytes do not match their sha256", retryable=False)


def read_range(fp: Any, start: int, length: int | None, chunk: int) -> Iterator[bytes]:
    """`length` bytes (all to the end when None) of an open file from `start`, in chunks; closes the file."""
    with fp:
        fp.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            data = fp.read(chunk if remaining is None else min(chunk, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


@dataclass(frozen=True)
class Payload:
    """A staged object on its way to one destination path."""

    open: Callable[[], BinaryIO]
    size: int
    sha256: str
    content_type: str
    path: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The document's identity (doc_id, repo_id, comp_id), for kinds that label what they store.
    identity: Mapping[str, str] = field(default_factory=dict)
    # Stable for one delivery of one content generation, whatever the attempt: what at-least-once kinds
    # (webhook-id, an e-mail's Message-ID) send so that a receiver can drop a repeat.
    delivery_key: str = ""
    # Makes a signed, expiring link to the document's content that needs no API key, and says until when
    # (filerelay.file_links); raises LinkError when the installation has no public URL.
    link: Callable[[], tuple[str, dt.datetime]] | None = None
    # Records, on the delivery, what identifies the version this upload puts at the path (a kind's own
    # text, `RecordsLanding`). Called before the version becomes current where a kind can, so that an
    # attempt nobody saw end can be told apart without reading the file back; raises if it cannot record
    # (the attempt then fails before the content moves).
    landing: Callable[[str], None] | None = None


class Client(Protocol):
    def deliver(self, payload: Payload) -> str | None:
        """Write the payload at its path, overwriting what is there; raise DestinationError. Returns
        where it landed when that is not `payload.path` (a name the service would refuse, changed)."""
        ...

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream back (a range of) what was delivered at `path`; raise DestinationError."""
        ...

    def check(self) -> None:
        """Raise DestinationError unless credentials and reachability are fine."""
        ...

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        """Whether `path` already has exactly this content (False when the kind cannot tell cheaply)."""
        ...


@runtime_checkable
class RecordsLanding(Protocol):
    """A client that records what identifies each version it uploads (`Payload.landing`) and answers
    `holds` from that record and the file's properties, without reading the content."""

    def holds_landed(self, path: str, *, sha256: str, size: int, landed: str | None) -> bool:
        """Whether `path` holds the version recorded as `landed` for this sha256 and size (False when
        nothing was recorded)."""
        ...


def already_holds(client: Client, path: str, *, sha256: str, size: int, landed: str | None) -> bool:
    """`holds`, given what the last attempt recorded of its upload (`landed`) for the kinds that use it."""
    if isinstance(client, RecordsLanding):
        return client.holds_landed(path, sha256=sha256, size=size, landed=landed)
    return client.holds(path, sha256=sha256, size=size)


@runtime_checkable
class ChecksOnRead(Protocol):
    """A client that can check a copy against the delivered document's sha256 as it reads it back, on
    the one open file (nothing can replace it between the check and the read)."""

    def read_checked(
        self, path: str, *, sha256: str, size: int, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """Like `read`, but raise DestinationError (not retryable) unless the whole copy at `path` has
        this size and sha256; nothing is yielded from a copy that fails."""
        ...


def read_verified(
    client: Client, path: str, *, sha256: str, size: int, start: int = 0, length: int | None = None
) -> Iterator[bytes]:
    """What was delivered at `path`, read back only if it is still the delivered document: anyone who
    can write where the copies are (the host, the bucket's other users) could have replaced it, and
    FileRelay serves it as the archived original. Kinds that read a copy whole to check it do so on the
    file they stream (`ChecksOnRead`); the others answer `holds`, which for object stores is one HEAD
    comparing the size and the sha256 FileRelay stored with the object."""
    if isinstance(client, ChecksOnRead):
        return client.read_checked(path, sha256=sha256, size=size, start=start, length=length)
    if not client.holds(path, sha256=sha256, size=size):
        raise DestinationError(
            f"the copy at {path} is not the delivered document (size or sha256 differ)", retryable=False
        )
    return client.read(path, start, length)


# A kind's check of settings against the operator's policy when they are written: raises
# marshmallow.ValidationError ({field: [reason]}) for what the policy refuses. The clients check again
# when they act, since the policy or the world (a symlink, a name's address) may have changed since.
Admit = Callable[[Mapping[str, Any], OperatorPolicy], None]


def _admit_anything(_values: Mapping[str, Any], _policy: OperatorPolicy) -> None:
    return None


def admit_host(field_name: str, host: str | None, policy: OperatorPolicy, *, prefix: str = "") -> None:
    """Refuse a `host` (read from the setting `field_name`) that is an address, or `localhost`, the egress
    policy keeps destinations from; any other name is judged at each connection (egress.literal_refusal)."""
    reason = egress.literal_refusal(host, policy) if host else None
    if reason is not None:
        raise ValidationError({field_name: [prefix + reason]})


def admit_host_of(field_name: str, *, url: bool) -> Admit:
    """The admit of a kind that reaches the one host its setting `field_name` names (a URL, or a host)."""

    def admit(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
        value = values.get(field_name)
        admit_host(field_name, egress.url_host(value) if url and value else value, policy)

    return admit


def admit_every(*checks: Admit) -> Admit:
    """One admit of several (a kind's credentials and the hosts it reaches): each must let the settings in,
    and the answer names every refusal at once, as a schema does."""

    def admit(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
        refused: dict[str, list[str]] = {}
        for check in checks:
            try:
                check(values, policy)
            except ValidationError as exc:
                for field_name, messages in exc.messages_dict.items():
                    found = messages if isinstance(messages, list) else [messages]
                    refused.setdefault(str(field_name), []).extend(str(m) for m in found)
        if refused:
            raise ValidationError(refused)

    return admit


@dataclass(frozen=True, kw_only=True)
class DestinationKind:
    """A kind's name, its settings schema, which settings are secrets, and how to build its client; and
    what the rest of FileRelay derives from it, declared here and nowhere else: whether a worker pushes
    to it (its queue `deliver.<name>`, its worker Deployment and compose service follow) or an
    integration pulls from it, and whether a delivered copy can be read back."""

    name: str
    schema: type[Schema]
    build: Callable[[Mapping[str, Any], Mapping[str, Any], OperatorPolicy], Client]
    # True: a worker delivers to it (a queue, a worker pool); False: its integration fetches the files
    # (the Files feed) and reports back, and no worker ever claims its deliveries.
    pushed: bool
    # Whether FileRelay can read a delivered copy back (for get/search once staging was purged).
    readable: bool
    secret_fields: frozenset[str] = frozenset()
    admit: Admit = _admit_anything
    # The settings that say where the copies are (a root, a bucket and endpoint, a host and directory):
    # fixed once the destination holds a delivery, since deliveries record paths relative to them.
    location_fields: frozenset[str] = frozenset()
    # Where the copies are, from a destination's settings and secrets: by default the location fields'
    # values; a kind whose location hides in a secret (Azure's connection string, which also carries a key
    # that may be rotated) says which part of it is the location.
    locate: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None

    def location(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What names where this kind's copies are, from (settings and secrets) `values`."""
        if self.locate is not None:
            return dict(self.locate(values))
        return {name: values.get(name) for name in sorted(self.location_fields)}

    def load(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The settings' shape alone (a config file being read); `validate` is what stores them."""
        loaded: dict[str, Any] = self.schema().load(dict(values))
        return loaded

    def validate(self, values: Mapping[str, Any], policy: OperatorPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check a kind's settings, and what they reach against the operator's policy; return
        (settings, secrets), split so secrets are stored apart."""
        loaded = self.load(values)
        self.admit(loaded, policy)
        settings = {k: v for k, v in loaded.items() if k not in self.secret_fields}
        secrets = {k: v for k, v in loaded.items() if k in self.secret_fields}
        return settings, secrets


REGISTRY: dict[str, DestinationKind] = {}


def register(kind: DestinationKind) -> DestinationKind:
    REGISTRY[kind.name] = kind
    return kind


def pushed_kinds() -> tuple[str, ...]:
    """The kinds a worker delivers to, in registration order: each has a queue and a worker pool."""
    return tuple(name for name, kind in REGISTRY.items() if kind.pushed)


def is_pushed(name: str) -> bool:
    """Whether a worker delivers to the kind (False for a pulled kind, and for a name nobody registered)."""
    kind = REGISTRY.get(name)
    return kind is not None and kind.pushed


def get_kind(name: str) -> DestinationKind:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValidationError(f"unknown destination kind {name!r}; known kinds: {known}") from None


def location_change(old_kind: str, old: Mapping[str, Any], new_kind: str, new: Mapping[str, Any]) -> list[str]:
    """The settings (or `kind`) whose change would move where a destination's copies are: its deliveries
    record paths relative to that place, and FileRelay reads them back from there."""
    if old_kind != new_kind:
        return ["kind"]
    before, after = get_kind(old_kind).location(old), get_kind(new_kind).location(new)
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def build_client(kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> Client:
    return get_kind(kind).build(settings, secrets, policy)


class Clients:
    """Destination clients built once per configuration and reused by every delivery in the process.

    Building one is costly (a boto3 client takes tens of milliseconds and keeps its connection pool), so
    a worker reuses it; a changed setting or rotated secret makes a new key, hence a new client. Clients
    are shared between the threads of a worker: a kind's client keeps no per-delivery state (SharePoint
    builds a fresh request context in each `deliver`, because a failed request leaves state in it)."""

    def __init__(self, policy: OperatorPolicy, size: int = 64) -> None:
        self.policy = policy
        self._size = size
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, Client] = OrderedDict()

    def get(self, kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> Client:
        # A digest, not the JSON itself, so the cache keeps no second copy of the secrets.
        material = json.dumps([kind, settings, secrets], sort_keys=True, default=str).encode()
        key = hashlib.sha256(material).hexdigest()
        # Built under the lock: the threads of a starting worker all want the same client at once, and
        # one build (tens of milliseconds, once per configuration) beats eight that are thrown away.
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build_client(kind, settings, secrets, self.policy)
                while len(self._clients) > self._size:
                    self._clients.popitem(last=False)
            self._clients.move_to_end(key)
            return client
