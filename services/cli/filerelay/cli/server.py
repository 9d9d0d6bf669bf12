"""Gunicorn, embedded: the production HTTP server for `filerelay api`."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

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

        return create_app(self._settings)


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    ApiServer(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            # Threads, so one slow SAP upload does not block the worker's other requests.
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "filerelay-api",
            # One shared path in $HOME would make two servers on one host fight over it.
            "control_socket_disable": True,
        },
    ).run()
