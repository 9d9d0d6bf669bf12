"""The repository's own files, as the tests that read them (its documentation, its citations) see them."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def repository_files() -> list[str]:
    """The paths (relative to ROOT, sorted) of every file git tracks or would add, i.e. not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted(set(filter(None, listed.split("\0"))))


def tracked_text_files(*, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every file git tracks or would add (not ignored) that reads as text, but those in `skip`."""
    skipped = {p.resolve() for p in skip}
    found = []
    for name in repository_files():
        path = ROOT / name
        if path.resolve() in skipped or not path.is_file():
            continue
        if b"\0" in path.read_bytes()[:8192]:
            continue  # a binary file (a screenshot) cites nothing
        found.append(path)
    return found
