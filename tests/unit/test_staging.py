"""Unit tests for the local staging store: atomic commit, abort, limits, keys, orphan purge."""

from __future__ import annotations

import fcntl
import hashlib
import io
from pathlib import Path

import pytest

from filerelay.staging import (
    CHUNK_SIZE,
    IncompleteBody,
    LocalStagingStore,
    StagedObject,
    StagingError,
    TooLarge,
    copy_stream,
    open_staging,
)
from filerelay.staging.local import ORPHAN_GRACE_SECONDS


@pytest.fixture
def store(tmp_path: Path) -> LocalStagingStore:
    return LocalStagingStore(tmp_path / "staging")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_all(store: LocalStagingStore, key: str) -> bytes:
    with store.open(key) as handle:
        return handle.read()


def test_commit_makes_object_readable_with_size_and_sha256(store: LocalStagingStore) -> None:
    parts = [b"hello ", b"", b"world", bytes(range(256)) * 10]
    body = b"".join(parts)
    with store.writer("doc_0123abcd") as writer:
        for part in parts:
            writer.write(part)
        staged = writer.commit()

    assert staged == StagedObject(key="doc_0123abcd", size=len(body), sha256=hashlib.sha256(body).hexdigest())
    assert store.exists("doc_0123abcd")
    assert store.size("doc_0123abcd") == len(body)
    assert read_all(store, "doc_0123abcd") == body
    assert list(store.keys()) == ["doc_0123abcd"]
    assert all_files(store.tmp_dir) == []


def test_empty_object_commits(store: LocalStagingStore) -> None:
    with store.writer("doc_empty") as writer:
        staged = writer.commit()
    assert staged.size == 0
    assert staged.sha256 == hashlib.sha256(b"").hexdigest()
    assert read_all(store, "doc_empty") == b""


def test_nothing_visible_under_objects_before_commit(store: LocalStagingStore) -> None:
    with store.writer("doc_pending") as writer:
        writer.write(b"partial body")
        assert all_files(store.objects_dir) == []
        assert not store.exists("doc_pending")
        with pytest.raises(StagingError, match="doc_pending"):
            store.open("doc_pending")
        assert len(all_files(store.tmp_dir)) == 1
        writer.commit()
    assert store.exists("doc_pending")


def test_recommit_of_same_key_replaces_object(store: LocalStagingStore) -> None:
    for body in (b"first version", b"second"):
        with store.writer("doc_same") as writer:
            writer.write(body)
            writer.commit()
    assert read_all(store, "doc_same") == b"second"
    assert list(store.keys()) == ["doc_same"]


def test_abort_leaves_no_file(store: LocalStagingStore) -> None:
    writer = store.writer("doc_abort")
    writer.write(b"x" * 1000)
    writer.abort()
    writer.abort()  # idempotent
    assert all_files(store.root) == []
    assert not store.exists("doc_abort")


def test_leaving_with_block_without_commit_leaves_no_file(store: LocalStagingStore) -> None:
    with store.writer("doc_left") as writer:
        writer.write(b"abandoned")
    assert all_files(store.root) == []


def _write_then_fail(store: LocalStagingStore) -> None:
    with store.writer("doc_boom") as writer:
        writer.write(b"abc")
        raise RuntimeError("client went away")


def test_exception_inside_with_block_leaves_no_file(store: LocalStagingStore) -> None:
    with pytest.raises(RuntimeError, match="client went away"):
        _write_then_fail(store)
    assert all_files(store.root) == []


def test_exit_after_commit_keeps_object(store: LocalStagingStore) -> None:
    writer = store.writer("doc_kept")
    writer.write(b"kept")
    writer.commit()
    writer.abort()
    assert read_all(store, "doc_kept") == b"kept"


def test_limit_exactly_reached_is_accepted(store: LocalStagingStore) -> None:
    with store.writer("doc_limit", limit=10) as writer:
        writer.write(b"12345")
        writer.write(b"67890")
        assert writer.commit().size == 10


def test_limit_exceeded_raises_too_large_and_leaves_nothing(store: LocalStagingStore) -> None:
    with store.writer("doc_big", limit=10) as writer:
        writer.write(b"12345")
        with pytest.raises(TooLarge) as info:
            writer.write(b"678901")
    assert info.value.limit == 10
    assert "10 bytes" in str(info.value)
    assert all_files(store.root) == []
    assert not store.exists("doc_big")


@pytest.mark.parametrize(
    "key",
    ["", "../x", "A/B", "a/b", "ABC", "..", ".hidden", "doc id", "doc\x00", "doc\\x", "dok_ü", "/abs"],
)
def test_invalid_keys_raise_value_error(store: LocalStagingStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid staging key"):
        store.writer(key)
    with pytest.raises(ValueError, match="invalid staging key"):
        store.path_for(key)
    assert all_files(store.root) == []


@pytest.mark.parametrize("key", ["doc_0123", "a", "x.y-z_9", "dlv-1.bin"])
def test_valid_keys_stay_under_objects(store: LocalStagingStore, key: str) -> None:
    assert store.path_for(key).is_relative_to(store.objects_dir)
    assert store.path_for(key).name == key


def test_delete_removes_object_and_tolerates_missing(store: LocalStagingStore) -> None:
    with store.writer("doc_del") as writer:
        writer.write(b"bytes")
        writer.commit()
    store.delete("doc_del")
    store.delete("doc_del")
    assert not store.exists("doc_del")
    assert all_files(store.objects_dir) == []


def test_purge_orphans_removes_part_left_by_dead_writer(store: LocalStagingStore) -> None:
    writer = store.writer("doc_dead")
    writer.write(b"half")
    # The writer "dies": its descriptor (and with it the lock) goes away, the .part file stays.
    writer._file.close()
    assert len(list(store.tmp_dir.glob("*.part"))) == 1

    assert store.purge_orphans() == 1
    assert list(store.tmp_dir.iterdir()) == []


def test_a_file_never_locked_is_purged_only_once_it_is_old(store: LocalStagingStore) -> None:
    """A writer killed between creating its file and locking it leaves a `.new`; a live one in that
    instant has one too, so only an old one goes."""
    born = store.tmp_dir / "doc_born.0123456789ab.new"
    born.write_bytes(b"")
    mtime = born.stat().st_mtime
    assert store.purge_orphans() == 0
    assert store.purge_orphans(now=mtime + ORPHAN_GRACE_SECONDS - 1) == 0
    assert store.purge_orphans(now=mtime + ORPHAN_GRACE_SECONDS + 1) == 1
    assert list(store.tmp_dir.iterdir()) == []


def test_purge_orphans_removes_handmade_part(store: LocalStagingStore) -> None:
    (store.tmp_dir / "doc_x.abcdef123456.part").write_bytes(b"junk")
    keep = store.tmp_dir / "not-a-part-file"
    keep.write_bytes(b"other")
    assert store.purge_orphans() == 1
    assert list(store.tmp_dir.iterdir()) == [keep]


def test_purge_orphans_spares_live_writer(store: LocalStagingStore) -> None:
    (store.tmp_dir / "doc_orphan.000000000000.part").write_bytes(b"junk")
    with store.writer("doc_alive") as writer:
        writer.write(b"still streaming")
        assert store.purge_orphans() == 1
        assert len(list(store.tmp_dir.glob("doc_alive.*.part"))) == 1
        writer.write(b" and more")
        staged = writer.commit()
    assert read_all(store, "doc_alive") == b"still streaming and more"
    assert staged.size == len(b"still streaming and more")


def test_a_sweep_between_creating_and_locking_a_part_never_takes_it(
    store: LocalStagingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the sweeper lost to uploads: it locked (and deleted) a writer's file in the instant
    between the writer creating it and locking it. Forced here by sweeping inside that instant."""
    real_flock = fcntl.flock
    swept: list[int] = []
    sweeping = False

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        nonlocal sweeping
        if not sweeping:  # the writer's own lock: sweep first (the sweep's locks pass straight through)
            sweeping = True
            swept.append(store.purge_orphans())
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_sweep)
    with store.writer("doc_racing") as writer:
        writer.write(b"whole")
        staged = writer.commit()
    assert swept == [0]
    assert read_all(store, staged.key) == b"whole"


def test_purge_orphans_with_nothing_to_do(store: LocalStagingStore) -> None:
    assert store.purge_orphans() == 0


def test_copy_stream_copies_in_chunks(store: LocalStagingStore) -> None:
    body = bytes(range(251)) * ((2 * CHUNK_SIZE) // 251 + 7)
    sizes: list[int] = []
    source = io.BytesIO(body)

    def read(n: int) -> bytes:
        sizes.append(n)
        return source.read(n)

    with store.writer("doc_copy") as writer:
        copy_stream(read, writer, expected=len(body))
        staged = writer.commit()
    assert staged.sha256 == hashlib.sha256(body).hexdigest()
    assert set(sizes) == {CHUNK_SIZE}
    assert read_all(store, "doc_copy") == body


def test_copy_stream_without_expected_size(store: LocalStagingStore) -> None:
    with store.writer("doc_nolen") as writer:
        copy_stream(io.BytesIO(b"abc").read, writer)
        assert writer.commit().size == 3


def test_copy_stream_raises_incomplete_body_when_bytes_are_missing(store: LocalStagingStore) -> None:
    with store.writer("doc_short") as writer, pytest.raises(IncompleteBody, match="received 5 of 10"):
        copy_stream(io.BytesIO(b"12345").read, writer, expected=10)
    assert all_files(store.root) == []


def test_copy_stream_respects_writer_limit(store: LocalStagingStore) -> None:
    with store.writer("doc_over", limit=4) as writer, pytest.raises(TooLarge):
        copy_stream(io.BytesIO(b"123456").read, writer, expected=6)
    assert all_files(store.root) == []


def test_open_staging_file_url(tmp_path: Path) -> None:
    root = tmp_path / "some dir" / "staging"
    staging = open_staging(root.as_uri())
    assert isinstance(staging, LocalStagingStore)
    assert staging.root == root
    assert staging.tmp_dir.is_dir()
    assert staging.objects_dir.is_dir()
    staging.check()


@pytest.mark.parametrize("url", ["http://example.com/x", "/plain/path", "ftp://host/x"])
def test_open_staging_rejects_other_schemes(url: str) -> None:
    with pytest.raises(StagingError, match=r"unsupported FILERELAY_STAGING_URL scheme .*use file:// or s3://"):
        open_staging(url)


def test_open_staging_s3_needs_a_bucket() -> None:
    with pytest.raises(StagingError, match="names no bucket"):
        open_staging("s3:///prefix")
