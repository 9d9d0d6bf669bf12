"""Conventions shared by the REST blueprints: strict parameter parsing, common field types, cursor paging."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

import flask
import marshmallow as ma
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser, is_json_request

from filerelay.api.errors import ApiError
from filerelay.clock import as_utc

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
WORKSPACE_PREFIX = "/api/<owner>/<slug>"

T = TypeVar("T")


class StrictParser(FlaskParser):
    # The contract answers bad input with 400, not webargs' default 422.
    DEFAULT_VALIDATION_STATUS = 400
    # An unknown query parameter is a typo the caller wants to hear about, not something to ignore.
    DEFAULT_UNKNOWN_BY_LOCATION = {  # noqa: RUF012 - webargs reads this class attribute
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        # webargs reads a body of another type as one with no fields: a PATCH sent as a form would
        # answer 200 and change nothing.
        if not is_json_request(req):
            from filerelay.api.errors import ApiError

            raise ApiError(400, "the request body must be JSON (Content-Type: application/json)", code="not_json")
        return super()._raw_load_json(req)


class RestBlueprint(Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()


class UtcDateTime(ma.fields.String):
    """Serialises as 2026-04-04T10:30:00Z, the seed's format (documented as an RFC 3339 date-time)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"format": "date-time", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return as_utc(value).strftime(ISO_Z)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DateBound(ma.fields.String):
    """An ISO 8601 date or date-time (UTC when no zone is given). With `end=True`, a date alone means
    the end of that day, so date_to=2026-04-04 includes documents received on the 4th."""

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        kwargs["metadata"] = {"format": "date-time", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
        self.end = end

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:  # type: ignore[override]
        text = str(super()._deserialize(value, attr, data, **kwargs)).strip()
        try:
            if _DATE_ONLY.match(text):
                day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
                return day + dt.timedelta(days=1) if self.end and day.date() < dt.date.max else day
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ma.ValidationError(
                f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-04-04 or 2026-04-04T10:30:00Z)"
            ) from None
        try:
            parsed = as_utc(parsed)
            # An exact date-time end is inclusive: stored times carry microseconds.
            return parsed + dt.timedelta(microseconds=1) if self.end else parsed
        except OverflowError:
            raise ma.ValidationError(f"{text!r} is out of range") from None


def parse_cursor(cursor: str | None, decode: Callable[[str], T]) -> T | None:
    """The `cursor` query parameter of a list, decoded (None without one); one that does not decode is a 400."""
    if cursor is None:
        return None
    try:
        return decode(cursor)
    except ValueError as exc:
        raise ApiError(400, f"cursor: {exc}", parameter="cursor") from None


class CursorPageMeta(ma.Schema):
    """The `meta` of a list paged by cursor, newest first."""

    per_page = ma.fields.Integer(required=True)
    next_cursor = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "pass as `cursor` for the next (older) page; null on the last page"},
    )
