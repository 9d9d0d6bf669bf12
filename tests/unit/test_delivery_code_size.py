"""The delivery package stays readable: no function in it runs over 35 lines. A longer one
is a sign that a decision and its bookkeeping have grown together; split it before it hides a rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DELIVERY = Path(__file__).resolve().parents[2] / "shared" / "filerelay" / "delivery"
LIMIT = 35


def functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


MODULES = sorted(DELIVERY.glob("*.py"))


def test_the_package_is_where_the_test_looks() -> None:
    assert {"transitions.py", "service.py", "sweep.py"} <= {p.name for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_in_delivery_is_over_35_lines(path: Path) -> None:
    long = [(name, lines) for name, lines in functions(path) if lines > LIMIT]
    assert long == [], f"{path.name}: functions over {LIMIT} lines (decorators excluded): {long}"
