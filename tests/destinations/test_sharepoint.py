"""The sharepoint destination against the REST emulator: names, auth recovery, reading back, checks."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest
from marshmallow import ValidationError

from filerelay.destinations import get_kind
from filerelay.destinations.base import DestinationError, Payload
from filerelay.destinations.sharepoint import SharePointDestination, clean_name
from tests.support.sharepoint_emulator import Emulator, sharepoint_emulator

LIBRARY = "/sites/team/Shared Documents"


@pytest.fixture
def sp() -> Iterator[Emulator]:
    with sharepoint_emulator() as emulator:
        yield emulator


def destination(sp: Emulator, **settings: object) -> SharePointDestination:
    return SharePointDestination({"site_url": sp.site_url, **settings}, {"access_token": sp.token})


def payload(data: bytes, path: str, **identity: str) -> Payload:
    return Payload(
        open=lambda: io.BytesIO(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="application/pdf",
        path=path,
        identity=identity,
    )


@pytest.mark.parametrize(
    ("name", "folder", "expected"),
    [
        ("invoice.pdf", False, "invoice.pdf"),
        ('a*b:c<d>e?f"g|h.pdf', False, "a_b_c_d_e_f_g_h.pdf"),
        ("Rechnung #5 100%.pdf", False, "Rechnung #5 100%.pdf"),
        ("Rechnung #5 100%", True, "Rechnung _5 100_"),
        ("  spaced. ", False, "spaced"),
        ("...", False, "_"),
    ],
)
def test_names_follow_sharepoint_rules(name: str, folder: bool, expected: str) -> None:
    assert clean_name(name, folder=folder) == expected


def test_refused_characters_are_replaced_and_hash_percent_names_work(sp: Emulator) -> None:
    # With this switch the emulator refuses '#'/'%' in the legacy string-URL API, as SharePoint does.
    sp.refuse_special_in_legacy_urls = True
    target = destination(sp)
    target.deliver(payload(b"one", "/Z1/Rechnung #5 100%.pdf"))
    target.deliver(payload(b"two", "/Z1/scan:1*.tif"))
    assert sp.files[f"{LIBRARY}/Z1/Rechnung #5 100%.pdf"] == b"one"
    assert sp.files[f"{LIBRARY}/Z1/scan_1_.tif"] == b"two"
    assert b"".join(target.read("/Z1/Rechnung #5 100%.pdf")) == b"one"


def test_redelivery_overwrites_the_same_path(sp: Emulator) -> None:
    target = destination(sp)
    target.deliver(payload(b"first", "/Z1/x.pdf"))
    target.deliver(payload(b"second", "/Z1/x.pdf"))
    assert sp.files[f"{LIBRARY}/Z1/x.pdf"] == b"second"


def test_columns_are_set_from_the_document(sp: Emulator) -> None:
    target = destination(sp, columns={"DocId": "doc_id", "Repo": "repo_id", "Kind": "content_type"})
    target.deliver(payload(b"x", "/Z1/x.pdf", doc_id="D-1", repo_id="Z1", comp_id="data"))
    assert sp.list_items[f"{LIBRARY}/Z1/x.pdf"] == {"DocId": "D-1", "Repo": "Z1", "Kind": "application/pdf"}


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
    target = SharePointDestination({"site_url": sp.site_url}, {"access_token": "not-the-token"})
    with pytest.raises(DestinationError, match="HTTP 401") as info:
        target.deliver(payload(b"x", "/Z1/x.pdf"))
    assert info.value.retryable
    assert sp.files.get(f"{LIBRARY}/Z1/x.pdf") is None


def test_read_back_ranges(sp: Emulator) -> None:
    data = bytes(range(256)) * 100
    target = destination(sp)
    target.deliver(payload(data, "/Z1/x.pdf"))
    assert b"".join(target.read("/Z1/x.pdf", 10, 20)) == data[10:30]
    assert b"".join(target.read("/Z1/x.pdf")) == data
    with pytest.raises(DestinationError, match="HTTP 404"):
        list(target.read("/Z1/missing.pdf"))


def test_check_reports_a_missing_library(sp: Emulator) -> None:
    destination(sp).check()
    with pytest.raises(DestinationError, match="library 'Nope'"):
        destination(sp, library="Nope").check()


def test_settings_need_certificate_auth_unless_a_static_token_is_given() -> None:
    kind = get_kind("sharepoint")
    with pytest.raises(ValidationError, match="tenant_id, client_id, thumbprint, certificate or certificate_path"):
        kind.validate({"site_url": "https://contoso.sharepoint.com/sites/team"})
    settings, secrets = kind.validate(
        {
            "site_url": "https://contoso.sharepoint.com/sites/team",
            "tenant_id": "t",
            "client_id": "c",
            "thumbprint": "A" * 40,
            "certificate": "-----BEGIN PRIVATE KEY-----...",
        }
    )
    assert "certificate" not in settings
    assert secrets == {"certificate": "-----BEGIN PRIVATE KEY-----...", "access_token": None}
    _, secrets = kind.validate({"site_url": "http://127.0.0.1:1/sites/t", "access_token": "tok"})
    assert secrets["access_token"] == "tok"
