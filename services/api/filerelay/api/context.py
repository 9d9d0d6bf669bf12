"""Access to the process runtime from inside a request."""

from __future__ import annotations

from flask import current_app

from filerelay.audit import Actor
from filerelay.operations import Context
from filerelay.runtime import Runtime


def runtime() -> Runtime:
    value = current_app.extensions["filerelay"]
    assert isinstance(value, Runtime)
    return value


def operations_context(actor: Actor) -> Context:
    """What the operations layer needs to make a change for `actor` in this process."""
    rt = runtime()
    return Context(sessions=rt.sessions, actor=actor, clock=rt.clock, enqueuer=rt.enqueuer)
