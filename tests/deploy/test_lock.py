"""requirements.lock (scripts/lock.sh) pins what every install uses: the image's runtime dependencies
(Dockerfile) and the test venv (scripts/venv.sh, which .ci/run and scripts/test.sh source)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = _PIN.fullmatch(line)
        assert match, f"requirements.lock: {line!r} is not name==version"
        found[canonicalize_name(match[1])] = match[2]
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    locked = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements.lock: run bash scripts/lock.sh"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside {requirement}: run bash scripts/lock.sh"
        )


def test_the_floors_above_published_cves_hold() -> None:
    locked = pins()
    floors = {str(r.specifier) for r in declared() if canonicalize_name(r.name) in {"requests", "cryptography"}}
    assert floors == {">=2.32.4", ">=44.0.1"}
    assert Requirement("requests>=2.32.4").specifier.contains(locked["requests"])
    assert Requirement("cryptography>=44.0.1").specifier.contains(locked["cryptography"])


def test_this_venv_is_what_the_lock_pins() -> None:
    """scripts/venv.sh installed with -c requirements.lock, and again when the lock changed."""
    wrong = {}
    for name, version in pins().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert wrong == {}, "installed versions differ from requirements.lock (pinned, installed)"


def test_the_image_and_the_venv_install_with_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY [^\n]*\brequirements\.lock\b", dockerfile, re.M)
    assert re.search(r"pip install -r /tmp/requirements\.txt -c requirements\.lock", dockerfile)
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text().split()
    venv = (ROOT / "scripts" / "venv.sh").read_text()
    assert '-e ".[test]" -c requirements.lock' in venv  # scripts/test.sh, .ci/run
    assert "-e . -c requirements.lock" in venv  # scripts/up.sh: the runtime only
    # Either install is done again once the lock is newer than it.
    assert '[ requirements.lock -nt "$1" ]' in venv
    assert "_venv_stale .venv/.installed-runtime" in venv
    assert "|| _venv_stale .venv/.installed; then" in venv
