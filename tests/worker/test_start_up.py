"""What `filerelay up` clears at start-up (bootstrap.prepare): partial uploads of killed writers, and
staged objects of a create killed between putting its bytes in place and committing its row."""

from __future__ import annotations

import logging
import os
import time

import pytest
from sqlalchemy import update

from filerelay import bootstrap
from filerelay.bootstrap import UNREFERENCED_GRACE
from filerelay.db.models import Repository, SignatureMode, new_id
from filerelay.runtime import Runtime
from filerelay.staging import LocalStagingStore
from tests.support.documents import accept, stage


def backdate(runtime: Runtime, key: str, seconds: float) -> None:
    assert isinstance(runtime.staging, LocalStagingStore)
    stamp = time.time() - seconds
    os.utime(runtime.staging.path_for(key), (stamp, stamp))


def test_start_up_removes_staged_objects_no_document_holds(configured: Runtime) -> None:
    _, held = accept(configured, "HELD0001", b"%PDF held")
    orphan = stage(configured, b"%PDF the create was killed before its COMMIT")
    fresh = stage(configured, b"%PDF a create of another process, about to commit")
    replaced = new_id("doc")  # bytes of an update whose row moved on to newer ones long ago
    with configured.staging.writer(replaced) as writer:
        writer.write(b"old")
        writer.commit()
    for key in (held.key, orphan.key, replaced):
        backdate(configured, key, UNREFERENCED_GRACE.total_seconds() + 60)

    bootstrap.prepare(configured.settings)

    assert configured.staging.exists(held.key)  # a document's bytes stay
    assert configured.staging.exists(fresh.key)  # too young to judge: its row may be on its way
    assert not configured.staging.exists(orphan.key)
    assert not configured.staging.exists(replaced)


def test_release_works_in_batches(configured: Runtime) -> None:
    keys = [stage(configured, f"%PDF {n}".encode()).key for n in range(7)]
    _, held = accept(configured, "HELD0002", b"%PDF held")
    for key in [*keys, held.key]:
        backdate(configured, key, UNREFERENCED_GRACE.total_seconds() + 1)
    with configured.sessions() as session:
        assert bootstrap.release_unreferenced(session, configured.staging, batch=3) == 7
    assert [configured.staging.exists(k) for k in keys] == [False] * 7
    assert configured.staging.exists(held.key)


def test_start_up_says_nothing_false_about_signed_repositories(
    configured: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # secKey verification is built (tests/api/test_signatures.py): a start-up warning that signed
    # repositories accept unsigned requests sent basis teams looking for a hole that is not there.
    with configured.sessions() as session, session.begin():
        session.execute(update(Repository).values(signature=SignatureMode.REQUIRED.value))
    with caplog.at_level(logging.WARNING):
        bootstrap.prepare(configured.settings)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
