"""The repository explains itself: no tracked file cites a document that is not in it.

What FileRelay relies on is written down in docs/ (and the README); a comment, manifest or test that
points a reader at a design note, a reference page or a tracker entry they cannot open sends them
looking for nothing. Public standards (an RFC's section) are fine: anyone can read them.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.repository import ROOT, tracked_text_files

# Each: what it looks like, and why it is no citation a reader of this repository can follow.
OUTSIDE = {
    "the design briefing's architecture page": re.compile(r"ARCHITECTURE\.md"),
    "the design briefing's protocol notes": re.compile(r"(?<![\w/.-])archivelink\.md"),
    "the design briefing's delivery-engine notes": re.compile(r"delivery-engine-notes\.md"),
    "the design briefing's destination notes": re.compile(r"(?<![\w/.-])destinations\.md"),
    "the design briefing's style notes": re.compile(r"(?<![\w/.-])style\.md"),
    "the design briefing's folder": re.compile(r"shared/design|\.\./shared\b|shared/seeds"),
    "the design briefing, by name": re.compile(r"\bdesign notes\b", re.IGNORECASE),
    "a reference page given at the start": re.compile(r"(?<![a-z])seeds?[ _]?0\d\d(?!\d)", re.IGNORECASE),
    "an issue tracker entry": re.compile(r"\bissues? #?\d+\b", re.IGNORECASE),
}
# A section sign cites a section of some document; only a public standard's (RFC 9110 §5.1) is allowed.
SECTION = re.compile(r"§")
STANDARD_BEFORE = re.compile(r"RFC \d+ $")


def outside_citations(text: str, folder: Path | None = None) -> list[tuple[int, str, str]]:
    """(line number, what is cited, the line) for every citation of a document outside the repository.
    A bare file name that names a file beside the citing one (docs/ linking docs/) is inside it."""
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in OUTSIDE.items():
            for match in pattern.finditer(line):
                if folder is not None and (folder / match.group()).is_file():
                    continue
                hits.append((number, what, line.strip()))
                break
        for match in SECTION.finditer(line):
            if not STANDARD_BEFORE.search(line[: match.start()]):
                hits.append((number, "a section of a document (§) that is not a public standard", line.strip()))
    return hits


def test_the_scan_sees_the_repository() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in tracked_text_files()}
    assert "tests/unit/test_no_outside_citations.py" in names
    assert {"README.md", "Dockerfile", "k8s/components/worker-s3/worker-s3.yaml", "shared/filerelay/queue.py"} <= names


def test_the_patterns_catch_what_they_should() -> None:
    cited = [
        "see ARCHITECTURE.md §3",
        "(archivelink.md §2.4)",
        "delivery-engine-notes.md",
        "destinations.md §2",
        "style.md §10",
        "../shared/design/x",
        "as seed 003 shows",
        "seeds 000 and 004",
        "test_file_info_has_seed_004_shape",
        "(issue 10)",
        "Choices that differ from the design notes",
        "the order of §2",
    ]
    assert all(outside_citations(line) for line in cited), [line for line in cited if not outside_citations(line)]
    fine = [
        "docs/architecture.md#delivery-states",
        "docs/archivelink.md#signatures-seckey",
        "(RFC 9110 §5.1)",
        "RFC 8017 §9.2 note 1",
        "the tissue 12 samples",
        "seed the random generator",
    ]
    assert [line for line in fine if outside_citations(line)] == []
    # A page of docs/ linking its sibling cites the repository; the same name elsewhere does not.
    assert outside_citations("[archivelink.md](archivelink.md)", ROOT / "docs") == []
    assert outside_citations("(archivelink.md §2)", ROOT / "services") != []


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = []
    # This file names what it looks for.
    for path in tracked_text_files(skip=(Path(__file__),)):
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, what, line in outside_citations(text, path.parent):
            found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line[:140]}")
    assert found == [], (
        "cite docs/ (or the README) instead, or drop the citation where the text stands alone:\n" + "\n".join(found)
    )
