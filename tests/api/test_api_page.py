"""`GET /docs`, the REST API's interactive page: served from FileRelay's own files under a policy that
allows only its origin, reachable without a key; in a real browser (Debian's Chromium through Playwright,
as the console's browser tests) it lists every operation of /openapi.json, makes its calls with the key
the user enters, and no request leaves the host."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, Request, expect

from filerelay.api import create_app
from filerelay.api.explorer import PAGE_POLICY, SWAGGER_FILES, SWAGGER_UI
from filerelay.api.explorer.stylesheet import without_data_urls
from filerelay.runtime import Runtime
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture
def client(configured: Runtime) -> FlaskClient:
    return create_app(runtime=configured).test_client()


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS]


# --- over HTTP ---------------------------------------------------------------------------------------


def test_the_page_needs_no_key_and_allows_only_its_own_origin(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    # Nothing loosens it: no other source, no inline or eval'd script.
    for name, value in directives.items():
        assert set(value.split()) <= {"'self'", "'none'"}, (name, value)
    html = page.get_data(as_text=True)
    assert "<script>" not in html  # no inline script: the policy would refuse it
    for reference in ("/docs/swagger-ui/swagger-ui-bundle.js", "/docs/static/explorer.js", 'data-spec="/openapi.json"'):
        assert reference in html


def test_swagger_ui_comes_from_the_package_and_nothing_else_of_it_is_served(client: FlaskClient) -> None:
    dist = Path(str(SWAGGER_UI))
    for name in sorted(SWAGGER_FILES):
        with client.get(f"/docs/swagger-ui/{name}") as served:  # closed: the file is streamed
            assert served.status_code == 200, name
            assert served.get_data() == (dist / name).read_bytes()
            assert served.headers["Content-Security-Policy"] == PAGE_POLICY
    for name in ("index.html", "oauth2-redirect.html", "..%2FLICENSE", "swagger-ui.js.map", "images/x.svg"):
        assert client.get(f"/docs/swagger-ui/{name}").status_code == 404, name


def test_the_stylesheets_inline_images_are_files_of_this_origin(client: FlaskClient) -> None:
    """Swagger UI's stylesheet draws its icons from `data:` URLs, which a policy of this origin only refuses:
    they are served as files instead, and the rest of the stylesheet is Swagger UI's as it came."""
    original = (SWAGGER_UI / "swagger-ui.css").read_text(encoding="utf-8")
    assert original.count("data:image/") > 10
    served = client.get("/docs/swagger-ui/swagger-ui.css")
    assert served.status_code == 200
    assert served.mimetype == "text/css"
    css = served.get_data(as_text=True)
    assert "data:" not in css
    images = re.findall(r'url\("(/docs/swagger-ui/images/[^"]+)"\)', css)
    assert len(images) == original.count("data:image/")
    # The rules around them are as they came.
    assert '.swagger-ui .copy-to-clipboard button{background:url("/docs/swagger-ui/images/' in css
    assert css.count("{") == original.count("{")
    for url in sorted(set(images)):
        image = client.get(url)
        assert image.status_code == 200, url
        assert (image.mimetype or "").startswith("image/"), url
        if image.mimetype == "image/svg+xml":
            assert image.get_data().startswith(b"<svg"), url


def test_data_urls_in_every_form_become_files() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0h4"/></svg>'
    png = b"\x89PNG\r\n\x1a\nfake"
    css = (
        'a{background:url("data:image/svg+xml;charset=utf-8,'
        + svg.replace('"', '\\"')
        + '")}'
        + "b{background:url('data:image/svg+xml,%3Csvg%3E%3C/svg%3E')}"
        + "c{background:url(data:image/png;base64,"
        + base64.b64encode(png).decode()
        + ")}d{color:red}"
    )
    rewritten, images = without_data_urls(css, "/i/")
    assert "data:" not in rewritten
    assert rewritten.endswith("d{color:red}")
    bodies = {image.body: image.media_type for image in images.values()}
    assert bodies == {svg.encode(): "image/svg+xml", b"<svg></svg>": "image/svg+xml", png: "image/png"}
    for name in images:
        assert f'url("/i/{name}")' in rewritten


# --- in Chromium -------------------------------------------------------------------------------------


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_the_page_lists_every_operation_and_calls_with_the_key_entered(
    configured: Runtime, server: str, page: Page, client: FlaskClient, sap: SapClient, tmp_path: Path
) -> None:
    sap.cont_rep = "Z1"
    assert sap.create("PAGEDOC", "data", b"%PDF-1.4 page", "application/pdf").status == 201
    origin = urlsplit(server).netloc
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{server}/docs")

    spec = json.loads(client.get("/openapi.json").get_data())
    expected = operations(spec)
    assert len(expected) > 30
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(expected))
    shown = blocks.evaluate_all(
        "bs => bs.map(b => [b.querySelector('.opblock-summary-method').textContent.toLowerCase(),"
        " b.querySelector('.opblock-summary-path').getAttribute('data-path')])"
    )
    assert sorted(map(tuple, shown)) == sorted(expected)

    # Authorize with a key, then try an operation: the call carries it and answers.
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    api_key = dialog.locator(".auth-container", has_text="x-api-key")
    api_key.locator("input").fill(ADMIN_KEY)
    api_key.get_by_role("button", name="Apply credentials").click()
    expect(api_key.locator("button", has_text="Logout")).to_be_visible()
    dialog.locator(".close-modal").click()
    documents = page.locator(".opblock-get", has=page.locator('[data-path="/api/{owner}/{slug}/documents"]'))
    documents.locator(".opblock-summary-control").click()
    documents.get_by_role("button", name="Try it out").click()
    documents.locator('tr[data-param-name="owner"] input').fill("acme")
    documents.locator('tr[data-param-name="slug"] input').fill("production")
    with page.expect_response(lambda r: "/api/acme/production/documents" in r.url) as answered:
        documents.get_by_role("button", name="Execute").click()
    call = answered.value
    assert call.status == 200
    assert call.request.headers.get("x-api-key") == ADMIN_KEY
    assert [d["attributes"]["doc_id"] for d in call.json()["data"]] == ["PAGEDOC"]
    expect(documents.locator(".live-responses-table tbody td.response-col_status").first).to_have_text("200")
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)

    # Everything the page fetched came from this server, and nothing was refused or broke on the way.
    assert requests
    for request in requests:
        assert urlsplit(request.url).netloc == origin or request.url.startswith("data:"), request.url
    assert not problems, problems
