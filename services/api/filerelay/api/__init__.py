"""The HTTP service: ArchiveLink for SAP, REST for admins and integrations, operations endpoints."""

from __future__ import annotations

from flask import Flask

from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    from filerelay.api import ops
    from filerelay.api.archivelink import views as archivelink

    runtime = runtime or build_runtime(settings or Settings.from_env())
    app = Flask("filerelay.api")
    app.extensions["filerelay"] = runtime
    app.register_blueprint(archivelink.blueprint)
    app.register_blueprint(ops.blueprint)
    return app
