"""The `filerelay` command: one console script for every process (docs/architecture.md#commands)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from filerelay.queue import PUSHED
from filerelay.release import VERSION
from filerelay.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from filerelay.operations import Transaction


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _serving_settings() -> Settings:
    """The settings of a long-running process (api, worker, sweeper, up), refused before anything starts
    when a key is missing or unusable: better no service than one whose sessions can be forged or whose
    destination secrets no other process can open. On the embedded database this generates the
    encryption key under FILERELAY_HOME once, before any child process races for it."""
    from filerelay.encryption_keys import encryption_keyring

    settings = _settings()
    try:
        encryption_keyring(settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    return settings


def _logging() -> None:
    from filerelay.logs import configure_logging

    try:
        configure_logging(logging.INFO)  # JSON lines; FILERELAY_LOG_FORMAT=text for a terminal
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
@click.version_option(VERSION, prog_name="filerelay")
def main() -> None:
    """FileRelay: an SAP ArchiveLink content server that relays every document to its destinations."""


@main.command()
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: list the pending migrations and exit 1 if there are any (or if this code cannot run "
    "against the schema), 0 when this code runs against it as it is.",
)
def migrate(check: bool) -> None:
    """Upgrade the database schema to the newest version."""
    from filerelay.db.migrate import upgrade

    settings = _settings()
    if check:
        _migrate_check(settings)
        return
    try:
        # Migration 0008 encrypts the destination secrets written before it, with this process's keys.
        upgrade(settings.database_url, settings=settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo("database schema is up to date")


def _migrate_check(settings: Settings) -> None:
    from filerelay.db import schema_window
    from filerelay.db.migrate import pending_revisions
    from filerelay.db.session import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            pending = pending_revisions(conn)
            schema = schema_window.state(conn)
    finally:
        engine.dispose()
    if pending:
        click.echo(f"{len(pending)} migration(s) pending (run filerelay migrate):")
        for revision, description in pending:
            click.echo(f"  {revision}  {description}")
        sys.exit(1)
    if schema.problem is not None:
        click.echo(f"database schema {schema.problem}")
        sys.exit(1)
    if schema.database != schema.code:
        newer = f"database schema is at {schema.database}, a newer release's"
        click.echo(f"{newer}, which this code ({schema.code}) runs against")
    else:
        click.echo(f"database schema is up to date ({schema.database})")


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
    except SettingsError as exc:  # the encryption keys the destination secrets are stored under
        raise click.UsageError(str(exc)) from None
    click.echo(str(summary))


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Gunicorn worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per worker process.")
def api(host: str, port: int, workers: int, threads: int) -> None:
    """Run the HTTP service (ArchiveLink, REST, operations) under gunicorn."""
    from filerelay.cli.server import serve

    settings = _serving_settings()
    _logging()
    serve(settings, host=host, port=port, workers=workers, threads=threads)


def _queues(value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in PUSHED]
    if not kinds or unknown:
        raise click.BadParameter(f"use destination kinds a worker delivers to, from {', '.join(PUSHED)}; got {value!r}")
    return kinds


@contextmanager
def _worker_metrics(settings: Settings, port: int | None) -> Iterator[None]:
    """With a port: a metrics folder shared by the worker's processes, served at :port/metrics. It must be
    set before anything imports prometheus_client (the worker app does)."""
    if not port:
        yield
        return
    from filerelay.metrics_dir import own_multiprocess_dir

    with own_multiprocess_dir(settings.home):
        from filerelay.metrics import serve_counts

        serve_counts(port, settings.home)
        yield


@main.command()
@click.option(
    "--queues",
    default=",".join(PUSHED),
    show_default=True,
    help="Destination kinds this worker delivers to, comma-separated.",
)
@click.option("--concurrency", default=8, show_default=True, type=int, help="Deliveries in parallel, in each process.")
@click.option(
    "--processes",
    type=int,
    default=None,
    help="Worker processes (default: one per core; with the embedded broker, one). A delivery spends most "
    "of its CPU in Python, which runs one thread at a time per process: a second process uses a second core.",
)
@click.option("--process-index", type=int, default=None, hidden=True)
@click.option(
    "--pool",
    type=click.Choice(["threads", "prefork"]),
    default="threads",
    show_default=True,
    help="How a process takes its kinds' wake-ups: threads (one process, its uploads in threads) or prefork "
    "(a pool process per kind).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve this worker's delivery counters at :PORT/metrics (for a worker pod's Prometheus scrape).",
)
@click.option(
    "--stall-seconds",
    type=float,
    default=120.0,
    show_default=True,
    help="Exit (code 3, to be started again) when wake-ups wait this long in the worker's queues while it has "
    "room and takes none; while it is taking work it touches $FILERELAY_HOME/worker-<hostname>.heartbeat "
    "(a liveness probe's file; worker-<hostname>-<N>.heartbeat for each of several processes). 0 turns both off.",
)
def worker(
    queues: str,
    concurrency: int,
    processes: int | None,
    process_index: int | None,
    pool: str,
    metrics_port: int | None,
    stall_seconds: float,
) -> None:
    """Run a delivery worker for the given destination kinds (one queue of wake-ups per kind)."""
    from filerelay.queue import queue_name

    settings = _serving_settings()
    _logging()
    kinds = _queues(queues)
    from filerelay.cli.supervisor import available_cpus, run_children

    count = 1 if settings.embedded_broker else (processes or available_cpus())
    if count > 1:
        # The processes share the metrics folder (one /metrics for the pod); each serves no port of its own.
        with _worker_metrics(settings, metrics_port):
            options = ["--queues", queues, "--concurrency", str(concurrency), "--pool", pool]
            options += ["--stall-seconds", str(stall_seconds), "--processes", "1"]
            commands = [["worker", *options, "--process-index", str(i)] for i in range(count)]
            # Each process finishes its uploads in flight on SIGTERM, however long they take.
            sys.exit(run_children(settings, commands, grace=None))
    names = ",".join(queue_name(k) for k in kinds)
    with _worker_metrics(settings, metrics_port):
        if settings.embedded_broker:
            from filerelay.worker.embedded import run_embedded

            sys.exit(run_embedded(settings, kinds, concurrency, stall_seconds))
        from filerelay.worker import watchdog
        from filerelay.worker.celery_app import make_worker_app, run_worker

        suffix = "" if process_index is None else f"-{process_index}"
        app = make_worker_app(settings, concurrency)
        watchdog.install(app, settings, names.split(","), len(kinds), stall_seconds, suffix=suffix)
        code = run_worker(
            app,
            [
                "worker",
                "--queues",
                names,
                # A slot per kind for its drain: one kind's long drain never keeps another's wake-up waiting.
                "--concurrency",
                str(len(kinds)),
                "--pool",
                pool,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"filerelay-{queues}{suffix}@%h",
            ],
        )
        if code:
            sys.exit(code)


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve the sweeper's metrics (its last pass) at :PORT/metrics (for a sweeper pod's Prometheus scrape).",
)
def sweeper(once: bool, metrics_port: int | None) -> None:
    """Run the sweeper: due retries, lost messages, expired leases, TTL failures, staging purge. After every
    pass it touches $FILERELAY_HOME/sweeper-<hostname>.heartbeat (see `filerelay probe sweeper`)."""
    settings = _serving_settings()
    _logging()
    with _worker_metrics(settings, metrics_port):
        from filerelay.worker.sweeper import run_forever

        run_forever(settings, once=once)


@main.command()
@click.argument("role", type=click.Choice(["worker", "sweeper"]))
@click.option(
    "--max-age",
    type=float,
    default=None,
    help="Seconds a heartbeat file may be old [default: worker 120; sweeper 120, or 3 sweep intervals if longer].",
)
def probe(role: str, max_age: float | None) -> None:
    """Liveness probe: exit 0 while this host's worker (every process of it) or sweeper keeps touching its
    heartbeat file under FILERELAY_HOME, 1 once one is older than --max-age or none exists. Run it in the
    process's container (Kubernetes exec probe, Compose healthcheck): it reads files, no server."""
    from filerelay.heartbeats import judge

    settings = _settings()
    if max_age is None:
        max_age = 120.0 if role == "worker" else max(120.0, 3 * settings.sweep_interval_seconds)
    verdict = judge(settings.home, role, max_age=max_age)
    click.echo(verdict.reason, err=not verdict.ok)
    if not verdict.ok:
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Everything in one go on embedded defaults: migrate, apply FILERELAY_CONFIG, API, worker, sweeper."""
    from filerelay.cli.supervisor import run_up

    settings = _serving_settings()
    _logging()
    sys.exit(run_up(settings, host=host, port=port))


def _engine() -> Engine:
    """The configured database, with its encryption keys; a missing or unusable key as a usage error."""
    from filerelay.db.session import engine_for

    try:
        return engine_for(_settings())
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def _database() -> Iterator[Session]:
    """One unit of work on the configured database; the shared core's errors as command-line errors."""
    from filerelay.db.session import make_session_factory, session_scope
    from filerelay.workspace_config.common import ConfigurationError

    engine = _engine()
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@contextmanager
def _change() -> Iterator[Transaction]:
    """One change on the configured database through the operations layer, audited as `cli`."""
    from filerelay.audit import CLI_ACTOR
    from filerelay.clock import SystemClock
    from filerelay.db.session import make_session_factory
    from filerelay.operations import Context, transaction
    from filerelay.workspace_config.common import ConfigurationError

    engine = _engine()
    try:
        with transaction(Context(sessions=make_session_factory(engine), actor=CLI_ACTOR, clock=SystemClock())) as tx:
            yield tx
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def _workspace_id(session: Session, workspace: str) -> int:
    from filerelay.workspace_config.common import get_workspace

    owner, _, slug = workspace.partition("/")
    if not owner or not slug or "/" in slug:
        raise click.BadParameter(f"write the workspace as OWNER/SLUG, e.g. acme/production; got {workspace!r}")
    return get_workspace(session, owner, slug).id


@main.group()
def keys() -> None:
    """Create, list and revoke a workspace's API keys."""


@keys.command("create")
@click.argument("workspace", metavar="OWNER/SLUG")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "member", "admin"]), default="viewer", show_default=True)
def keys_create(workspace: str, name: str, role: str) -> None:
    """Create key NAME and print it. It is shown this once: only its hash is stored."""
    from filerelay.operations import configuration

    with _change() as tx:
        new = configuration.create_key(tx, workspace_id=_workspace_id(tx.session, workspace), name=name, role=role)
    # The key alone on stdout, so `KEY=$(filerelay keys create …)` captures just the key.
    click.echo(f"created {role} key {name!r} for {workspace}; store it now, it is not shown again:", err=True)
    click.echo(new.key)


def _when(value: dt.datetime | None) -> str:
    from filerelay.clock import as_utc

    return "-" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


@keys.command("list")
@click.argument("workspace", metavar="OWNER/SLUG")
def keys_list(workspace: str) -> None:
    """List the workspace's keys (never the keys themselves)."""
    from filerelay.workspace_config.api_keys import list_keys

    with _database() as session:
        rows = list_keys(session, workspace_id=_workspace_id(session, workspace))
    table = [("NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED")]
    table += [(k.name, k.role, k.prefix, _when(k.created_at), _when(k.last_used_at), _when(k.revoked_at)) for k in rows]
    _echo_table(table)


def _echo_table(table: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("workspace", metavar="OWNER/SLUG")
@click.argument("name")
def keys_revoke(workspace: str, name: str) -> None:
    """Revoke key NAME: from now on it is refused (401). It stays listed."""
    from filerelay.operations import configuration

    with _change() as tx:
        info = configuration.revoke_key(tx, workspace_id=_workspace_id(tx.session, workspace), name=name)
    click.echo(f"revoked key {name!r} of {workspace} at {_when(info.revoked_at)}")


@main.group()
def certs() -> None:
    """Review and activate the certificates SAP sent with putCert (OAC0 "Send certificate")."""


@certs.command("list")
@click.option("--workspace", metavar="OWNER/SLUG", help="Only this workspace's repositories.")
def certs_list(workspace: str | None) -> None:
    """Every received certificate: compare subject, serial and fingerprint with STRUST before activating."""
    from filerelay import certificates

    with _database() as session:
        workspace_id = _workspace_id(session, workspace) if workspace else None
        rows = certificates.list_for(session, workspace_id=workspace_id)
    table = [("REPO", "STATE", "AUTH ID", "SUBJECT", "SERIAL", "VALID UNTIL", "FINGERPRINT (SHA-256)")]
    table += [
        (
            c.repo_id,
            "active" if c.active else "inactive",
            c.auth_id,
            c.subject,
            c.serial,
            _when(c.not_after),
            c.fingerprint,
        )
        for c in rows
    ]
    _echo_table(table)


def _switch_certificate(repo: str, fingerprint: str, workspace: str | None, *, active: bool) -> None:
    from sqlalchemy import select

    from filerelay import certificates
    from filerelay.db.models import Repository
    from filerelay.operations import configuration

    with _change() as tx:
        if workspace:
            workspace_ids = [_workspace_id(tx.session, workspace)]
        else:
            workspace_ids = list(tx.session.scalars(select(Repository.workspace_id).where(Repository.repo_id == repo)))
        if len(workspace_ids) != 1:
            found = "no workspace has" if not workspace_ids else "several workspaces have"
            raise click.ClickException(f"{found} a repository {repo}; name one with --workspace OWNER/SLUG")
        try:
            info = configuration.set_certificate(
                tx, workspace_id=workspace_ids[0], repo_id=repo, fingerprint=fingerprint, active=active
            )
        except certificates.UnknownCertificate as exc:
            raise click.ClickException(str(exc)) from None
    state = "active: signed URLs by" if active else "revoked: no longer trusting"
    click.echo(f"{repo} {state} {info.subject} ({info.fingerprint})")


def _which_certificate(command: Callable[..., None]) -> Callable[..., None]:
    """REPO FINGERPRINT [--workspace OWNER/SLUG]: the certificate `certs activate` and `certs revoke` switch."""
    command = click.option(
        "--workspace", metavar="OWNER/SLUG", help="Needed when several workspaces have repository REPO."
    )(command)
    return click.argument("repo")(click.argument("fingerprint")(command))


@certs.command("activate")
@_which_certificate
def certs_activate(repo: str, fingerprint: str, workspace: str | None) -> None:
    """Trust the certificate with FINGERPRINT for repository REPO."""
    _switch_certificate(repo, fingerprint, workspace, active=True)


@certs.command("revoke")
@_which_certificate
def certs_revoke(repo: str, fingerprint: str, workspace: str | None) -> None:
    """Stop trusting the certificate with FINGERPRINT for repository REPO."""
    _switch_certificate(repo, fingerprint, workspace, active=False)


@main.group("secrets")
def secrets_() -> None:
    """Destination secrets, sealed in the database under FILERELAY_ENCRYPTION_KEYS."""


@secrets_.command("rotate")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(min=1), help="Rows per transaction.")
def secrets_rotate(batch: int) -> None:
    """Re-encrypt every destination's secrets under the first of FILERELAY_ENCRYPTION_KEYS.

    To change keys with no moment where a process cannot open a row: list the new key second on every
    process, then move it first, run this, then drop the old key. Idempotent: a second run re-encrypts
    nothing."""
    from filerelay.db.sealed_rows import rotate
    from filerelay.db.types import keyring_of
    from filerelay.secrets_box import SecretsBoxError

    engine = _engine()
    keyring = keyring_of(engine)
    try:
        resealed = rotate(engine, keyring, size=batch)
    except SecretsBoxError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"re-encrypted {resealed} destination(s) under key id {keyring.primary.id}")
