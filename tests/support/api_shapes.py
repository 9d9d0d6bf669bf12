"""The reference shapes of the REST answers FileRelay mirrors, and shape comparison.

`shapes/documents.json` holds the Documents API's list, single-document and retry answers;
`shapes/files.json` a file's information as pull integrations read it; `shapes/export.json` the export
report a pull integration sends and its answer. The API must answer with exactly these keys and JSON
types (docs/architecture.md#http-surface), plus the additions a test names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHAPES = Path(__file__).resolve().parent / "shapes"


def examples(name: str) -> list[Any]:
    """The reference answers (and requests) in shapes/<name>.json, in their order there."""
    found: list[Any] = json.loads((SHAPES / f"{name}.json").read_text(encoding="utf-8"))
    return found


def _nullable(key: str) -> bool:
    return key.endswith("_at") or key in ("path",)


def assert_same_shape(
    actual: Any, expected: Any, where: str = "$", *, additions: Mapping[str, set[str]] | None = None
) -> None:
    """Same keys at every level and the same JSON types at the leaves (timestamps and paths may be
    null where the reference shows a value, and the other way round; an empty object in the reference is
    free-form). `additions` names the keys the product adds beyond the reference, by where they are (e.g.
    {"$.meta": {"total_exact"}}): every reference key is still required, and nothing else may appear."""
    additions = additions or {}
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        if not expected:
            return  # the references show free-form objects (extracted data) empty: any keys will do
        allowed = sorted({*expected, *additions.get(where, set())})
        assert sorted(actual) == allowed, f"{where}: keys {sorted(actual)} != reference {sorted(expected)} + {allowed}"
        for key in expected:
            if _nullable(key) and (actual[key] is None or expected[key] is None):
                continue
            assert_same_shape(actual[key], expected[key], f"{where}.{key}", additions=additions)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        if expected:
            assert actual, f"{where}: expected a non-empty array like the reference"
            for n, item in enumerate(actual):
                assert_same_shape(item, expected[0], f"{where}[{n}]", additions=additions)
    else:
        assert type(actual) is type(expected), (
            f"{where}: {type(actual).__name__} != reference {type(expected).__name__}"
        )
