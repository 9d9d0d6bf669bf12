"""The key that signs console sessions and file links: FILERELAY_SECRET_KEY, else one generated once under
FILERELAY_HOME.

Every API and worker process must use the same key, or a session or link made by one is refused by the
next. Replicas on several hosts share it through FILERELAY_SECRET_KEY (a Kubernetes Secret); the processes
of one host share the file, which is created atomically so that processes starting together agree on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from filerelay.settings import Settings

FILENAME = "secret_key"


def secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.home / FILENAME
    if path.exists():
        return _read(path)
    settings.home.mkdir(parents=True, exist_ok=True)
    # Written under a private name, then linked into place: a reader never sees a half-written key, and
    # of two processes starting together exactly one link succeeds; the other reads the winner's key.
    draft = settings.home / f".{FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it (a new key is generated) or set FILERELAY_SECRET_KEY")
    return value
