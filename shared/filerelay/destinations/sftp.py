"""The `sftp` destination: files written over SSH (paramiko) to a server whose host key is pinned.

Each delivery writes a temporary name beside the target, checks what landed (its size, then its sha256
read back), and renames it into place with `posix-rename@openssh.com`, which replaces an existing file
atomically: a failed or interrupted re-delivery leaves the previous copy intact, never a half file. The
host key is pinned as the server's public-key line (`ssh-ed25519 AAAA…`, as known_hosts holds it); any
other key is refused before a password or key is offered.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import posixpath
import secrets
import stat
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from filerelay import egress
from filerelay.destinations.base import DestinationError, DestinationKind, Payload, admit_host_of, read_range, register
from filerelay.policy import OperatorPolicy

CHUNK = 1024 * 1024
TIMEOUT = 30  # seconds, for the connection, the SSH handshake and each SFTP request


class SftpSettings(Schema):
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(load_default=22, validate=validate.Range(min=1, max=65535))
    username = fields.String(required=True, validate=validate.Length(min=1))
    password = fields.String(load_default=None)
    private_key = fields.String(load_default=None)
    host_key = fields.String(required=True)
    root = fields.String(load_default="/", validate=validate.Regexp(r"^/", error="root is an absolute path"))

    @validates("host_key")
    def _host_key(self, value: str, **_: Any) -> None:
        pinned_key(value)

    @validates("private_key")
    def _private_key(self, value: str | None, **_: Any) -> None:
        if value is not None:
            load_private_key(value)

    @validates_schema
    def _one_credential(self, data: Mapping[str, Any], **_: Any) -> None:
        if not data.get("password") and not data.get("private_key"):
            raise ValidationError("give a password or a private_key", field_name="password")


def pinned_key(line: str) -> tuple[str, str]:
    """(type, base64) of a known_hosts-style public key line: `ssh-ed25519 AAAA… [comment]`."""
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise ValidationError("host_key is the server's public key line, e.g. `ssh-ed25519 AAAA…`")
    return parts[0], parts[1]


def load_private_key(text: str) -> Any:
    """An OpenSSH or PEM private key (RSA, ECDSA or Ed25519), unencrypted."""
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValidationError("private_key is not an unencrypted OpenSSH or PEM RSA, ECDSA or Ed25519 key")


class SftpDestination:
    def __init__(self, settings: Mapping[str, Any], secrets_: Mapping[str, Any], policy: OperatorPolicy) -> None:
        self.policy = policy
        self.host: str = settings["host"]
        self.port: int = settings.get("port") or 22
        self.username: str = settings["username"]
        self.root: str = settings.get("root") or "/"
        self.pinned = pinned_key(settings["host_key"])
        self._password: str | None = secrets_.get("password")
        self._key_text: str | None = secrets_.get("private_key")

    def _target(self, path: str) -> str:
        return posixpath.join(self.root, path.lstrip("/"))

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """A connected, authenticated SFTP session to the pinned server; closed on leaving."""
        import paramiko

        where = f"sftp://{self.username}@{self.host}:{self.port}"
        try:
            # paramiko takes the socket: the connection goes to an address the egress guard admitted.
            sock = egress.connect((self.host, self.port), self.policy, timeout=TIMEOUT)
        except egress.EgressRefused as exc:
            raise DestinationError(f"{where} cannot be reached: {exc}", retryable=False) from exc
        except OSError as exc:
            raise DestinationError(f"{where} cannot be reached: {exc}") from exc
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = transport.auth_timeout = TIMEOUT
            try:
                transport.start_client(timeout=TIMEOUT)
            except (paramiko.SSHException, OSError) as exc:
                raise DestinationError(f"{where}: SSH handshake failed: {exc}") from exc
            offered = transport.get_remote_server_key()
            if (offered.get_name(), offered.get_base64()) != self.pinned:
                raise DestinationError(
                    f"{where} offered host key {offered.get_name()} {offered.get_base64()[:24]}…, not the pinned "
                    "one: refused (if the server's key changed on purpose, update host_key)",
                    retryable=False,
                )
            self._authenticate(transport, where)
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise DestinationError(f"{where}: the server offers no SFTP subsystem", retryable=False)
            sftp.get_channel().settimeout(TIMEOUT)
            with sftp:
                yield sftp
        finally:
            transport.close()

    def _authenticate(self, transport: Any, where: str) -> None:
        import paramiko

        try:
            if self._key_text:
                transport.auth_publickey(self.username, load_private_key(self._key_text))
            else:
                transport.auth_password(self.username, self._password or "")
        except paramiko.AuthenticationException as exc:
            raise DestinationError(f"{where}: authentication failed ({exc})", retryable=False) from exc
        except (paramiko.SSHException, OSError) as exc:
            raise DestinationError(f"{where}: authentication did not complete: {exc}") from exc

    def deliver(self, payload: Payload) -> str | None:
        target = self._target(payload.path)
        folder, name = posixpath.split(target)
        draft = posixpath.join(folder, f".{name}.{secrets.token_hex(6)}.part")
        with self._session() as sftp:
            try:
                _makedirs(sftp, folder)
                _clear_stale_drafts(sftp, folder, name)
                with payload.open() as body:
                    _write(sftp, draft, body, payload.size)
                _verify(sftp, draft, payload)
                sftp.posix_rename(draft, target)
            except DestinationError:
                _discard(sftp, draft)
                raise
            except OSError as exc:  # paramiko's SFTP errors are IOErrors with the server's status
                _discard(sftp, draft)
                raise _error(exc, f"writing {target}") from exc
        return None

    @contextlib.contextmanager
    def _opened(self, path: str) -> Iterator[tuple[str, Any]]:
        """The remote file at `path` open for reading, in a session of its own; its full name beside it."""
        target = self._target(path)
        with self._session() as sftp:
            try:
                remote = sftp.open(target, "rb")
            except OSError as exc:
                raise _error(exc, f"reading {target}") from exc
            with remote:
                yield target, remote

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        with self._opened(path) as (_target, remote):
            yield from read_range(remote, start, length, CHUNK)

    def read_checked(
        self, path: str, *, sha256: str, size: int, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """The remote file hashed whole through the handle that then streams it (two passes over the
        network, one chunk in memory): a file replaced on the server after its delivery is refused, and
        one renamed over it after the check is not the one read."""
        with self._opened(path) as (target, remote):
            try:
                found = _digest(remote)
            except OSError as exc:
                raise _error(exc, f"reading {target}") from exc
            if found != (size, sha256):
                raise DestinationError(
                    f"{target} is not the delivered document (it changed since: size or sha256 differ)",
                    retryable=False,
                )
            yield from read_range(remote, start, length, CHUNK)

    def check(self) -> None:
        with self._session() as sftp:
            try:
                found = sftp.stat(self.root)
            except OSError as exc:
                raise _error(exc, f"the root {self.root}") from exc
            if not stat.S_ISDIR(found.st_mode or 0):
                raise DestinationError(f"the root {self.root} is not a directory", retryable=False)

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        target = self._target(path)
        with self._session() as sftp:
            try:
                if sftp.stat(target).st_size != size:
                    return False
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise _error(exc, f"looking at {target}") from exc
            return _sha256(sftp, target) == sha256


def _error(exc: OSError, what: str) -> DestinationError:
    # A missing folder or a permission the server refuses will not fix itself; a dropped connection might.
    permanent = isinstance(exc, (FileNotFoundError, PermissionError))
    return DestinationError(f"{what} failed: {type(exc).__name__}: {exc}", retryable=not permanent)


def _makedirs(sftp: Any, folder: str) -> None:
    missing = []
    while folder not in ("", "/"):
        try:
            sftp.stat(folder)
            break
        except FileNotFoundError:
            missing.append(folder)
            folder = posixpath.dirname(folder)
    for each in reversed(missing):
        with contextlib.suppress(OSError):  # made meanwhile by another delivery: the write will tell
            sftp.mkdir(each)


def _write(sftp: Any, draft: str, body: BinaryIO, size: int) -> None:
    with sftp.open(draft, "wb") as remote:
        remote.set_pipelined(True)
        sent = 0
        while chunk := body.read(CHUNK):
            remote.write(chunk)
            sent += len(chunk)
    if sent != size:
        raise DestinationError(f"staging held {sent} of {size} bytes", retryable=False)


def _verify(sftp: Any, draft: str, payload: Payload) -> None:
    """What landed, read back: its size and its sha256, before it takes the target's name."""
    landed = sftp.stat(draft).st_size
    if landed != payload.size:
        raise DestinationError(f"the server holds {landed} of {payload.size} bytes")
    if _sha256(sftp, draft) != payload.sha256:
        raise DestinationError("the server holds other bytes than were sent (sha256 differs)")


def _sha256(sftp: Any, path: str) -> str:
    with sftp.open(path, "rb") as remote:
        return _digest(remote)[1]


def _digest(remote: Any) -> tuple[int, str]:
    """(size, sha256) of an open remote file, read from its start with the requests pipelined."""
    digest, seen = hashlib.sha256(), 0
    remote.seek(0)
    remote.prefetch()
    while chunk := remote.read(CHUNK):
        digest.update(chunk)
        seen += len(chunk)
    return seen, digest.hexdigest()


def _clear_stale_drafts(sftp: Any, folder: str, name: str) -> None:
    """Remove what killed uploads of this name left (`.NAME.<random>.part`), as the folder kind does: one
    attempt at a path runs at a time (under its delivery's lease), so any draft there is abandoned. A
    worker that outlived its lease and still writes one loses its rename, never anyone's copy."""
    pattern = f".{name}.*.part"
    try:
        names = sftp.listdir(folder)
    except OSError:
        return  # writing the draft will report what is wrong with the folder
    for each in names:
        if fnmatch.fnmatchcase(each, pattern):
            _discard(sftp, posixpath.join(folder, each))


def _discard(sftp: Any, draft: str) -> None:
    with contextlib.suppress(Exception):  # the failure that got us here is the one to report
        sftp.remove(draft)


KIND = register(
    DestinationKind(
        name="sftp",
        schema=SftpSettings,
        build=SftpDestination,
        pushed=True,
        readable=True,
        secret_fields=frozenset({"password", "private_key"}),
        admit=admit_host_of("host", url=False),
        # The server, the directory, and the user: SFTP servers commonly chroot each user, so the same
        # root under another user is another directory.
        location_fields=frozenset({"host", "port", "username", "root"}),
    )
)
