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
    """A NUL byte in a REST path, parameter or JSON body is never meaningful, and PostgreSQL refuses it in
    text (a 500 had it reached a query)."""
    from flask import request

    from filerelay.api.errors import ApiError

    if not request.path.startswith("/api/"):
        return  # ArchiveLink validates its raw query string itself
    if "\x00" in request.path:
        raise ApiError(404, "not found")
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ApiError(400, f"{name!r}: NUL characters are not allowed", parameter=name)
    if request.is_json:
        # Any string of a JSON body, whichever endpoint and field: one rule instead of a validator each.
        pointer = _nul_pointer(request.get_json(silent=True))
        if pointer is not None:
            raise ApiError(400, "must not contain NUL characters", pointer=pointer.replace("\x00", "\\u0000"))


def _nul_pointer(value: object, pointer: str = "") -> str | None:
    """The JSON pointer (RFC 6901) of the first string or key in `value` holding a NUL character."""
    if isinstance(value, str):
        return pointer if "\x00" in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    for key, item in items:
        here = pointer + "/" + key.replace("~", "~0").replace("/", "~1")
        if "\x00" in key:
            return here
        found = _nul_pointer(item, here)
        if found is not None:
            return found
    return None
