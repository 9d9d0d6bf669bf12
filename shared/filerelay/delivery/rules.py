"""Pure delivery rules: how a document's status follows from its deliveries."""

from __future__ import annotations

from collections.abc import Iterable

from filerelay.db.models import DeliveryStatus, DocumentStatus


def rollup(delivery_statuses: Iterable[str]) -> DocumentStatus:
    """The document status, by the order of ARCHITECTURE.md §2 (first rule that matches wins)."""
    statuses = set(delivery_statuses)
    if not statuses:
        return DocumentStatus.DISCARDED
    if DeliveryStatus.RETRYING in statuses:
        return DocumentStatus.RETRYING
    if DeliveryStatus.FAILED in statuses:
        return DocumentStatus.FAILED
    if statuses & {DeliveryStatus.PENDING, DeliveryStatus.DELIVERING}:
        return DocumentStatus.PENDING
    if statuses == {DeliveryStatus.DELIVERED}:
        return DocumentStatus.DELIVERED
    raise ValueError(f"unknown delivery statuses {sorted(statuses - set(DeliveryStatus))}")
