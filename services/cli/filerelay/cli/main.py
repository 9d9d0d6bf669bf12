"""The `filerelay` command: one console script for every process (ARCHITECTURE.md §4)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from filerelay.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def main() -> None:
    """FileRelay: an SAP ArchiveLink content server that relays every document to its destinations."""


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version."""
    from filerelay.db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    click.echo("database schema is up to date")


@main.group()
def config() -> None:
    """Manage configuration from a YAML file."""


@config.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_apply(file: Path) -> None:
    """Create or update workspaces, keys, destinations, repositories and routes from FILE."""
    from filerelay.bootstrap import apply_config
    from filerelay.config_file import ConfigError

    try:
        summary = apply_config(_settings(), file)
    except ConfigError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    click.echo(str(summary))


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Gunicorn worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per worker process.")
def api(host: str, port: int, workers: int, threads: int) -> None:
    """Run the HTTP service (ArchiveLink, REST, operations) under gunicorn."""
    from filerelay.cli.server import serve

    _logging()
    serve(_settings(), host=host, port=port, workers=workers, threads=threads)


def _queues(value: str) -> list[str]:
    from filerelay.queue import KINDS

    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise click.BadParameter(f"use destination kinds from {', '.join(KINDS)}; got {value!r}")
    return kinds


@main.command()
@click.option(
    "--queues",
    default=",".join(("s3", "sharepoint", "folder", "pull")),
    show_default=True,
    help="Destination kinds this worker delivers to, comma-separated.",
)
@click.option("--concurrency", default=2, show_default=True, type=int, help="Deliveries in parallel.")
def worker(queues: str, concurrency: int) -> None:
    """Run a delivery worker for the given destination kinds (one Celery queue per kind)."""
    from filerelay.queue import queue_name
    from filerelay.worker.celery_app import make_worker_app

    _logging()
    names = ",".join(queue_name(k) for k in _queues(queues))
    app = make_worker_app(_settings())
    app.worker_main(
        [
            "worker",
            "--queues",
            names,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"filerelay-{queues}@%h",
        ]
    )


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit.")
def sweeper(once: bool) -> None:
    """Run the sweeper: due retries, lost messages, expired leases, TTL failures, staging purge."""
    from filerelay.worker.sweeper import run_forever

    _logging()
    run_forever(_settings(), once=once)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Everything in one go on embedded defaults: migrate, apply FILERELAY_CONFIG, API, worker, sweeper."""
    from filerelay.cli.supervisor import run_up

    _logging()
    sys.exit(run_up(_settings(), host=host, port=port))
