"""Two test runs on one machine get Redis databases of their own (tests/support/redis_db.py)."""

from __future__ import annotations

import os
import subprocess
import sys

CLAIM = "from tests.support.redis_db import claim_url; import sys; print(claim_url(), flush=True); sys.stdin.read()"


def run_claiming() -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "FILERELAY_TEST_REDIS_URL"}
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def test_two_live_runs_never_share_a_database_and_a_finished_run_frees_its_own() -> None:
    first, second = run_claiming(), run_claiming()
    try:
        assert first.stdout is not None
        assert second.stdout is not None
        one, two = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert one.startswith("redis://")
        assert two.startswith("redis://")
        assert one != two
    finally:
        for run in (first, second):
            run.communicate("")
    third = run_claiming()
    try:
        assert third.stdout is not None
        assert third.stdout.readline().strip() in (one, two)  # released at exit, taken again
    finally:
        third.communicate("")
