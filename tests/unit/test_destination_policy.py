"""The rules by which a destination's settings keep to the operator's policy, as plain functions: where a
folder root may lie, which setting changes move a destination's copies, when a cloud destination may act
as the installation, and what SharePoint takes as its key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from marshmallow import ValidationError

from filerelay.destinations import REGISTRY
from filerelay.destinations.base import DestinationError, build_client, get_kind, location_change
from filerelay.destinations.folder import outside_roots
from filerelay.destinations.s3 import credentials_problem
from filerelay.destinations.sharepoint import private_key_pem
from filerelay.policy import OperatorPolicy
from tests.support.sharepoint_emulator import app_certificate

# --- folder roots -----------------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, ...]:
    (tmp_path / "out").mkdir()
    return ((tmp_path / "out").resolve(),)


def test_a_root_inside_or_equal_to_an_operator_root_is_admitted(tmp_path: Path, roots: tuple[Path, ...]) -> None:
    assert outside_roots(str(tmp_path / "out"), roots) is None
    assert outside_roots(str(tmp_path / "out" / "acme" / "not-yet-made"), roots) is None
    assert outside_roots(str(tmp_path / "out") + "/", roots) is None


@pytest.mark.parametrize(
    "root",
    [
        "/etc",
        "/",
        "{tmp}",  # the roots' parent
        "{tmp}/out/../elsewhere",  # `..` out of a root
        "{tmp}/out/../out-two",  # a sibling whose name begins like the root
        "{tmp}/out/link-out",  # a symlink inside the root to a directory outside it
        "{tmp}/out/link-out/deeper",  # ...and a directory under that symlink
    ],
)
def test_a_root_outside_every_operator_root_is_refused(tmp_path: Path, roots: tuple[Path, ...], root: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link-out").symlink_to(tmp_path / "elsewhere")
    reason = outside_roots(root.format(tmp=tmp_path), roots)
    assert reason is not None
    assert "outside the operator's folder roots" in reason
    assert "FILERELAY_FOLDER_ROOTS" in reason


def test_proc_is_refused_even_inside_an_operator_root() -> None:
    # An operator root of / (a careless one) still never admits the process's own /proc entries.
    for root in ("/proc/self", "/proc/self/cwd", f"/proc/{os.getpid()}/root/etc", "/tmp/../proc/self/root/srv"):
        assert outside_roots(root, (Path("/"),)) == f"root {root!r} is in /proc"


@pytest.mark.parametrize("root", ["out", "./out", "~/out"])
def test_a_relative_root_is_refused(roots: tuple[Path, ...], root: str) -> None:
    assert outside_roots(root, roots) == f"root {root!r} is not an absolute path"


def test_a_symlink_loop_is_refused(tmp_path: Path, roots: tuple[Path, ...]) -> None:
    (tmp_path / "out" / "loop").symlink_to(tmp_path / "out" / "loop")
    reason = outside_roots(str(tmp_path / "out" / "loop"), roots)
    assert reason is not None


def test_the_folder_kind_admits_roots_through_the_policy(tmp_path: Path, roots: tuple[Path, ...]) -> None:
    policy = OperatorPolicy(folder_roots=roots)
    kind = get_kind("folder")
    assert kind.validate({"root": str(tmp_path / "out" / "a")}, policy) == ({"root": str(tmp_path / "out" / "a")}, {})
    with pytest.raises(ValidationError) as refused:
        kind.validate({"root": "/proc/self"}, policy)
    assert list(refused.value.messages) == ["root"]


# --- where a destination's copies are ---------------------------------------------------------------

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


@pytest.mark.parametrize(
    ("kind", "before", "after", "moved"),
    [
        ("folder", {"root": "/a"}, {"root": "/b"}, ["root"]),
        ("folder", {"root": "/srv/out"}, {"root": "/srv/out/"}, []),
        ("folder", {"root": "/srv/out"}, {"root": "/srv/./out"}, []),
        ("s3", {"bucket": "b1", "endpoint_url": None}, {"bucket": "b2", "endpoint_url": None}, ["bucket"]),
        ("s3", {"bucket": "b1"}, {"bucket": "b1", "endpoint_url": "http://other:9000"}, ["endpoint_url"]),
        ("s3", {"bucket": "b1", "region": "us-east-1"}, {"bucket": "b1", "region": "eu-west-1"}, []),
        ("s3", {"bucket": "b1", "secret_access_key": "x"}, {"bucket": "b1", "secret_access_key": "y"}, []),
        ("gcs", {"bucket": "b1"}, {"bucket": "b2"}, ["bucket"]),
        ("sftp", {"host": "h", "port": 22, "root": "/"}, {"host": "h", "port": 2222, "root": "/"}, ["port"]),
        ("sftp", {"host": "h", "username": "a"}, {"host": "h", "username": "b"}, ["username"]),
        ("sftp", {"host": "h", "password": "a"}, {"host": "h", "password": "b"}, []),
        ("sharepoint", {"site_url": "https://c/sites/a"}, {"site_url": "https://c/sites/b"}, ["site_url"]),
        ("sharepoint", {"library": "Shared Documents"}, {"library": "Archive"}, ["library"]),
        ("azure_blob", {"container": "c1"}, {"container": "c2"}, ["container"]),
        (
            "azure_blob",
            {"container": "c", "connection_string": AZURITE.format(key="old")},
            {"container": "c", "connection_string": AZURITE.format(key="rotated")},
            [],
        ),
        (
            "azure_blob",
            {"container": "c", "connection_string": AZURITE.format(key="k")},
            {"container": "c", "account_url": "http://127.0.0.1:10000/devstoreaccount1", "account_key": "k"},
            [],
        ),
        (
            "azure_blob",
            {"container": "c", "account_url": "https://one.blob.core.windows.net"},
            {"container": "c", "connection_string": "AccountName=two;AccountKey=k"},
            ["account"],
        ),
        ("webhook", {"url": "https://a/"}, {"url": "https://b/"}, []),
    ],
)
def test_what_counts_as_moving_the_copies(kind: str, before: dict, after: dict, moved: list[str]) -> None:  # type: ignore[type-arg]
    assert location_change(kind, before, kind, after) == moved


def test_another_kind_always_moves_the_copies() -> None:
    assert location_change("folder", {"root": "/a"}, "s3", {"bucket": "b"}) == ["kind"]


def test_every_kind_that_holds_readable_copies_names_where_they_are() -> None:
    for kind in REGISTRY.values():
        assert bool(kind.location_fields) == kind.readable, kind.name


# --- ambient credentials ----------------------------------------------------------------------------

STRICT = OperatorPolicy(folder_roots=(Path("/srv"),))
AMBIENT = OperatorPolicy(folder_roots=(Path("/srv"),), allow_ambient_credentials=True)


def test_s3_keys_of_its_own_are_always_fine() -> None:
    own = {"access_key_id": "AK", "secret_access_key": "SK"}
    assert credentials_problem(own, STRICT) is None
    assert credentials_problem(own, AMBIENT) is None


def test_s3_without_keys_acts_as_the_installation_only_where_the_operator_allows_it() -> None:
    field, reason = credentials_problem({}, STRICT) or ("", "")
    assert field == "access_key_id"
    assert "FILERELAY_ALLOW_AMBIENT_CREDENTIALS=true" in reason
    assert credentials_problem({}, AMBIENT) is None


@pytest.mark.parametrize("policy", [STRICT, AMBIENT])
def test_half_an_s3_key_pair_is_refused_whatever_the_policy(policy: OperatorPolicy) -> None:
    assert credentials_problem({"access_key_id": "AK"}, policy) == (
        "secret_access_key",
        "give both access_key_id and secret_access_key",
    )
    assert credentials_problem({"secret_access_key": "SK"}, policy) == (
        "access_key_id",
        "give both access_key_id and secret_access_key",
    )


def test_gcs_without_a_key_of_its_own_is_refused_unless_allowed() -> None:
    kind = get_kind("gcs")
    with pytest.raises(ValidationError) as refused:
        kind.validate({"bucket": "docs"}, STRICT)
    [reason] = refused.value.messages["credentials_json"]  # type: ignore[call-overload]
    assert "FILERELAY_ALLOW_AMBIENT_CREDENTIALS=true" in reason
    assert kind.validate({"bucket": "docs"}, AMBIENT) == (
        {"bucket": "docs", "endpoint_url": None},
        {"credentials_json": None},
    )


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("s3", {"bucket": "docs", "endpoint_url": "http://127.0.0.1:9"}),
        ("gcs", {"bucket": "docs", "endpoint_url": None}),
    ],
)
def test_a_stored_cloud_destination_without_credentials_is_never_built_under_a_strict_policy(
    kind: str, settings: dict[str, object]
) -> None:
    # A row stored before the policy, or by hand: refused before any client exists (no request is made).
    with pytest.raises(DestinationError, match="FILERELAY_ALLOW_AMBIENT_CREDENTIALS=true") as refused:
        build_client(kind, settings, {}, STRICT)
    assert refused.value.retryable is False


# --- SharePoint's key -------------------------------------------------------------------------------


def test_a_pem_private_key_is_taken_with_or_without_its_certificate_beside_it() -> None:
    pem = app_certificate()  # the key, then its certificate
    private_key_pem(pem)
    certificate_first = pem.index("-----BEGIN CERTIFICATE-----")
    private_key_pem(pem[certificate_first:] + pem[:certificate_first])


@pytest.mark.parametrize(
    "text",
    [
        "/etc/filerelay/sharepoint.pem",
        "file:///etc/filerelay/sharepoint.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",  # the certificate without its key
        "-----BEGIN PRIVATE KEY-----\nMIIE\n",  # cut short
    ],
)
def test_anything_but_a_pem_private_key_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="not a path"):
        private_key_pem(text)
