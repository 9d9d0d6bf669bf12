"""The user's reference pages in ../shared/seeds: their JSON examples, and shape comparison."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


def examples(prefix: str) -> list[Any]:
    """Every JSON object that starts a line in the seed file whose name starts with `prefix`."""
    matches = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    assert matches, f"seed {prefix}_*.txt not found in {SEEDS} (the shared/ folder beside the checkout)"
    text = matches[0].read_text()
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    while (start := text.find("\n{", position)) != -1:
        try:
            value, end = decoder.raw_decode(text, start + 1)
        except json.JSONDecodeError:
            position = start + 2
            continue
        found.append(value)
        position = end
    return found


def _nullable(key: str) -> bool:
    return key.endswith("_at") or key in ("path",)


def assert_same_shape(
    actual: Any, expected: Any, where: str = "$", *, additions: Mapping[str, set[str]] | None = None
) -> None:
    """Same keys at every level and the same JSON types at the leaves (timestamps and paths may be
    null where the seed shows a value, and the other way round; an empty object in the seed is
    free-form). `additions` names the keys the product adds beyond the seed, by where they are (e.g.
    {"$.meta": {"total_exact"}}): every seed key is still required, and nothing else may appear."""
    additions = additions or {}
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        if not expected:
            return  # the seeds show free-form objects (extracted data) empty: any keys will do
        allowed = sorted({*expected, *additions.get(where, set())})
        assert sorted(actual) == allowed, f"{where}: keys {sorted(actual)} != seed {sorted(expected)} + {allowed}"
        for key in expected:
            if _nullable(key) and (actual[key] is None or expected[key] is None):
                continue
            assert_same_shape(actual[key], expected[key], f"{where}.{key}", additions=additions)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        if expected:
            assert actual, f"{where}: expected a non-empty array like the seed"
            for n, item in enumerate(actual):
                assert_same_shape(item, expected[0], f"{where}[{n}]", additions=additions)
    else:
        assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != seed {type(expected).__name__}"
