"""Process settings, read from the environment in exactly one place."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from filerelay.policy import OperatorPolicy, PolicyError
from filerelay.secrets_box import weakness

if TYPE_CHECKING:
    from filerelay.delivery.retention import Retention
    from filerelay.delivery.rules import BreakerPolicy
    from filerelay.staging import StagingStore

DEFAULT_MAX_DOCUMENT_BYTES = 2 * 1024**3


class SettingsError(ValueError):
    """An environment variable has a value FileRelay cannot use."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def _days(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A number of days, or `off` (also the meaning of an empty value when there is no default)."""
    raw = environ.get(name, "").strip().lower()
    if raw == "off":
        return None
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of days or off, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be a positive number of days or off, got {value}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


KEY_ADVICE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _key(environ: Mapping[str, str], name: str) -> str | None:
    """A signing key: absent, or one that cannot be guessed. A template's placeholder (`change-me…`) or a
    short word would let anyone who read the template forge what the key signs, so it stops the process
    here, before it serves anything."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    reason = weakness(raw)
    if reason:
        raise SettingsError(f"{name} {reason}; {KEY_ADVICE}")
    return raw


def _keys(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated keys, each checked like a signing key; the reason names the key's place, never its
    value."""
    raw = [k.strip() for k in environ.get(name, "").split(",")]
    keys = tuple(k for k in raw if k)
    for number, key in enumerate(keys, start=1):
        reason = weakness(key)
        if reason:
            raise SettingsError(f"{name}: key {number} of {len(keys)} {reason}; {KEY_ADVICE}")
    if len(set(keys)) != len(keys):
        raise SettingsError(f"{name} lists the same key twice")
    return keys


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about its surroundings; immutable once built."""

    home: Path
    database_url: str
    broker_url: str
    staging_url: str
    config_file: Path | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    # How long a claimed delivery stays leased without a heartbeat before the sweeper takes it back; a
    # running attempt renews it every third of it (filerelay.delivery.heartbeat).
    lease_seconds: int = 60
    # How long staged bytes stay after every delivery of their document succeeded.
    staging_retention_seconds: int = 3600
    # The data lifecycle (filerelay.delivery.retention), in days; None: kept for ever. A failed document's
    # staged bytes (kept for a retry), the rows of a finished document, and audit entries.
    failed_retention_days: int | None = 30
    record_retention_days: int | None = None
    audit_retention_days: int | None = None
    # How often the sweeper runs.
    sweep_interval_seconds: float = 5.0
    # How long a woken delivery may wait for its worker before the sweeper wakes it again (its message
    # may be lost: a flushed or restarted Redis). A second message is harmless: the claim takes one.
    wake_grace_seconds: int = 10
    # A destination's circuit breaker: open after this many retryable failures in a row; probe after the
    # cool-down (filerelay.delivery.health).
    breaker_failures: int = 5
    breaker_cooldown_seconds: int = 60
    # For s3:// staging: an S3-compatible endpoint (MinIO, SeaweedFS…) and region; credentials come from
    # the standard AWS variables or the pod's role.
    staging_s3_endpoint_url: str | None = None
    staging_s3_region: str | None = None
    # Tolerance for SAP's and FileRelay's clocks disagreeing when checking a signed URL's expiration.
    signature_clock_skew_seconds: int = 300
    # How often the embedded broker's workers poll their folders (seconds).
    broker_polling_interval: float = 0.05
    # The web console's session cookie: signed with this key (every API replica must share it; without
    # it one is generated once under `home`), ended after this many idle minutes, and sent only over
    # HTTPS when `cookie_secure` or the public URL is https (session_cookie_secure; the embedded default
    # serves plain http on loopback).
    secret_key: str | None = field(default=None, repr=False)
    console_idle_minutes: int = 30
    cookie_secure: bool = False
    # Where receivers reach the API (e.g. https://filerelay.example.com), for the download links webhook
    # notifications carry; a link is valid this long, at most as long as staging keeps the bytes.
    public_url: str | None = None
    file_link_seconds: int = 3600
    # What workspaces' destinations may reach (folders, addresses, the installation's identity); see
    # `policy`. None: the defaults under `home`.
    operator_policy: OperatorPolicy | None = None
    # Keys sealing destination secrets in the database (filerelay.secrets_box): the first seals, all open,
    # so a new key goes first and the old one stays listed until `filerelay secrets rotate` has run. Empty:
    # one is generated once under `home` (filerelay.encryption_keys), with the embedded database only.
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("FILERELAY_HOME") or "./var").expanduser().resolve()
        config = env.get("FILERELAY_CONFIG") or None
        try:
            policy = OperatorPolicy.from_env(env, home=home)
        except PolicyError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            home=home,
            database_url=env.get("FILERELAY_DATABASE_URL") or f"sqlite:///{home / 'filerelay.db'}",
            broker_url=env.get("FILERELAY_BROKER_URL") or "filesystem://",
            staging_url=env.get("FILERELAY_STAGING_URL") or (home / "staging").as_uri(),
            config_file=Path(config) if config else None,
            max_document_bytes=_int(env, "FILERELAY_MAX_DOCUMENT_BYTES", DEFAULT_MAX_DOCUMENT_BYTES),
            lease_seconds=_int(env, "FILERELAY_LEASE_SECONDS", 60),
            staging_retention_seconds=_int(env, "FILERELAY_STAGING_RETENTION_SECONDS", 3600),
            failed_retention_days=_days(env, "FILERELAY_FAILED_RETENTION_DAYS", 30),
            record_retention_days=_days(env, "FILERELAY_RECORD_RETENTION_DAYS", None),
            audit_retention_days=_days(env, "FILERELAY_AUDIT_RETENTION_DAYS", None),
            sweep_interval_seconds=_float(env, "FILERELAY_SWEEP_INTERVAL_SECONDS", 5.0),
            wake_grace_seconds=_int(env, "FILERELAY_WAKE_GRACE_SECONDS", 10),
            breaker_failures=_int(env, "FILERELAY_BREAKER_FAILURES", 5),
            breaker_cooldown_seconds=_int(env, "FILERELAY_BREAKER_COOLDOWN_SECONDS", 60),
            signature_clock_skew_seconds=_int(env, "FILERELAY_SIGNATURE_CLOCK_SKEW_SECONDS", 300),
            staging_s3_endpoint_url=env.get("FILERELAY_STAGING_S3_ENDPOINT_URL") or None,
            staging_s3_region=env.get("FILERELAY_STAGING_S3_REGION") or None,
            secret_key=_key(env, "FILERELAY_SECRET_KEY"),
            console_idle_minutes=_int(env, "FILERELAY_CONSOLE_IDLE_MINUTES", 30),
            cookie_secure=_bool(env, "FILERELAY_COOKIE_SECURE", False),
            public_url=env.get("FILERELAY_PUBLIC_URL") or None,
            file_link_seconds=_int(env, "FILERELAY_FILE_LINK_SECONDS", 3600),
            operator_policy=policy,
            encryption_keys=_keys(env, "FILERELAY_ENCRYPTION_KEYS"),
        )

    def open_staging(self) -> StagingStore:
        from filerelay.staging import open_staging

        return open_staging(self.staging_url, endpoint_url=self.staging_s3_endpoint_url, region=self.staging_s3_region)

    @property
    def policy(self) -> OperatorPolicy:
        """The operator's policy for what destinations may reach (environment only)."""
        return self.operator_policy or OperatorPolicy.from_env({}, home=self.home)

    @property
    def breaker(self) -> BreakerPolicy:
        from filerelay.delivery.rules import BreakerPolicy

        return BreakerPolicy(failures=self.breaker_failures, cooldown_seconds=self.breaker_cooldown_seconds)

    @property
    def retention(self) -> Retention:
        from filerelay.delivery.retention import Retention

        return Retention.of(self)

    @property
    def session_cookie_secure(self) -> bool:
        """Whether the console's cookie travels over HTTPS only: when asked, and always when the public
        URL is https (a browser reaching the console over TLS must never send the session in clear)."""
        return self.cookie_secure or (self.public_url or "").lower().startswith("https://")

    @property
    def embedded_database(self) -> bool:
        """The database is the SQLite file of one host (the default under `home`), not a shared server."""
        return self.database_url.startswith("sqlite")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        """Folder the embedded (filesystem) broker keeps its messages in."""
        return self.home / "broker"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def environ(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {
            "FILERELAY_HOME": str(self.home),
            "FILERELAY_DATABASE_URL": self.database_url,
            "FILERELAY_BROKER_URL": self.broker_url,
            "FILERELAY_STAGING_URL": self.staging_url,
            "FILERELAY_MAX_DOCUMENT_BYTES": str(self.max_document_bytes),
            "FILERELAY_LEASE_SECONDS": str(self.lease_seconds),
            "FILERELAY_STAGING_RETENTION_SECONDS": str(self.staging_retention_seconds),
            "FILERELAY_FAILED_RETENTION_DAYS": _days_text(self.failed_retention_days),
            "FILERELAY_RECORD_RETENTION_DAYS": _days_text(self.record_retention_days),
            "FILERELAY_AUDIT_RETENTION_DAYS": _days_text(self.audit_retention_days),
            "FILERELAY_SWEEP_INTERVAL_SECONDS": repr(self.sweep_interval_seconds),
            "FILERELAY_WAKE_GRACE_SECONDS": str(self.wake_grace_seconds),
            "FILERELAY_BREAKER_FAILURES": str(self.breaker_failures),
            "FILERELAY_BREAKER_COOLDOWN_SECONDS": str(self.breaker_cooldown_seconds),
            "FILERELAY_SIGNATURE_CLOCK_SKEW_SECONDS": str(self.signature_clock_skew_seconds),
            "FILERELAY_CONSOLE_IDLE_MINUTES": str(self.console_idle_minutes),
            "FILERELAY_COOKIE_SECURE": "true" if self.cookie_secure else "false",
            "FILERELAY_FILE_LINK_SECONDS": str(self.file_link_seconds),
        }
        env.update(self.policy.environ())
        if self.public_url:
            env["FILERELAY_PUBLIC_URL"] = self.public_url
        if self.secret_key:
            env["FILERELAY_SECRET_KEY"] = self.secret_key
        if self.encryption_keys:
            env["FILERELAY_ENCRYPTION_KEYS"] = ",".join(self.encryption_keys)
        if self.staging_s3_endpoint_url:
            env["FILERELAY_STAGING_S3_ENDPOINT_URL"] = self.staging_s3_endpoint_url
        if self.staging_s3_region:
            env["FILERELAY_STAGING_S3_REGION"] = self.staging_s3_region
        if self.config_file is not None:
            env["FILERELAY_CONFIG"] = str(self.config_file)
        return env


def _days_text(days: int | None) -> str:
    return "off" if days is None else str(days)
