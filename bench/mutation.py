"""Mutation testing of the core with mutmut: which changes to the code do the fast tests notice?

    python -m bench.mutation                       # every core module; resumes, keeps cached verdicts
    python -m bench.mutation --recheck             # ... and re-tests last run's survivors (new tests)
    python -m bench.mutation delivery              # one area: delivery, documents, staging, destinations, archivelink
    python -m bench.mutation filerelay.delivery.rules filerelay.staging.local   # or single modules
    python -m bench.mutation --fresh               # from scratch (deletes the work directory first)
    python -m bench.mutation --report              # only print the table of the last run
    python -m bench.mutation --with tests/unit/test_new.py   # add uncommitted files to the snapshot
    python -m bench.mutation 'filerelay.delivery.sweep.x_expire__mutmut_*'   # globs, or single mutant names

The tree tested is a snapshot of git HEAD (colleagues commit during a run; a working tree caught
mid-edit fails mutmut's clean run), plus the files given with --with; `--ref worktree` takes the
working tree as it is.

mutmut 3 names a mutant after its file path and puts `mutants/`, `mutants/src` first on sys.path, so
it cannot see through our PEP 420 slices (services/api/filerelay/api, shared/filerelay, ...): a path
`shared/filerelay/documents.py` would become the module `shared.filerelay.documents`. So mutmut runs
in a work directory, `.mutation/`, where the slices are merged into `src/filerelay/` (the layout of
the installed wheel), and mutmut's copy `.mutation/mutants/src` shadows the editable install.
The `[tool.mutmut]` section of pyproject.toml is written for that directory.

Tests: tests/unit, tests/api, tests/worker, tests/destinations without `slow` tests, 60 s per test.
tests/integration is all `slow`: it runs the worker in child processes (mutmut only maps tests to
the functions they call in its own process) and shares one Redis database, which two mutants at
once would flush under each other. The schema fuzzer (tests/api/test_openapi_fuzz.py, 20 s) is left
out too: it checks the admin API's schema, not the core, and would run for most API mutants.

Each mutant runs only the tests that called the mutated function, in a fork of mutmut's process,
at most two at a time (the machine is shared). Before that, one mypy --strict pass rejects the
mutants that do not type-check (CI would too): column "mypy". Score = (killed + mypy + timeout) /
mutants decided; survivors, "no tests" and suspicious ones count against it. Survivors judged equivalent are
listed, with a reason, in bench/mutation-survivors.md; the table says how many of the survivors are listed
there ("listed") and the score without them ("w/o eq.": they cannot be caught, so they leave the count).
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
MUTANTS = WORK / "mutants"
SLICES = [ROOT / "services" / "api", ROOT / "services" / "worker", ROOT / "services" / "cli", ROOT / "shared"]
SURVIVORS_DOC = ROOT / "bench" / "mutation-survivors.md"
AREAS = {
    "delivery": "filerelay.delivery",
    "documents": "filerelay.documents",
    "staging": "filerelay.staging",
    "destinations": "filerelay.destinations",
    "archivelink": "filerelay.api.archivelink",
}
# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), folded into our columns.
KILLED = {1, 3}
TYPE_CHECK = {37}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}
MUTANT_ID = re.compile(r"filerelay\.[\w.]+__mutmut_\d+|filerelay\.[\w.]*x[_ǁ][\wǁ]+__mutmut_\d+")


def sync_tree(source: Path, target: Path) -> None:
    """Copy `source` over `target`, touching only files whose content changed.

    A changed file gets a fresh mtime (not the original's): mutmut regenerates a module's mutants
    only when its source is newer than the mutated copy it wrote last time.
    """
    for path in source.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        dest = target / path.relative_to(source)
        if dest.exists() and filecmp.cmp(path, dest, shallow=False):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def prune(target: Path, sources: list[Path]) -> None:
    """Delete files of the merged tree that no slice has any more (a module was removed)."""
    for path in sorted(target.rglob("*"), reverse=True):
        rel = path.relative_to(target)
        if path.is_file() and "__pycache__" not in rel.parts and not any((s / rel).exists() for s in sources):
            path.unlink()


def snapshot(ref: str, overlay: list[str]) -> Path:
    """The tree to test: a git commit (default HEAD) plus chosen working-tree files, or the worktree.

    Colleagues commit while a run takes minutes, and a working tree caught mid-edit fails mutmut's
    clean run; a commit is consistent. `overlay` adds files not committed yet (a test being written).
    """
    if ref == "worktree":
        return ROOT
    tree = WORK / "snapshot"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref, "services", "shared", "tests"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for name in overlay:
        dest = tree / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, dest)
    return tree


def prepare(ref: str, overlay: list[str]) -> None:
    """Build .mutation/: merged sources, tests, the project's pyproject.toml, a link to the seeds."""
    tree = snapshot(ref, overlay)
    slices = [tree / s.relative_to(ROOT) / "filerelay" for s in SLICES]
    src = WORK / "src" / "filerelay"
    src.mkdir(parents=True, exist_ok=True)
    for slice_root in slices:
        sync_tree(slice_root, src)
    prune(src, slices)
    # mutmut copies tests/ (its default also_copy) into mutants/: a copy of the same snapshot.
    sync_tree(tree / "tests", WORK / "tests")
    prune(WORK / "tests", [tree / "tests"])
    # The [tool.mutmut] and pytest configuration as they are now.
    shutil.copyfile(ROOT / "pyproject.toml", WORK / "pyproject.toml")
    # tests/support/seeds.py finds the seeds three levels above itself; from mutants/tests/support
    # that is .mutation/, so the same relative place gets a link to where they really are.
    seeds = (ROOT / "tests" / "support" / "seeds.py").resolve().parents[3] / "shared" / "seeds"
    if seeds.is_dir():
        (WORK / "shared").mkdir(exist_ok=True)
        link(WORK / "shared" / "seeds", seeds)
    # Tests deleted or renamed upstream must not linger in mutmut's copy.
    shutil.rmtree(MUTANTS / "tests", ignore_errors=True)


def link(path: Path, target: Path) -> None:
    if path.is_symlink() and path.resolve() == target.resolve():
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target, target_is_directory=True)


def metas() -> list[Path]:
    return sorted((MUTANTS / "src").rglob("*.py.meta")) if (MUTANTS / "src").is_dir() else []


def module_of(meta: Path) -> str:
    rel = meta.relative_to(MUTANTS / "src").with_suffix("").with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def globs_for(targets: list[str]) -> list[str]:
    """Areas and modules become globs over their mutants; mutant names and globs pass as they are."""
    return [t if "__mutmut_" in t or "*" in t else f"{AREAS.get(t, t)}.*" for t in targets]


def reset_unkilled(globs: list[str]) -> int:
    """Forget last run's verdict for mutants that were not killed, so the current tests re-try them.

    Killed mutants keep their verdict (tests are added, not weakened, and a changed function gets
    new mutants anyway); with module arguments mutmut re-tests everything named anyway.
    """
    count = 0
    for meta in metas():
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for key, code in codes.items():
            if code is not None and code not in KILLED | TYPE_CHECK | TIMEOUT and (not globs or selected(key, globs)):
                codes[key] = None
                count += 1
        meta.write_text(json.dumps(data, indent=4))
    return count


def selected(key: str, globs: list[str]) -> bool:
    return any(key.startswith(g.removesuffix("*")) for g in globs)


def run_mutmut(globs: list[str], max_children: int) -> float:
    env = {
        **os.environ,
        # Child processes started by a test import the mutated copies too, not the editable install.
        "PYTHONPATH": str(MUTANTS / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # type_check_command runs mypy in mutants/ on the package under src/.
        "MYPYPATH": "src",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = WORK / "mutmut.log"
    mutmut = Path(sys.executable).with_name("mutmut")
    if not mutmut.exists():
        raise SystemExit(f"mutmut is not installed beside {sys.executable}: pip install -e '.[test,mutation]'")
    cmd = [str(mutmut), "run", "--max-children", str(max_children), *globs]
    print(f"$ (cd {WORK.relative_to(ROOT)} && {' '.join(cmd[1:])})  > {log.relative_to(ROOT)}", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=WORK, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail))
        raise SystemExit(f"mutmut exited {proc.returncode}; see {log}")
    return elapsed


@dataclass
class Row:
    name: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    def add(self, key: str, code: int | None) -> None:
        if code in KILLED:
            self.counts["killed"] += 1
        elif code in TYPE_CHECK:
            self.counts["mypy"] += 1
        elif code in TIMEOUT:
            self.counts["timeout"] += 1
        elif code in SURVIVED:
            self.counts["survived"] += 1
            self.survivors.append(key)
        elif code in NO_TESTS:
            self.counts["no tests"] += 1
            self.survivors.append(key)
        elif code is None:
            self.counts["not run"] += 1
        else:
            self.counts["suspicious"] += 1
            self.survivors.append(key)
        self.counts["mutants"] += 1

    def score(self, equivalent: int = 0) -> float:
        """Caught of decided, in percent; `equivalent` listed survivors taken out of the decided (a
        mutant that changes no behaviour cannot be caught, the usual definition of the score)."""
        total = self.counts["mutants"] - self.counts["not run"] - equivalent
        caught = self.counts["killed"] + self.counts["mypy"] + self.counts["timeout"]
        return 100.0 * caught / total if total else 0.0


COLUMNS = ["mutants", "killed", "mypy", "survived", "no tests", "timeout", "suspicious", "not run"]


def report(globs: list[str]) -> list[str]:
    listed = set(MUTANT_ID.findall(SURVIVORS_DOC.read_text())) if SURVIVORS_DOC.exists() else set()
    rows: dict[str, Row] = {}
    total = Row("total")
    for meta in metas():
        module = module_of(meta)
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for key, code in sorted(codes.items()):
            if globs and not selected(key, globs):
                continue
            rows.setdefault(module, Row(module)).add(key, code)
            total.add(key, code)
    width = max([len(r) for r in rows] + [len("total")])
    header = (
        f"{'module':<{width}} " + " ".join(f"{c:>10}" for c in COLUMNS) + f" {'score':>7} {'listed':>7} {'w/o eq.':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in [*sorted(rows.values(), key=lambda r: r.name), total]:
        if row is total:
            print("-" * len(header))
        known = sum(1 for s in row.survivors if s in listed)
        cells = " ".join(f"{row.counts[c]:>10}" for c in COLUMNS)
        print(f"{row.name:<{width}} {cells} {row.score():>6.1f}% {known:>7} {row.score(known):>7.1f}%")
    unlisted = [s for s in total.survivors if s not in listed]
    print(
        f"\n{len(total.survivors)} not killed, {len(total.survivors) - len(unlisted)} of them listed as "
        f"equivalent in {SURVIVORS_DOC.relative_to(ROOT)}."
    )
    if unlisted:
        (WORK / "survivors.txt").write_text("\n".join(unlisted) + "\n")
        print(f"Unlisted: {len(unlisted)} (names in .mutation/survivors.txt; `cd .mutation && mutmut show NAME`)")
    return unlisted


def mutant_spans(path: str) -> list[tuple[int, int]]:
    """Line spans of the mutated copies (`x_f__mutmut_3`) in one of mutmut's files."""
    tree = ast.parse(Path(path).read_text())
    return [
        (node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and re.search(r"__mutmut_\d+$", node.name)
    ]


def type_check(command: list[str]) -> int:
    """mutmut's type_check_command: mypy's JSON lines, keeping only errors inside a mutant.

    The original code type-checks (CI), so any other error is an artefact of mutmut's rewriting:
    its trampoline decorator hides a method's type from mypy (`build` no longer returns a
    DestinationClient), and mutmut aborts the run on an error it cannot pin on a mutant.
    """
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    spans: dict[str, list[tuple[int, int]]] = {}
    dropped = 0
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        error = json.loads(line)
        if error["file"] not in spans:
            spans[error["file"]] = mutant_spans(error["file"])
        inside = spans[error["file"]]
        if any(start <= error["line"] <= end for start, end in inside):
            print(line)
        else:
            dropped += 1
    print(f"dropped {dropped} mypy errors outside mutants", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "targets", nargs="*", help=f"areas ({', '.join(AREAS)}), dotted modules, mutant names or globs; default: all"
    )
    parser.add_argument("--fresh", action="store_true", help="delete .mutation/ and start from scratch")
    parser.add_argument("--report", action="store_true", help="only print the last run's table")
    parser.add_argument("--recheck", action="store_true", help="re-test last run's survivors (tests were added)")
    parser.add_argument("--ref", default="HEAD", help="git commit to test, or 'worktree' (default HEAD)")
    parser.add_argument("--with", dest="overlay", nargs="+", default=[], metavar="FILE", help="worktree files to add")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (default 2: a shared machine)")
    args = parser.parse_args(argv)
    globs = globs_for(args.targets)
    if not args.report:
        if args.fresh:
            shutil.rmtree(WORK, ignore_errors=True)
        prepare(args.ref, args.overlay)
        if args.recheck and not globs:
            reset = reset_unkilled(globs)
            if reset:
                print(f"re-testing {reset} mutants that were not killed last time")
        elapsed = run_mutmut(globs, args.max_children)
        print(f"mutmut ran {elapsed / 60:.1f} min\n")
    report(globs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["typecheck"]:
        raise SystemExit(type_check(sys.argv[2:]))
    main()
