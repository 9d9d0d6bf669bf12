"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from filerelay import metrics
from filerelay.api.context import runtime
from filerelay.db import schema_window
from filerelay.release import VERSION

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", version=VERSION)


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when a document can be accepted right now: the database (migrated) and staging answer. The
    broker is reported but not required: a create needs no wake-up (the sweeper sends those that could
    not go), and an API taken out of service for a Redis outage would refuse SAP for nothing."""
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            schema = schema_window.state(conn)
        checks["database"] = "ok"
        # Not ready until `filerelay migrate` ran (pods started beside the migrate Job wait instead of
        # failing), but ready still once the next release's expand migration ran (docs/operations.md#upgrades).
        checks["schema"] = "ok" if schema.problem is None else f"error: {schema.problem}"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        rt.staging.check()
        checks["staging"] = "ok"
    except Exception as exc:
        checks["staging"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    try:
        rt.enqueuer.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blueprint.get("/metrics")
def metrics_view() -> ResponseReturnValue:
    """Prometheus text format. Unauthenticated, like /healthz, so a scraper needs no API key; it shows
    counts and repository ids, never content or secrets, and operators keep it off the public network
    (NetworkPolicy, or an ingress that does not route it)."""
    body = generate_latest(metrics.scrape_registry(runtime()))
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})
