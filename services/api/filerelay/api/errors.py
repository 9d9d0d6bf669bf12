"""One JSON error shape for every REST failure (docs/architecture.md#http-surface):
{"errors": [{"status", "code", "title", "detail", "source": {"parameter" | "pointer"}}]}."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    500: "internal_error",
}


class ApiError(Exception):
    """Raised by views and services' callers; rendered in the contract's error shape."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        parameter: str | None = None,
        pointer: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.parameter = parameter
        self.pointer = pointer


def error_entry(
    status: int, detail: str, *, code: str | None = None, parameter: str | None = None, pointer: str | None = None
) -> dict[str, Any]:
    from http import HTTPStatus

    entry: dict[str, Any] = {
        "status": str(status),
        "code": code or _CODES.get(status, "error"),
        "title": HTTPStatus(status).phrase,
        "detail": detail,
    }
    if parameter is not None:
        entry["source"] = {"parameter": parameter}
    elif pointer is not None:
        entry["source"] = {"pointer": pointer}
    return entry


def error_response(status: int, entries: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(errors=entries)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, location: str, prefix: str = "") -> list[tuple[str, str]]:
    """webargs' nested {"field": ["msg"]} into (field path, message) pairs."""
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            out += _flatten(value, location, f"{prefix}/{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, m) for m in messages]
    return [(prefix, str(messages))]


class ErrorSource(ma.Schema):
    parameter = ma.fields.String()
    pointer = ma.fields.String()


class ErrorEntry(ma.Schema):
    status = ma.fields.String(required=True)
    code = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    detail = ma.fields.String(required=True)
    source = ma.fields.Nested(ErrorSource)


class ErrorsSchema(ma.Schema):
    """The contract's error body; documented for every operation."""

    errors = ma.fields.List(ma.fields.Nested(ErrorEntry), required=True)


class RestApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, answering every HTTP error in the contract's JSON shape."""

    ERROR_SCHEMA = ErrorsSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        if request.path.startswith("/archivelink/") and error.code == 405:
            # SAP expects ArchiveLink's own answer to a method it may not use: 400 with X-ErrorDescription.
            from filerelay.api.archivelink.views import error_response as archivelink_error

            return archivelink_error(400, f"HTTP {request.method} is not used by the ArchiveLink protocol")
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or data.get("errors")
        if status == 422 or (status == 400 and messages):
            entries = []
            for location, fields in (messages or {}).items():
                for field, message in _flatten(fields, location):
                    if location == "json":
                        detail = f"{field}: {message}" if field and field != "_schema" else message
                        entries.append(error_entry(400, detail, pointer="/" + field if field != "_schema" else None))
                    else:
                        entries.append(error_entry(400, f"{field}: {message}", parameter=field))
            return error_response(400, entries or [error_entry(400, "the request is not valid")])
        detail = data.get("message") or error.description or error.name
        return error_response(status, [error_entry(status, str(detail))], data.get("headers"))


def handle_api_error(error: ApiError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="FileRelay"'} if error.status == 401 else None
    entry = error_entry(error.status, error.detail, code=error.code, parameter=error.parameter, pointer=error.pointer)
    return error_response(error.status, [entry], headers)
