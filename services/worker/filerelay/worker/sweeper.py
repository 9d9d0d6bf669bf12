"""The sweeper process: one pass every interval, until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

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
    try:
        while not stop.is_set():
            try:
                report = sweep(runtime)
                if report.busy or report.orphans:
                    log.info("sweep: %s", report)
            except Exception:
                log.exception("sweep failed; trying again next interval")
            if once:
                break
            stop.wait(settings.sweep_interval_seconds)
    finally:
        runtime.close()
