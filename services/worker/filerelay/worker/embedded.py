"""The embedded worker (`filerelay up`, no Redis): it watches the wake-up files and drains its kinds.

The wake-ups are empty files, one per kind, created exclusively by whoever has work for the kind and
removed by this worker as it takes them (filerelay.queue.FolderMarks): no message body to be read half
written, and one look at a small folder tells every kind that waits. The deliveries themselves come
from the database in batches, as with Redis (filerelay.delivery.drain).
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

from filerelay import heartbeats
from filerelay.delivery.drain import Drainer
from filerelay.queue import FolderMarks
from filerelay.runtime import build_runtime
from filerelay.settings import Settings

log = logging.getLogger("filerelay.worker")

# How often the wake-up folder is looked at while idle: a new document waits at most this long for its
# worker to notice it (a look is one listing of a folder of at most a dozen entries).
LOOK_SECONDS = 0.02
# How often the heartbeat file is touched while the loop runs (the worker's liveness).
BEAT_SECONDS = 5.0


def run_embedded(settings: Settings, kinds: list[str], concurrency: int, stall_seconds: float) -> int:
    """Deliver until SIGTERM or SIGINT; what runs then finishes first. The exit code."""
    runtime = build_runtime(settings)
    drainer = Drainer(runtime, concurrency=concurrency)
    marks = FolderMarks(settings.broker_dir / "wake")
    heartbeat = heartbeats.worker_path(settings.home) if stall_seconds > 0 else None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        drainer.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def taken() -> bool:
        return any([marks.clear(kind) for kind in kinds])  # every mark cleared, not just the first

    log.info("embedded worker delivering %s, %d at a time", ", ".join(kinds), concurrency)
    beaten = 0.0
    pending = True  # what was due before this start (a restart) is taken without waiting for a wake-up
    try:
        while not drainer.stopping.is_set():
            if time.monotonic() - beaten >= BEAT_SECONDS and heartbeat is not None:
                heartbeats.beat(heartbeat)
                beaten = time.monotonic()
            if taken() or pending:
                pending = False
                drainer.drain(kinds, arrived=taken)
            else:
                drainer.stopping.wait(LOOK_SECONDS)
    finally:
        drainer.close()
        runtime.close()
    return 0
