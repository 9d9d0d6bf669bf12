"""The SharePoint emulator against the real office365-rest-python-client: every flow the SharePoint
destination relies on (docs/development.md#tests) goes over HTTP on 127.0.0.1 and must be accepted by the
library exactly as SharePoint Online's answers are."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.runtime.exceptions import AccessDeniedException, ObjectNotFoundException
from office365.runtime.queries.service_operation import ServiceOperationQuery
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.exceptions import SharePointException
from office365.sharepoint.files.file import File
from office365.sharepoint.folders.folder import Folder
from requests import Response

from tests.support.sharepoint_emulator import Emulator, parse_segment, sharepoint_emulator, split_segments

MB = 1024 * 1024
CHUNK = 4 * MB
INBOX = "Shared Documents/2026/Inbox"
UPLOAD_ID = "6f1c3d52-8f4b-4a8e-9d0b-3c1f2e4a5b6c"
# Microsoft's list ("Restrictions and limitations in OneDrive and SharePoint"), in mixed case.
RESERVED = ["CON", "prn", "AUX", "NUL", "COM0", "COM9", "LPT0", "lpt9", ".lock", "desktop.ini", "~$x.pdf", "a_vti_b"]
REFUSED_CHARACTERS = ["a\\b", 'a"b', "a*b", "a:b", "a<b", "a>b", "a?b", "a|b"]

ContextFactory = Callable[..., ClientContext]


@pytest.fixture
def sp() -> Iterator[Emulator]:
    with sharepoint_emulator() as emulator:
        yield emulator


@pytest.fixture
def make_ctx(sp: Emulator) -> Iterator[ContextFactory]:
    """A fresh ClientContext per call (as the destination makes one per delivery), closed after the test."""
    made: list[ClientContext] = []

    def make(token: str | None = None) -> ClientContext:
        def acquire() -> dict[str, object]:
            return {"access_token": token or sp.token, "token_type": "Bearer", "expires_in": 3600}

        ctx = ClientContext(sp.site_url).with_access_token(acquire)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def _inbox(ctx: ClientContext) -> Folder:
    return ctx.web.ensure_folder_path(INBOX).execute_query()


def _response(error: ClientRequestException) -> Response:
    assert error.response is not None
    return error.response


def _post_paths(sp: Emulator, match: str) -> list[tuple[str, int]]:
    return [(path, status) for method, path, status in sp.requests if method == "POST" and match in path]


def test_ensure_folder_path_creates_each_segment_and_is_idempotent(sp: Emulator, make_ctx: ContextFactory) -> None:
    first = _inbox(make_ctx())
    second = _inbox(make_ctx())

    assert first.server_relative_url == second.server_relative_url == f"/sites/team/{INBOX}"
    assert first.unique_id == second.unique_id
    assert {f"/sites/team/{p}" for p in ("Shared Documents/2026", INBOX)} <= sp.folders
    adds = _post_paths(sp, "/Folders/Add(")
    assert len(adds) == 6  # one Add per segment, every time, answered 200 for existing folders
    assert {status for _, status in adds} == {200}
    assert adds[2][0] == (
        "/sites/team/_api/Web/RootFolder/Folders('Shared Documents')/Folders('2026')/Folders/Add('Inbox')"
    )
    # contextInfo comes first for each fresh context.
    assert sp.statuses("/_api/contextInfo") == [200, 200]


def test_folder_add_under_a_missing_parent_is_404(make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    missing = ctx.web.get_folder_by_server_relative_path("Shared Documents/nope")
    missing.folders.add("child")
    with pytest.raises(ObjectNotFoundException):
        ctx.execute_query()


def test_small_upload_is_one_files_add(sp: Emulator, make_ctx: ContextFactory) -> None:
    folder = _inbox(make_ctx())
    content = os.urandom(100 * 1024)

    uploaded = folder.files.upload_file(io.BytesIO(content), "small.pdf", chunk_size=CHUNK).execute_query()

    path = f"/sites/team/{INBOX}/small.pdf"
    assert sp.files[path] == content
    assert uploaded.server_relative_url == path
    assert uploaded.length == len(content)
    assert uploaded.unique_id == sp.file_id(path)
    assert _post_paths(sp, "/Files/") == [
        (f"/sites/team/_api/Web/GetFolderById('{folder.unique_id}')/Files/add(overwrite=true,url='small.pdf')", 200)
    ]


def test_files_add_without_overwrite_refuses_an_existing_file(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    folder.files.add("once.pdf", b"first", overwrite=False).execute_query()
    folder.files.add("once.pdf", b"second", overwrite=False)

    with pytest.raises(SharePointException) as caught:
        ctx.execute_query()

    assert caught.value.code == "-2130575257, Microsoft.SharePoint.SPException"
    assert sp.files[f"/sites/team/{INBOX}/once.pdf"] == b"first"


def test_names_sharepoint_refuses_are_rejected(make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    _inbox(ctx).files.add("a:b.pdf", b"x", overwrite=True)
    with pytest.raises(SharePointException) as caught:
        ctx.execute_query()
    assert _response(caught.value).status_code == 400


def test_large_upload_goes_through_an_upload_session(sp: Emulator, make_ctx: ContextFactory) -> None:
    folder = _inbox(make_ctx())
    content = os.urandom(12 * MB)

    uploaded = folder.files.create_upload_session(io.BytesIO(content), CHUNK, file_name="big.tif").execute_query()

    path = f"/sites/team/{INBOX}/big.tif"
    assert sp.files[path] == content
    assert uploaded.length == len(content)
    file_id = sp.file_id(path)
    ops = [p.split(f"/GetFileById('{file_id}')/", 1)[-1].split("(", 1)[0] for p, _ in _post_paths(sp, "Upload(")]
    assert ops == ["startUpload", "continueUpload", "finishUpload"]
    assert "fileOffset=8388608" in _post_paths(sp, "finishUpload")[0][0]


def test_download_by_path_returns_the_bytes_and_properties(sp: Emulator, make_ctx: ContextFactory) -> None:
    folder = _inbox(make_ctx())
    content = os.urandom(5 * MB + 17)
    folder.files.upload_file(io.BytesIO(content), "scan.pdf", chunk_size=2 * MB).execute_query()

    ctx = make_ctx()
    path = f"/sites/team/{INBOX}/scan.pdf"
    downloaded = ctx.web.get_file_by_server_relative_path(path).get_content().execute_query()
    props = ctx.web.get_file_by_server_relative_path(path).get().execute_query()

    assert downloaded.value == content
    assert props.name == "scan.pdf"
    assert props.length == len(content)
    assert props.unique_id == sp.file_id(path)
    assert any(p.endswith(f"getFileByServerRelativePath(DecodedUrl='{path}')/$value") for _, p, _ in sp.requests)


def test_reading_a_missing_file_raises_not_found(make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    with pytest.raises(ObjectNotFoundException):
        ctx.web.get_file_by_server_relative_path(f"/sites/team/{INBOX}/nope.pdf").get().execute_query()


def test_metadata_through_validate_update_list_item_and_merge(sp: Emulator, make_ctx: ContextFactory) -> None:
    sp.library().columns.add("DocId")
    folder = _inbox(make_ctx())
    uploaded = folder.files.upload_file(io.BytesIO(b"%PDF-1.7"), "meta.pdf").execute_query()
    path = f"/sites/team/{INBOX}/meta.pdf"

    result = uploaded.listItemAllFields.validate_update_list_item({"Title": "Invoice 42", "DocId": "D-1"})
    uploaded.execute_query()

    assert [(v.FieldName, v.FieldValue, v.HasException) for v in result.value] == [
        ("Title", "Invoice 42", False),
        ("DocId", "D-1", False),
    ]
    assert sp.list_items[path] == {"Title": "Invoice 42", "DocId": "D-1"}

    item = uploaded.listItemAllFields
    item.set_property("DocId", "D-2")  # type: ignore[no-untyped-call]
    item.update().execute_query()
    assert sp.list_items[path]["DocId"] == "D-2"
    assert [status for _, _, status in sp.requests[-2:]] == [200, 204]  # ParentList, MERGE

    fetched = make_ctx().web.get_file_by_server_relative_path(path).listItemAllFields.get().execute_query()
    assert fetched.properties["DocId"] == "D-2"
    assert fetched.properties["Title"] == "Invoice 42"


def test_throttled_chunk_is_resent_after_retry_after(sp: Emulator, make_ctx: ContextFactory) -> None:
    folder = _inbox(make_ctx())
    content = os.urandom(12 * MB)
    sp.inject(429, match="continueUpload", retry_after=1)

    started = time.monotonic()
    folder.files.upload_file(io.BytesIO(content), "retry.pdf", chunk_size=CHUNK)
    folder.context.execute_query_with_incremental_retry(max_retry=3)
    elapsed = time.monotonic() - started

    assert sp.files[f"/sites/team/{INBOX}/retry.pdf"] == content
    assert elapsed >= 1.0
    assert len(_post_paths(sp, "/startUpload(")) == 1
    continued = _post_paths(sp, "/continueUpload(")
    assert [status for _, status in continued] == [429, 200]
    assert continued[0][0] == continued[1][0]  # the same chunk (same fileOffset) again
    assert [status for _, status in _post_paths(sp, "/finishUpload(")] == [200]


def test_throttling_without_retry_raises_with_the_status_and_header(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    sp.inject(503, match="/Files/add", retry_after=7)
    folder.files.add("busy.pdf", b"x", overwrite=True)

    with pytest.raises(ClientRequestException) as caught:
        ctx.execute_query()

    assert _response(caught.value).status_code == 503
    assert _response(caught.value).headers["Retry-After"] == "7"


def test_wrong_token_raises_access_denied(sp: Emulator, make_ctx: ContextFactory) -> None:
    with pytest.raises(AccessDeniedException):
        _inbox(make_ctx(token="not-the-token"))

    assert sp.requests == [("POST", "/sites/team/_api/contextInfo", 401)]
    assert not sp.folders - {"/sites/team", "/sites/team/Shared Documents"}


def test_injected_401_is_not_retried(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    sp.inject(401, match="/Files/add")
    folder.files.add("denied.pdf", b"x", overwrite=True)

    with pytest.raises(AccessDeniedException):
        ctx.execute_query_with_incremental_retry(max_retry=3)

    assert sp.statuses("/Files/add") == [401]


def test_expired_digest_is_refreshed_transparently(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    sp.expire_digests()

    folder.files.add("after-expiry.pdf", b"fresh", overwrite=True).execute_query()

    assert sp.files[f"/sites/team/{INBOX}/after-expiry.pdf"] == b"fresh"
    assert sp.statuses("/_api/contextInfo") == [200, 200]
    assert [(m, s) for m, p, s in sp.requests[-3:]] == [("POST", 403), ("POST", 200), ("POST", 200)]
    assert sp.requests[-2][1] == "/sites/team/_api/contextInfo"


def test_failing_site_fails_until_healed(sp: Emulator, make_ctx: ContextFactory) -> None:
    sp.fail_always(503)
    with pytest.raises(ClientRequestException) as caught:
        _inbox(make_ctx())
    assert _response(caught.value).status_code == 503

    sp.heal()
    assert _inbox(make_ctx()).server_relative_url == f"/sites/team/{INBOX}"


def test_names_with_hash_and_percent_work_through_the_path_apis(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    name = "Rechnung #5 100%.pdf"
    content = b"%PDF-1.7 invoice"

    created = File(ctx)
    query = ServiceOperationQuery(
        folder.files, "AddUsingPath", {"DecodedUrl": name, "Overwrite": True}, content, None, created
    )
    ctx.add_query(query)
    ctx.execute_query()

    path = f"/sites/team/{INBOX}/{name}"
    assert sp.files[path] == content
    assert created.server_relative_url == path
    assert _post_paths(sp, "AddUsingPath")[0][0].endswith(
        "/Files/AddUsingPath(DecodedUrl='Rechnung #5 100%.pdf',Overwrite=true)"
    )
    read = make_ctx().web.get_file_by_server_relative_path(path).get_content().execute_query()
    assert read.value == content


def test_legacy_url_forms_can_be_made_to_refuse_hash_and_percent(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    sp.refuse_special_in_legacy_urls = True
    folder.files.add("Rechnung #5.pdf", b"x", overwrite=True)

    with pytest.raises(ClientRequestException) as caught:
        ctx.execute_query()

    assert _response(caught.value).status_code == 400
    assert not any("#" in path for path in sp.files)


def test_nested_folder_upload_creates_parents(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    folder = ctx.web.get_folder_by_server_relative_path(f"/sites/team/{INBOX}")
    _inbox(ctx)

    folder.upload_file("nested/x/doc2.pdf", b"nested").execute_query()

    assert sp.files[f"/sites/team/{INBOX}/nested/x/doc2.pdf"] == b"nested"
    assert f"/sites/team/{INBOX}/nested" in sp.folders


def test_raw_protocol_chunked_bodies_and_offset_checks(sp: Emulator) -> None:
    """What the library does not exercise: chunked request bodies, the string-URL folder form and a
    continueUpload at the wrong offset."""
    api = f"{sp.site_url}/_api"
    with requests.Session() as http:
        http.headers.update({"Authorization": f"Bearer {sp.token}", "Accept": "application/json;odata=verbose"})
        info = http.post(f"{api}/contextinfo", timeout=5)
        assert info.headers["Content-Type"] == "application/json;odata=verbose;charset=utf-8"
        http.headers["X-RequestDigest"] = info.json()["d"]["GetContextWebInformation"]["FormDigestValue"]

        library = f"{api}/web/getFolderByServerRelativeUrl('/sites/team/Shared%20Documents')"
        created = http.post(
            f"{library}/Files/add(overwrite=false,url='c.bin')", data=iter([b"ab", b"cd", b"e"]), timeout=5
        )
        assert created.status_code == 200, created.text
        entity = created.json()["d"]
        assert entity["Length"] == "5"
        assert sp.files["/sites/team/Shared Documents/c.bin"] == b"abcde"

        file_api = f"{api}/Web/GetFileById('{entity['UniqueId']}')"
        started = http.post(f"{file_api}/startUpload(uploadID='{UPLOAD_ID}')", data=b"12345", timeout=5)
        assert started.json() == {"d": {"StartUpload": "5"}}
        wrong = http.post(f"{file_api}/continueUpload(uploadID='{UPLOAD_ID}',fileOffset=4)", data=b"6", timeout=5)
        assert wrong.status_code == 400
        assert wrong.json()["error"]["message"]["lang"] == "en-US"
        finished = http.post(f"{file_api}/finishUpload(uploadID='{UPLOAD_ID}',fileOffset=5)", data=b"678", timeout=5)
        assert finished.json()["d"]["Length"] == "8"
        raw = http.get(
            f"{api}/web/getFileByServerRelativeUrl('/sites/team/Shared%20Documents/c.bin')/$value", timeout=5
        )
        assert raw.content == b"12345678"
        assert raw.headers["Content-Type"] == "application/octet-stream"

        http.headers["X-RequestDigest"] = "0xFORGED"
        forged = http.post(f"{library}/Folders/Add('x')", timeout=5)
        assert forged.status_code == 403
        assert forged.json()["error"]["code"].startswith("-2130575251,")


def test_path_parsing_respects_quotes_and_doubled_apostrophes() -> None:
    segments = split_segments("Web/getFolderByServerRelativePath(DecodedUrl='/sites/team/a/O''Neil (1)')/Files")
    assert segments == ["Web", "getFolderByServerRelativePath(DecodedUrl='/sites/team/a/O''Neil (1)')", "Files"]
    assert parse_segment(segments[1], {}) == (
        "getfolderbyserverrelativepath",
        {"decodedurl": "/sites/team/a/O'Neil (1)"},
    )
    assert parse_segment("continueUpload(uploadID='u',fileOffset=42)", {}) == (
        "continueupload",
        {"uploadid": "u", "fileoffset": 42},
    )
    assert parse_segment("Folders('a, b')", {}) == ("folders", {"0": "a, b"})


# ------------------------------------------------------------------ strictness: what SharePoint refuses


def test_lists_are_found_by_title_or_by_url_never_by_url_name_as_title(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx = make_ctx()
    by_title = ctx.web.lists.get_by_title("Documents").get().execute_query()
    by_url = ctx.web.get_list("/sites/team/Shared Documents").get().execute_query()
    assert by_title.title == by_url.title == "Documents"
    assert by_title.id == by_url.id

    with pytest.raises(ClientRequestException) as caught:
        make_ctx().web.lists.get_by_title("Shared Documents").get().execute_query()
    assert _response(caught.value).status_code == 404
    error = _response(caught.value).json()["error"]
    assert error["code"] == "-1, System.ArgumentException"
    assert error["message"]["value"] == f"List 'Shared Documents' does not exist at site with URL '{sp.site_url}'."

    with pytest.raises(ObjectNotFoundException):
        make_ctx().web.get_list("/sites/team/Nope").get().execute_query()


@pytest.mark.parametrize(
    "name",
    [*RESERVED, *REFUSED_CHARACTERS, " lead.pdf", "trail.pdf "],
)
def test_names_sharepoint_refuses_are_answered_400_illegal_name(
    sp: Emulator, make_ctx: ContextFactory, name: str
) -> None:
    ctx = make_ctx()
    folder = _inbox(ctx)
    ctx.add_query(
        ServiceOperationQuery(
            folder.files, "AddUsingPath", {"DecodedUrl": name, "Overwrite": True}, b"x", None, File(ctx)
        )
    )
    with pytest.raises(SharePointException) as caught:
        ctx.execute_query()
    assert _response(caught.value).status_code == 400
    assert caught.value.code == "-2130575245, Microsoft.SharePoint.SPException"
    assert "not permitted" in _response(caught.value).json()["error"]["message"]["value"]

    folder_ctx = make_ctx()
    folder_ctx.web.get_folder_by_server_relative_path(f"/sites/team/{INBOX}").add(name)
    with pytest.raises(SharePointException):
        folder_ctx.execute_query()
    assert not [p for p in sp.files if p.endswith(name)]
    assert not [p for p in sp.folders if p.endswith(name)]


def test_a_forms_folder_is_refused_only_directly_in_a_library(sp: Emulator, make_ctx: ContextFactory) -> None:
    with pytest.raises(SharePointException) as caught:
        make_ctx().web.ensure_folder_path("Shared Documents/Forms").execute_query()
    assert _response(caught.value).status_code == 400
    make_ctx().web.ensure_folder_path("Shared Documents/2026/Forms").execute_query()
    assert "/sites/team/Shared Documents/2026/Forms" in sp.folders


def test_validate_update_reports_each_failed_field_with_http_200(sp: Emulator, make_ctx: ContextFactory) -> None:
    sp.library().columns.add("DocId")
    uploaded = _inbox(make_ctx()).files.upload_file(io.BytesIO(b"%PDF"), "v.pdf").execute_query()
    path = f"/sites/team/{INBOX}/v.pdf"

    result = uploaded.listItemAllFields.validate_update_list_item({"DocId": "D-1", "Kunde": "K", "ID": 7})
    uploaded.execute_query()  # no exception: SharePoint answers 200

    outcome = {v.FieldName: (v.HasException, v.ErrorCode, v.ErrorMessage) for v in result.value}
    assert outcome["DocId"] == (False, 0, None)
    assert outcome["Kunde"][0] is True
    assert outcome["Kunde"][1] == -2147024809
    assert str(outcome["Kunde"][2]).startswith("Column 'Kunde' does not exist.")
    assert outcome["ID"][:2] == (True, -2146232832)
    assert outcome["ID"][2] == "This field cannot be updated."
    assert [status for _, _, status in sp.requests[-1:]] == [200]
    assert "DocId" not in sp.list_items[path]  # one failed field: the item is left as it was


def test_merge_of_an_unknown_property_is_400(sp: Emulator, make_ctx: ContextFactory) -> None:
    uploaded = _inbox(make_ctx()).files.upload_file(io.BytesIO(b"%PDF"), "m.pdf").execute_query()
    item = uploaded.listItemAllFields
    item.set_property("Kunde", "K")  # type: ignore[no-untyped-call]
    with pytest.raises(SharePointException) as caught:
        item.update().execute_query()
    assert _response(caught.value).status_code == 400
    assert "The property 'Kunde' does not exist" in str(caught.value)


def test_overwrite_in_a_versioned_library_keeps_the_old_version(sp: Emulator, make_ctx: ContextFactory) -> None:
    folder = _inbox(make_ctx())
    path = f"/sites/team/{INBOX}/v.pdf"
    folder.files.upload_file(io.BytesIO(b"one"), "v.pdf").execute_query()
    second = folder.files.upload_file(io.BytesIO(b"two"), "v.pdf").execute_query()
    assert sp.files[path] == b"two"
    assert sp.versions[path] == [b"one"]
    assert second.major_version == 2

    sp.add_library("Plain", versioning=False)
    plain = make_ctx().web.ensure_folder_path("Plain/x").execute_query()
    plain.files.upload_file(io.BytesIO(b"one"), "p.pdf").execute_query()
    again = plain.files.upload_file(io.BytesIO(b"two"), "p.pdf").execute_query()
    assert sp.files["/sites/team/Plain/x/p.pdf"] == b"two"
    assert "/sites/team/Plain/x/p.pdf" not in sp.versions
    assert again.major_version == 1


def _stub(sp: Emulator, make_ctx: ContextFactory, name: str, content: bytes = b"") -> tuple[ClientContext, File]:
    ctx = make_ctx()
    stub = _inbox(ctx).files.add(name, content, overwrite=True).execute_query()
    return ctx, stub


def test_upload_session_rules(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx, target = _stub(sp, make_ctx, "s.bin", b"old")
    path = f"/sites/team/{INBOX}/s.bin"

    # StartUpload is idempotent for the same id and fragment; the file is unchanged until FinishUpload.
    # (Edm.Int64 comes as a string in verbose JSON.)
    assert int(target.start_upload(UPLOAD_ID, b"abc").execute_query().value) == 3
    assert int(target.start_upload(UPLOAD_ID, b"abc").execute_query().value) == 3
    assert int(target.continue_upload(UPLOAD_ID, 3, b"de").execute_query().value) == 5
    assert sp.files[path] == b"old"

    target.continue_upload(UPLOAD_ID, 4, b"x")
    with pytest.raises(ClientRequestException) as wrong_offset:
        ctx.execute_query()
    assert _response(wrong_offset.value).status_code == 400

    target.continue_upload("9b2e6c1a-0000-4000-8000-000000000000", 5, b"x")
    with pytest.raises(ObjectNotFoundException):
        ctx.execute_query()

    target.start_upload(UPLOAD_ID, b"different")
    with pytest.raises(ClientRequestException) as reused:
        ctx.execute_query()
    assert _response(reused.value).status_code == 400

    target.finish_upload(UPLOAD_ID, 5, b"f").execute_query()
    assert sp.files[path] == b"abcdef"
    assert sp.versions[path] == [b"old"]

    # The session is over: its id is unknown now.
    target.continue_upload(UPLOAD_ID, 6, b"g")
    with pytest.raises(ObjectNotFoundException):
        ctx.execute_query()


def test_upload_session_needs_a_guid_an_existing_file_and_its_own_file(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx, target = _stub(sp, make_ctx, "a.bin", b"a")
    target.start_upload("not-a-guid", b"x")
    with pytest.raises(ClientRequestException) as not_guid:
        ctx.execute_query()
    assert _response(not_guid.value).status_code == 400

    missing = ctx.web.get_file_by_server_relative_path(f"/sites/team/{INBOX}/missing.bin")
    missing.start_upload(UPLOAD_ID, b"x")
    with pytest.raises(ObjectNotFoundException):
        ctx.execute_query()

    target.start_upload(UPLOAD_ID, b"x").execute_query()
    _, other = _stub(sp, make_ctx, "b.bin", b"b")
    other.continue_upload(UPLOAD_ID, 1, b"y")
    with pytest.raises(ObjectNotFoundException):
        other.context.execute_query()


def test_cancel_upload_drops_the_session_and_an_empty_stub(sp: Emulator, make_ctx: ContextFactory) -> None:
    ctx, existing = _stub(sp, make_ctx, "kept.bin", b"kept")
    existing.start_upload(UPLOAD_ID, b"new").execute_query()
    existing.cancel_upload(UPLOAD_ID).execute_query()
    assert sp.files[f"/sites/team/{INBOX}/kept.bin"] == b"kept"
    existing.continue_upload(UPLOAD_ID, 3, b"x")
    with pytest.raises(ObjectNotFoundException):
        ctx.execute_query()

    ctx, stub = _stub(sp, make_ctx, "stub.bin")
    stub.start_upload(UPLOAD_ID, b"new").execute_query()
    stub.cancel_upload(UPLOAD_ID).execute_query()
    assert f"/sites/team/{INBOX}/stub.bin" not in sp.files
