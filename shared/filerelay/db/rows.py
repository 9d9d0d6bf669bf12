"""Model instances read and written by plain SQL statements, for the worker's hot path.

The state machine's functions take model instances and change their attributes. On the worker's
hot path (a claim and a finish per delivery) the ORM's identity map, eager loading and unit-of-work
flush cost more CPU than the statements themselves (py-spy: about half the worker's time). There
the rows are read by one joined SELECT into plain instances that belong to no session, the state
machine decides on them as on any row, and what it changed is written back by one UPDATE per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Table, inspect
from sqlalchemy.orm import InstanceState
from sqlalchemy.sql.elements import Label

from filerelay.db.models import Base

M = TypeVar("M", bound=Base)


def keys(model: type[Base]) -> tuple[str, ...]:
    """Every column attribute of `model`, by name."""
    return tuple(attr.key for attr in inspect(model).column_attrs)


def columns(model: type[Base], prefix: str, names: Iterable[str] | None = None) -> list[Label[Any]]:
    """The columns of `model` (those `names`, or all), each labelled `prefix` + attribute name: a
    joined SELECT reads several models."""
    attrs = inspect(model).column_attrs
    return [attrs[key].columns[0].label(prefix + key) for key in (keys(model) if names is None else names)]


def values(row: Mapping[Any, Any], prefix: str, names: Iterable[str]) -> dict[str, Any]:
    """The attribute values in a row read with `columns(model, prefix, names)`."""
    return {key: row[prefix + key] for key in names}


def detached(model: type[M], row_values: Mapping[str, Any]) -> M:
    """A plain instance of `model` with these attribute values, in no session."""
    return model(**row_values)


def table(model: type[Base]) -> Table:
    """The model's table, for statements that bypass the ORM."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


def inserted(instance: Base) -> dict[str, Any]:
    """The values set on an instance built in memory, by column name: one row of a plain INSERT."""
    state: InstanceState[Any] = inspect(instance)
    attrs = state.mapper.column_attrs
    return {attrs[key].columns[0].key: value for key, value in state.dict.items() if key in attrs}


def changes(instance: Base, before: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes the state machine changed on `instance` since it held `before`, by column name:
    the SET of the UPDATE that records its decision."""
    mapper = inspect(type(instance))
    return {
        mapper.column_attrs[key].columns[0].name: getattr(instance, key)
        for key, old in before.items()
        if getattr(instance, key) != old
    }
