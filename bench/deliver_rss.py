"""Peak memory of a delivery worker while it relays one large document, kind by kind.

    python -m bench.deliver_rss [--mb 2048] [--kinds s3 sharepoint sftp azure_blob gcs] [--together]

For each kind, on a throw-away home (SQLite, the embedded broker): its server on loopback (SeaweedFS,
the SharePoint REST emulator, an asyncssh SFTP server, Azurite, fake-gcs-server), wired to Z1 alone;
`filerelay api` takes SAP's `create`s; `filerelay worker --queues KIND --concurrency 2` relays them. A
1 MiB document goes first (imports, clients and pools in place), then the large one. With --together, the
kinds are served at once: one repository routed to all of them, one worker taking every kind's queue
(`--queues s3,sharepoint`), each document relayed to each kind. Printed per kind (or for the set):
the worker's peak RSS (the kernel's VmHWM) after the small and after the large delivery, the growth,
the delivery time, and whether the destination holds every byte. Figures, not a pass/fail; the latest
are in docs/performance.md#memory.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.azurite import azurite
from tests.support.bench_processes import clean_environ, exit_on_sigterm, filerelay_command, run_command, started
from tests.support.fake_gcs import fake_gcs, service_account
from tests.support.policy import LOOPBACK
from tests.support.processes import free_port, peak_rss_bytes, stream_put
from tests.support.relay_stack import profiled
from tests.support.s3server import seaweedfs
from tests.support.sftp_server import PASSWORD as SFTP_PASSWORD
from tests.support.sftp_server import USER as SFTP_USER
from tests.support.sftp_server import sftp_server
from tests.support.sharepoint_emulator import sharepoint_emulator

MB = 1024 * 1024
BUCKET = "bench-rss"
CREATE = "/archivelink/acme/production?create&pVersion=0047&contRep=Z1&docId={}&compId=data"
STATUS = text(
    "SELECT d.status, d.last_error FROM deliveries d JOIN documents c ON c.id = d.document_id WHERE c.doc_id = :doc"
)


@dataclass(frozen=True)
class Target:
    """One kind's destination: its config line, and how to read back what landed."""

    destination: str
    landed_size: Callable[[str], int | None]  # the size stored for a docId, None if absent


@dataclass(frozen=True)
class Measured:
    before: int  # the worker's peak RSS after the small delivery, bytes
    after: int  # ... and after the large one
    took: float  # seconds from the large create's 201 to delivered
    landed: int | None  # bytes the destination holds


@contextmanager
def s3_target(work: Path) -> Iterator[Target]:
    with seaweedfs(work / "seaweedfs") as s3:
        s3.client().create_bucket(Bucket=BUCKET)

        def size(doc_id: str) -> int | None:
            try:
                return int(s3.client().head_object(Bucket=BUCKET, Key=f"Z1/{doc_id}.pdf")["ContentLength"])
            except Exception:
                return None

        line = (
            f'{{id: dest, name: S3, kind: s3, bucket: {BUCKET}, endpoint_url: "{s3.endpoint}", '
            f'access_key_id: {s3.access_key}, secret_access_key: "{s3.secret_key}", '
            f'path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}'
        )
        yield Target(line, size)


@contextmanager
def sharepoint_target(_work: Path) -> Iterator[Target]:
    with sharepoint_emulator() as sp:

        def size(doc_id: str) -> int | None:
            data = sp.files.get(f"/sites/team/Shared Documents/Z1/{doc_id}.pdf")
            return None if data is None else len(data)

        line = (
            f'{{id: dest, name: SharePoint, kind: sharepoint, site_url: "{sp.site_url}", '
            f'access_token: "{sp.token}", path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}'
        )
        yield Target(line, size)


def _line(kind: str, **settings: object) -> str:
    """A destination of `kind` as a config line (JSON is YAML's flow style)."""
    return json.dumps({"id": "dest", "name": kind, "kind": kind, **settings, "path": "/{repo_id}/{doc_id}{ext}"})


@contextmanager
def sftp_target(work: Path) -> Iterator[Target]:
    with sftp_server(work / "sftp") as server:

        def size(doc_id: str) -> int | None:
            found = server.root / "Z1" / f"{doc_id}.pdf"
            return found.stat().st_size if found.exists() else None

        yield Target(
            _line(
                "sftp",
                host="127.0.0.1",
                port=server.port,
                username=SFTP_USER,
                password=SFTP_PASSWORD,
                host_key=server.host_key_line,
                root="/",
            ),
            size,
        )


@contextmanager
def azure_blob_target(work: Path) -> Iterator[Target]:
    from azure.storage.blob import BlobServiceClient

    with azurite(work / "azurite") as storage:
        container = BlobServiceClient.from_connection_string(storage.connection_string).create_container(BUCKET)

        def size(doc_id: str) -> int | None:
            try:
                return int(container.get_blob_client(f"Z1/{doc_id}.pdf").get_blob_properties().size)
            except Exception:
                return None

        yield Target(_line("azure_blob", container=BUCKET, connection_string=storage.connection_string), size)


@contextmanager
def gcs_target(work: Path) -> Iterator[Target]:
    from filerelay.destinations import gcs

    with fake_gcs(work / "gcs") as (server, tokens):
        account, public = service_account(tokens.url)
        tokens.known[account["client_email"]] = public
        settings = {"bucket": BUCKET, "credentials_json": json.dumps(account), "endpoint_url": server.endpoint}
        bucket = gcs.GcsDestination(*gcs.KIND.validate(settings, LOOPBACK), LOOPBACK).bucket
        bucket.client.create_bucket(BUCKET)

        def size(doc_id: str) -> int | None:
            found = bucket.get_blob(f"Z1/{doc_id}.pdf")
            return None if found is None else int(found.size)

        yield Target(_line("gcs", **settings), size)


TARGETS = {
    "s3": s3_target,
    "sharepoint": sharepoint_target,
    "sftp": sftp_target,
    "azure_blob": azure_blob_target,
    "gcs": gcs_target,
}


def config(*destinations: str) -> str:
    """Z1 routed to every destination given (config lines whose ids are dest, dest2, ...)."""
    ids = ", ".join(_dest_id(i) for i in range(len(destinations)))
    lines = "\n".join(f"      - {_renamed(d, _dest_id(i))}" for i, d in enumerate(destinations))
    return (
        "workspaces:\n"
        "  - owner: acme\n"
        "    slug: production\n"
        "    destinations:\n"
        f"{lines}\n"
        "    repositories:\n"
        f"      - {{id: Z1, description: Invoices, signature: none, destinations: [{ids}]}}\n"
    )


def _dest_id(index: int) -> str:
    return "dest" if index == 0 else f"dest{index + 1}"


def _renamed(line: str, dest_id: str) -> str:
    """A target's config line with its destination id replaced (the lines say `id: dest`, YAML or JSON)."""
    return re.sub(r'("id": "dest"|id: dest\b)', lambda m: m.group(0).replace("dest", dest_id), line, count=1)


def create(port: int, doc_id: str, size: int) -> None:
    sock = stream_put(port, CREATE.format(doc_id), size)
    try:
        reply = sock.recv(4096)
    finally:
        sock.close()
    if not reply.startswith(b"HTTP/1.1 201"):
        raise RuntimeError(f"create {doc_id}: {reply[:200]!r}")


def wait_delivered(url: str, doc_id: str, timeout: float) -> float:
    engine = create_engine(url)
    started_at = time.monotonic()
    try:
        while time.monotonic() - started_at < timeout:
            with engine.connect() as conn:
                found = conn.execute(STATUS, {"doc": doc_id}).all()
            if found and all(row[0] == "delivered" for row in found):
                return time.monotonic() - started_at
            for row in found:
                if row[0] in ("retrying", "failed"):
                    raise RuntimeError(f"{doc_id}: {row[0]}: {row[1]}")
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise TimeoutError(f"{doc_id} not delivered within {timeout} s")


def worker_command(kinds: list[str]) -> list[str]:
    # One process (the embedded broker runs one anyway): its peak is what is measured.
    return filerelay_command("worker", "--queues", ",".join(kinds), "--concurrency", "2", "--processes", "1")


def measure(kinds: list[str], size: int, work: Path) -> Measured:
    """One worker serving `kinds` (one or several), each document relayed to each of them."""
    home = work / "home"
    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'filerelay.db'}"
    # Every target listens on loopback, which the egress defaults refuse: allowed as the tests allow it.
    env = clean_environ(FILERELAY_HOME=str(home), FILERELAY_DATABASE_URL=url, FILERELAY_EGRESS_ALLOW="127.0.0.0/8,::1")
    log = work / "filerelay.log"
    with ExitStack() as stack:
        targets = [stack.enter_context(TARGETS[kind](work / kind)) for kind in kinds]
        (home / "filerelay.yaml").write_text(config(*(t.destination for t in targets)))
        run_command(filerelay_command("migrate"), env, log)
        run_command(filerelay_command("config", "apply", str(home / "filerelay.yaml")), env, log)
        port = free_port()
        api = filerelay_command("api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--threads", "2")
        stack.enter_context(started(api, env, log, ready_url=f"http://127.0.0.1:{port}"))
        worker = stack.enter_context(started(worker_command(kinds), env, work / "worker.log"))
        stack.enter_context(profiled(worker.pid, f"deliver-{'+'.join(kinds)}"))
        create(port, "WARM", MB)
        wait_delivered(url, "WARM", timeout=120)
        before = peak_rss_bytes(worker.pid)
        create(port, "BIG", size)
        took = wait_delivered(url, "BIG", timeout=60 + size / MB)  # at least 1 MiB/s
        after = peak_rss_bytes(worker.pid)
        sizes = [t.landed_size("BIG") for t in targets]
        landed = min((s or 0) for s in sizes) if all(s is not None for s in sizes) else None
    return Measured(before, after, took, landed)


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=2048, help="document size in MiB")
    parser.add_argument("--kinds", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--together", action="store_true", help="one worker serves all the kinds at once")
    args = parser.parse_args()
    run([args.kinds] if args.together else [[kind] for kind in args.kinds], args.mb * MB)


def run(sets: list[list[str]], size: int) -> None:
    """Deliver one document of `size` bytes to each set of kinds in turn (one worker per set) and print
    the worker's peak RSS."""
    rows: dict[str, Measured] = {}
    for kinds in sets:
        kind = "+".join(kinds)
        with tempfile.TemporaryDirectory(prefix=f"bench-rss-{kind}-") as tmp:
            rows[kind] = measure(kinds, size, Path(tmp))
            print(f"{kind}: done", flush=True)
    print()
    print(f"document {size // MB} MiB, worker --concurrency 2")
    print(f"{'kind':<11} {'RSS after 1 MiB':>16} {'after large':>12} {'growth':>8} {'delivery':>9} {'landed':>8}")
    for kind, r in rows.items():
        before, after = r.before / MB, r.after / MB
        whole = "all" if r.landed == size else str(r.landed)
        print(f"{kind:<11} {before:12.1f} MiB {after:8.1f} MiB {after - before:4.1f} MiB {r.took:7.1f} s {whole:>8}")


if __name__ == "__main__":
    main()
