"""Logging for every FileRelay process: one JSON object per line, carrying the ids of what it concerns.

`log_context(document_id=…, delivery_id=…, attempt=…)` puts ids in a context variable for the code it
wraps; every record logged inside (by any logger, ours or a library's) carries them. A context variable,
not a thread-local, so the ids follow the work whether a gunicorn thread or a Celery child runs it.

``FILERELAY_LOG_FORMAT=text`` gives a human format instead (the ids appended in brackets), for a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from filerelay.egress import scrub

LOG_FORMAT_ENV = "FILERELAY_LOG_FORMAT"

Field = str | int

# Each context is a new mapping, never changed in place; the default is read-only to keep it that way.
_context: ContextVar[Mapping[str, Field]] = ContextVar("filerelay_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: Field | None) -> Iterator[None]:
    """Add `fields` (None ones skipped) to every log record made inside; nested contexts add to outer ones."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, Field]:
    return _context.get()


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, the context's ids, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            # A URL's user:password@ never reaches a log line, whoever logged it (filerelay.egress.scrub).
            "message": scrub(record.getMessage()),
        }
        entry.update(current_context())
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a context value or message argument of an odd type must not cost the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the context's ids appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))  # as JsonFormatter: no URL's user:password@
        fields = current_context()
        if not fields:
            return line
        ids = " ".join(f"{k}={v}" for k, v in fields.items())
        head, newline, rest = line.partition("\n")  # after the message, before any traceback
        return f"{head} [{ids}]{newline}{rest}"


def make_formatter(environ: Mapping[str, str] | None = None) -> logging.Formatter:
    env = os.environ if environ is None else environ
    value = env.get(LOG_FORMAT_ENV, "").strip().lower() or "auto"
    if value == "auto":
        # A person at a terminal reads text; a log collector (a pipe, a file, a container runtime) gets JSON.
        value = "text" if sys.stderr.isatty() else "json"
    if value == "text":
        return TextFormatter()
    if value != "json":
        raise ValueError(f"{LOG_FORMAT_ENV} must be json, text or auto, got {value!r}")
    return JsonFormatter()


def configure_logging(level: int = logging.INFO, environ: Mapping[str, str] | None = None) -> None:
    """One handler on the root logger, to stderr, in the format FILERELAY_LOG_FORMAT asks for."""
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(environ))
    root = logging.getLogger()
    # Replace, not add: a second call (or an earlier basicConfig) must not print every line twice.
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings (Celery's, a library's deprecations) through the same handler, as JSON too.
    logging.captureWarnings(True)
