"""The folder prometheus-client's multiprocess mode shares between processes (PROMETHEUS_MULTIPROC_DIR).

Kept apart from filerelay.metrics on purpose: prometheus-client decides, once, when it is first imported,
whether values go to that folder. A gunicorn master must set the variable *before* anything imports
prometheus-client, or every worker it forks inherits in-memory counters; so this module imports none of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The shared metrics folder, read when asked (not at import): `filerelay api` and tests set it late."""
    value = os.environ.get(MULTIPROC_DIR_ENV, "").strip()
    return Path(value) if value else None


@contextmanager
def own_multiprocess_dir(home: Path) -> Iterator[Path | None]:
    """Give this process and the ones it starts a fresh metrics folder under `home`, unless the operator
    set PROMETHEUS_MULTIPROC_DIR; yields the folder made, or None.

    Our folder is removed again on exit. The operator's is left alone: they empty it between runs, as
    prometheus-client requires.
    """
    if multiprocess_dir() is not None:
        yield None
        return
    parent = home / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    # A new, uniquely named folder per run: counts left by an earlier run (killed before it could clean
    # up) or by a second server on the same home must not be added to ours.
    folder = Path(tempfile.mkdtemp(prefix="prometheus-", dir=parent))
    os.environ[MULTIPROC_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """For gunicorn's child_exit: forget a finished worker's live gauges. Its counters stay, they still count."""
    folder = multiprocess_dir()
    if folder is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call] # the module is unannotated
