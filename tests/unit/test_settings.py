"""Unit tests for `Settings.from_env` (docs/architecture.md#environment). Never touches os.environ."""

from __future__ import annotations

from pathlib import Path

import pytest

from filerelay.settings import DEFAULT_MAX_DOCUMENT_BYTES, Settings, SettingsError


def test_defaults_live_under_filerelay_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings.from_env({"FILERELAY_HOME": str(home)})
    assert settings.home == home.resolve()
    assert settings.database_url == f"sqlite:///{home.resolve() / 'filerelay.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.embedded_broker is True
    assert settings.broker_dir == home.resolve() / "broker"
    assert settings.staging_url == (home.resolve() / "staging").as_uri()
    assert settings.staging_url.startswith("file:///")
    assert settings.config_file is None
    assert settings.max_document_bytes == DEFAULT_MAX_DOCUMENT_BYTES == 2 * 1024**3
    assert settings.lease_seconds == 60
    assert settings.staging_retention_seconds == 3600
    assert settings.sweep_interval_seconds == 5.0
    # The data lifecycle: failed documents' bytes kept 30 days; rows and audit entries kept for ever.
    assert settings.failed_retention_days == 30
    assert settings.record_retention_days is None
    assert settings.audit_retention_days is None


def test_home_defaults_to_var_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == (tmp_path / "var").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'var').resolve() / 'filerelay.db'}"


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"FILERELAY_HOME": "data/../relay"})
    assert settings.home == (tmp_path / "relay").resolve()
    assert settings.home.is_absolute()


def test_empty_values_mean_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings.from_env(
        {
            "FILERELAY_HOME": str(home),
            "FILERELAY_DATABASE_URL": "",
            "FILERELAY_BROKER_URL": "",
            "FILERELAY_STAGING_URL": "",
            "FILERELAY_CONFIG": "",
            "FILERELAY_MAX_DOCUMENT_BYTES": "  ",
        }
    )
    assert settings == Settings.from_env({"FILERELAY_HOME": str(home)})


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        (
            "FILERELAY_DATABASE_URL",
            "postgresql+psycopg://u@db:5432/relay",
            "database_url",
            "postgresql+psycopg://u@db:5432/relay",
        ),
        ("FILERELAY_BROKER_URL", "redis://redis:6379/0", "broker_url", "redis://redis:6379/0"),
        ("FILERELAY_STAGING_URL", "file:///mnt/shared/staging", "staging_url", "file:///mnt/shared/staging"),
        ("FILERELAY_CONFIG", "/etc/filerelay/config.yaml", "config_file", Path("/etc/filerelay/config.yaml")),
        ("FILERELAY_MAX_DOCUMENT_BYTES", "1048576", "max_document_bytes", 1_048_576),
        ("FILERELAY_MAX_DOCUMENT_BYTES", " 12 ", "max_document_bytes", 12),
        ("FILERELAY_LEASE_SECONDS", "900", "lease_seconds", 900),
        ("FILERELAY_STAGING_RETENTION_SECONDS", "7", "staging_retention_seconds", 7),
        ("FILERELAY_SWEEP_INTERVAL_SECONDS", "30", "sweep_interval_seconds", 30.0),
        ("FILERELAY_WAKE_GRACE_SECONDS", "3", "wake_grace_seconds", 3),
        ("FILERELAY_FAILED_RETENTION_DAYS", "7", "failed_retention_days", 7),
        ("FILERELAY_FAILED_RETENTION_DAYS", "off", "failed_retention_days", None),
        ("FILERELAY_RECORD_RETENTION_DAYS", "400", "record_retention_days", 400),
        ("FILERELAY_AUDIT_RETENTION_DAYS", " 3650 ", "audit_retention_days", 3650),
    ],
)
def test_each_variable_is_honoured(tmp_path: Path, name: str, value: str, attribute: str, expected: object) -> None:
    home = tmp_path / "home"
    default = Settings.from_env({"FILERELAY_HOME": str(home)})
    settings = Settings.from_env({"FILERELAY_HOME": str(home), name: value})
    assert getattr(settings, attribute) == expected
    assert getattr(default, attribute) != expected
    # Nothing else moved.
    assert settings == default.with_overrides(**{attribute: expected})


def test_external_broker_is_not_embedded(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path), "FILERELAY_BROKER_URL": "redis://r:6379/0"})
    assert settings.embedded_broker is False


def test_unrelated_variables_are_ignored(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert Settings.from_env({"FILERELAY_HOME": home, "FILERELAY_UNKNOWN": "x", "PATH": "/bin"}) == Settings.from_env(
        {"FILERELAY_HOME": home}
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "must be a whole number, got 'lots'"),
        ("1.5", "must be a whole number"),
        ("2GiB", "must be a whole number"),
        ("1e9", "must be a whole number"),
        ("0", "must be positive, got 0"),
        ("-1", "must be positive, got -1"),
    ],
)
def test_bad_max_document_bytes_raises(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"FILERELAY_MAX_DOCUMENT_BYTES {message}"):
        Settings.from_env({"FILERELAY_HOME": str(tmp_path), "FILERELAY_MAX_DOCUMENT_BYTES": value})


@pytest.mark.parametrize(
    "name",
    [
        "FILERELAY_LEASE_SECONDS",
        "FILERELAY_STAGING_RETENTION_SECONDS",
        "FILERELAY_SWEEP_INTERVAL_SECONDS",
        "FILERELAY_WAKE_GRACE_SECONDS",
    ],
)
def test_bad_integer_variables_name_the_variable(tmp_path: Path, name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"FILERELAY_HOME": str(tmp_path), name: "soon"})


@pytest.mark.parametrize(
    "name", ["FILERELAY_FAILED_RETENTION_DAYS", "FILERELAY_RECORD_RETENTION_DAYS", "FILERELAY_AUDIT_RETENTION_DAYS"]
)
@pytest.mark.parametrize(
    ("value", "message"), [("1w", "a whole number of days or off"), ("0", "a positive number of days or off")]
)
def test_bad_retention_days_name_the_variable(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be {message}"):
        Settings.from_env({"FILERELAY_HOME": str(tmp_path), name: value})


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"FILERELAY_CONFIG": "/etc/filerelay.yaml"},
        {
            "FILERELAY_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "FILERELAY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "FILERELAY_STAGING_URL": "file:///srv/staging",
            "FILERELAY_CONFIG": "relative/config.yaml",
            "FILERELAY_MAX_DOCUMENT_BYTES": "1000",
            "FILERELAY_LEASE_SECONDS": "30",
            "FILERELAY_STAGING_RETENTION_SECONDS": "1",
            "FILERELAY_SWEEP_INTERVAL_SECONDS": "2",
            "FILERELAY_WAKE_GRACE_SECONDS": "4",
            "FILERELAY_FAILED_RETENTION_DAYS": "off",
            "FILERELAY_RECORD_RETENTION_DAYS": "90",
            "FILERELAY_AUDIT_RETENTION_DAYS": "365",
        },
    ],
)
def test_environ_round_trips_through_from_env(tmp_path: Path, extra: dict[str, str]) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path / "home"), **extra})
    env = settings.environ()
    assert all(k.startswith("FILERELAY_") and isinstance(v, str) for k, v in env.items())
    assert Settings.from_env(env) == settings
    assert ("FILERELAY_CONFIG" in env) == (settings.config_file is not None)


def test_environ_carries_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path)}).with_overrides(
        max_document_bytes=1000, staging_retention_seconds=1
    )
    again = Settings.from_env(settings.environ())
    assert again.max_document_bytes == 1000
    assert again.staging_retention_seconds == 1
    assert again == settings
