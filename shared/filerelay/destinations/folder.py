"""The `folder` destination: a directory on a filesystem this process can write.

Its root must lie inside one of the operator's folder roots (`FILERELAY_FOLDER_ROOTS`), symlinks
resolved: a workspace admin names the folder, and without that bound could name any file the service
user may read or write (another team's tree, `/proc/self/environ`). The root is checked when the
settings are written (`admit_root`) and again by the client before every write, read and check, since a
directory inside a root may since have been replaced by a symlink to somewhere else.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from filerelay.destinations.base import DestinationError, DestinationKind, Payload, read_range, register, require_sha256
from filerelay.policy import OperatorPolicy

CHUNK = 1024 * 1024


class FolderSettings(Schema):
    root = fields.String(required=True, validate=validate.Length(min=1))


def outside_roots(root: str, roots: tuple[Path, ...]) -> str | None:
    """Why `root` may not be a folder destination's root under these operator roots; None when it may.

    Resolved with symlinks followed (a link inside a root to elsewhere lands elsewhere), and `..`
    collapsed by the resolution. A relative root would depend on the process's working directory and
    `~` on its user: neither says where the files go, so both are refused."""
    given = Path(root)
    if not given.is_absolute():
        return f"root {root!r} is not an absolute path"
    try:
        resolved = given.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"root {root!r} cannot be resolved: {exc}"
    # /proc/self is the process reading it: a path through it names different files for the API and a
    # worker, and its entries (environ, fd/N, root) are the process itself, never a place for documents.
    # Looked at before resolving too: /proc/self/root/srv resolves to /srv, /proc/self/cwd to the cwd.
    if Path(os.path.normpath(given)).parts[:2] == ("/", "proc") or resolved.parts[:2] == ("/", "proc"):
        return f"root {root!r} is in /proc"
    if any(resolved == allowed or resolved.is_relative_to(allowed) for allowed in roots):
        return None
    where = os.pathsep.join(str(allowed) for allowed in roots)
    return f"root {root!r} ({resolved}) is outside the operator's folder roots ({where}; FILERELAY_FOLDER_ROOTS)"


def admit_root(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """A folder destination's root, when written, lies inside the operator's folder roots."""
    reason = outside_roots(values["root"], policy.folder_roots)
    if reason is not None:
        raise ValidationError({"root": [reason]})


class FolderClient:
    def __init__(self, root: str, roots: tuple[Path, ...]) -> None:
        self.given = root
        self.roots = roots
        self.root = Path(root).resolve()

    def _admitted(self) -> None:
        """The root still lies inside the operator's roots (a directory can become a symlink after the
        settings were written), and still resolves to where this client writes."""
        reason = outside_roots(self.given, self.roots)
        if reason is None and Path(self.given).resolve() != self.root:
            reason = f"root {self.given!r} now resolves to {Path(self.given).resolve()}, not {self.root}"
        if reason is not None:
            raise DestinationError(f"refused: {reason}", retryable=False)

    def _target(self, path: str) -> Path:
        self._admitted()
        target = (self.root / path.lstrip("/")).resolve()
        # Paths are sanitised when rendered; this is the last line of defence against an escape.
        if not target.is_relative_to(self.root) or target == self.root:
            raise DestinationError(f"path {path!r} leaves the folder {self.root}", retryable=False)
        return target

    def deliver(self, payload: Payload) -> str | None:
        target = self._target(payload.path)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        digest = hashlib.sha256()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # A worker killed mid-write leaves its temporary file: the next attempt at this path (one at a
            # time, under the delivery's lease) clears it.
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
                stale.unlink(missing_ok=True)
            with payload.open() as source, open(tmp, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            require_sha256(digest.hexdigest(), payload.sha256)
            # Readers see the old file or the new one, never a half-written one.
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise DestinationError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            # Cleaning up must not hide why the write failed (a parent that is no directory fails both).
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        return None  # at the template's path

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        target = self._target(path)
        try:
            fp = open(target, "rb")  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise DestinationError(f"cannot read {target}: {exc.strerror or exc}") from exc
        return read_range(fp, start, length, CHUNK)

    def read_checked(
        self, path: str, *, sha256: str, size: int, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """The file hashed whole through the descriptor that then streams it: a file replaced on disk
        after its delivery (other bytes, another size) is refused, and one swapped after the check is
        not the one read."""
        target = self._target(path)
        try:
            fp = open(target, "rb")  # noqa: SIM115 - closed here or by the generator
        except OSError as exc:
            raise DestinationError(f"cannot read {target}: {exc.strerror or exc}") from exc
        try:
            digest = hashlib.sha256()
            seen = 0
            while chunk := fp.read(CHUNK):
                digest.update(chunk)
                seen += len(chunk)
        except OSError as exc:
            fp.close()
            raise DestinationError(f"cannot read {target}: {exc.strerror or exc}") from exc
        if seen != size or digest.hexdigest() != sha256:
            fp.close()
            raise DestinationError(
                f"{target} is not the delivered document (it changed since: size or sha256 differ)", retryable=False
            )
        return read_range(fp, start, length, CHUNK)

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        """The file there has this size and, read through, this sha256."""
        target = self._target(path)
        try:
            if target.stat().st_size != size:
                return False
            digest = hashlib.sha256()
            with open(target, "rb") as fp:
                while chunk := fp.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise DestinationError(f"cannot read {target}: {exc.strerror or exc}") from exc
        return digest.hexdigest() == sha256

    def check(self) -> None:
        self._admitted()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise DestinationError(f"{self.root} is not writable")


def location(values: Mapping[str, Any]) -> dict[str, Any]:
    """The root as a path: `/srv/out/` and `/srv/out` are the same folder (a link resolved elsewhere is
    refused at every use, so the text is what says where the copies are)."""
    root = values.get("root")
    return {"root": os.path.normpath(root) if root else None}


def build(settings: Mapping[str, Any], _secrets: Mapping[str, Any], policy: OperatorPolicy) -> FolderClient:
    return FolderClient(settings["root"], policy.folder_roots)


KIND = register(
    DestinationKind(
        name="folder",
        schema=FolderSettings,
        build=build,
        pushed=True,
        readable=True,
        admit=admit_root,
        location_fields=frozenset({"root"}),
        locate=location,
    )
)
