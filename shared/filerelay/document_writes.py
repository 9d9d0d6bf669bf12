"""The statements that write a new ArchiveLink document: its header, components and deliveries.

A create runs them for every document SAP sends. Each is built once per shape (which tables, which columns
each row sets) with bound parameters, compiled once per dialect and run through the driver
(filerelay.db.driver_statements): building a statement of a few dozen values, and even walking a kept
one's cache key on every execution, cost more CPU than PostgreSQL spent running it (py-spy).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, exists, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import ReturningInsert

from filerelay.db import rows
from filerelay.db.driver_statements import DriverStatement
from filerelay.db.models import ArchiveDocument, Base, Delivery, Document, Workspace

HEADER = ("repository_id", "doc_id", "doc_prot", "created_at", "updated_at")
_TABLES: dict[str, Table] = {t.name: t for t in (rows.table(Document), rows.table(Delivery))}
# (table name, the columns a row sets) for each row after the header.
Shape = tuple[tuple[str, tuple[str, ...]], ...]


@functools.cache
def _header() -> ReturningInsert[Any]:
    """The archive document's INSERT, made only while the workspace's config_version is the one the caller
    read its configuration at; returns the new id, or nothing."""
    archives = rows.table(ArchiveDocument)
    current = exists().where(
        Workspace.id == bindparam("workspace_id"), Workspace.config_version == bindparam("config_version")
    )
    selected = select(*(bindparam(f"h_{name}", type_=archives.c[name].type) for name in HEADER)).where(current)
    return insert(archives).from_select(list(HEADER), selected).returning(archives.c.id)


@functools.lru_cache(maxsize=256)
def _all_in_one(shape: Shape) -> Select[Any]:
    """PostgreSQL: the header's INSERT and one per row as data-modifying CTEs, which run to completion
    whether the outer SELECT reads them or not. Each row's INSERT selects from the header's, so a header
    that inserted nothing takes every row with it; the foreign keys are checked at the end of the
    statement, when all rows are in."""
    archive = _header().cte("archive")
    inserts = []
    for n, (name, columns) in enumerate(shape):
        table = _TABLES[name]
        selected = select(*(bindparam(f"r{n}_{column}", type_=table.c[column].type) for column in columns))
        names = list(columns)
        if table.name == Document.__tablename__:
            selected, names = selected.add_columns(archive.c.id), [*names, "archive_document_id"]
        inserts.append(insert(table).from_select(names, selected.select_from(archive)).cte(f"row{n}"))
    return select(archive.c.id).add_cte(*inserts)


def write(
    connection: Connection,
    header: Mapping[str, Any],
    *,
    workspace_id: int,
    config_version: int,
    documents: Sequence[Document],
    deliveries: Sequence[Delivery],
) -> int | None:
    """Insert the archive document (`header`: HEADER's values), its components and their deliveries, on
    condition that the configuration has not moved; the archive document's id, or None and nothing written.
    On PostgreSQL one statement, one round trip; on SQLite (in-process, no round trip) one per table."""
    params = {f"h_{name}": header[name] for name in HEADER}
    params |= {"workspace_id": workspace_id, "config_version": config_version}
    dialect = connection.dialect
    archive_id: int | None
    if dialect.name != "postgresql":
        archive_id = _compiled(_header(), dialect).execute(connection, params)
        if archive_id is not None:
            _belong(documents, archive_id)
            _insert_all(connection, Document, documents)
            _insert_all(connection, Delivery, deliveries)
        return archive_id
    written: list[tuple[Base, dict[str, Any]]] = []
    for instance in [*documents, *deliveries]:
        row = rows.inserted(instance)
        row.pop("archive_document_id", None)  # the header's new id, inside the statement
        written.append((instance, row))
    shape = tuple((rows.table(type(instance)).name, tuple(row)) for instance, row in written)
    for n, (_, row) in enumerate(written):
        params |= {f"r{n}_{column}": value for column, value in row.items()}
    archive_id = _compiled(_all_in_one(shape), dialect).execute(connection, params)
    if archive_id is not None:
        _belong(documents, archive_id)
    return archive_id


@functools.lru_cache(maxsize=256)
def _compiled(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    return DriverStatement(statement, dialect)


@functools.lru_cache(maxsize=256)
def _inserting(table: str, columns: tuple[str, ...], dialect: Dialect) -> DriverStatement:
    return DriverStatement(insert(_TABLES[table]), dialect, columns)


def _insert_all(connection: Connection, model: type[Base], instances: Sequence[Base]) -> None:
    """One INSERT per set of columns the rows set (an unset column takes its default)."""
    batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for instance in instances:
        values = rows.inserted(instance)
        batches.setdefault(tuple(sorted(values)), []).append(values)
    for columns, batch in batches.items():
        _inserting(rows.table(model).name, columns, connection.dialect).execute_many(connection, batch)


def _belong(documents: Sequence[Document], archive_id: int) -> None:
    for document in documents:
        document.archive_document_id = archive_id
