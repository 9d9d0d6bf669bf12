"""Structured logs: one JSON object per line, carrying the ids of the document and delivery concerned."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.logs import JsonFormatter, TextFormatter, configure_logging, log_context, make_formatter
from filerelay.runtime import Runtime
from tests.support.sapclient import SapClient


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A JSON handler on a logger of our own (pytest's capture owns the root logger's handlers)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("filerelay.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield out
    logger.removeHandler(handler)
    logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_inside_log_context_is_one_json_object_with_the_ids(stream: io.StringIO) -> None:
    log = logging.getLogger("filerelay.test_logs")
    with log_context(document_id="doc_1", delivery_id="dlv_1", attempt=2):
        log.info("uploading %s", "a\nmultiline\nname")
    [entry] = lines(stream)  # the newlines are escaped inside the one line
    assert entry["message"] == "uploading a\nmultiline\nname"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "filerelay.test_logs"
    assert entry["time"].endswith("+00:00")
    assert (entry["document_id"], entry["delivery_id"], entry["attempt"]) == ("doc_1", "dlv_1", 2)


def test_contexts_nest_and_end(stream: io.StringIO) -> None:
    log = logging.getLogger("filerelay.test_logs")
    with log_context(delivery_id="dlv_1", document_id=None):  # None: not known (yet), left out
        log.info("claiming")
        with log_context(document_id="doc_1", attempt=1):
            log.info("claimed")
        log.info("after")
    log.info("outside")
    claiming, claimed, after, outside = lines(stream)
    assert claiming["delivery_id"] == "dlv_1"
    assert "document_id" not in claiming
    assert (claimed["delivery_id"], claimed["document_id"], claimed["attempt"]) == ("dlv_1", "doc_1", 1)
    assert "document_id" not in after
    assert not {"delivery_id", "document_id", "attempt"} & set(outside)


def test_each_thread_has_its_own_context(stream: io.StringIO) -> None:
    """gunicorn's gthread workers serve requests on threads: one request's ids never leak into another's."""
    log = logging.getLogger("filerelay.test_logs")
    inside = threading.Event()
    done = threading.Event()

    def other() -> None:
        with log_context(document_id="doc_other"):
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    log.info("main thread")
    done.set()
    thread.join()
    [entry] = lines(stream)
    assert "document_id" not in entry


def test_exceptions_stay_inside_the_object(stream: io.StringIO) -> None:
    log = logging.getLogger("filerelay.test_logs")
    try:
        raise ValueError("boom")
    except ValueError:
        with log_context(delivery_id="dlv_9"):
            log.exception("delivery failed")
    [entry] = lines(stream)
    assert entry["delivery_id"] == "dlv_9"
    assert "ValueError: boom" in entry["exception"]


def test_text_on_a_terminal_json_elsewhere_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert isinstance(make_formatter({}), JsonFormatter)
    assert isinstance(make_formatter({"FILERELAY_LOG_FORMAT": "auto"}), JsonFormatter)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(make_formatter({}), TextFormatter)
    assert isinstance(make_formatter({"FILERELAY_LOG_FORMAT": "json"}), JsonFormatter)


def test_text_format_on_request() -> None:
    assert isinstance(make_formatter({"FILERELAY_LOG_FORMAT": "json"}), JsonFormatter)
    formatter = make_formatter({"FILERELAY_LOG_FORMAT": "text"})
    assert isinstance(formatter, TextFormatter)
    record = logging.LogRecord("filerelay.x", logging.INFO, __file__, 1, "sent %s", ("it",), None)
    with log_context(delivery_id="dlv_1", attempt=3):
        line = formatter.format(record)
    assert line.endswith("INFO filerelay.x: sent it [delivery_id=dlv_1 attempt=3]")
    with pytest.raises(ValueError, match="FILERELAY_LOG_FORMAT"):
        make_formatter({"FILERELAY_LOG_FORMAT": "xml"})


def test_configure_logging_installs_one_json_handler_on_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored afterwards, for pytest's capture
    monkeypatch.setattr(root, "level", root.level)
    try:
        configure_logging(logging.INFO, {})
        configure_logging(logging.INFO, {})  # twice: still one handler, so no line is printed twice
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        logging.captureWarnings(False)


def test_the_create_path_and_a_delivery_log_with_their_ids(sap: SapClient, configured: Runtime) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(n) for n in ("filerelay.api.archivelink.commands", "filerelay.delivery.service")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        assert sap.create("DOC1", "data", b"12345").status == 201
        with session_scope(configured.sessions) as session:
            document_id, delivery_id = session.execute(
                select(Document.id, Delivery.id).join(Delivery).join(Destination).where(Destination.kind == "folder")
            ).one()
        assert service.run(configured, delivery_id)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    accepted, delivered = lines(out)
    assert accepted["message"] == "accepted component data: 5 bytes"
    assert (accepted["document_id"], accepted["doc_id"], accepted["repo_id"]) == (document_id, "DOC1", "Z1")
    assert delivered["message"] == f"delivery {delivery_id} attempt 1: delivered"
    assert (delivered["document_id"], delivered["delivery_id"], delivered["attempt"]) == (document_id, delivery_id, 1)


def test_no_log_line_carries_a_urls_credentials(stream: io.StringIO) -> None:
    log = logging.getLogger("filerelay.test_logs")
    try:
        raise ConnectionError("POST https://relay:pa55w0rd@hooks.example.com/in failed")
    except ConnectionError:
        log.exception("posting to %s", "https://relay:pa55w0rd@hooks.example.com/in")
    [entry] = lines(stream)
    assert entry["message"] == "posting to https://hooks.example.com/in"
    assert "https://hooks.example.com/in failed" in entry["exception"]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("ftp://u:p@h/x",), None)
    assert TextFormatter().format(record).endswith("to ftp://h/x")
