"""The sweeper process: one pass every interval, until told to stop.

After every pass, whatever its outcome, it touches its heartbeat file (a pass that hangs stops it: the
liveness probe fails); after a pass without error it sets the last-pass gauge (a sweeper whose passes keep
failing alerts, rather than being restarted by a probe that cannot fix the database).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from filerelay import heartbeats, metrics
from filerelay.delivery.sweep import sweep
from filerelay.runtime import build_runtime
from filerelay.settings import Settings

log = logging.getLogger("filerelay.sweeper")


def run_forever(settings: Settings, *, once: bool = False) -> None:
    runtime = build_runtime(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("sweeper running every %.1f s", settings.sweep_interval_seconds)
    heartbeat = heartbeats.sweeper_path(settings.home)
    try:
        while not stop.is_set():
            try:
                report = sweep(runtime)
                metrics.sweeper_passed()
                if report.busy or report.orphans:
                    log.info("sweep: %s", report)
            except Exception:
                log.exception("sweep failed; trying again next interval")
            heartbeats.beat(heartbeat)
            if once:
                break
            stop.wait(settings.sweep_interval_seconds)
    finally:
        runtime.close()
