"""The README and docs/ hold together: the README stays a short first read, every link and every cited
section exists, and the contract pages name every environment variable and command the code has."""

from __future__ import annotations

import re
from pathlib import Path

import click

from filerelay.cli.main import main
from tests.support.repository import ROOT, tracked_text_files

README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 350
TWO_COMMANDS = [
    "bash scripts/up.sh     # run FileRelay on its embedded defaults (SQLite, local staging, embedded broker)",
    'bash scripts/test.sh   # run the tests (SQLite by default; see "Tests" for PostgreSQL)',
]
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A citation of a page of docs/ (or a section of the README) from any file: code, manifests, tests.
DOCS_CITATION = re.compile(r"(?<![\w/.-])((?:docs/[\w-]+\.md|README\.md)(?:#[\w-]+)?)")
README_SECTION = re.compile(r'README(?:\.md)?,? "([^"]+)"')


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, blanks as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path: Path) -> list[str]:
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append(match.group(2))
    return found


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken(target: str, base: Path) -> str | None:
    """Why `target` (a path, an optional #anchor) from a file in `base` leads nowhere; None if it resolves."""
    path_part, _, anchor = target.partition("#")
    path = (base / path_part).resolve() if path_part else None
    if path is not None and not path.exists():
        return f"{target}: no such file"
    if anchor and path is not None and path.suffix == ".md" and anchor not in anchors(path):
        return f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}"
    return None


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_readme_is_a_short_first_read() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_LIMIT, f"README.md has {len(lines)} lines; move detail to docs/"


def test_the_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines() == TWO_COMMANDS


def test_the_pages_the_readme_promises_exist_and_are_linked() -> None:
    text = README.read_text(encoding="utf-8")
    for name in ("architecture", "archivelink", "operations", "performance", "development"):
        assert (DOCS / f"{name}.md").is_file()
        assert f"](docs/{name}.md" in text, f"the README does not link docs/{name}.md"


def test_every_link_in_the_readme_and_docs_resolves() -> None:
    problems = []
    for page in markdown_pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            anchor_only = target.startswith("#")
            why = broken(f"{page.name}{target}" if anchor_only else target, page.parent)
            if why:
                problems.append(f"{page.relative_to(ROOT)}: {why}")
    assert problems == []


def test_every_citation_of_docs_or_a_readme_section_resolves() -> None:
    problems = []
    readme_headings = set(headings(README))
    for path in tracked_text_files(skip=(Path(__file__),)):  # this file cites broken targets on purpose
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(ROOT)
        for target in DOCS_CITATION.findall(text):
            if why := broken(target, ROOT):
                problems.append(f"{where}: {why}")
        for section in README_SECTION.findall(text):
            if section not in readme_headings:
                problems.append(f'{where}: the README has no section "{section}"')
    assert problems == []


def test_the_checks_catch_a_broken_link_and_a_missing_section() -> None:
    assert broken("docs/architecture.md#delivery-states", ROOT) is None
    assert broken("docs/architecture.md#no-such-section", ROOT)
    assert broken("docs/nothing.md", ROOT)
    assert slug("Connect SAP (transaction OAC0)") == "connect-sap-transaction-oac0"
    assert slug("Signatures (secKey)") == "signatures-seckey"


def variables_the_code_reads() -> set[str]:
    names: set[str] = set()
    for folder in ("services", "shared"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"\"((?:FILERELAY|PROMETHEUS)_[A-Z0-9_]+)\"", path.read_text(encoding="utf-8")))
    return names


def section(path: Path, title: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f" {title}\n")
    following = re.search(r"^#{1,3} ", text[start + len(title) + 2 :], re.MULTILINE)
    return text[start : start + len(title) + 2 + following.start()] if following else text[start:]


def test_every_environment_variable_is_documented() -> None:
    names = variables_the_code_reads()
    assert {"FILERELAY_HOME", "FILERELAY_ENCRYPTION_KEYS", "FILERELAY_LOG_FORMAT"} <= names
    readme = section(README, "Configuration")
    contract = section(DOCS / "architecture.md", "Environment")
    assert sorted(n for n in names if f"`{n}`" not in readme) == [], "missing from the README's Configuration"
    assert sorted(n for n in names if f"`{n}`" not in contract) == [], "missing from architecture.md#environment"


def commands(group: click.Group, prefix: str = "filerelay") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_in_the_contract() -> None:
    listed = section(DOCS / "architecture.md", "Commands")
    every = commands(main)
    assert "filerelay keys create" in every
    assert "filerelay up" in every
    missing = []
    for command in every:
        *group, leaf = command.split()
        lines = [line for line in listed.splitlines() if f"`{' '.join(group)}" in line]
        if not any(re.search(rf"[ |]{re.escape(leaf)}\b", line) for line in lines):
            missing.append(command)
    assert missing == [], "commands missing from architecture.md#commands"
