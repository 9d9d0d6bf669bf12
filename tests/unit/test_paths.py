"""Unit tests for destination path templates (README.md#configuration, the path templates)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filerelay.delivery.paths import PathFields, TemplateError, extension_for, render, validate_template

BY_DATE = "/{received:%Y/%m/%d}/{doc_id}{ext}"
BY_REPO = "/{repo_id}/{doc_id}_{comp_id}{ext}"
RECEIVED = dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC)
DOC = "361A524A3ECB5459E0000800099245EC"
UNKNOWN_TYPE = "application/x-filerelay-never-registered"


def fields(
    doc_id: str = DOC,
    comp_id: str = "data",
    content_type: str = "application/pdf",
    repo_id: str = "Z1",
    received_at: dt.datetime = RECEIVED,
    metadata: dict[str, Any] | None = None,
) -> PathFields:
    return PathFields(
        doc_id=doc_id,
        repo_id=repo_id,
        comp_id=comp_id,
        content_type=content_type,
        received_at=received_at,
        metadata=metadata or {},
    )


def assert_well_formed(path: str) -> None:
    assert path.startswith("/")
    assert "//" not in path
    assert "\\" not in path
    segments = path[1:].split("/")
    assert all(s not in ("", ".", "..") for s in segments), path
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in path), path


# --- the README's two templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "content_type", "expected"),
    [
        (BY_DATE, "application/pdf", f"/2026/04/04/{DOC}.pdf"),
        (BY_DATE, "image/tiff", f"/2026/04/04/{DOC}.tif"),
        (BY_DATE, UNKNOWN_TYPE, f"/2026/04/04/{DOC}"),
        (BY_REPO, "application/pdf", f"/Z1/{DOC}_data.pdf"),
        (BY_REPO, "image/tiff", f"/Z1/{DOC}_data.tif"),
        (BY_REPO, UNKNOWN_TYPE, f"/Z1/{DOC}_data"),
        (BY_REPO, "", f"/Z1/{DOC}_data"),
        (BY_REPO, "APPLICATION/PDF; charset=binary", f"/Z1/{DOC}_data.pdf"),
    ],
)
def test_architecture_templates_render(template: str, content_type: str, expected: str) -> None:
    assert render(template, fields(content_type=content_type)) == expected


@pytest.mark.parametrize(
    ("content_type", "ext"),
    [
        ("application/pdf", ".pdf"),
        ("image/tiff", ".tif"),
        ("image/jpeg", ".jpg"),
        ("text/plain", ".txt"),
        ("application/octet-stream", ".bin"),
        ("  Image/TIFF ; foo=bar", ".tif"),
        (UNKNOWN_TYPE, ""),
        ("", ""),
        ("not a mime type", ""),
    ],
)
def test_extension_for(content_type: str, ext: str) -> None:
    assert extension_for(content_type) == ext


def test_received_is_rendered_in_utc() -> None:
    late_evening_elsewhere = dt.datetime(2026, 4, 4, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert render(BY_DATE, fields(received_at=late_evening_elsewhere)) == f"/2026/04/03/{DOC}.pdf"


def test_render_is_a_pure_function_of_the_document() -> None:
    assert render(BY_REPO, fields()) == render(BY_REPO, fields())


# --- metadata fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"object_type": "BKPF"}, f"/BKPF/{DOC}.pdf"),
        ({"object_type": 42}, f"/42/{DOC}.pdf"),
        ({"object_type": "a/b"}, f"/a_b/{DOC}.pdf"),
        ({"object_type": ".."}, f"/__/{DOC}.pdf"),
        # A missing value becomes the documented fallback segment, never an empty one.
        ({"object_type": None}, f"/_unknown/{DOC}.pdf"),
        ({"object_type": ""}, f"/_unknown/{DOC}.pdf"),
        ({"object_type": "  "}, f"/_unknown/{DOC}.pdf"),
        ({}, f"/_unknown/{DOC}.pdf"),
        ({"other": "x"}, f"/_unknown/{DOC}.pdf"),
    ],
)
def test_meta_field_with_and_without_value(metadata: dict[str, Any], expected: str) -> None:
    assert render("/{meta.object_type}/{doc_id}{ext}", fields(metadata=metadata)) == expected


# --- sanitising ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc_id", "segment"),
    [
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("..", "__"),
        ("../../etc/passwd", "______etc_passwd"),
        ("..\\..\\x", "______x"),
        ("/", "_"),
        ("/abs", "_abs"),
        ("a\x00b\nc\td\x1f\x7f", "a_b_c_d__"),
        ("", "_"),
        ("   ", "_"),
        (" padded ", "padded"),
        ("a..b", "a__b"),
        ("...", "__."),
        ("x.pdf", "x.pdf"),
    ],
)
def test_values_never_add_segments_or_dot_segments(doc_id: str, segment: str) -> None:
    path = render("/{repo_id}/{doc_id}", fields(doc_id=doc_id))
    assert path == f"/Z1/{segment}"
    assert_well_formed(path)


@pytest.mark.parametrize("value", ["../x", "a/b/c", "\\\\server\\share", "..", "\x00", "//"])
def test_every_field_is_sanitised(value: str) -> None:
    path = render(
        "/{repo_id}/{comp_id}/{meta.m}/{doc_id}{ext}",
        fields(doc_id=value, comp_id=value, repo_id=value, metadata={"m": value}),
    )
    assert_well_formed(path)
    assert path.count("/") == 4


@pytest.mark.parametrize("template", ["/{repo_id}/{doc_id}", BY_DATE])
def test_single_dot_value_keeps_its_segment(template: str) -> None:
    # '/{received:%Y/%m/%d}/{doc_id}{ext}' with doc_id '.' renders '/2026/04/04': the folder of other documents.
    path = render(template, fields(doc_id=".", content_type=UNKNOWN_TYPE))
    assert path.count("/") == template.count("/")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{repo_id}/{doc_id}", f"/Z1/{DOC}"),
        ("//{repo_id}//{doc_id}", f"/Z1/{DOC}"),
        ("/{repo_id}/./{doc_id}", f"/Z1/{DOC}"),
        ("/{repo_id}/../{doc_id}", f"/Z1/{DOC}"),
        ("\\{repo_id}\\{doc_id}", f"/Z1/{DOC}"),
        ("/{received:%Y/../%d}/{doc_id}", f"/2026/__/04/{DOC}"),
        ("/{received:%Y//%m}/{doc_id}", f"/2026/_/04/{DOC}"),
        ("/out/{repo_id}-{received:%Y%m%d}/{doc_id}{ext}", f"/out/Z1-20260404/{DOC}.pdf"),
    ],
)
def test_template_literals_are_normalised(template: str, expected: str) -> None:
    path = render(template, fields())
    assert path == expected
    assert_well_formed(path)


# --- validate_template -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/{doc_id", "unbalanced braces"),
        ("/doc_id}", "unbalanced braces"),
        ("/{{doc_id}", "unbalanced braces"),
        ("/static/name.pdf", "names no field"),
        ("/", "names no field"),
        ("/{docid}", r"unknown field \{docid\}"),
        ("/{DOC_ID}", "unknown field"),
        ("/{ doc_id }", "unknown field"),
        ("/{}", "unknown field"),
        ("/{received}", "unknown field"),
        ("/{received:}", "unknown field"),
        ("/{meta.}", "unknown field"),
        ("/{meta}", "unknown field"),
        ("/{doc_id}/{size}", r"unknown field \{size\}"),
    ],
)
def test_validate_template_rejects(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        validate_template(template)
    with pytest.raises(TemplateError, match=message):
        render(template, fields())


@pytest.mark.parametrize(
    "template",
    [BY_DATE, BY_REPO, "{doc_id}", "/{meta.sap_object}/{doc_id}", "/{received:%Y}/{comp_id}{ext}"],
)
def test_validate_template_accepts(template: str) -> None:
    assert validate_template(template) == template


@pytest.mark.parametrize("template", ["/}{doc_id}{", "/x}/{doc_id}/{y"])
def test_validate_template_rejects_misordered_braces(template: str) -> None:
    with pytest.raises(TemplateError, match="unbalanced braces"):
        validate_template(template)


def test_template_expanding_to_nothing_is_an_error() -> None:
    with pytest.raises(TemplateError, match="expanded to an empty path"):
        render("/{ext}", fields(content_type=UNKNOWN_TYPE))


# --- property --------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [BY_REPO, BY_DATE, "/{doc_id}/{comp_id}/{meta.x}{ext}"])
@settings(max_examples=150, database=None, deadline=None)
@given(
    doc_id=st.text(), comp_id=st.text(), meta=st.text(), content_type=st.sampled_from(["application/pdf", "", "x/y"])
)
def test_rendered_path_never_has_dot_dot_or_empty_segments(
    template: str, doc_id: str, comp_id: str, meta: str, content_type: str
) -> None:
    path = render(
        template,
        fields(doc_id=doc_id, comp_id=comp_id, content_type=content_type, metadata={"x": meta}),
    )
    assert_well_formed(path)
