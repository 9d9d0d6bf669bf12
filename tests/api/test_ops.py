"""Operations endpoints: readiness reports each dependency, including the schema version, and depends\non what accepting a document needs."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.db.migrate import head_revision, upgrade
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.processes import free_port


def test_ready_when_every_dependency_answers(runtime: Runtime) -> None:
    reply = create_app(runtime=runtime).test_client().get("/readyz")
    assert reply.status_code == 200
    assert reply.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "schema": "ok", "staging": "ok", "broker": "ok"},
    }


def test_ready_while_the_broker_is_unreachable_and_says_so(settings: Settings, clock: FrozenClock) -> None:
    # A closed loopback port: Redis refuses the connection, as when it is down. Creates still work (the
    # sweeper sends their wake-ups later), so Kubernetes must keep the API pods in service.
    down = settings.with_overrides(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    runtime = build_runtime(down, clock=clock)
    try:
        reply = create_app(runtime=runtime).test_client().get("/readyz")
    finally:
        runtime.close()
    assert reply.status_code == 200
    assert reply.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "schema": "ok", "staging": "ok", "broker": "error: OperationalError"},
    }


def test_not_ready_until_the_schema_is_migrated(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path)})
    runtime = build_runtime(settings)
    try:
        client = create_app(runtime=runtime).test_client()
        reply = client.get("/readyz")
        assert reply.status_code == 503
        assert (
            reply.get_json()["checks"]["schema"]
            == f"error: at no schema, code needs {head_revision()}: run filerelay migrate"
        )
        upgrade(settings.database_url)
        assert client.get("/readyz").status_code == 200
    finally:
        runtime.close()


def test_healthz_needs_nothing(tmp_path: Path) -> None:
    runtime = build_runtime(Settings.from_env({"FILERELAY_HOME": str(tmp_path)}))
    try:
        answer = create_app(runtime=runtime).test_client().get("/healthz").get_json()
        assert answer == {"status": "ok", "version": version("filerelay")}
    finally:
        runtime.close()
