"""Statements compiled once per dialect and run through the driver, for the hottest path (`create`).

`Connection.execute` compiles a statement once and caches it, but on every call still computes the
statement's cache key (a walk over its whole tree: for a create's one statement of some fifty values,
longer than PostgreSQL takes to run it), builds the parameters and applies each column type's
conversion. Here the SQL string and the conversions are kept, and each call converts the values and
hands them to `exec_driver_sql`, which keeps SQLAlchemy's error translation (IntegrityError, a dropped
connection invalidated) and its events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_PLAIN_NAME = re.compile(r"^\w+$")


class DriverStatement:
    """`statement` as `dialect` writes it, with its bound parameters' conversions."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        keys = None if column_keys is None else list(column_keys)
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=keys))
        for name in compiled.binds:
            # Names that need no escaping: the SQL string refers to them as they are.
            assert _PLAIN_NAME.match(name), name
        self.sql = compiled.string
        # The order of a positional paramstyle (SQLite's qmark); None for a named one (psycopg's).
        self._order: tuple[str, ...] | None = None if compiled.positiontup is None else tuple(compiled.positiontup)
        self._conversions: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            conversion = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if conversion is not None:
                self._conversions[name] = conversion

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """`values` (by bound name) converted as their columns store them, in the dialect's form."""
        convert = self._conversions
        converted = {name: (convert[name](value) if name in convert else value) for name, value in values.items()}
        if self._order is None:
            return converted
        return tuple(converted[name] for name in self._order)

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Run with one set of values; the first column of the first row, or None."""
        return connection.exec_driver_sql(self.sql, self.parameters(values)).scalar()

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        connection.exec_driver_sql(self.sql, [self.parameters(row) for row in rows])
