"""The console in a real browser (Debian's Chromium through Playwright) against the real app on a real
HTTP server: sign in, the overview's numbers, filtering, a failed document retried until delivered,
pausing a destination, activating a certificate, what a viewer sees, and the pages at a phone's width.
Each test saves screenshots (FILERELAY_SCREENSHOTS=DIR keeps them, e.g. docs/screenshots for the README).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from filerelay.api import create_app
from filerelay.runtime import Runtime
from tests.support.documents import deliver_all
from tests.support.keys import ADMIN_KEY, VIEWER_KEY, headers
from tests.support.outage_proxy import outage_proxy
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient
from tests.support.signing import certificate

pytestmark = pytest.mark.browser
UI = "/ui/acme/production"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FILERELAY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def api(populated: Runtime) -> FlaskClient:
    return create_app(runtime=populated).test_client()


def sign_in(page: Page, server: str, key: str) -> None:
    page.goto(f"{server}{UI}/")
    expect(page).to_have_url(f"{server}{UI}/login?next={UI}/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server}{UI}/")


def test_sign_in_and_the_overview_counts_are_the_apis(
    populated: Runtime, server: str, page: Page, api: FlaskClient, shots: Path
) -> None:
    sign_in(page, server, ADMIN_KEY)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # The stylesheet loaded (the header is dark only with it).
    assert page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(36, 41, 47)"
    for status in ("pending", "delivered", "retrying", "failed", "discarded"):
        shown = page.locator(f'[data-window="24h"][data-status="{status}"] .n').inner_text()
        total = api.get(f"/api/acme/production/documents?status={status}", headers=headers()).get_json()["meta"][
            "total"
        ]
        assert int(shown) == total, status
    expect(page.locator('[data-window="24h"][data-status="failed"] .n')).to_have_text("3")
    expect(page.locator("svg.chart rect")).to_have_count(24)
    expect(page.locator('#destinations [data-destination="dest_s3prod"]')).to_contain_text("Production")
    page.screenshot(path=shots / "overview.png", full_page=True)


# The fixtures' S3 endpoint (tests/support/workspaces.py): nothing listens there, so its deliveries fail.
S3_OUTAGE_PORT = 9


def test_filter_open_a_failed_document_retry_it_and_see_it_delivered(
    populated: Runtime, server: str, page: Page, api: FlaskClient, s3: S3Server, shots: Path
) -> None:
    with contextlib.ExitStack() as stack:
        retried_until_delivered(stack, server, page, api, s3, populated, shots)


def retried_until_delivered(
    stack: contextlib.ExitStack,
    server: str,
    page: Page,
    api: FlaskClient,
    s3: S3Server,
    populated: Runtime,
    shots: Path,
) -> None:
    sign_in(page, server, ADMIN_KEY)
    page.get_by_role("link", name="Documents").click()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#documents tbody tr[data-document]")
    expect(rows).to_have_count(3)
    for status in rows.evaluate_all("rows => rows.map(r => r.dataset.status)"):
        assert status == "failed"
    page.screenshot(path=shots / "documents-failed.png", full_page=True)
    rows.first.get_by_role("link").click()
    s3_section = page.locator('section.delivery[data-destination="dest_s3prod"]')
    expect(s3_section).to_have_attribute("data-status", "failed")
    expect(s3_section.locator("table tbody tr")).to_have_count(1)  # one attempt, with its error
    expect(page.locator('section.delivery[data-destination="dest_folder"]')).to_contain_text("Path:")
    page.screenshot(path=shots / "document-failed.png", full_page=True)
    # The S3 outage ends: a live S3 server answers at the address the destination names (its location
    # is fixed once it holds deliveries), and the admin gives it the server's keys.
    s3.client().create_bucket(Bucket="archive")
    host, port = s3.endpoint.removeprefix("http://").split(":")
    try:
        back = outage_proxy((host, int(port)), port=S3_OUTAGE_PORT)
        stack.enter_context(back)
    except PermissionError:
        pytest.skip(f"port {S3_OUTAGE_PORT} (where the fixtures' S3 is down) needs root to bind")
    fixed = api.patch(
        "/api/acme/production/destinations/dest_s3prod",
        json={"settings": {"access_key_id": s3.access_key, "secret_access_key": s3.secret_key}},
        headers=headers(),
    )
    assert fixed.status_code == 200, fixed.get_json()
    page.get_by_role("button", name="Retry failed deliveries").click()
    expect(page.get_by_role("status")).to_contain_text("Re-queued 1 failed deliveries")
    expect(s3_section).to_have_attribute("data-status", "retrying")
    deliver_all(populated, "retrying")  # what the worker does when the retry's wake-up reaches it
    page.reload()
    expect(s3_section).to_have_attribute("data-status", "delivered")
    expect(s3_section.locator("table tbody tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Retry failed deliveries")).to_have_count(0)
    expect(page.locator("h1 .badge")).to_have_text("delivered")
    page.screenshot(path=shots / "document.png", full_page=True)
    page.goto(f"{server}{UI}/audit")
    expect(page.locator('#audit [data-action="document.retry"]')).to_contain_text("ops")


def test_pause_and_resume_a_destination(populated: Runtime, server: str, page: Page, shots: Path) -> None:
    sign_in(page, server, ADMIN_KEY)
    page.get_by_role("link", name="Destinations").click()
    row = page.locator('#destinations [data-destination="dest_folder"]')
    row.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("dest_folder paused")
    expect(row.locator(".badge")).to_have_text("paused")
    page.screenshot(path=shots / "destinations-paused.png", full_page=True)
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge")).to_have_text("closed")
    page.goto(f"{server}{UI}/audit")
    # The config file that set the workspace up is in the log too; these two rows are the switches.
    switches = page.locator('#audit tbody tr[data-target="dest_folder"]')
    expect(switches.and_(page.locator('[data-action="destination.pause"]'))).to_have_count(1)
    expect(switches.and_(page.locator('[data-action="destination.resume"]'))).to_have_count(1)


def test_activate_a_certificate_sap_sent(populated: Runtime, server: str, page: Page, shots: Path) -> None:
    cert = certificate(populated.clock.now())
    der = cert.public_bytes(serialization.Encoding.DER)
    sap = SapClient(f"{server}/archivelink/acme/production")
    assert sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", der).status == 200
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    sign_in(page, server, ADMIN_KEY)
    page.get_by_role("link", name="Certificates").click()
    row = page.locator(f'#certificates [data-fingerprint="{fingerprint}"]')
    expect(row).to_contain_text("CN=S4H")
    expect(row.locator(".badge")).to_have_text("pending")
    row.get_by_role("button", name="Activate").click()
    expect(row.locator(".badge")).to_have_text("active")
    page.screenshot(path=shots / "certificates.png", full_page=True)
    listed = create_app(runtime=populated).test_client().get("/api/acme/production/certificates", headers=headers())
    assert listed.get_json()["data"][0]["active"] is True


def test_a_viewer_sees_no_buttons_and_a_forged_post_changes_nothing(
    populated: Runtime, server: str, page: Page, api: FlaskClient, shots: Path
) -> None:
    sign_in(page, server, VIEWER_KEY)
    page.goto(f"{server}{UI}/documents?status=failed")
    expect(page.locator("#bulk-retry")).to_have_count(0)
    page.locator("#documents tbody tr[data-document] a").first.click()
    expect(page.locator("#retry")).to_have_count(0)
    expect(page.get_by_role("link", name="Certificates")).to_have_count(0)
    page.screenshot(path=shots / "document-viewer.png", full_page=True)
    document_url = page.url
    # The same browser posting without the form: no token, then the viewer's own token.
    assert page.request.post(f"{document_url}/retry").status == 400
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert page.request.post(f"{document_url}/retry", form={"csrf_token": token or ""}).status == 403
    failed = api.get("/api/acme/production/documents?status=failed", headers=headers()).get_json()["meta"]["total"]
    assert failed == 3


def test_pages_fit_a_phone(populated: Runtime, server: str, browser: Browser, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        sign_in(phone, server, ADMIN_KEY)
        for name, path in (("overview", "/"), ("documents", "/documents"), ("destinations", "/destinations")):
            phone.goto(f"{server}{UI}{path}")
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
            phone.screenshot(path=shots / f"phone-{name}.png", full_page=True)
    finally:
        context.close()
