"""Pure delivery rules: the retry policy and schedule. No database, clock or network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from filerelay.db.models import DeliveryStatus, Destination, Workspace


@dataclass(frozen=True)
class RetryPolicy:
    """The workspace's retry settings, with a destination's overrides applied."""

    max_retries: int
    ttl_seconds: int
    backoff_base_seconds: int
    backoff_max_seconds: int

    def overridden(self, max_retries: int | None, ttl_seconds: int | None) -> RetryPolicy:
        """These settings where a destination sets none of its own."""
        return RetryPolicy(
            max_retries=self.max_retries if max_retries is None else max_retries,
            ttl_seconds=ttl_seconds or self.ttl_seconds,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
        )


@dataclass(frozen=True)
class BreakerPolicy:
    """A destination's circuit breaker: open after this many failed attempts in a row (outages and
    throttling, not a document's own refusal); after the cool-down one probe delivery is let through."""

    failures: int = 5
    cooldown_seconds: int = 60

    def cooled_if_opened_by(self, now: dt.datetime) -> dt.datetime:
        """The latest moment a breaker may have opened for its cool-down to be over at `now`: the one
        rule, for a row (`opened_at <= …`) and for the sweeper's query alike."""
        return now - dt.timedelta(seconds=self.cooldown_seconds)

    def cooled(self, opened_at: dt.datetime, now: dt.datetime) -> bool:
        return opened_at <= self.cooled_if_opened_by(now)


def policy_for(workspace: Workspace, destination: Destination) -> RetryPolicy:
    """The workspace's settings, overridden where the destination sets its own."""
    return RetryPolicy(
        max_retries=workspace.max_retries,
        ttl_seconds=workspace.retry_ttl_seconds,
        backoff_base_seconds=workspace.backoff_base_seconds,
        backoff_max_seconds=workspace.backoff_max_seconds,
    ).overridden(destination.max_retries, destination.retry_ttl_seconds)


def backoff_seconds(
    policy: RetryPolicy, cycle_attempts: int, *, retry_after: float | None, rand: Callable[[], float]
) -> float:
    """Exponential backoff with "equal jitter", capped; a destination's Retry-After is a floor.

    Equal jitter (half fixed, half random) keeps successive delays growing while still spreading
    a burst of failures apart; full jitter could schedule attempt 3 before attempt 2 would have run.
    """
    exponent = max(cycle_attempts - 1, 0)
    ceiling = min(float(policy.backoff_max_seconds), policy.backoff_base_seconds * 2.0 ** min(exponent, 40))
    delay = ceiling / 2 + rand() * ceiling / 2
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay


@dataclass(frozen=True)
class Verdict:
    status: DeliveryStatus
    next_attempt_at: dt.datetime | None


def after_failure(
    policy: RetryPolicy,
    *,
    cycle_attempts: int,
    expires_at: dt.datetime,
    now: dt.datetime,
    retryable: bool,
    retry_after: float | None,
    rand: Callable[[], float],
) -> Verdict:
    """What a failed attempt leads to: another try later, or `failed`.

    `max_retries` counts retries after the first attempt of a cycle, so a cycle makes at most
    1 + max_retries attempts (the seed's `attempts: 6` with the default of 5).
    """
    if not retryable or cycle_attempts > policy.max_retries or now >= expires_at:
        return Verdict(DeliveryStatus.FAILED, None)
    delay = backoff_seconds(policy, cycle_attempts, retry_after=retry_after, rand=rand)
    return Verdict(DeliveryStatus.RETRYING, now + dt.timedelta(seconds=delay))
