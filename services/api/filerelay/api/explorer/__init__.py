"""`GET /docs`: the REST API's interactive page (Swagger UI) over `/openapi.json`.

Swagger UI's files come from the flask-swagger-ui package (its version is theirs), served from this
process: the page loads nothing from anywhere else. The page and the script that starts Swagger UI are
FileRelay's own, and the stylesheet's inline images are served as files (stylesheet.py), so the
Content-Security-Policy allows this origin only, for everything. Reachable without a key: the page holds
nothing secret, and every call it makes carries the key the user enters in its Authorize dialog
(`Authorization: Bearer …` or `x-api-key`), like any other client's.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from flask import Blueprint, Response, abort, render_template, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from filerelay.api.explorer.stylesheet import Image, without_data_urls

SWAGGER_UI = files("flask_swagger_ui") / "dist"
STYLESHEET = "swagger-ui.css"
# The files of Swagger UI the page loads; nothing else of the package is served.
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
PAGE_POLICY = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
ASSET_MAX_AGE = 24 * 3600

blueprint = Blueprint(
    "explorer", __name__, static_folder="static", static_url_path="/docs/static", template_folder="templates"
)


@cache
def _stylesheet(image_prefix: str) -> tuple[bytes, dict[str, Image]]:
    css, images = without_data_urls((SWAGGER_UI / STYLESHEET).read_text(encoding="utf-8"), image_prefix)
    return css.encode("utf-8"), images


def _image_prefix() -> str:
    return url_for("explorer.swagger_image", name="x")[:-1]


@blueprint.get("/docs")
def page() -> ResponseReturnValue:
    return render_template("explorer/index.html")


@blueprint.get(f"/docs/swagger-ui/{STYLESHEET}")
def stylesheet() -> Response:
    css, _ = _stylesheet(_image_prefix())
    response = Response(css, content_type="text/css; charset=utf-8")
    response.cache_control.public = True
    response.cache_control.max_age = ASSET_MAX_AGE
    return response


@blueprint.get("/docs/swagger-ui/images/<name>")
def swagger_image(name: str) -> Response:
    image = _stylesheet(_image_prefix())[1].get(name)
    if image is None:
        abort(404)
    response = Response(image.body, content_type=image.media_type)
    response.cache_control.public = True
    response.cache_control.max_age = ASSET_MAX_AGE
    return response


@blueprint.get("/docs/swagger-ui/<name>")
def swagger_file(name: str) -> Response:
    if name not in SWAGGER_FILES:
        abort(404)
    return send_from_directory(str(SWAGGER_UI), name, max_age=ASSET_MAX_AGE)


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
