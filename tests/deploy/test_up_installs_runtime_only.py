"""`bash scripts/up.sh` on a fresh clone installs the runtime only: every package in the venv it makes is
one FileRelay's runtime dependencies need, none of the test extras (pytest, Playwright, moto, mypy…).

Slow (about two minutes): it builds a venv from nothing in a copy of the repository, with pip as this
machine configures it (a local wheel cache or an index), and runs `scripts/up.sh --help` there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.repository import ROOT, repository_files

pytestmark = pytest.mark.slow

# What pip itself brings into a venv.
TOOLING = {"pip", "setuptools", "wheel"}
# Run by the venv's python: each installed distribution and what it requires.
DISTRIBUTIONS = (
    "import importlib.metadata as m, json;"
    "print(json.dumps({d.metadata['Name']: d.requires or [] for d in m.distributions()}))"
)


def fresh_clone(target: Path) -> Path:
    """The repository's tracked and unignored files, without .venv, var/ or caches."""
    for name in repository_files():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def needed(installed: dict[str, list[str]], roots: list[str]) -> set[str]:
    """The distributions `roots` need, following each one's requirements (and the extras asked of it)."""
    requires: dict[str, list[str]] = {canonicalize_name(name): reqs for name, reqs in installed.items()}
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(r, frozenset()) for r in roots]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done or name not in requires:
            continue
        done.add((name, extras))
        seen.add(name)
        for text in requires[name]:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return seen


def test_up_installs_no_test_only_package(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["FILERELAY_HOME"] = str(tmp_path / "home")
    started = subprocess.run(
        ["bash", "scripts/up.sh", "--help"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert started.returncode == 0, started.stderr[-3000:]
    assert "Usage: filerelay up" in started.stdout

    listed = subprocess.run(
        [clone / ".venv/bin/python", "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    names = {canonicalize_name(p["name"]) for p in json.loads(listed.stdout)}
    dump = subprocess.run([clone / ".venv/bin/python", "-c", DISTRIBUTIONS], capture_output=True, text=True, check=True)
    runtime = needed(json.loads(dump.stdout), ["filerelay"])

    assert "filerelay" in names
    assert {"pytest", "playwright", "moto", "mypy", "ruff", "hypothesis"}.isdisjoint(names)
    assert names - runtime - TOOLING == set(), "installed by scripts/up.sh, needed by no runtime dependency"
