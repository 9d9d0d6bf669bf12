"""filerelay.db.driver_statements: a statement run through the driver stores exactly what SQLAlchemy's own
execution stores (time zones, JSON, NULLs), on the run's database (SQLite, or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from filerelay.db.driver_statements import DriverStatement
from filerelay.db.types import UTCDateTime

metadata = MetaData()
probe = Table(
    "driver_statement_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), unique=True),
    Column("at", UTCDateTime),
    Column("document", JSON),
    Column("note", String(32), nullable=True),
)
ROW: dict[str, Any] = {
    "name": "first",
    "at": dt.datetime(2026, 4, 4, 12, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "document": {"object": "BKPF", "ids": [1, 2], "text": "Grüße"},
    "note": None,
}


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    metadata.create_all(engine)
    yield probe
    metadata.drop_all(engine)


def stored(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(select(probe).where(probe.c.name == name)).mappings().one())


def test_the_driver_stores_what_sqlalchemy_stores(engine: Engine, table: Table) -> None:
    statement = DriverStatement(insert(table), engine.dialect, list(ROW))
    with engine.begin() as connection:
        connection.execute(insert(table), {**ROW, "name": "by sqlalchemy"})
        statement.execute_many(connection, [ROW])
    by_sqlalchemy, by_driver = stored(engine, "by sqlalchemy"), stored(engine, "first")
    assert {k: v for k, v in by_driver.items() if k not in ("id", "name")} == {
        k: v for k, v in by_sqlalchemy.items() if k not in ("id", "name")
    }
    assert by_driver["at"] == ROW["at"]  # the same instant, handed back in UTC
    assert by_driver["at"].tzinfo == dt.UTC
    assert by_driver["document"] == ROW["document"]


def test_a_returning_statement_gives_its_value_and_errors_are_sqlalchemys(engine: Engine, table: Table) -> None:
    statement = DriverStatement(insert(table).returning(table.c.id), engine.dialect, list(ROW))
    with engine.begin() as connection:
        new_id = statement.execute(connection, ROW)
    assert new_id == stored(engine, "first")["id"]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        statement.execute(connection, ROW)  # the name is unique
