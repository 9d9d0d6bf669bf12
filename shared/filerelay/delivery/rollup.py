"""A document's status from its deliveries' (docs/architecture.md#document-status). Pure; only the state machine
(filerelay.delivery.transitions) calls it, so a document's status has one writer."""

from __future__ import annotations

from collections.abc import Iterable

from filerelay.db.models import DeliveryStatus, DocumentStatus


def rollup(delivery_statuses: Iterable[str]) -> DocumentStatus:
    """The document status, by the order of docs/architecture.md#document-status (first rule that matches wins)."""
    statuses = set(delivery_statuses)
    unknown = statuses - set(DeliveryStatus)
    if unknown:
        raise ValueError(f"unknown delivery statuses {sorted(unknown)}")
    if not statuses:
        return DocumentStatus.DISCARDED
    if DeliveryStatus.RETRYING in statuses:
        return DocumentStatus.RETRYING
    if DeliveryStatus.FAILED in statuses:
        return DocumentStatus.FAILED
    if statuses & {DeliveryStatus.PENDING, DeliveryStatus.DELIVERING}:
        return DocumentStatus.PENDING
    return DocumentStatus.DELIVERED
