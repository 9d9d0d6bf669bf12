"""StagedParts, the multipart handler of create/update/mCreate, driven part by part into a real
staging store: the body limit, declared part lengths over several chunks, names from filenames."""

from __future__ import annotations

from pathlib import Path

import pytest

from filerelay.api.archivelink.protocol import ProtocolError
from filerelay.api.archivelink.upload import StagedParts
from filerelay.staging import LocalStagingStore


@pytest.fixture
def parts(tmp_path: Path) -> StagedParts:
    return StagedParts(LocalStagingStore(tmp_path / "staging"), limit=10)


def test_a_body_of_exactly_the_limit_is_taken_one_byte_more_is_413(parts: StagedParts) -> None:
    parts.start_part({"x-compid": "a"})
    parts.part_data(b"12345")
    parts.end_part()
    parts.start_part({"x-compid": "b"})
    parts.part_data(b"67890")  # 10 bytes in all: the limit
    parts.end_part()
    assert [c.staged.size for _, c in parts.components] == [5, 5]
    parts.start_part({"x-compid": "c"})
    with pytest.raises(ProtocolError) as info:
        parts.part_data(b"x")
    assert (info.value.status, info.value.description) == (413, "the body exceeds the limit of 10 bytes")
    parts.discard()


def test_a_declared_length_counts_every_chunk_of_the_part(parts: StagedParts) -> None:
    parts.start_part({"x-compid": "a", "content-length": "6"})
    for chunk in (b"ab", b"cd", b"ef"):
        parts.part_data(chunk)
    parts.end_part()
    parts.start_part({"x-compid": "b", "content-length": "3"})
    parts.part_data(b"xy")
    with pytest.raises(ProtocolError, match=r"^part b announced 3 bytes but carried 2$"):
        parts.end_part()
    parts.discard()


def test_components_keep_the_parsed_type_and_the_type_as_sent(parts: StagedParts) -> None:
    sent = "Text/Plain; charset=ISO-8859-1; version=2.1"
    parts.start_part({"x-compid": "a", "content-type": sent})
    parts.part_data(b"x")
    parts.end_part()
    [(_, component)] = parts.components
    assert (component.mime, component.charset, component.version, component.sent_type) == (
        "text/plain",
        "ISO-8859-1",
        "2.1",
        sent,
    )


def test_names_come_from_x_comp_id_then_the_filename(parts: StagedParts, caplog: pytest.LogCaptureFixture) -> None:
    parts.start_part({"x-compid": "named", "content-disposition": 'form-data; filename="ignored.pdf"'})
    parts.end_part()
    parts.start_part({"content-disposition": 'attachment; filename="scan.tif"'})
    parts.end_part()
    parts.start_part({"content-disposition": "form-data; name=file"})  # no filename: skipped
    parts.part_data(b"dropped")
    parts.end_part()
    assert [c.comp_id for _, c in parts.components] == ["named", "scan.tif"]
    assert [r.getMessage() for r in caplog.records] == ["skipped multipart part 3: it has no X-compId and no filename"]


def test_m_create_parts_need_a_valid_doc_id(tmp_path: Path) -> None:
    parts = StagedParts(LocalStagingStore(tmp_path / "staging"), limit=10, with_doc_id=True)
    with pytest.raises(ProtocolError, match=r"^part 1 has no X-docId header$"):
        parts.start_part({"x-compid": "a"})
    with pytest.raises(ProtocolError, match=r"^invalid X-docId: leading or trailing blanks are not allowed$"):
        parts.start_part({"x-compid": "a", "x-docid": " D1"})
