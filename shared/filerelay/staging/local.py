"""Staging in a local (or shared) directory.

Writes stream in chunks into a locked temporary file, are fsync'd, and are renamed into place only when
complete, so a reader never sees a partial object. A writer killed mid-upload leaves a temporary file
whose lock died with it; `purge_orphans` removes exactly those.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from filerelay.staging.base import AbortsOnExit, StagedObject, StagingError, Tally, check_key

# How long a temporary file that was never locked must be untouched before it counts as a dead writer's.
ORPHAN_GRACE_SECONDS = 60


def fsync_dir(path: Path) -> None:
    """Make the names in a folder durable: a new file's name is only once its directory is fsync'd."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalWriter(AbortsOnExit):
    def __init__(self, store: LocalStagingStore, key: str, limit: int | None) -> None:
        self._final = store.path_for(key)
        self._key = key
        name = f"{key}.{secrets.token_hex(6)}"
        self._tmp = store.tmp_dir / f"{name}.part"
        # Born under another name and locked before it becomes a .part: purge_orphans takes unlocked
        # .part files, and a file between its creation and its lock is unlocked too.
        born = store.tmp_dir / f"{name}.new"
        self._file: BinaryIO = open(born, "xb")  # noqa: SIM115 - closed in commit/abort
        # Held until commit or abort: a live lock tells purge_orphans this writer is still running.
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(born, self._tmp)
        self._tally = Tally(limit)
        self._done = False

    def write(self, data: bytes) -> None:
        self._tally.add(data)
        self._file.write(data)

    def commit(self) -> StagedObject:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, self._final)
        fsync_dir(self._final.parent)
        self._file.close()
        self._done = True
        return self._tally.staged(self._key)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class LocalStagingStore:
    """Staging in a local (or shared) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.objects_dir = root / "objects"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.objects_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        check_key(key)
        # Fan out so no directory ends up holding millions of entries.
        return self.objects_dir / key[-2:] / key

    def writer(self, key: str, *, limit: int | None = None) -> _LocalWriter:
        check_key(key)
        return _LocalWriter(self, key, limit)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path_for(key), "rb")
        except FileNotFoundError:
            raise StagingError(f"staged object {key} is gone") from None

    def size(self, key: str) -> int:
        return self.path_for(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()

    def purge_orphans(self, *, now: float | None = None) -> int:
        """Remove temporary files whose writer has died; return how many.

        A `.part` is always locked by a live writer, so an unlocked one is dead. A `.new` is a file
        not locked yet: it is taken only once untouched for ORPHAN_GRACE_SECONDS (its writer was killed
        in the instant between creating and locking it).
        """
        # File times are wall-clock: so is the cutoff.
        cutoff = (time.time() if now is None else now) - ORPHAN_GRACE_SECONDS
        removed = 0
        for path in [*self.tmp_dir.glob("*.part"), *self.tmp_dir.glob("*.new")]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            else:
                if path.suffix == ".new" and os.fstat(fd).st_mtime > cutoff:
                    continue  # perhaps being born right now
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
            finally:
                os.close(fd)
        return removed

    def check(self) -> None:
        if not os.access(self.tmp_dir, os.W_OK) or not os.access(self.objects_dir, os.W_OK):
            raise StagingError(f"staging directory {self.root} is not writable")

    def keys(self) -> Iterator[str]:
        for path in self.objects_dir.glob("*/*"):
            yield path.name

    def stale_keys(self, *, older_than: dt.timedelta, now: float | None = None) -> Iterator[str]:
        # File times are wall-clock: so is the cutoff.
        cutoff = (time.time() if now is None else now) - older_than.total_seconds()
        for path in self.objects_dir.glob("*/*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    yield path.name
