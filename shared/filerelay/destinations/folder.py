"""The `folder` destination: a directory on a filesystem this process can write."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from filerelay.destinations.base import DestinationError, DestinationKind, Payload, read_range, register, require_sha256
from filerelay.policy import OperatorPolicy

CHUNK = 1024 * 1024


class FolderSettings(Schema):
    root = fields.String(required=True, validate=validate.Length(min=1))


class FolderClient:
    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser().resolve()

    def _target(self, path: str) -> Path:
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
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise DestinationError(f"{self.root} is not writable")


def build(settings: Mapping[str, Any], _secrets: Mapping[str, Any], _policy: OperatorPolicy) -> FolderClient:
    return FolderClient(settings["root"])


KIND = register(DestinationKind(name="folder", schema=FolderSettings, build=build))
