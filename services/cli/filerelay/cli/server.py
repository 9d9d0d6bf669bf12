"""Gunicorn, embedded: the production HTTP server for `filerelay api`."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from filerelay.cli.head_first import HeadFirstWorker
from filerelay.logs import make_formatter
from filerelay.metrics_dir import mark_process_dead, own_multiprocess_dir
from filerelay.settings import Settings


class ApiServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from filerelay.api import create_app
        from filerelay.runtime import build_runtime

        return create_app(runtime=build_runtime(self._settings, threads=self._options["threads"]))


class ApiLogger(Logger):  # type: ignore[misc]
    """Gunicorn's error and access lines in the format of every other FileRelay line (JSON unless
    FILERELAY_LOG_FORMAT=text), so a log collector reading the pod's output parses all of it."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = make_formatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)


def _child_exit(_server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    # Before gunicorn forks (and before anything imports prometheus_client): every worker must count into
    # the one folder that /metrics adds up, whichever worker answers the scrape.
    with own_multiprocess_dir(settings.home):
        ApiServer(
            settings,
            {
                "bind": f"{host}:{port}",
                "workers": workers,
                # Threads, so one slow SAP upload does not block the worker's other requests; gthread's,
                # but a connection takes a thread only once its request head is complete (slow clients).
                "worker_class": HeadFirstWorker,
                "threads": threads,
                "timeout": 120,
                "graceful_timeout": 30,
                "keepalive": 5,
                "accesslog": "-",
                "errorlog": "-",
                "loglevel": "info",
                "logger_class": ApiLogger,
                "proc_name": "filerelay-api",
                # One shared path in $HOME would make two servers on one host fight over it.
                "control_socket_disable": True,
                "child_exit": _child_exit,
            },
        ).run()
