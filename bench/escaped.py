"""The failure-path changes a mutation run once found escaping the test suite, applied again one at a
time: does the test written for each now catch it?

    python -m bench.escaped              # every change; a baseline run of its tests first
    python -m bench.escaped --no-baseline
    python -m bench.escaped broker fresh-cycle   # some changes, by name

For each change: run its tests on the unchanged tree (they must pass, or "caught" would mean
nothing), apply the change as an exact text replacement (it fails loudly when the anchor text is not
in the file exactly once), run the tests again (`-x -q`), and put the file back whatever happens
(Ctrl-C and SIGTERM included). Prints change | test run | caught | first failing test id, and exits
non-zero when any change is not caught, a baseline fails, or an anchor is missing.

Other engineers edit this checkout while it runs, so a file is only written back when it still holds
exactly the mutant; if someone saved it meanwhile, only the mutant text is reverted within their
version, and if even that is impossible it says so loudly instead of overwriting their work.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
MARK = "# escaped-mutant"


@dataclass(frozen=True)
class Site:
    """One place the change can be made: a file, the exact text, and what replaces it. A change lists
    several sites when the code has been moved around; the first whose anchor is there is used."""

    path: str
    anchor: str
    replacement: str


@dataclass(frozen=True)
class Change:
    name: str
    summary: str
    sites: tuple[Site, ...]
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


S3_TEST = "tests/destinations/test_s3.py"

CHANGES = (
    Change(
        "broker",
        "Enqueuer.enqueue re-raises when the broker is down",
        (
            Site(
                "shared/filerelay/queue.py",
                '                    log.exception("could not enqueue delivery %s; the sweeper will", delivery_id)\n',
                '                    log.exception("could not enqueue delivery %s; the sweeper will", delivery_id)\n'
                f"                    raise  {MARK}\n",
            ),
        ),
        ("tests/integration/test_broker_down.py",),
    ),
    Change(
        "fresh-cycle",
        "a manual retry keeps cycle_attempts and expires_at",
        (
            Site(
                "shared/filerelay/delivery/transitions.py",
                "    _fresh_cycle(delivery, policy, DeliveryStatus.RETRYING, now)\n"
                "    return _wake(delivery, kind, now)\n",
                f"    delivery.status, delivery.next_attempt_at = DeliveryStatus.RETRYING, now  {MARK}\n"
                "    return _wake(delivery, kind, now)\n",
            ),
        ),
        ("tests/api/test_documents.py::test_a_manual_retry_starts_a_fresh_cycle_of_max_retries_plus_one_attempts",),
    ),
    Change(
        "retry-after",
        "finishing a failed attempt ignores the destination's Retry-After",
        (
            Site(
                "shared/filerelay/delivery/transitions.py",
                "        retry_after=result.retry_after,\n",
                f"        retry_after=None,  {MARK}\n",
            ),
        ),
        (f"{S3_TEST}::test_a_503_slowdown_with_retry_after_schedules_the_next_attempt_no_sooner",),
    ),
    Change(
        "folder-sha256",
        "folder delivery skips its sha256 check",
        (
            Site(
                "shared/filerelay/destinations/folder.py",
                "            require_sha256(digest.hexdigest(), payload.sha256)\n",
                f"            pass  {MARK}\n",
            ),
            Site(
                "shared/filerelay/destinations/folder.py",
                "            if digest.hexdigest() != payload.sha256:\n",
                f"            if False:  {MARK}\n",
            ),
        ),
        ("tests/worker/test_delivery_service.py", "-k", "sha256"),
    ),
    Change(
        "s3-checksum",
        "S3 one-PUT upload drops ChecksumSHA256",
        (
            Site(
                "shared/filerelay/destinations/s3.py",
                "                        ChecksumSHA256=_b64(bytes.fromhex(payload.sha256)),\n",
                f"                        {MARK}: ChecksumSHA256 dropped\n",
            ),
        ),
        (
            f"{S3_TEST}::test_one_put_carries_the_sha256_as_metadata_and_as_the_checksum",
            f"{S3_TEST}::test_staged_bytes_not_matching_the_sha256_are_refused_by_the_server",
        ),
    ),
    Change(
        "s3-metadata",
        "S3 upload drops the x-amz-meta-sha256 metadata",
        (
            Site(
                "shared/filerelay/destinations/s3.py",
                '"Metadata": {**payload.metadata, "sha256": payload.sha256}}\n',
                f'"Metadata": {{**payload.metadata}}}}  {MARK}\n',
            ),
        ),
        (
            f"{S3_TEST}::test_one_put_carries_the_sha256_as_metadata_and_as_the_checksum",
            f"{S3_TEST}::test_multipart_parts_carry_sha256_checksums_and_the_metadata",
        ),
    ),
    Change(
        "s3-part-checksums",
        "S3 multipart upload drops the per-part SHA-256",
        (
            Site(
                "shared/filerelay/destinations/s3.py",
                "PartNumber=number, Body=data, ChecksumSHA256=checksum\n",
                f"PartNumber=number, Body=data  {MARK}\n",
            ),
        ),
        (f"{S3_TEST}::test_multipart_parts_carry_sha256_checksums_and_the_metadata",),
    ),
    Change(
        "sharepoint-400",
        "SharePoint treats an HTTP 400 as retryable",
        (
            Site(
                "shared/filerelay/destinations/sharepoint.py",
                "    retryable = status not in (400, 404)\n",
                f"    retryable = status not in (404,)  {MARK}\n",
            ),
        ),
        ("tests/destinations/test_sharepoint.py", "-k", "400"),
    ),
)


class AnchorMissing(Exception):
    pass


@dataclass(frozen=True)
class Applied:
    path: Path
    original: bytes
    mutated: bytes
    site: Site


def apply(change: Change) -> Applied:
    tried = []
    for site in change.sites:
        path = ROOT / site.path
        if not path.is_file():
            tried.append(f"{site.path}: no such file")
            continue
        original = path.read_bytes()
        text = original.decode()
        count = text.count(site.anchor)
        if count == 1:
            mutated = text.replace(site.anchor, site.replacement).encode()
            path.write_bytes(mutated)
            return Applied(path, original, mutated, site)
        tried.append(f"{site.path}: anchor found {count} times")
    raise AnchorMissing(f"{change.name}: no site to apply it ({'; '.join(tried)})")


def restore(applied: Applied) -> None:
    current = applied.path.read_bytes()
    if current == applied.mutated:
        applied.path.write_bytes(applied.original)
        return
    # Someone saved the file while the tests ran: take the mutant out of their version only.
    text = current.decode()
    if text.count(applied.site.replacement) == 1:
        applied.path.write_text(text.replace(applied.site.replacement, applied.site.anchor))
        print(f"note: {applied.path} changed meanwhile; reverted only the mutant", file=sys.stderr)
        return
    if MARK in text:
        raise SystemExit(f"{applied.path} changed meanwhile and still holds {MARK!r}: revert it by hand")


@dataclass(frozen=True)
class Run:
    returncode: int
    first_failure: str | None
    tail: str


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)")


def pytest(args: tuple[str, ...]) -> Run:
    command = [sys.executable, "-m", "pytest", *args, "-x", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    output = done.stdout + done.stderr
    first = next((m[1] for line in output.splitlines() if (m := FAILED.match(line))), None)
    return Run(done.returncode, first, "\n".join(output.splitlines()[-15:]))


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so the `finally` that restores the file runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"changes to run (default all): {', '.join(c.name for c in CHANGES)}")
    parser.add_argument("--no-baseline", action="store_true", help="skip running each change's tests unchanged")
    options = parser.parse_args(argv)
    unknown = set(options.names) - {c.name for c in CHANGES}
    if unknown:
        parser.error(f"unknown changes: {', '.join(sorted(unknown))}")
    chosen = [c for c in CHANGES if not options.names or c.name in options.names]
    signal.signal(signal.SIGTERM, _terminate)

    rows: list[tuple[str, str, str, str]] = []
    ok = True
    for change in chosen:
        test_run = " ".join(change.tests)
        print(f"--- {change.name}: {change.summary}", flush=True)
        if not options.no_baseline:
            baseline = pytest(change.tests)
            if baseline.returncode != 0:
                print(baseline.tail)
                rows.append((change.summary, test_run, "baseline fails", baseline.first_failure or "-"))
                ok = False
                continue
        try:
            applied = apply(change)
        except AnchorMissing as exc:
            print(f"ANCHOR NOT FOUND: {exc}", file=sys.stderr)
            rows.append((change.summary, test_run, "anchor missing", "-"))
            ok = False
            continue
        try:
            run = pytest(change.tests)
        finally:
            restore(applied)
        caught = run.returncode == 1 and run.first_failure is not None
        if not caught:
            print(run.tail)
            ok = False
        rows.append((change.summary, test_run, "yes" if caught else "no", run.first_failure or "-"))

    print()
    header = ("change", "test run", "caught", "first failing test id")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
