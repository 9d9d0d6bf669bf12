"""A Redis database of this test run's own.

Two test runs on one machine (two checkouts, a run beside a benchmark) that shared one database number
flushed each other's queues and failed each other's tests. A run claims a free number in db 0 for as
long as it lives; a claim whose process is gone (a killed run) is taken over.
"""

from __future__ import annotations

import atexit
import os
import socket

import redis

SERVER = "redis://127.0.0.1:6379"
# 0 holds the claims; the benchmarks default to 12-14.
CANDIDATES = (15, *range(1, 12))
CLAIM_SECONDS = 6 * 3600


def _alive(owner: bytes | str | None) -> bool:
    if owner is None:
        return False
    text = owner.decode() if isinstance(owner, bytes) else owner
    host, _, pid = text.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's run, as far as we can tell: leave it be
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_url() -> str:
    """FILERELAY_TEST_REDIS_URL when given; otherwise a database no other live run holds."""
    given = os.environ.get("FILERELAY_TEST_REDIS_URL")
    if given:
        return given
    me = f"{socket.gethostname()}:{os.getpid()}"
    claims = redis.Redis.from_url(f"{SERVER}/0")
    for number in CANDIDATES:
        key = f"filerelay:tests:db:{number}"
        taken = claims.set(key, me, nx=True, ex=CLAIM_SECONDS)
        if not taken and not _alive(claims.get(key)):
            taken = claims.set(key, me, ex=CLAIM_SECONDS)
        if taken:
            atexit.register(_release, claims, key, me)
            return f"{SERVER}/{number}"
    raise RuntimeError("every Redis database for tests is held by another live test run; set FILERELAY_TEST_REDIS_URL")


def _release(claims: redis.Redis, key: str, me: str) -> None:
    try:
        if claims.get(key) == me.encode():
            claims.delete(key)
    except redis.RedisError:
        pass  # Redis went away first: the claim expires by itself
    finally:
        claims.close()
