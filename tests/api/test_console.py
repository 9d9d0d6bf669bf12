"""The web console through the real app: sign-in, roles, CSRF, workspace isolation, the pages' numbers,
downloads that never render, and the audit log. (Browser tests: tests/api/test_console_browser.py.)"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import select, update

from filerelay.api import create_app
from filerelay.api.console import chart
from filerelay.db.models import AuditEvent, Delivery, Destination, Document, Workspace
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from filerelay.secret_key import secret_key
from filerelay.settings import Settings
from tests.support.console import csrf_token, sign_in, signed_in
from tests.support.documents import failed_document, statuses
from tests.support.keys import ADMIN_KEY, MEMBER_KEY, OTHER_KEY, VIEWER_KEY, headers

UI = "/ui/acme/production"


def audit_log(runtime: Runtime) -> list[tuple[str, str, str, str]]:
    """The entries made after the fixtures' config files were applied (those are recorded too)."""
    with session_scope(runtime.sessions) as session:
        return [
            (e.actor, e.via, e.action, e.target)
            for e in session.scalars(select(AuditEvent).where(AuditEvent.via != "config-file").order_by(AuditEvent.id))
        ]


# --- signing in ----------------------------------------------------------------------------------------


def test_pages_send_a_reader_without_a_session_to_sign_in_and_back(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    reply = client.get(f"{UI}/documents?status=failed")
    assert reply.status_code == 302
    assert reply.headers["Location"].startswith(f"{UI}/login?next=")
    token = csrf_token(client, reply.headers["Location"])
    after = client.post(
        f"{UI}/login", data={"api_key": VIEWER_KEY, "csrf_token": token, "next": f"{UI}/documents?status=failed"}
    )
    assert after.headers["Location"] == f"{UI}/documents?status=failed"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/ui/globex/main/", "/api/acme"])
def test_after_sign_in_only_pages_of_this_console_are_followed(populated: Runtime, target: str) -> None:
    client = create_app(runtime=populated).test_client()
    token = csrf_token(client, f"{UI}/login")
    reply = client.post(f"{UI}/login", data={"api_key": VIEWER_KEY, "csrf_token": token, "next": target})
    assert reply.headers["Location"] == f"{UI}/"


def test_the_session_cookie_is_signed_http_only_same_site_and_holds_no_key(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    token = csrf_token(client, f"{UI}/login")
    reply = client.post(f"{UI}/login", data={"api_key": ADMIN_KEY, "csrf_token": token})
    cookie = next(c for c in reply.headers.getlist("Set-Cookie") if c.startswith("filerelay_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/ui/" in cookie
    assert ADMIN_KEY not in cookie
    assert ADMIN_KEY[8:] not in cookie
    # Tampered with, it is worth nothing.
    value = cookie.split(";")[0].split("=", 1)[1]
    forged = create_app(runtime=populated).test_client()
    forged.set_cookie("filerelay_console", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/ui/")
    assert forged.get(f"{UI}/").status_code == 302


@pytest.mark.parametrize("key", ["fr_live_nobody_0123456789abcdef", OTHER_KEY, "not a key", ""])
def test_a_key_that_is_not_a_live_key_of_this_workspace_cannot_sign_in(populated: Runtime, key: str) -> None:
    client = create_app(runtime=populated).test_client()
    token = csrf_token(client, f"{UI}/login")
    reply = client.post(f"{UI}/login", data={"api_key": key, "csrf_token": token})
    assert reply.status_code == 401
    assert "cannot sign in here" in reply.get_data(as_text=True)
    assert client.get(f"{UI}/").status_code == 302


def test_revoking_the_key_ends_its_sessions(populated: Runtime) -> None:
    client = signed_in(populated, MEMBER_KEY)
    assert client.get(f"{UI}/").status_code == 200
    api = create_app(runtime=populated).test_client()
    assert api.delete("/api/acme/production/api-keys/clerk", headers=headers()).status_code == 200
    reply = client.get(f"{UI}/")
    assert reply.status_code == 302
    assert "/login" in reply.headers["Location"]


def test_an_idle_session_expires_on_the_server(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    idle = populated.settings.console_idle_minutes
    # The session was last used (signed) longer ago than the idle timeout. Flask signs and checks session
    # cookies on the wall clock (itsdangerous), not on FileRelay's injected clock.
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - idle * 60 - 5):
        assert sign_in(client, ADMIN_KEY) == 302
    reply = client.get(f"{UI}/")
    assert reply.status_code == 302
    assert "/login" in reply.headers["Location"]


def test_signing_out_ends_the_session(populated: Runtime) -> None:
    client = signed_in(populated, VIEWER_KEY)
    token = csrf_token(client, f"{UI}/")
    assert client.post(f"{UI}/logout", data={"csrf_token": token}).status_code == 302
    assert client.get(f"{UI}/").status_code == 302


# --- roles and forms ---------------------------------------------------------------------------------


def test_a_forged_retry_is_refused_and_changes_nothing(populated: Runtime) -> None:
    document_id = failed_document(populated)
    before = statuses(populated, "dest_s3prod")
    assert "failed" in before
    member = signed_in(populated, MEMBER_KEY)
    # No token (a form posted from another site), then a token from another session.
    assert member.post(f"{UI}/documents/{document_id}/retry").status_code == 400
    stranger = signed_in(populated, ADMIN_KEY)
    stolen = csrf_token(stranger, f"{UI}/")
    assert member.post(f"{UI}/documents/{document_id}/retry", data={"csrf_token": stolen}).status_code == 400
    # A viewer's session with its own valid token: the role decides.
    viewer = signed_in(populated, VIEWER_KEY)
    token = csrf_token(viewer, f"{UI}/")
    assert viewer.post(f"{UI}/documents/{document_id}/retry", data={"csrf_token": token}).status_code == 403
    assert viewer.post(f"{UI}/destinations/dest_s3prod/pause", data={"csrf_token": token}).status_code == 403
    assert statuses(populated, "dest_s3prod") == before
    assert audit_log(populated) == []
    # The member's own form goes through, and is recorded.
    token = csrf_token(member, f"{UI}/documents/{document_id}")
    assert member.post(f"{UI}/documents/{document_id}/retry", data={"csrf_token": token}).status_code == 302
    assert statuses(populated, "dest_s3prod").count("failed") == before.count("failed") - 1
    assert audit_log(populated) == [("clerk", "console", "document.retry", document_id)]


def test_a_viewer_is_offered_no_button_that_changes_anything(populated: Runtime) -> None:
    document_id = failed_document(populated)
    viewer = signed_in(populated, VIEWER_KEY)
    member = signed_in(populated, MEMBER_KEY)
    admin = signed_in(populated, ADMIN_KEY)
    for page in ("/", "/documents?status=failed", f"/documents/{document_id}", "/destinations"):
        html = viewer.get(f"{UI}{page}").get_data(as_text=True)
        actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert actions == [f"{UI}/logout"], (page, actions)
        assert "bulk-retry" not in html
    # The member may retry (one document, or in bulk); only the admin may pause, resume and test.
    assert 'id="retry"' in member.get(f"{UI}/documents/{document_id}").get_data(as_text=True)
    assert "bulk-retry" in member.get(f"{UI}/documents?status=failed").get_data(as_text=True)
    assert "/pause" not in member.get(f"{UI}/destinations").get_data(as_text=True)
    assert f"{UI}/destinations/dest_s3prod/pause" in admin.get(f"{UI}/destinations").get_data(as_text=True)
    assert viewer.get(f"{UI}/certificates").status_code == 403
    assert member.get(f"{UI}/audit").status_code == 403


def test_bulk_retry_says_how_many_then_retries_exactly_those(populated: Runtime) -> None:
    member = signed_in(populated, MEMBER_KEY)
    confirm = member.get(f"{UI}/documents/retry?status=failed&repo_id=Z1").get_data(as_text=True)
    assert re.search(r"Retry <strong>3</strong> failed deliveries of <strong>3</strong> documents", confirm)
    token = csrf_token(member, f"{UI}/documents/retry?status=failed&repo_id=Z1")
    reply = member.post(f"{UI}/documents/retry", data={"csrf_token": token, "status": "failed", "repo_id": "Z1"})
    assert reply.status_code == 302
    assert statuses(populated, "dest_s3prod") == ["retrying"] * 3
    assert statuses(populated, "dest_folder") == ["delivered"] * 3
    assert audit_log(populated) == [("clerk", "console", "documents.retry", "documents")]


def test_pause_and_resume_from_the_destinations_page(populated: Runtime) -> None:
    admin = signed_in(populated, ADMIN_KEY)
    token = csrf_token(admin, f"{UI}/destinations")
    assert admin.post(f"{UI}/destinations/dest_folder/pause", data={"csrf_token": token}).status_code == 302
    page = admin.get(f"{UI}/destinations").get_data(as_text=True)
    assert re.search(r'data-destination="dest_folder">.*?s-paused', page, re.S)
    assert "dest_folder paused." in page
    assert admin.post(f"{UI}/destinations/dest_folder/pause", data={"csrf_token": token}).status_code == 302
    assert "already paused" in admin.get(f"{UI}/destinations").get_data(as_text=True)
    assert admin.post(f"{UI}/destinations/dest_folder/resume", data={"csrf_token": token}).status_code == 302
    assert [a[2:] for a in audit_log(populated)] == [
        ("destination.pause", "dest_folder"),
        ("destination.resume", "dest_folder"),
    ]


def test_rest_actions_are_audited_under_the_keys_name(populated: Runtime) -> None:
    api = create_app(runtime=populated).test_client()
    document_id = failed_document(populated)
    assert (
        api.post(f"/api/acme/production/documents/{document_id}/retry", headers=headers(MEMBER_KEY)).status_code == 200
    )
    assert api.post("/api/acme/production/destinations/dest_s3prod/pause", headers=headers()).status_code == 200
    assert api.post("/api/acme/production/destinations/dest_s3prod/pause", headers=headers()).status_code == 409
    assert audit_log(populated) == [
        ("clerk", "api", "document.retry", document_id),
        ("ops", "api", "destination.pause", "dest_s3prod"),
    ]
    page = signed_in(populated, ADMIN_KEY).get(f"{UI}/audit?action=destination.pause").get_data(as_text=True)
    assert page.count('data-action="') == 1


# --- what the pages show -----------------------------------------------------------------------------


def test_overview_counts_are_the_apis_counts(populated: Runtime) -> None:
    api = create_app(runtime=populated).test_client()
    html = signed_in(populated, VIEWER_KEY).get(f"{UI}/").get_data(as_text=True)
    cards = dict(re.findall(r'data-status="(\w+)" data-window="24h">\s*<div class="n">(\d+)</div>', html))
    for status in ("pending", "delivered", "retrying", "failed", "discarded"):
        total = api.get(f"/api/acme/production/documents?status={status}", headers=headers()).get_json()["meta"][
            "total"
        ]
        assert int(cards[status]) == total, status
    assert cards["failed"] == "3"
    # The folder delivered three documents this hour; S3 failed three times in it.
    assert re.search(r'data-destination="dest_folder">.*?<td class="num">0</td>', html, re.S)
    assert re.search(r'data-destination="dest_s3prod">.*?<td>.*?</td>.*?<td class="num">3</td>', html, re.S)
    assert "3 deliveries succeeded in the last 24 hours" in html
    # Due deliveries waiting for a worker, this workspace's only: globex's due folder delivery is not counted.
    queues = dict(re.findall(r'data-queue="(\w+)"><div class="n">(\d+)</div>', html))
    assert queues == {"folder": "0", "s3": "0"}
    with session_scope(populated.sessions) as session:
        session.execute(
            update(Delivery).where(Delivery.status == "failed").values(status="retrying", next_attempt_at=None)
        )
        theirs = select(Destination.id).join(Workspace).where(Workspace.owner_slug == "globex")
        session.execute(update(Delivery).where(Delivery.destination_id.in_(theirs)).values(status="pending"))
    html = signed_in(populated, VIEWER_KEY).get(f"{UI}/").get_data(as_text=True)
    assert dict(re.findall(r'data-queue="(\w+)"><div class="n">(\d+)</div>', html)) == {"folder": "0", "s3": "3"}


def test_the_overview_counts_each_window_apart(populated: Runtime) -> None:
    """A document received three days ago counts in the last 7 days, not in the last 24 hours; one of
    ten days ago in neither."""
    now = populated.clock.now()
    with session_scope(populated.sessions) as session:
        failed = list(session.scalars(select(Document).where(Document.status == "failed").order_by(Document.id)))
        failed[0].received_at = now - dt.timedelta(days=3)
        failed[1].received_at = now - dt.timedelta(days=10)
    html = signed_in(populated, VIEWER_KEY).get(f"{UI}/").get_data(as_text=True)
    day = dict(re.findall(r'data-status="(\w+)" data-window="24h">\s*<div class="n">(\d+)</div>', html))
    week = dict(re.findall(r'data-status="(\w+)" data-window="7d"><div class="n">(\d+)</div>', html))
    assert (day["failed"], week["failed"]) == ("1", "2")


def test_another_workspace_is_never_shown(populated: Runtime) -> None:
    ours = signed_in(populated, ADMIN_KEY)
    theirs = signed_in(populated, OTHER_KEY, "globex/main")
    with session_scope(populated.sessions) as session:
        globex_doc = session.scalars(select(Document.id).where(Document.doc_id == "GLOBEX1")).one()
    assert "GLOBEX1" not in ours.get(f"{UI}/documents").get_data(as_text=True)
    assert ours.get(f"{UI}/documents/{globex_doc}").status_code == 404
    assert ours.get(f"{UI}/documents/{globex_doc}/content").status_code == 404
    # Their session does not open our console, nor ours theirs.
    assert theirs.get(f"{UI}/").status_code == 302
    assert ours.get("/ui/globex/main/").status_code == 302
    listing = theirs.get("/ui/globex/main/documents").get_data(as_text=True)
    assert "GLOBEX1" in listing
    assert "4A3F8B2C1D7E9F0A" not in listing


def test_a_download_is_an_attachment_that_never_renders(populated: Runtime) -> None:
    document_id = failed_document(populated)
    reply = signed_in(populated, VIEWER_KEY).get(f"{UI}/documents/{document_id}/content")
    assert reply.status_code == 200
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Security-Policy"].startswith("sandbox")
    assert reply.get_data().startswith(b"%PDF ")


def test_filters_are_checked_like_the_apis(populated: Runtime) -> None:
    viewer = signed_in(populated, VIEWER_KEY)
    reply = viewer.get(f"{UI}/documents?status=lost&date_from=yesterday")
    assert reply.status_code == 400
    html = reply.get_data(as_text=True)
    assert "<strong>status</strong>" in html
    assert "<strong>date_from</strong>" in html
    listed = viewer.get(f"{UI}/documents?status=failed&doc_id=7B2E9C4D5F1A3E8B").get_data(as_text=True)
    assert listed.count("data-document=") == 1
    tampered = viewer.get(f"{UI}/documents?cursor=bm90LWEtY3Vyc29y")
    assert tampered.status_code == 400
    assert "<strong>cursor</strong>" in tampered.get_data(as_text=True)


def test_paging_by_cursor_walks_every_document_once(populated: Runtime) -> None:
    viewer = signed_in(populated, VIEWER_KEY)
    seen: list[str] = []
    url = f"{UI}/documents"
    with mock.patch("filerelay.api.console.views.PER_PAGE", 2):
        while url:
            html = viewer.get(url).get_data(as_text=True)
            seen += re.findall(r'data-document="([^"]+)"', html)
            older = re.search(r'<a rel="next" href="([^"]+)"', html)
            url = older[1].replace("&amp;", "&") if older else ""
    assert len(seen) == 3
    assert len(set(seen)) == 3


def test_test_connection_says_whether_the_destination_answers(populated: Runtime) -> None:
    admin = signed_in(populated, ADMIN_KEY)
    token = csrf_token(admin, f"{UI}/destinations")
    admin.post(f"{UI}/destinations/dest_folder/test", data={"csrf_token": token})
    assert "Connection works" in admin.get(f"{UI}/destinations").get_data(as_text=True)
    admin.post(f"{UI}/destinations/dest_s3prod/test", data={"csrf_token": token})
    page = admin.get(f"{UI}/destinations").get_data(as_text=True)
    assert "Connection failed" in page
    assert "127.0.0.1:9" in page
    admin.post(f"{UI}/destinations/dest_nowhere/test", data={"csrf_token": token})
    assert "dest_nowhere" in admin.get(f"{UI}/destinations").get_data(as_text=True)


# --- building blocks ---------------------------------------------------------------------------------


def test_the_session_key_is_generated_once_and_shared(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path)})
    first = secret_key(settings)
    assert len(first) >= 40
    assert secret_key(settings) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert secret_key(settings.with_overrides(secret_key="from-the-environment")) == "from-the-environment"


def test_the_chart_scales_to_the_largest_bar_and_escapes_its_text() -> None:
    svg = str(chart.bars([0, 5, 10], ["a", "<b>", "c"], title="T & U"))
    heights = [float(h) for h in re.findall(r'<rect[^>]* height="([\d.]+)"', svg)]
    assert heights == [0.0, (chart.HEIGHT - chart.AXIS) / 2, chart.HEIGHT - chart.AXIS]
    assert "<b>" not in svg
    assert "&lt;b&gt;: 5" in svg
    assert 'aria-label="T &amp; U"' in svg
    with pytest.raises(ValueError, match="one label per value"):
        chart.bars([1], [], title="x")
