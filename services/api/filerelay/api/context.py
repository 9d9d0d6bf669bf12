"""Access to the process runtime from inside a request."""

from __future__ import annotations

from flask import current_app

from filerelay.runtime import Runtime


def runtime() -> Runtime:
    value = current_app.extensions["filerelay"]
    assert isinstance(value, Runtime)
    return value
