"""The HTTP service: ArchiveLink for SAP, REST for admins and integrations, operations endpoints."""

from __future__ import annotations

from flask import Flask

from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    from filerelay.api import console, explorer, ops
    from filerelay.api.admin import views as admin
    from filerelay.api.archivelink import views as archivelink
    from filerelay.api.audit import views as audit
    from filerelay.api.certificates import views as certificates
    from filerelay.api.documents import views as documents
    from filerelay.api.errors import ApiError, RestApi, handle_api_error
    from filerelay.api.files import views as files

    runtime = runtime or build_runtime(settings or Settings.from_env())
    app = Flask("filerelay.api")
    app.config.update(
        API_TITLE="FileRelay",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                }
            },
            "security": [{"bearer": []}, {"apiKey": []}],
        },
    )
    app.extensions["filerelay"] = runtime
    app.register_blueprint(archivelink.blueprint)
    app.register_blueprint(ops.blueprint)
    api = RestApi(app)
    for blueprint in (documents.blueprint, files.blueprint, admin.blueprint, certificates.blueprint, audit.blueprint):
        api.register_blueprint(blueprint)
    app.register_blueprint(explorer.blueprint)
    app.register_error_handler(ApiError, handle_api_error)
    console.init_app(app, runtime.settings)
    app.before_request(_refuse_nul)
    return app


def _refuse_nul() -> None:
    """A NUL byte in a REST path or parameter is never meaningful, and PostgreSQL refuses it in text."""
    from flask import request

    from filerelay.api.errors import ApiError

    if not request.path.startswith("/api/"):
        return  # ArchiveLink validates its raw query string itself
    if "\x00" in request.path:
        raise ApiError(404, "not found")
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ApiError(400, f"{name!r}: NUL characters are not allowed", parameter=name)
