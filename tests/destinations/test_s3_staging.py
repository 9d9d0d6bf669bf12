"""Staging in S3 (SeaweedFS): whole objects or none, streamed in parts, readable by range."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import secrets

import pytest

from filerelay.staging import StagingError, TooLarge, open_staging
from filerelay.staging.s3 import ORPHAN_AGE, PART_SIZE, S3Reader, S3StagingStore
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


# --- the reader as a file, the writer's edges, the client it builds ------------------------------------


def test_the_reader_behaves_as_a_seekable_binary_file(store: S3StagingStore) -> None:
    data = bytes(range(256)) * 40
    with store.writer("doc_file") as writer:
        writer.write(data)
        writer.commit()
    with store.open("doc_file") as opened:
        fp = opened
        assert isinstance(fp, S3Reader)
        assert fp.readable()  # what io and boto3 ask before they stream it
        assert fp.seekable()
        assert fp.read(0) == b""
        assert fp.tell() == 0
        assert fp.read(10) == data[:10]
        assert fp.read(5) == data[10:15]
        assert fp.tell() == 15
        fp.seek(-3, os.SEEK_CUR)
        assert fp.read(3) == data[12:15]
        fp.seek(-100000)  # before the start: the start
        assert fp.tell() == 0
        buffer = bytearray(7)
        assert fp.readinto(buffer) == 7
        assert bytes(buffer) == data[:7]
        assert fp.read(None) == data[7:]
    with store.open("doc_file") as raw:
        assert isinstance(raw, S3Reader)
        assert io.BufferedReader(raw).read() == data


def test_the_writer_takes_exactly_its_limit_and_aborts_once(store: S3StagingStore) -> None:
    with store.writer("doc_limit", limit=10) as writer:
        writer.write(b"x" * 10)
        assert writer.commit().size == 10
        writer.abort()  # after the commit: nothing to undo, the object stays
    assert store.exists("doc_limit")
    with store.writer("doc_twice") as writer:
        writer.write(os.urandom(PART_SIZE))  # a multipart upload is open
        writer.abort()
        writer.abort()
    assert uploads(store) == []


def test_orphans_are_aborted_only_under_this_store_s_prefix_and_counted(store: S3StagingStore) -> None:
    for key in ("doc_o1", "doc_o2"):
        store.writer(key).write(os.urandom(PART_SIZE))  # writers that died after one part
    foreign = store.client.create_multipart_upload(Bucket=store.bucket, Key="elsewhere/objects/x")["UploadId"]
    started = min(u["Initiated"] for u in store.client.list_multipart_uploads(Bucket=store.bucket)["Uploads"])
    assert store.purge_orphans(now=started + ORPHAN_AGE) == 0  # exactly ORPHAN_AGE old: not yet
    later = dt.datetime.now(dt.UTC) + ORPHAN_AGE + dt.timedelta(minutes=1)  # noqa: TID251 - S3's clock
    assert store.purge_orphans(now=later) == 2
    assert uploads(store) == ["elsewhere/objects/x"]
    store.client.abort_multipart_upload(Bucket=store.bucket, Key="elsewhere/objects/x", UploadId=foreign)


def test_the_client_is_configured_for_s3_compatible_servers(s3: S3Server) -> None:
    with_endpoint = S3StagingStore("b", "p", endpoint_url=s3.endpoint)
    meta = with_endpoint.client.meta
    assert meta.region_name == "us-east-1"  # a default region: botocore needs one to sign
    assert getattr(meta.config, "s3") == {"addressing_style": "path"}  # noqa: B009 - MinIO, SeaweedFS
    assert getattr(meta.config, "retries") == {"mode": "standard", "total_max_attempts": 6}  # noqa: B009
    aws = S3StagingStore("b", "", region="eu-central-1")
    assert aws.client.meta.region_name == "eu-central-1"
    assert getattr(aws.client.meta.config, "s3") is None  # noqa: B009 - real S3: virtual-hosted buckets
    assert (aws.prefix, with_endpoint.prefix) == ("", "p/")
    assert aws.object_key("doc_x") == "objects/doc_x"
