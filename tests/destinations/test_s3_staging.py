"""Staging in S3 (SeaweedFS): whole objects or none, streamed in parts, readable by range."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets

import pytest

from filerelay.staging import StagingError, TooLarge, open_staging
from filerelay.staging.s3 import PART_SIZE, S3StagingStore
from tests.support.s3server import S3Server


@pytest.fixture
def store(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3StagingStore:
    bucket = f"staging-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=bucket)
    # boto3 reads credentials from the standard variables, as it would from a pod's environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    staging = open_staging(f"s3://{bucket}/filerelay/staging", endpoint_url=s3.endpoint)
    assert isinstance(staging, S3StagingStore)
    return staging


def objects(store: S3StagingStore) -> list[str]:
    return [o["Key"] for o in store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])]


def uploads(store: S3StagingStore) -> list[str]:
    return [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


@pytest.mark.parametrize("size", [0, 1000, PART_SIZE, 2 * PART_SIZE + 12345])
def test_commit_makes_the_whole_object_appear(store: S3StagingStore, size: int) -> None:
    data = os.urandom(size)
    with store.writer("doc_abc") as writer:
        for start in range(0, size, 1 << 20):
            writer.write(data[start : start + (1 << 20)])
        if size > PART_SIZE:
            assert objects(store) == []  # parts uploaded, object not there yet
        staged = writer.commit()
    assert (staged.size, staged.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert objects(store) == ["filerelay/staging/objects/doc_abc"]
    assert store.size("doc_abc") == size
    with store.open("doc_abc") as fp:
        assert fp.read() == data
    assert uploads(store) == []


def test_reads_seek_like_a_file(store: S3StagingStore) -> None:
    data = os.urandom(3 * 1024 * 1024)
    with store.writer("doc_seek") as writer:
        writer.write(data)
        writer.commit()
    with store.open("doc_seek") as fp:
        fp.seek(1000)
        assert fp.read(10) == data[1000:1010]
        assert fp.read(10) == data[1010:1020]
        fp.seek(-5, os.SEEK_END)
        assert fp.read() == data[-5:]
        assert fp.read(1) == b""


def test_abort_and_limits_leave_nothing(store: S3StagingStore) -> None:
    with store.writer("doc_gone") as writer:
        writer.write(os.urandom(PART_SIZE + 1))  # a part went up already
    assert objects(store) == []
    assert uploads(store) == []
    with pytest.raises(TooLarge), store.writer("doc_big", limit=10) as writer:
        writer.write(b"x" * 11)
    assert objects(store) == []
    assert not store.exists("doc_big")


def test_orphaned_uploads_are_aborted_once_old(store: S3StagingStore) -> None:
    writer = store.writer("doc_orphan")
    writer.write(os.urandom(PART_SIZE))  # a writer that died after one part
    assert uploads(store) == ["filerelay/staging/objects/doc_orphan"]
    assert store.purge_orphans() == 0  # it might still be alive
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=7)  # noqa: TID251 - S3's clock is the wall clock
    assert store.purge_orphans(now=later) == 1
    assert uploads(store) == []


def test_delete_exists_check(store: S3StagingStore, s3: S3Server) -> None:
    with store.writer("doc_x") as writer:
        writer.write(b"x")
        writer.commit()
    assert store.exists("doc_x")
    store.delete("doc_x")
    assert not store.exists("doc_x")
    with pytest.raises(StagingError, match="is gone"):
        store.size("doc_x")
    store.check()
    missing = open_staging("s3://no-such-bucket-here/x", endpoint_url=s3.endpoint)
    with pytest.raises(StagingError, match="not usable"):
        missing.check()


def test_stale_keys_are_the_objects_not_written_for_a_while(store: S3StagingStore) -> None:
    for key in ("doc_one", "doc_two"):
        with store.writer(key) as writer:
            writer.write(b"x")
            writer.commit()
    now = dt.datetime.now(dt.UTC)  # noqa: TID251 - S3's clock is the wall clock
    assert list(store.stale_keys(older_than=dt.timedelta(minutes=10), now=now)) == []
    later = now + dt.timedelta(minutes=11)
    assert sorted(store.stale_keys(older_than=dt.timedelta(minutes=10), now=later)) == ["doc_one", "doc_two"]
