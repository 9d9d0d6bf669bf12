"""Unit tests for the document status roll-up (docs/architecture.md#document-status)."""

from __future__ import annotations

import itertools

import pytest

from filerelay.db.models import DeliveryStatus, DocumentStatus
from filerelay.delivery.rollup import rollup

PENDING = DeliveryStatus.PENDING
DELIVERING = DeliveryStatus.DELIVERING
DELIVERED = DeliveryStatus.DELIVERED
RETRYING = DeliveryStatus.RETRYING
FAILED = DeliveryStatus.FAILED


@pytest.mark.parametrize(
    ("deliveries", "expected"),
    [
        # 1. no destination wired -> discarded
        pytest.param([], DocumentStatus.DISCARDED, id="1-none"),
        # 2. any retrying -> retrying (beats everything else)
        pytest.param([RETRYING], DocumentStatus.RETRYING, id="2-retrying"),
        pytest.param([RETRYING, FAILED], DocumentStatus.RETRYING, id="2-retrying-beats-failed"),
        pytest.param([FAILED, RETRYING], DocumentStatus.RETRYING, id="2-order-does-not-matter"),
        pytest.param([RETRYING, PENDING], DocumentStatus.RETRYING, id="2-retrying-beats-pending"),
        pytest.param([RETRYING, DELIVERING], DocumentStatus.RETRYING, id="2-retrying-beats-delivering"),
        pytest.param([RETRYING, DELIVERED], DocumentStatus.RETRYING, id="2-retrying-beats-delivered"),
        pytest.param(
            [DELIVERED, PENDING, FAILED, DELIVERING, RETRYING], DocumentStatus.RETRYING, id="2-retrying-beats-all"
        ),
        # 3. any failed -> failed
        pytest.param([FAILED], DocumentStatus.FAILED, id="3-failed"),
        pytest.param([FAILED, PENDING], DocumentStatus.FAILED, id="3-failed-beats-pending"),
        pytest.param([DELIVERING, FAILED], DocumentStatus.FAILED, id="3-failed-beats-delivering"),
        pytest.param([DELIVERED, FAILED], DocumentStatus.FAILED, id="3-failed-beats-delivered"),
        pytest.param([FAILED, FAILED, DELIVERED, PENDING], DocumentStatus.FAILED, id="3-failed-mixed"),
        # 4. any pending or delivering -> pending
        pytest.param([PENDING], DocumentStatus.PENDING, id="4-pending"),
        pytest.param([DELIVERING], DocumentStatus.PENDING, id="4-delivering"),
        pytest.param([PENDING, DELIVERING], DocumentStatus.PENDING, id="4-both"),
        pytest.param([DELIVERED, PENDING], DocumentStatus.PENDING, id="4-pending-beats-delivered"),
        pytest.param([DELIVERED, DELIVERING], DocumentStatus.PENDING, id="4-delivering-beats-delivered"),
        # 5. all delivered -> delivered
        pytest.param([DELIVERED], DocumentStatus.DELIVERED, id="5-one-delivered"),
        pytest.param([DELIVERED, DELIVERED, DELIVERED], DocumentStatus.DELIVERED, id="5-all-delivered"),
    ],
)
def test_rollup_follows_architecture_rules_in_order(deliveries: list[DeliveryStatus], expected: DocumentStatus) -> None:
    assert rollup(deliveries) == expected


@pytest.mark.parametrize(
    ("deliveries", "expected"),
    [
        (["pending", "delivered"], DocumentStatus.PENDING),
        (["retrying", "failed"], DocumentStatus.RETRYING),
        (["delivered"], DocumentStatus.DELIVERED),
    ],
)
def test_rollup_accepts_plain_strings_from_the_database(deliveries: list[str], expected: DocumentStatus) -> None:
    result = rollup(deliveries)
    assert result == expected
    assert isinstance(result, DocumentStatus)


def test_rollup_accepts_any_iterable_once() -> None:
    assert rollup(s for s in ["delivered", "failed"]) == DocumentStatus.FAILED


def test_rollup_covers_every_combination_of_known_statuses() -> None:
    """Every non-empty set of known statuses maps to exactly the first matching rule."""
    statuses = list(DeliveryStatus)
    for size in range(1, len(statuses) + 1):
        for combo in itertools.combinations(statuses, size):
            present = set(combo)
            if RETRYING in present:
                expected = DocumentStatus.RETRYING
            elif FAILED in present:
                expected = DocumentStatus.FAILED
            elif present & {PENDING, DELIVERING}:
                expected = DocumentStatus.PENDING
            else:
                expected = DocumentStatus.DELIVERED
            assert rollup(combo) == expected, combo


@pytest.mark.parametrize(
    "deliveries",
    [["bogus"], ["delivered", "bogus"], ["Delivered"], ["discarded"], [""]],
)
def test_rollup_unknown_status_raises(deliveries: list[str]) -> None:
    with pytest.raises(ValueError, match="unknown delivery status"):
        rollup(deliveries)


@pytest.mark.parametrize("known", ["retrying", "failed", "pending", "delivering"])
def test_rollup_unknown_status_raises_even_next_to_known_ones(known: str) -> None:
    with pytest.raises(ValueError, match="bogus"):
        rollup([known, "bogus"])
