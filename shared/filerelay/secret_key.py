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

from filerelay.secrets_box import weakness
from filerelay.settings import Settings, SettingsError

FILENAME = "secret_key"


def secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    return generated_once(settings.home, FILENAME, variable="FILERELAY_SECRET_KEY", value=secrets.token_urlsafe(48))


def generated_once(home: Path, filename: str, *, variable: str, value: str) -> str:
    """The key in `home/filename` (mode 0600), written as `value` by whichever process comes first."""
    path = home / filename
    if path.exists():
        return _read(path, variable)
    home.mkdir(parents=True, exist_ok=True)
    # Written under a private name, then linked into place: a reader never sees a half-written key, and
    # of two processes starting together exactly one link succeeds; the other reads the winner's key.
    draft = home / f".{filename}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read(path, variable)


def _read(path: Path, variable: str) -> str:
    value = path.read_text().strip()
    if not value:
        raise SettingsError(f"{path} is empty: delete it (a new key is generated) or set {variable}")
    # A file someone wrote by hand gets the same scrutiny as the variable.
    reason = weakness(value)
    if reason:
        raise SettingsError(f"the key in {path} {reason}: delete it (a new key is generated) or set {variable}")
    return value
