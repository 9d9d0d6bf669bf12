"""The claim is one conditional UPDATE whose SET comes from the state machine's `claim_changes`: on a
real database it must leave the row exactly as `transitions.claimed` leaves a plain row, and refuse
what the function refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from filerelay.db.models import Delivery
from filerelay.db.session import session_scope
from filerelay.delivery import service, transitions
from filerelay.runtime import Runtime
from tests.support.documents import create_document, delivery

LEASE = 300


def columns(row: Delivery) -> dict[str, object]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(Delivery).column_attrs}


def claim(runtime: Runtime, delivery_id: str) -> service.Claim | None:
    with session_scope(runtime.sessions) as session:
        return service.claim(session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=LEASE)


def test_the_statement_and_the_function_make_the_same_row(configured: Runtime) -> None:
    created = create_document(configured)
    expected = Delivery(**columns(delivery(configured, created.folder)))  # a plain copy, in no session
    transitions.claimed(expected, kind="folder", now=configured.clock.now(), lease_seconds=LEASE)

    taken = claim(configured, created.folder)

    assert taken is not None
    assert columns(delivery(configured, created.folder)) == columns(expected)
    assert (taken.attempt, taken.generation) == (1, 1)


def test_the_statement_refuses_what_the_function_refuses(configured: Runtime) -> None:
    created = create_document(configured)
    assert claim(configured, created.folder) is not None
    held = Delivery(**columns(delivery(configured, created.folder)))
    with pytest.raises(transitions.IllegalTransition):
        transitions.claimed(held, kind="folder", now=configured.clock.now(), lease_seconds=LEASE)
    assert claim(configured, created.folder) is None
