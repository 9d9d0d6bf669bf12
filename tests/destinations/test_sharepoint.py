"""The sharepoint destination against the REST emulator: names, columns, error classification, auth
recovery, reading back, checks. The real office365 client makes every request."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from filerelay import metrics
from filerelay.clock import FrozenClock, SystemClock
from filerelay.db.models import Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.delivery.landing import recorder
from filerelay.destinations import get_kind, sharepoint
from filerelay.destinations.base import DestinationError, Payload, read_verified
from filerelay.destinations.sharepoint import INLINE_WAIT_MAX, STEP_RETRIES, SharePointDestination
from filerelay.runtime import Runtime
from tests.support.answering_server import SECRET as PEER_SECRET
from tests.support.answering_server import Answering, answering_server
from tests.support.destination_kinds import wire as wire_one
from tests.support.documents import accept, attempts, delivery, replace_content
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard
from tests.support.sharepoint_emulator import (
    FIELD_MISSING_CODE,
    FIELD_READ_ONLY_CODE,
    Emulator,
    app_certificate,
    sharepoint_emulator,
)

LIBRARY = "/sites/team/Shared Documents"


@pytest.fixture
def sp() -> Iterator[Emulator]:
    with sharepoint_emulator() as emulator:
        yield emulator


def destination(sp: Emulator, **settings: object) -> SharePointDestination:
    return SharePointDestination({"site_url": sp.site_url, **settings}, {"access_token": sp.token}, LOOPBACK)


def payload(data: bytes, path: str, delivery_key: str = "", **identity: str) -> Payload:
    return Payload(
        delivery_key=delivery_key,
        open=lambda: io.BytesIO(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="application/pdf",
        path=path,
        identity=identity,
    )


def test_refused_characters_are_replaced_and_hash_percent_names_work(sp: Emulator) -> None:
    # With this switch the emulator refuses '#'/'%' in the legacy string-URL API, as SharePoint does.
    sp.refuse_special_in_legacy_urls = True
    target = destination(sp)
    target.deliver(payload(b"one", "/Z1/Rechnung #5 100%.pdf"))
    target.deliver(payload(b"two", "/Z1/scan:1*.tif"))
    assert sp.files[f"{LIBRARY}/Z1/Rechnung #5 100%.pdf"] == b"one"
    assert sp.files[f"{LIBRARY}/Z1/scan_1_.tif"] == b"two"
    assert b"".join(target.read("/Z1/Rechnung #5 100%.pdf")) == b"one"


@pytest.mark.parametrize(
    ("path", "landed"),
    [
        ("/Z1/x.pdf", "/Z1/x.pdf"),
        ("/Z1/scan:1*.tif", "/Z1/scan_1_.tif"),
        ("/forms/CON/~$a b .pdf", "/forms_/CON_/_$a b .pdf"),
        ("/Z1/Rechnung #5 100%.pdf", "/Z1/Rechnung #5 100%.pdf"),
    ],
)
def test_delivery_reports_where_the_file_landed_and_reads_it_back_from_there(
    sp: Emulator, path: str, landed: str
) -> None:
    target = destination(sp)
    assert target.deliver(payload(b"content", path)) == landed
    assert sp.files[f"{LIBRARY}{landed}"] == b"content"
    assert b"".join(target.read(landed)) == b"content"  # the recorded path reads back as the template did
    assert target.landed(landed) == landed


def test_redelivery_overwrites_the_same_path(sp: Emulator) -> None:
    target = destination(sp)
    target.deliver(payload(b"first", "/Z1/x.pdf"))
    target.deliver(payload(b"second", "/Z1/x.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"second"


def test_reserved_names_are_delivered_under_sanitised_names(sp: Emulator) -> None:
    target = destination(sp)
    target.deliver(payload(b"con", "/CON/~$x.pdf"))
    target.deliver(payload(b"vti", "/forms/_vti_bin/desktop.ini"))
    target.deliver(payload(b"lpt", "/Z1/LPT1"))
    assert sp.files[f"{LIBRARY}/CON_/_$x.pdf"] == b"con"
    assert sp.files[f"{LIBRARY}/forms_/_vti-bin/desktop_.ini"] == b"vti"
    assert sp.files[f"{LIBRARY}/Z1/LPT1_"] == b"lpt"
    # Nothing was refused on the way: the names were right before they were sent.
    assert 400 not in sp.statuses()
    assert b"".join(target.read("/CON/~$x.pdf")) == b"con"


def test_columns_are_set_from_the_document(sp: Emulator) -> None:
    sp.library().columns |= {"DocId", "Repo", "Kind"}
    target = destination(sp, columns={"DocId": "doc_id", "Repo": "repo_id", "Kind": "content_type"})
    target.deliver(payload(b"x", "/Z1/x.pdf", doc_id="D-1", repo_id="Z1", comp_id="data"))
    assert sp.list_items[f"{LIBRARY}/Z1/x.pdf"] == {"DocId": "D-1", "Repo": "Z1", "Kind": "application/pdf"}


def test_columns_from_sap_metadata(sp: Emulator) -> None:
    sp.library().columns |= {"CompanyCode", "FiscalYear"}
    target = destination(sp, columns={"CompanyCode": "meta.bukrs", "FiscalYear": "meta.gjahr"})
    delivered = payload(b"x", "/Z1/x.pdf", doc_id="D-1")
    delivered = dataclasses.replace(delivered, metadata={"bukrs": "1000", "gjahr": "2026", "other": "no"})
    target.deliver(delivered)
    assert sp.list_items[f"{LIBRARY}/Z1/x.pdf"] == {"CompanyCode": "1000", "FiscalYear": "2026"}


def test_the_registered_kind_builds_a_working_client(sp: Emulator) -> None:
    """What the worker builds from stored settings and secrets, with a trailing slash on the site URL."""
    settings, secrets = get_kind("sharepoint").validate(
        {"site_url": sp.site_url + "/", "access_token": sp.token}, LOOPBACK
    )
    client = get_kind("sharepoint").build(settings, secrets, LOOPBACK)
    client.deliver(payload(b"built", "/Z1/built.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/built.pdf"] == b"built"


class _Response:
    def __init__(self, status_code: int, retry_after: str | None = None) -> None:
        self.status_code = status_code
        self.headers = requests.structures.CaseInsensitiveDict({"Retry-After": retry_after} if retry_after else {})


class _HTTPError(Exception):
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP error {status}")
        self.response = _Response(status, retry_after)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 12 ", 12.0), ("1.5", 1.5), ("1.2.3", None), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_reads_seconds_and_ignores_the_rest(header: str | None, seconds: float | None) -> None:
    assert sharepoint._retry_after(_HTTPError(429, header)) == seconds


def test_errors_say_what_failed_and_whether_a_retry_can_help() -> None:
    """The classification every failed request goes through (the emulator tests reach it by HTTP)."""
    for status, retryable in ((400, False), (404, False), (405, True), (409, True), (429, True), (503, True)):
        error = sharepoint._error(_HTTPError(status, "3"), "cannot add x.pdf")
        # The answer's status, not its text: the site is whatever the workspace named.
        assert (str(error), error.retryable, error.retry_after) == (f"cannot add x.pdf: HTTP {status}", retryable, 3.0)
    # No HTTP answer at all (a refused connection, a library error): the exception's kind, retryable.
    refused = sharepoint._error(ConnectionRefusedError("refused"), "cannot create folder Z1")
    assert (str(refused), refused.retryable, refused.retry_after) == (
        "cannot create folder Z1: ConnectionRefusedError: refused",
        True,
        None,
    )
    assert sharepoint._retry_after(ValueError("no response attribute")) is None
    long = sharepoint._error(ValueError("x" * 500), "w")
    assert str(long) == "w: ValueError: " + "x" * 300


def test_a_missing_column_fails_for_good_and_names_the_column(sp: Emulator) -> None:
    sp.library().columns.add("DocId")
    target = destination(sp, columns={"DocId": "doc_id", "Kunde": "repo_id"})
    with pytest.raises(DestinationError, match=r"did not set the columns Kunde on /Z1/x\.pdf") as info:
        target.deliver(payload(b"x", "/Z1/x.pdf", doc_id="D-1", repo_id="Z1"))
    assert not info.value.retryable
    # SharePoint's code for the field, not its message: what the site says is not repeated.
    assert f"Kunde: error {FIELD_MISSING_CODE}" in str(info.value)
    assert "does not exist" not in str(info.value)
    assert "DocId" not in str(info.value).split("(", 1)[0]  # only the failed column is blamed
    # SharePoint saves none of the fields when one fails; the upload itself went through.
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"x"
    assert "DocId" not in sp.list_items[f"{LIBRARY}/Z1/x.pdf"]


def test_a_read_only_column_fails_for_good(sp: Emulator) -> None:
    target = destination(sp, columns={"Title": "doc_id", "ID": "repo_id"})
    with pytest.raises(DestinationError, match=rf"columns ID on .*ID: error {FIELD_READ_ONLY_CODE}") as info:
        target.deliver(payload(b"x", "/Z1/x.pdf", doc_id="D-1", repo_id="Z1"))
    assert not info.value.retryable


def test_a_400_is_not_retried(sp: Emulator) -> None:
    sp.inject(400, times=10, match="AddUsingPath")
    with pytest.raises(DestinationError, match="HTTP 400") as info:
        destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert not info.value.retryable
    assert sp.statuses("AddUsingPath") == [400]


@pytest.mark.parametrize("status", [429, 503])
def test_a_long_retry_after_ends_the_attempt_and_is_passed_on(sp: Emulator, status: int) -> None:
    sp.inject(status, times=1, match="AddUsingPath", retry_after=INLINE_WAIT_MAX + 90)
    with pytest.raises(DestinationError, match=f"HTTP {status}") as info:
        destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert info.value.retry_after == INLINE_WAIT_MAX + 90
    # Not waited out inside the attempt: the delivery engine schedules the next one.
    assert sp.statuses("AddUsingPath") == [status]


def test_short_throttling_is_waited_out_at_most_step_retries_times(sp: Emulator) -> None:
    sp.inject(429, times=STEP_RETRIES, match="AddUsingPath", retry_after=0)
    with pytest.raises(DestinationError, match="HTTP 429") as info:
        destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert info.value.retry_after == 0
    assert sp.statuses("AddUsingPath") == [429] * STEP_RETRIES

    sp.inject(429, times=STEP_RETRIES - 1, match="AddUsingPath", retry_after=0)
    destination(sp).deliver(payload(b"y", "/Z1/x.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"y"


def test_a_401_rebuilds_the_context_and_the_delivery_goes_through(sp: Emulator) -> None:
    sp.inject(401, times=1, match="AddUsingPath")
    destination(sp).deliver(payload(b"after 401", "/Z1/x.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"after 401"
    assert sp.statuses("AddUsingPath") == [401, 200]
    assert len(sp.statuses("contextInfo")) == 2  # a fresh context: a fresh digest


def test_an_expired_form_digest_is_refreshed(sp: Emulator) -> None:
    target = destination(sp)
    target.deliver(payload(b"one", "/Z1/a.pdf"))
    sp.expire_digests()
    target.deliver(payload(b"two", "/Z1/b.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/b.pdf"] == b"two"


def test_a_wrong_token_fails_retryably_with_the_status(sp: Emulator) -> None:
    target = SharePointDestination({"site_url": sp.site_url}, {"access_token": "not-the-token"}, LOOPBACK)
    with pytest.raises(DestinationError, match="HTTP 401") as info:
        target.deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert sp.files.get(f"{LIBRARY}/Z1/x.pdf") is None


def test_read_back_ranges(sp: Emulator) -> None:
    data = bytes(range(256)) * 100
    target = destination(sp)
    target.deliver(payload(data, "/Z1/x.pdf"))
    assert b"".join(target.read("/Z1/x.pdf", 10, 20)) == data[10:30]
    assert b"".join(target.read("/Z1/x.pdf", 7, 1)) == data[7:8]
    assert b"".join(target.read("/Z1/x.pdf", len(data) - 3)) == data[-3:]
    assert b"".join(target.read("/Z1/x.pdf")) == data
    with pytest.raises(DestinationError, match="HTTP 404"):
        list(target.read("/Z1/missing.pdf"))


def recorded(data: bytes, path: str, records: list[str]) -> Payload:
    """A payload whose `landing` records what the upload says identifies its version, as the engine does."""
    return dataclasses.replace(payload(data, path), landing=records.append, delivery_key="dlv_1.1")


@pytest.mark.parametrize("size", [100, 3 * 1024 + 7], ids=["one request", "upload session"])
@pytest.mark.parametrize("existing", [False, True], ids=["new file", "replaced file"])
def test_holds_compares_the_recorded_version_and_reads_no_content(
    sp: Emulator, small_chunks: int, size: int, existing: bool
) -> None:
    """After an attempt nobody saw end, the next one asks first: the file's properties against what the
    upload recorded (its UniqueId when moved into place, its ETag when written in place), never its bytes."""
    data = bytes(i % 251 for i in range(size))
    sha = hashlib.sha256(data).hexdigest()
    target = destination(sp)
    if existing:
        target.deliver(payload(b"older" * size, "/Z1/h.pdf"))
    records: list[str] = []
    assert not target.holds_landed("/Z1/h.pdf", sha256=sha, size=size, landed=None)

    target.deliver(recorded(data, "/Z1/h.pdf", records))
    [landed] = records

    assert target.holds_landed("/Z1/h.pdf", sha256=sha, size=size, landed=landed)
    assert not target.holds_landed("/Z1/h.pdf", sha256=sha, size=size + 1, landed=landed)
    assert not target.holds_landed("/Z1/gone.pdf", sha256=sha, size=size, landed=landed)
    assert not target.holds("/Z1/h.pdf", sha256=sha, size=size)  # nothing recorded: cannot tell, never reads
    assert sp.content_served == 0  # not a byte of content was read back
    # Another content: a file of one chunk is read back to tell (below), a larger one is not.
    assert not target.holds_landed("/Z1/h.pdf", sha256="0" * 64, size=size, landed=landed)
    assert (sp.content_served > 0) == (size <= small_chunks)


@pytest.mark.parametrize("columns", [{}, {"DocId": "doc_id"}], ids=["no columns", "columns"])
def test_a_file_written_in_place_but_not_recorded_is_read_back_to_tell(
    sp: Emulator, small_chunks: int, columns: dict[str, str]
) -> None:
    """SharePoint took a one-request upload and the worker died before recording its ETag (bench.chaos
    found this as a second version of the same content): the next attempt reads the file back and
    hashes it. With columns it cannot tell whether they were set too, so it sends again."""
    if columns:
        sp.library().columns |= {"DocId"}
    target = destination(sp, columns=columns)
    data = b"%PDF-1.4 taken, never recorded"
    sha = hashlib.sha256(data).hexdigest()

    def database_away(_: str) -> None:
        raise OperationalError("UPDATE deliveries", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):
        target.deliver(dataclasses.replace(payload(data, "/Z1/w.pdf"), landing=database_away))
    assert sp.files[f"{LIBRARY}/Z1/w.pdf"] == data

    held = target.holds_landed("/Z1/w.pdf", sha256=sha, size=len(data), landed=None)

    assert held == (not columns)
    assert sp.content_served == (0 if columns else len(data))
    assert not target.holds_landed("/Z1/w.pdf", sha256="0" * 64, size=len(data), landed=None)


def test_a_recorded_upload_that_never_got_into_place_is_not_held(sp: Emulator, small_chunks: int) -> None:
    """The upload recorded its version and the move failed (an outage): the path does not hold it."""
    data = bytes(3 * small_chunks)
    records: list[str] = []
    sp.inject(503, times=STEP_RETRIES, match="MoveToUsingPath", retry_after=0)
    with pytest.raises(DestinationError, match=r"cannot move the uploaded cut\.pdf into place"):
        destination(sp).deliver(recorded(data, "/Z1/cut.pdf", records))
    [landed] = records
    sha = hashlib.sha256(data).hexdigest()
    assert not destination(sp).holds_landed("/Z1/cut.pdf", sha256=sha, size=len(data), landed=landed)
    assert sp.content_served == 0


def test_check_passes_for_the_default_library_and_fails_clearly_for_a_missing_one(sp: Emulator) -> None:
    # "Shared Documents" is the default library's URL name; its title is "Documents".
    destination(sp).check()
    destination(sp, library="Shared Documents").check()
    with pytest.raises(DestinationError, match="no document library at /sites/team/Nope on http") as info:
        destination(sp, library="Nope").check()
    assert not info.value.retryable


def test_check_finds_a_library_whose_title_differs_from_its_url(sp: Emulator) -> None:
    sp.add_library("Rechnungen2026", title="Rechnungen 2026")
    destination(sp, library="Rechnungen2026").check()
    with pytest.raises(DestinationError, match="no document library"):
        destination(sp, library="Rechnungen 2026").check()  # the title is not the address


def test_a_delivery_to_a_library_named_by_its_title_fails_with_the_reason_and_writes_nothing(sp: Emulator) -> None:
    # "Documents" is the default library's title: its address is /sites/team/Documents, a plain folder
    # of the site, outside any library.
    with pytest.raises(DestinationError, match="no document library at /sites/team/Documents") as info:
        destination(sp, library="Documents").deliver(payload(b"%PDF title", "/Z1/x.pdf"))
    assert not info.value.retryable
    assert not [path for path in sp.files if path.startswith("/sites/team/Documents/")]
    assert not sp.statuses(match="/Files/add")


def test_settings_need_certificate_auth_unless_a_static_token_is_given() -> None:
    kind = get_kind("sharepoint")
    with pytest.raises(ValidationError, match="tenant_id, client_id, thumbprint, certificate"):
        kind.validate({"site_url": "https://contoso.sharepoint.com/sites/team"}, LOOPBACK)
    pem = app_certificate()
    app = {
        "site_url": "https://contoso.sharepoint.com/sites/team",
        "tenant_id": "t",
        "client_id": "c",
        "thumbprint": "A" * 40,
    }
    settings, secrets = kind.validate({**app, "certificate": pem}, LOOPBACK)
    assert "certificate" not in settings
    assert secrets == {"certificate": pem, "access_token": None}
    _, secrets = kind.validate({"site_url": "http://127.0.0.1:1/sites/t", "access_token": "tok"}, LOOPBACK)
    assert secrets["access_token"] == "tok"


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"certificate_path": "/etc/filerelay/app.pem"}, "certificate_path", "give the PEM private key inline"),
        ({"certificate": "/etc/filerelay/app.pem"}, "certificate", "not a path"),
        ({"certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}, "certificate", "not a path"),
    ],
)
def test_no_setting_names_a_file_on_the_host(settings: dict[str, str], field: str, says: str) -> None:
    app = {"site_url": "https://c.sharepoint.com/sites/t", "tenant_id": "t", "client_id": "c", "thumbprint": "A" * 40}
    with pytest.raises(ValidationError) as refused:
        get_kind("sharepoint").validate({**app, **settings}, LOOPBACK)
    messages = refused.value.messages
    assert isinstance(messages, dict)
    assert says in " ".join(messages[field])


def test_a_destination_stored_with_a_certificate_path_is_mended_by_giving_the_key_inline() -> None:
    stored = {
        "site_url": "https://c.sharepoint.com/sites/t",
        "tenant_id": "t",
        "client_id": "c",
        "thumbprint": "A" * 40,
    }
    stored["certificate_path"] = "/etc/filerelay/app.pem"
    pem = app_certificate()
    # What a PATCH merges over the stored settings: the key given, the path cleared.
    settings, secrets = get_kind("sharepoint").validate(
        {**stored, "certificate": pem, "certificate_path": None}, LOOPBACK
    )
    assert settings.get("certificate_path") is None
    assert secrets["certificate"] == pem


def test_a_destination_stored_with_a_certificate_path_never_opens_it(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(app_certificate())
    settings = {
        "site_url": "https://c.sharepoint.com/sites/t",
        "tenant_id": "t",
        "client_id": "c",
        "thumbprint": "A" * 40,
        "certificate_path": str(key),
    }
    with pytest.raises(DestinationError, match="give the PEM private key inline") as refused:
        SharePointDestination(settings, {}, LOOPBACK).check()
    assert refused.value.retryable is False


# --- upload sessions: documents larger than one chunk (a small chunk here, the same code path) --------

CHUNK = 1024


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sharepoint, "CHUNK_SIZE", CHUNK)
    return CHUNK


@pytest.mark.parametrize(
    ("size", "steps"),
    [
        (CHUNK, {"AddUsingPath": 1}),  # one chunk: one request, the content with it
        (CHUNK + 1, {"AddUsingPath": 1, "StartUpload": 1, "FinishUpload": 1}),
        (2 * CHUNK, {"AddUsingPath": 1, "StartUpload": 1, "FinishUpload": 1}),
        (3 * CHUNK, {"AddUsingPath": 1, "StartUpload": 1, "ContinueUpload": 1, "FinishUpload": 1}),
        (3 * CHUNK + CHUNK // 2, {"AddUsingPath": 1, "StartUpload": 1, "ContinueUpload": 2, "FinishUpload": 1}),
    ],
)
def test_a_document_larger_than_a_chunk_goes_up_in_one_upload_session(
    sp: Emulator, small_chunks: int, size: int, steps: dict[str, int]
) -> None:
    data = bytes(i % 251 for i in range(size))
    destination(sp).deliver(payload(data, "/Z1/big.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/big.pdf"] == data
    counted = {step: len(sp.statuses(step, method="POST")) for step in ("AddUsingPath", *UPLOAD_STEPS)}
    assert counted == {step: steps.get(step, 0) for step in counted}
    assert all(status == 200 for status in sp.statuses(method="POST"))


UPLOAD_STEPS = ("StartUpload", "ContinueUpload", "FinishUpload")


def test_each_upload_session_has_its_own_id(sp: Emulator, small_chunks: int) -> None:
    """The uploadId is a fresh GUID per delivery: SharePoint refuses a second StartUpload of a live id."""
    target = destination(sp)
    target.deliver(payload(b"a" * (3 * CHUNK), "/Z1/one.pdf"))
    target.deliver(payload(b"b" * (3 * CHUNK), "/Z1/two.pdf"))
    started = [re.search(r"startUpload\(uploadID='([^']+)'\)", path) for _, path, _ in sp.requests]
    ids = [match[1] for match in started if match]
    assert len(ids) == len(set(ids)) == 2


def test_staging_shorter_than_its_size_fails_for_good(sp: Emulator, small_chunks: int) -> None:
    cut = Payload(
        open=lambda: io.BytesIO(b"x" * (2 * CHUNK)),
        size=4 * CHUNK,
        sha256="0" * 64,
        content_type="application/pdf",
        path="/Z1/cut.pdf",
    )
    with pytest.raises(DestinationError) as info:
        destination(sp).deliver(cut)
    assert str(info.value) == f"staging ended at {2 * CHUNK} of {4 * CHUNK} bytes"
    assert info.value.retryable is False


def test_a_refused_chunk_names_the_file_and_the_byte(sp: Emulator, small_chunks: int) -> None:
    sp.inject(400, times=1, match="ContinueUpload")
    with pytest.raises(DestinationError, match=r"^upload of big\.pdf failed at byte 1024: .*HTTP 400") as info:
        destination(sp).deliver(payload(b"z" * (4 * CHUNK), "/Z1/big.pdf"))
    assert info.value.retryable is False


# --- the file's name only ever holds whole content ------------------------------------------------------


def watch(sp: Emulator, path: str, whole: set[bytes]) -> list[bytes | None]:
    """What `path` held at every request SharePoint received, each checked to be absent or whole."""
    seen: list[bytes | None] = []

    def look(_method: str, _path: str) -> None:
        held = sp.files.get(path)
        assert held is None or held in whole, f"{path} held {len(held)} bytes of partial content"
        seen.append(held)

    sp.before_request = look
    return seen


def test_an_outage_mid_upload_never_shows_partial_content_under_the_name(sp: Emulator, small_chunks: int) -> None:
    """A new large file goes up under a temporary name: an outage after two chunks leaves the name
    empty (no 0-byte placeholder, no half); the next attempt removes the stale temporary file and the
    name then holds the whole content, written once."""
    path = f"{LIBRARY}/Z1/big.pdf"
    data = bytes(i % 251 for i in range(5 * CHUNK + 9))
    seen = watch(sp, path, {data})
    look = sp.before_request
    assert look is not None
    chunks = 0

    def outage_after_two_chunks(method: str, request: str) -> None:
        nonlocal chunks
        look(method, request)
        if "continueupload" in request.lower():
            chunks += 1
            if chunks == 2:
                sp.fail_always(503, retry_after=None)

    sp.before_request = outage_after_two_chunks
    with pytest.raises(DestinationError, match="HTTP 503") as info:
        destination(sp).deliver(payload(data, "/Z1/big.pdf", delivery_key="dlv_7.1"))
    assert info.value.retryable
    assert path not in sp.files
    stale = [f for f in sp.files if f.endswith(".filerelay-part")]
    assert len(stale) == 1  # the outage kept it from going
    assert stale[0].startswith(f"{LIBRARY}/Z1/big.pdf.")

    sp.heal()
    destination(sp).deliver(payload(data, "/Z1/big.pdf", delivery_key="dlv_7.1"))

    assert sp.files[path] == data
    assert [f for f in sp.files if f.endswith(".filerelay-part")] == []  # the stale one removed, the new one moved
    # Written once: the only earlier version is the empty file the temporary one started as (its history
    # moves with it); nothing partial, nothing from the failed attempt.
    assert sp.versions.get(path, []) == [b""]
    assert None in seen  # absent while it was not whole (each request checked it)


def test_the_temporary_name_stays_within_sharepoints_path_length(sp: Emulator, small_chunks: int) -> None:
    name = "n" * (400 - len(f"{LIBRARY}/Z1/") - 4) + ".pdf"  # the longest path SharePoint takes
    data = b"x" * (2 * CHUNK + 1)
    destination(sp).deliver(payload(data, f"/Z1/{name}"))
    assert sp.files[f"{LIBRARY}/Z1/{name}"] == data


def test_a_move_over_an_existing_file_is_refused_and_the_upload_goes_into_it(sp: Emulator, small_chunks: int) -> None:
    """A file that takes the name while the temporary one goes up is never replaced by the move
    (SharePoint refuses it without the Overwrite flag): it gets the content as a new version instead."""
    path = f"{LIBRARY}/Z1/race.pdf"
    data = b"n" * (3 * CHUNK)

    def someone_saves_it(method: str, request: str) -> None:
        if "movetousingpath" in request.lower() and path not in sp.files:
            sp.files[path] = b"theirs"

    sp.before_request = someone_saves_it
    destination(sp).deliver(payload(data, "/Z1/race.pdf"))
    assert sp.statuses("MoveToUsingPath") == [400]
    assert (sp.files[path], sp.versions[path]) == (data, [b"theirs"])
    assert [f for f in sp.files if f.endswith(".filerelay-part")] == []


# --- a re-delivery never makes the copy in SharePoint worse ------------------------------------------


def test_a_failed_large_redelivery_leaves_the_delivered_copy_intact(sp: Emulator, small_chunks: int) -> None:
    path = f"{LIBRARY}/Z1/big.pdf"
    first = b"1" * (3 * CHUNK)
    target = destination(sp)
    target.deliver(payload(first, "/Z1/big.pdf"))
    item = sp.file_id(path)
    versions = list(sp.versions.get(path, []))

    sp.inject(400, times=1, match="ContinueUpload")
    with pytest.raises(DestinationError, match="failed at byte 1024"):
        target.deliver(payload(b"2" * (3 * CHUNK), "/Z1/big.pdf"))

    assert sp.files[path] == first  # never emptied, never half-written
    assert (sp.file_id(path), sp.versions.get(path, [])) == (item, versions)
    assert sp.statuses("CancelUpload") == [200]  # the abandoned session was closed
    assert sp.statuses("AddUsingPath") == [200]  # only the first delivery's: no overwrite of an existing file


def test_a_file_that_appears_between_the_lookup_and_the_stub_is_never_emptied(sp: Emulator, small_chunks: int) -> None:
    path = f"{LIBRARY}/Z1/big.pdf"
    destination(sp).deliver(payload(b"1" * (3 * CHUNK), "/Z1/big.pdf"))
    sp.inject(404, times=1, match="getFileByServerRelativePath")  # the lookup misses it...
    sp.inject(400, times=1, match="ContinueUpload")  # ...and the upload then fails
    with pytest.raises(DestinationError, match="failed at byte 1024"):
        destination(sp).deliver(payload(b"2" * (3 * CHUNK), "/Z1/big.pdf"))
    assert sp.files[path] == b"1" * (3 * CHUNK)  # the stub never replaced it
    sp.inject(404, times=1, match="getFileByServerRelativePath")
    destination(sp).deliver(payload(b"3" * (3 * CHUNK), "/Z1/big.pdf"))
    assert sp.files[path] == b"3" * (3 * CHUNK)


def test_a_large_redelivery_becomes_a_new_version_of_the_same_item(sp: Emulator, small_chunks: int) -> None:
    path = f"{LIBRARY}/Z1/big.pdf"
    target = destination(sp)
    target.deliver(payload(b"1" * (3 * CHUNK), "/Z1/big.pdf"))
    item = sp.file_id(path)
    target.deliver(payload(b"2" * (3 * CHUNK + 5), "/Z1/big.pdf"))
    assert sp.files[path] == b"2" * (3 * CHUNK + 5)
    assert sp.file_id(path) == item  # the same list item: its links and columns stay
    assert sp.versions[path][-1] == b"1" * (3 * CHUNK)  # and the old content is in its history


def test_a_failed_first_large_delivery_leaves_no_empty_file(sp: Emulator, small_chunks: int) -> None:
    sp.inject(503, times=STEP_RETRIES, match="FinishUpload", retry_after=0)
    with pytest.raises(DestinationError, match="HTTP 503") as info:
        destination(sp).deliver(payload(b"x" * (2 * CHUNK + 1), "/Z1/new.pdf"))
    assert info.value.retryable
    assert f"{LIBRARY}/Z1/new.pdf" not in sp.files
    assert sp.statuses("CancelUpload") == [200]
    # The next attempt starts afresh and lands.
    destination(sp).deliver(payload(b"x" * (2 * CHUNK + 1), "/Z1/new.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/new.pdf"] == b"x" * (2 * CHUNK + 1)


def test_a_small_redelivery_replaces_the_content_in_one_request(sp: Emulator) -> None:
    """Up to one chunk, AddUsingPath carries the content: the file is never empty in between."""
    path = f"{LIBRARY}/Z1/small.pdf"
    target = destination(sp)
    target.deliver(payload(b"one", "/Z1/small.pdf"))
    target.deliver(payload(b"two", "/Z1/small.pdf"))
    assert (sp.files[path], sp.versions[path]) == (b"two", [b"one"])
    assert sp.statuses("StartUpload") == []


# --- an outage is FileRelay's to schedule, not the library's to sleep through --------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_an_outage_without_retry_after_ends_the_attempt_after_one_request(sp: Emulator, status: int) -> None:
    """A failing request without Retry-After (an outage, not throttling) is not slept through: the
    attempt ends, and the workspace's backoff schedules the next one."""
    sp.inject(status, times=10, match="AddUsingPath")
    with pytest.raises(DestinationError, match=f"HTTP {status}") as info:
        destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert info.value.retry_after is None
    assert sp.statuses("AddUsingPath") == [status]  # one request: the library's own backoff was not run


@pytest.mark.parametrize("status", [500, 503])
def test_an_outage_while_fetching_the_form_digest_ends_the_attempt_after_one_request(sp: Emulator, status: int) -> None:
    """The digest (POST /_api/contextinfo) comes before the first write of a fresh context; the library
    retries it 5 times with backoff from 5 s on its own, which hid an outage for a minute per delivery."""
    sp.inject(status, times=10, match="contextinfo")
    with pytest.raises(DestinationError, match=f"HTTP {status}") as info:
        destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert sp.statuses("contextinfo") == [status]
    assert f"{LIBRARY}/Z1/x.pdf" not in sp.files


def test_a_throttled_form_digest_is_waited_out_like_any_request(sp: Emulator) -> None:
    sp.inject(429, times=1, match="contextinfo", retry_after=0)
    destination(sp).deliver(payload(b"x", "/Z1/x.pdf"))
    assert sp.statuses("contextinfo") == [429, 200]
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"x"


# --- through the delivery engine ------------------------------------------------------------------


def wire(sp: Emulator, runtime: Runtime, columns: str = "{}") -> None:
    """acme/production with Z1 wired to the emulator's default library alone, as `dest_sp`."""
    settings = {"site_url": sp.site_url, "access_token": sp.token, "columns": yaml.safe_load(columns)}
    wire_one(runtime, "sharepoint", settings, destination_id="dest_sp")


def accepted(runtime: Runtime, doc_id: str, data: bytes) -> tuple[str, str]:
    """(document id, delivery id) of a new one-component document of Z1."""
    outcome, _ = accept(runtime, doc_id, data)
    [(delivery_id, _kind)] = outcome.enqueue
    return outcome.documents[0].id, delivery_id


def deliveries_counted(outcome: str) -> float:
    labels = {"destination_id": "dest_sp", "kind": "sharepoint", "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("filerelay_deliveries_total", labels) or 0.0


def during_upload(sp: Emulator, action: Callable[[], None], step: str = "/files/add") -> None:
    """Run `action` once, while the first upload request of `step` is in flight (before it is answered)."""
    pending = [action]

    def hook(method: str, path: str) -> None:
        if method == "POST" and step.lower() in path.lower() and pending:
            pending.pop()()

    sp.before_request = hook


def short_lease(runtime: Runtime, seconds: int = 1) -> Runtime:
    return dataclasses.replace(runtime, settings=dataclasses.replace(runtime.settings, lease_seconds=seconds))


def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def test_the_engine_labels_the_file_with_the_documents_sap_identity_and_metadata(
    sp: Emulator, runtime: Runtime
) -> None:
    """Claim → perform → finish with the stored configuration: the columns come from what the claim
    carried (doc_id, repo_id, comp_id and the document's SAP metadata), not from the template alone."""
    wire(sp, runtime, "{DocId: doc_id, Repo: repo_id, Comp: comp_id, CompanyCode: meta.bukrs}")
    sp.library().columns |= {"DocId", "Repo", "Comp", "CompanyCode"}
    document_id, delivery_id = accepted(runtime, "INV-7", b"%PDF-1.4 labelled")
    with session_scope(runtime.sessions) as session:
        session.get_one(Document, document_id).metadata_ = {"bukrs": "1000"}

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert delivery(runtime, delivery_id).status == "delivered"
    assert sp.files[f"{LIBRARY}/Z1/INV-7.pdf"] == b"%PDF-1.4 labelled"
    assert sp.list_items[f"{LIBRARY}/Z1/INV-7.pdf"] == {
        "DocId": "INV-7",
        "Repo": "Z1",
        "Comp": "data",
        "CompanyCode": "1000",
    }


def test_the_engine_records_the_name_sharepoint_stored_the_file_under(sp: Emulator, runtime: Runtime) -> None:
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV:7*", b"%PDF-1.4 reserved")  # characters SharePoint refuses

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert sp.files[f"{LIBRARY}/Z1/INV_7_.pdf"] == b"%PDF-1.4 reserved"
    assert delivery(runtime, delivery_id).path == "/Z1/INV_7_.pdf"


@pytest.mark.parametrize(
    ("size", "recorded"),
    [(100, True), (5 * 1024 + 3, True), (100, False)],
    ids=["one request", "upload session", "one request, killed before its record"],
)
def test_a_copy_that_landed_unseen_is_recorded_not_uploaded_again(
    sp: Emulator, runtime: Runtime, clock: FrozenClock, small_chunks: int, size: int, recorded: bool
) -> None:
    """The worker died after SharePoint took the file and before recording the delivery (bench.chaos
    found this as a second version of the same content): the next attempt finds the copy from what the
    upload recorded, reading none of it back, or, killed before even that, by reading back the one
    chunk it sent; and uploads nothing."""
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV-9", bytes(i % 253 for i in range(size)))
    with session_scope(runtime.sessions) as session:
        taken = service.claim(session, delivery_id=delivery_id, now=clock.now(), lease_seconds=60)
    assert taken is not None
    # The upload lands and records its version as the worker's does; no finish follows.
    landing = recorder(runtime.sessions, delivery_id) if recorded else None
    assert service.perform(taken, runtime.staging, runtime.clients, landing=landing).ok
    clock.advance(61)
    with session_scope(runtime.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 1
    clock.advance(3600)
    uploads = len(sp.statuses("AddUsingPath", method="POST"))

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert delivery(runtime, delivery_id).status == "delivered"
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["abandoned", "found"]
    assert len(sp.statuses("AddUsingPath", method="POST")) == uploads
    assert sp.versions.get(f"{LIBRARY}/Z1/INV-9.pdf", [b""]) == [b""]  # no second version of the content
    assert sp.content_served == (0 if recorded else size)  # what the check transferred


def test_a_lease_taken_back_during_the_upload_makes_the_late_finish_superseded(
    sp: Emulator, runtime: Runtime, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The upload outlives its lease and the sweeper takes the delivery back meanwhile: the late finish
    changes nothing but its own attempt row, is not counted, and says so in the log."""
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV-8", b"%PDF-1.4 slow")

    def sweeper_takes_the_lease_back() -> None:
        clock.advance(runtime.settings.lease_seconds + 1)
        with session_scope(runtime.sessions) as session:
            assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 1

    during_upload(sp, sweeper_takes_the_lease_back)
    counted = {outcome: deliveries_counted(outcome) for outcome in ("delivered", "retry", "failed")}
    caplog.set_level(logging.INFO, logger="filerelay.delivery.service")

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    row = delivery(runtime, delivery_id)
    assert (row.status, row.attempts) == ("retrying", 1)  # as the sweeper left it, due again
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["superseded"]
    assert {outcome: deliveries_counted(outcome) for outcome in counted} == counted
    assert f"delivery {delivery_id} attempt 1: superseded (the lease ran out meanwhile)" in caplog.messages


def test_content_replaced_during_the_upload_is_counted_as_a_retry_and_sent_at_once(
    sp: Emulator, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV-9", b"%PDF-1.4 version 1")

    def sap_replaces_the_content() -> None:
        replace_content(runtime, doc_id="INV-9", data=b"%PDF-1.7 version 2")

    during_upload(sp, sap_replaces_the_content)
    retries, restarts = deliveries_counted("retry"), deliveries_counted("restarted")
    timed = metrics.REGISTRY.get_sample_value("filerelay_delivery_attempt_seconds_sum", {"kind": "sharepoint"}) or 0.0
    caplog.set_level(logging.INFO, logger="filerelay.delivery.service")
    started = time.perf_counter()

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    elapsed = time.perf_counter() - started
    assert (deliveries_counted("retry"), deliveries_counted("restarted")) == (retries + 1, restarts)
    # The attempt's duration is recorded, and it is a duration: within the call that made it.
    took = metrics.REGISTRY.get_sample_value("filerelay_delivery_attempt_seconds_sum", {"kind": "sharepoint"})
    assert took is not None
    assert 0 < took - timed <= elapsed
    assert f"delivery {delivery_id} attempt 1: restarted" in caplog.messages
    assert delivery(runtime, delivery_id).status == "pending"

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)  # the new content goes out now

    assert sp.files[f"{LIBRARY}/Z1/INV-9.pdf"] == b"%PDF-1.7 version 2"
    assert delivery(runtime, delivery_id).status == "delivered"


def test_a_heartbeat_keeps_the_lease_of_an_upload_that_outlives_it(
    sp: Emulator, runtime: Runtime, clock: FrozenClock
) -> None:
    """The race of the reliability issue: an upload longer than the lease. The heartbeat renews it, so
    the sweeper finds nothing to take back and no second worker starts a parallel upload."""
    runtime = short_lease(runtime)
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV-10", b"%PDF-1.4 long upload")
    recovered: list[int] = []

    def the_upload_outlives_its_lease() -> None:
        clock.advance(runtime.settings.lease_seconds + 1)
        lease_until = delivery(runtime, delivery_id).lease_until
        assert lease_until is not None
        assert lease_until < clock.now()  # ran out, by the clock
        eventually(lambda: (delivery(runtime, delivery_id).lease_until or clock.now()) > clock.now(), "a heartbeat")
        with session_scope(runtime.sessions) as session:
            recovered.append(sweep.recover_expired_leases(session, now=clock.now(), limit=10))

    during_upload(sp, the_upload_outlives_its_lease)

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert recovered == [0]
    row = delivery(runtime, delivery_id)
    assert (row.status, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["delivered"]
    assert len(sp.statuses("/files/add", method="POST")) == 1  # one upload
    assert sp.files[f"{LIBRARY}/Z1/INV-10.pdf"] == b"%PDF-1.4 long upload"


def test_the_heartbeat_renews_well_within_the_lease_so_a_long_upload_is_never_taken_back(
    sp: Emulator, runtime: Runtime
) -> None:
    """An upload held open for several lease lengths on the real clock, the sweeper running meanwhile
    and judging a third of a lease ahead (its clock that much ahead of the worker's, or one renewal that
    much late). Renewing three times a lease keeps two thirds of it ahead at every moment, so the
    sweeper never takes the delivery back; renewing once per lease length would let the lease run out
    between renewals, and the sweeper would start a second upload beside the running one."""
    runtime = dataclasses.replace(short_lease(runtime, seconds=2), clock=SystemClock())
    lease = dt.timedelta(seconds=runtime.settings.lease_seconds)
    wire(sp, runtime)
    _, delivery_id = accepted(runtime, "INV-11", b"%PDF-1.4 a long upload")
    recovered: list[int] = []
    leases: set[dt.datetime | None] = set()

    def the_sweeper_runs_for_several_leases() -> None:
        # Until four renewals came (two lease lengths and more) or the sweeper took the delivery back;
        # the deadline only ends a heartbeat that never renews.
        deadline = time.monotonic() + 10 * lease.total_seconds()
        while len(leases) < 5 and not any(recovered) and time.monotonic() < deadline:
            with session_scope(runtime.sessions) as session:
                ahead = runtime.clock.now() + lease / 3
                recovered.append(sweep.recover_expired_leases(session, now=ahead, limit=10))
            leases.add(delivery(runtime, delivery_id).lease_until)
            time.sleep(0.02)

    during_upload(sp, the_sweeper_runs_for_several_leases)

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert not any(recovered), "the sweeper took the delivery back while its upload ran"
    assert len(leases) == 5  # the claim's lease and four renewals, all while the upload ran
    row = delivery(runtime, delivery_id)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["delivered"]  # none superseded or abandoned
    assert len(sp.statuses("/files/add", method="POST")) == 1


def test_an_upload_that_lost_its_lease_stops_and_leaves_nothing_behind(
    sp: Emulator, runtime: Runtime, clock: FrozenClock, small_chunks: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker stalled past its lease (no heartbeat got through) and the sweeper took the delivery
    back: the next heartbeat finds the lease lost, the upload stops at its next chunk, the upload session
    is cancelled, and the late finish is superseded: the retry is the only upload that lands."""
    runtime = short_lease(runtime)
    wire(sp, runtime)
    data = bytes(i % 251 for i in range(3 * small_chunks))
    _, delivery_id = accepted(runtime, "INV-11", data)
    caplog.set_level(logging.INFO, logger="filerelay.delivery")

    def the_sweeper_takes_it_back() -> None:
        clock.advance(runtime.settings.lease_seconds + 1)
        with session_scope(runtime.sessions) as session:
            assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 1
        eventually(lambda: any("lost its lease" in r.getMessage() for r in caplog.records), "the heartbeat noticing")

    during_upload(sp, the_sweeper_takes_it_back, step="StartUpload")

    assert service.run(runtime, delivery_id, rand=lambda: 0.5)

    assert f"{LIBRARY}/Z1/INV-11.pdf" not in sp.files
    assert sp.statuses("ContinueUpload") == []  # no chunk after the lease was lost
    assert sp.statuses("FinishUpload") == []
    assert sp.statuses("CancelUpload") == [200]
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["superseded"]
    assert delivery(runtime, delivery_id).status == "retrying"  # as the sweeper left it
    assert f"delivery {delivery_id} attempt 1 lost its lease (taken back while it ran): stopping the upload" in (
        caplog.messages
    )

    # The retry, when due, is the upload that lands.
    due = delivery(runtime, delivery_id).next_attempt_at
    assert due is not None
    clock.advance((due - clock.now()).total_seconds())
    assert service.run(runtime, delivery_id, rand=lambda: 0.5)
    assert sp.files[f"{LIBRARY}/Z1/INV-11.pdf"] == data
    assert len(sp.statuses("FinishUpload")) == 1


def test_read_back_serves_only_the_delivered_bytes(sp: Emulator) -> None:
    data = b"%PDF delivered " * 100
    target = destination(sp)
    target.deliver(payload(data, "/Z1/x.pdf"))
    sha = hashlib.sha256(data).hexdigest()
    got = read_verified(target, "/Z1/x.pdf", sha256=sha, size=len(data), start=4, length=9)
    assert b"".join(got) == data[4:13]
    assert len(sp.statuses(match="/$value")) == 1  # the check costs no second download
    # Edited in SharePoint after its delivery (a new version, the same size): refused, nothing served.
    sp.files["/sites/team/Shared Documents/Z1/x.pdf"] = data[:-1] + b"!"
    with pytest.raises(DestinationError, match="is not the delivered document") as refused:
        read_verified(target, "/Z1/x.pdf", sha256=sha, size=len(data))
    assert refused.value.retryable is False


# --- the egress guard ---------------------------------------------------------------------------------------


def test_the_default_policy_refuses_the_loopback_site_at_connect(sp: Emulator) -> None:
    target = SharePointDestination({"site_url": sp.site_url}, {"access_token": sp.token}, DEFAULT)
    with pytest.raises(DestinationError) as info:
        target.check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable
    assert sp.requests == []


def test_the_sites_error_code_is_shown_its_message_is_not_and_a_redirect_is_not_followed() -> None:
    error = {"error": {"code": "-2147024891, System.UnauthorizedAccessException", "message": {"value": PEER_SECRET}}}
    answer = Answering(status=403, body=json.dumps(error).encode(), headers={"content-type": "application/json"})
    with answering_server(answer) as peer:
        target = SharePointDestination({"site_url": f"{peer.url}/sites/team"}, {"access_token": "t"}, LOOPBACK)
        with pytest.raises(DestinationError) as info:
            target.check()
        assert "HTTP 403 -2147024891, System.UnauthorizedAccessException" in str(info.value)
        assert PEER_SECRET not in str(info.value)
        peer.status, peer.body, peer.headers = 302, b"", {"location": f"{peer.url}/elsewhere"}
        with pytest.raises(DestinationError):
            target.check()
    assert not any("/elsewhere" in asked for asked in peer.asked)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"site_url": "http://169.254.169.254/sites/team", "access_token": "t"}, "site_url"),
        ({"site_url": "http://localhost/sites/team", "access_token": "t"}, "site_url"),
        (
            {
                "site_url": "https://contoso.sharepoint.com/sites/team",
                "tenant_id": "evil.example/../x",
                "client_id": "c",
                "thumbprint": "A" * 40,
                "certificate": app_certificate(),
            },
            "tenant_id",
        ),
    ],
)
def test_a_site_or_tenant_the_policy_refuses_is_refused_when_written(values: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        get_kind("sharepoint").validate(values, DEFAULT)
    assert field in info.value.messages_dict
