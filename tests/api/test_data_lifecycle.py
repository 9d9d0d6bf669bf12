"""What the API and the console say about the data lifecycle (docs/operations.md#data-lifecycle): when a
document's staged bytes will be released, that and why they were, and a retry refused once they are gone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from flask.testing import FlaskClient

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.delivery import sweep
from filerelay.runtime import Runtime
from tests.support.console import csrf_token, sign_in
from tests.support.keys import MEMBER_KEY, VIEWER_KEY, headers

BASE = "/api/acme/production/documents"
UI = "/ui/acme/production"
DAY = dt.timedelta(days=1)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failed_id(client: FlaskClient) -> str:
    listed = client.get(f"{BASE}?status=failed&repo_id=Z1", headers=headers()).get_json()["data"]
    return str(listed[0]["id"])


def detail(client: FlaskClient, document_id: str) -> dict[str, Any]:
    reply = client.get(f"{BASE}/{document_id}", headers=headers(VIEWER_KEY))
    assert reply.status_code == 200
    attributes: dict[str, Any] = reply.get_json()["data"]["attributes"]
    return attributes


def test_the_api_says_when_failed_bytes_go_and_why_they_went(
    populated: Runtime, client: FlaskClient, clock: FrozenClock
) -> None:
    populated.settings = dataclasses.replace(populated.settings, record_retention_days=400)
    document_id = failed_id(client)
    failed_at = clock.now()  # the workers ran last, then nothing moved the clock
    before = detail(client, document_id)
    assert before["staging_expires_at"] == iso(failed_at + 30 * DAY)
    assert before["record_expires_at"] == iso(failed_at + 400 * DAY)
    assert (before["staging_released_at"], before["staging_released_reason"]) == (None, None)

    clock.advance((30 * DAY).total_seconds())
    assert sweep.sweep(populated).released == 3  # acme's three failed documents

    after = detail(client, document_id)
    assert after["staging_expires_at"] is None
    assert after["staging_released_at"] == iso(clock.now())
    assert "FILERELAY_FAILED_RETENTION_DAYS" in after["staging_released_reason"]
    assert after["status"] == "failed"

    reply = client.post(f"{BASE}/{document_id}/retry", headers=headers(MEMBER_KEY))
    assert reply.status_code == 409
    (error,) = reply.get_json()["errors"]
    assert error["code"] == "staging_released"
    assert "staged bytes were released" in error["detail"]
    # A bulk retry takes none of them: nothing is left to send.
    bulk = client.post(f"{BASE}/retry?status=failed", headers=headers(MEMBER_KEY)).get_json()
    assert bulk["data"]["attributes"] == {"documents": 0, "deliveries": 0}


def test_the_console_says_when_failed_bytes_go_and_refuses_a_retry_once_they_went(
    populated: Runtime, client: FlaskClient, clock: FrozenClock
) -> None:
    document_id = failed_id(client)
    expires = clock.now() + 30 * DAY
    member = create_app(runtime=populated).test_client()
    assert sign_in(member, MEMBER_KEY, "acme/production") == 302
    page = member.get(f"{UI}/documents/{document_id}").get_data(as_text=True)
    assert f'kept until <time datetime="{expires.isoformat()}"' in page
    assert 'id="retry"' in page

    token = csrf_token(member, f"{UI}/documents/{document_id}")
    clock.advance((30 * DAY).total_seconds())
    sweep.sweep(populated)
    page = member.get(f"{UI}/documents/{document_id}").get_data(as_text=True)
    assert "released <time" in page
    assert "FILERELAY_FAILED_RETENTION_DAYS" in page
    assert 'id="retry"' not in page  # no button for what cannot be done
    # A form posted from a page loaded before the release is told why.
    reply = member.post(f"{UI}/documents/{document_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "Not retried:" in reply.get_data(as_text=True)
