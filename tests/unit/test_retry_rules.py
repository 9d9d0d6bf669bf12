"""The retry schedule as pure functions: backoff, the verdict after a failure, and the effective policy.

No database: Workspace and Destination are plain in-memory model objects.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from filerelay.db.models import DeliveryStatus, Destination, Workspace
from filerelay.delivery.rules import RetryPolicy, after_failure, backoff_seconds, policy_for
from tests.support.clock import half

NOW = dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC)
EXPIRES = NOW + dt.timedelta(hours=1)
# The test workspace of tests/support/workspaces.py: max_retries 3, ttl 1h, backoff 1s..10s.
POLICY = RetryPolicy(max_retries=3, ttl_seconds=3600, backoff_base_seconds=1, backoff_max_seconds=10)


def workspace(**overrides: int) -> Workspace:
    values = {"max_retries": 5, "retry_ttl_seconds": 86400, "backoff_base_seconds": 30, "backoff_max_seconds": 3600}
    values.update(overrides)
    return Workspace(owner_slug="acme", slug="production", **values)


def destination(*, max_retries: int | None = None, retry_ttl_seconds: int | None = None) -> Destination:
    return Destination(
        public_id="dest_s3prod",
        name="S3",
        kind="s3",
        path_template="/{doc_id}{ext}",
        max_retries=max_retries,
        retry_ttl_seconds=retry_ttl_seconds,
    )


# --- backoff_seconds ------------------------------------------------------------------------------


def test_backoff_doubles_per_attempt_of_the_cycle_and_stops_at_backoff_max() -> None:
    delays = [backoff_seconds(POLICY, n, retry_after=None, rand=half) for n in range(1, 8)]
    # ceiling = min(10, 1 * 2**(n-1)); equal jitter at rand 0.5 gives 3/4 of it.
    assert delays == [0.75, 1.5, 3.0, 6.0, 7.5, 7.5, 7.5]
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert delays[0] < delays[1] < delays[2] < delays[3]


@pytest.mark.parametrize(
    ("cycle_attempts", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)],
)
def test_backoff_bounds_are_half_the_ceiling_and_the_ceiling(cycle_attempts: int, ceiling: float) -> None:
    low = backoff_seconds(POLICY, cycle_attempts, retry_after=None, rand=lambda: 0.0)
    high = backoff_seconds(POLICY, cycle_attempts, retry_after=None, rand=lambda: 1.0)
    assert low == ceiling / 2
    assert high == ceiling


def test_backoff_never_exceeds_backoff_max_even_after_very_many_attempts() -> None:
    policy = RetryPolicy(max_retries=100, ttl_seconds=86400, backoff_base_seconds=30, backoff_max_seconds=3600)
    for cycle_attempts in (12, 60, 1000, 10**6):
        assert backoff_seconds(policy, cycle_attempts, retry_after=None, rand=lambda: 1.0) == 3600.0


def test_backoff_of_a_cycle_not_yet_started_is_the_base() -> None:
    assert backoff_seconds(POLICY, 0, retry_after=None, rand=lambda: 1.0) == 1.0


def test_a_retry_after_longer_than_the_backoff_wins() -> None:
    assert backoff_seconds(POLICY, 1, retry_after=4.0, rand=half) == 4.0
    # Even beyond backoff_max: the destination asked for it.
    assert backoff_seconds(POLICY, 9, retry_after=120.0, rand=half) == 120.0


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    assert backoff_seconds(POLICY, 3, retry_after=1.0, rand=half) == 3.0
    assert backoff_seconds(POLICY, 3, retry_after=0.0, rand=half) == 3.0


# --- after_failure -------------------------------------------------------------------------------


@pytest.mark.parametrize("cycle_attempts", [1, 2, 3])
def test_a_retryable_failure_within_max_retries_is_retried_after_the_backoff(cycle_attempts: int) -> None:
    verdict = after_failure(
        POLICY, cycle_attempts=cycle_attempts, expires_at=EXPIRES, now=NOW, retryable=True, retry_after=None, rand=half
    )
    delay = backoff_seconds(POLICY, cycle_attempts, retry_after=None, rand=half)
    assert verdict.status == DeliveryStatus.RETRYING
    assert verdict.next_attempt_at == NOW + dt.timedelta(seconds=delay)


def test_after_failure_honours_retry_after_in_next_attempt_at() -> None:
    verdict = after_failure(
        POLICY, cycle_attempts=1, expires_at=EXPIRES, now=NOW, retryable=True, retry_after=90.0, rand=half
    )
    assert verdict.next_attempt_at == NOW + dt.timedelta(seconds=90)


@pytest.mark.parametrize("cycle_attempts", [4, 5, 40])
def test_a_failure_beyond_max_retries_is_final(cycle_attempts: int) -> None:
    verdict = after_failure(
        POLICY, cycle_attempts=cycle_attempts, expires_at=EXPIRES, now=NOW, retryable=True, retry_after=None, rand=half
    )
    assert verdict.status == DeliveryStatus.FAILED
    assert verdict.next_attempt_at is None


@pytest.mark.parametrize("max_retries", [0, 1, 3, 5])
def test_a_cycle_makes_one_plus_max_retries_attempts(max_retries: int) -> None:
    policy = RetryPolicy(max_retries=max_retries, ttl_seconds=3600, backoff_base_seconds=1, backoff_max_seconds=10)
    attempts = 0
    while True:
        attempts += 1  # claim counts the attempt before it runs
        verdict = after_failure(
            policy, cycle_attempts=attempts, expires_at=EXPIRES, now=NOW, retryable=True, retry_after=None, rand=half
        )
        if verdict.status == DeliveryStatus.FAILED:
            break
        assert attempts < 100, "never gave up"
    assert attempts == 1 + max_retries


@pytest.mark.parametrize("past_expiry", [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(days=3)])
def test_a_failure_at_or_after_expires_at_is_final(past_expiry: dt.timedelta) -> None:
    verdict = after_failure(
        POLICY,
        cycle_attempts=1,
        expires_at=EXPIRES,
        now=EXPIRES + past_expiry,
        retryable=True,
        retry_after=None,
        rand=half,
    )
    assert verdict == type(verdict)(DeliveryStatus.FAILED, None)


def test_a_failure_just_before_expires_at_is_still_retried() -> None:
    now = EXPIRES - dt.timedelta(seconds=1)
    verdict = after_failure(
        POLICY, cycle_attempts=1, expires_at=EXPIRES, now=now, retryable=True, retry_after=None, rand=half
    )
    assert verdict.status == DeliveryStatus.RETRYING


def test_a_failure_that_is_not_retryable_is_final_on_the_first_attempt() -> None:
    verdict = after_failure(
        POLICY, cycle_attempts=1, expires_at=EXPIRES, now=NOW, retryable=False, retry_after=5.0, rand=half
    )
    assert verdict.status == DeliveryStatus.FAILED
    assert verdict.next_attempt_at is None


# --- policy_for ------------------------------------------------------------------------------------


def test_policy_without_destination_overrides_is_the_workspace_settings() -> None:
    policy = policy_for(
        workspace(max_retries=3, retry_ttl_seconds=3600, backoff_base_seconds=1, backoff_max_seconds=10), destination()
    )
    assert policy == RetryPolicy(max_retries=3, ttl_seconds=3600, backoff_base_seconds=1, backoff_max_seconds=10)


def test_policy_takes_the_destination_overrides() -> None:
    policy = policy_for(workspace(), destination(max_retries=2, retry_ttl_seconds=600))
    assert policy == RetryPolicy(max_retries=2, ttl_seconds=600, backoff_base_seconds=30, backoff_max_seconds=3600)


def test_policy_max_retries_zero_on_the_destination_is_an_override_not_unset() -> None:
    policy = policy_for(workspace(max_retries=5), destination(max_retries=0))
    assert policy.max_retries == 0
    verdict = after_failure(
        policy, cycle_attempts=1, expires_at=EXPIRES, now=NOW, retryable=True, retry_after=None, rand=half
    )
    assert verdict.status == DeliveryStatus.FAILED


def test_policy_max_retries_zero_on_the_workspace_applies_when_the_destination_sets_none() -> None:
    assert policy_for(workspace(max_retries=0), destination()).max_retries == 0
