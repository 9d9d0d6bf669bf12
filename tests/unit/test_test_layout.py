"""Test modules share builders through tests/support/, never through one another: a test module (or a
conftest) that imports another test module's helpers or constants ties the two together and runs the
other's module-level code; fixtures reach a test through conftest.py, which pytest loads by itself."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def is_test_module(dotted: str) -> bool:
    """`tests.api.test_files`, `tests.conftest`: a module pytest collects or loads, not a helper."""
    parts = dotted.split(".")
    return parts[0] == "tests" and "support" not in parts and parts[-1].startswith(("test_", "conftest"))


def imported(path: Path, root: Path) -> list[str]:
    """The modules `path` imports, relative imports resolved against its package under `root`'s parent."""
    package = path.relative_to(root.parent).with_suffix("").parts[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            # `from tests.api import test_files` names the module in the alias
            found += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return found


def cross_imports(root: Path) -> list[str]:
    return sorted(
        f"{path.relative_to(root.parent)} imports {name}"
        for path in root.rglob("*.py")
        for name in imported(path, root)
        if is_test_module(name)
    )


def test_no_test_module_imports_another() -> None:
    assert cross_imports(TESTS) == [], "move what they share into tests/support/"


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    (root / "api").mkdir(parents=True)
    (root / "support").mkdir()
    (root / "support" / "documents.py").write_text("from tests.support.keys import ADMIN_KEY\n")
    (root / "api" / "test_a.py").write_text(
        "from tests.api.test_b import helper\n"
        "from tests.conftest import ADMIN_KEY\n"
        "from .conftest import headers\n"
        "from . import test_c\n"
        "import tests.api.test_d\n"
        "from tests.support.documents import accept\n"
    )
    assert cross_imports(root) == [
        "tests/api/test_a.py imports tests.api.conftest",
        "tests/api/test_a.py imports tests.api.test_b",
        "tests/api/test_a.py imports tests.api.test_c",
        "tests/api/test_a.py imports tests.api.test_d",
        "tests/api/test_a.py imports tests.conftest",
    ]
