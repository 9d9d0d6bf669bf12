"""Fault injection: every document SAP got a 201 for reaches every destination or visibly fails, and
none is uploaded twice, whatever breaks meanwhile.

    python -m bench.chaos [--short] [--scenarios NAME ...] [--seconds 40] [--rate 6] [--check]

Starts everything it needs on loopback, of its own: Redis, a PostgreSQL cluster (run as the `postgres`
user when started as root), SeaweedFS with a versioned bucket behind a proxy that can cut it off, a
SharePoint emulator (tests/support/sharepoint_emulator.py), an SMTP server (aiosmtpd,
tests/support/smtp_server.py), a webhook receiver that checks the Standard Webhooks signature
(tests/support/webhook_receiver.py), and FileRelay in its production shape: `filerelay api` (gunicorn,
2 x 4), `filerelay worker` (every kind), `filerelay sweeper`. Every document goes to S3, a folder and
SharePoint; every other one (content repository Z2, the large ones among them) to e-mail too (plain
SMTP; the document attached, or as a download link above 10 MiB) and to a webhook (the document as the
body). Every other only: each delivery costs the worker and the database about the same whatever its
kind, and all of them on every document would make the run half as long again.

Each scenario streams ArchiveLink `create`s of mixed sizes (2 KiB to 12 MiB; the large ones go as S3
multipart uploads and SharePoint upload sessions) through the real HTTP endpoint for --seconds while it
breaks one thing, heals it, waits until no delivery of its documents is pending, retrying or delivering,
and checks every acknowledged document at every destination:

  acknowledged  201s SAP got                     delivered  documents whose every copy holds its bytes
  failed        documents with a visibly failed  lost       201 without a stored document, or a delivery
                delivery (none expected)                    recorded delivered whose bytes are not there
  duplicates    a second complete upload of one  non-201    answers other than 201 (SAP retries those)
                delivery: a second S3 version, a            and connections cut by the fault
                SharePoint version holding the   settle s   from the fault healed to nothing in flight
                same content again, a second
                e-mail or webhook call under
                another Message-ID / webhook-id
  resent        an e-mail or webhook call received again under the same Message-ID / webhook-id

E-mail and webhook deliveries are at least once: neither an SMTP server nor a webhook endpoint can be
asked whether an attempt nobody saw end (a killed worker, a database gone before the outcome was
recorded) arrived, so it is sent again, under the same Message-ID / webhook-id; a receiver drops the
repeat by that id. Those repeats are counted as `resent`, not as duplicates.

--check exits 1 when any scenario lost a document, uploaded one twice or did not settle (.ci/run runs
--short --check). Nothing here is timed against a target.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import hashlib
import http.client
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tests.support.bench_processes import clean_environ, exit_on_sigterm, filerelay_command, run_command, stop
from tests.support.outage_proxy import OutageProxy, outage_proxy
from tests.support.private_servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.support.processes import free_port, kill_group, wait_ready
from tests.support.s3server import S3Server, seaweedfs
from tests.support.sharepoint_emulator import Emulator, sharepoint_emulator
from tests.support.smtp_server import SmtpServer, smtp_server
from tests.support.webhook_receiver import Receiver, webhook_receiver

KIB, MIB = 1024, 1024 * 1024
# One large document in eight: S3 multipart (8 MiB parts) and a SharePoint upload session.
SIZES = (2 * KIB, 100 * KIB, 1 * MIB, 100 * KIB, 2 * KIB, 300 * KIB, 100 * KIB, 12 * MIB)
BUCKET = "chaos"
LIBRARY = "/sites/team/Shared Documents"
# The text part of an e-mail that links the document instead of attaching it.
LINKED = re.compile(
    r"sha256 ([0-9a-f]{64})\.\nIt is too large to attach\. Download it until [^\n]*:\nhttp://\S+/content\?token="
)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"chaos-webhook-signing-key-32-byte").decode()
SCRIPT_PATH = "/archivelink/acme/production"
IN_FLIGHT = ("pending", "retrying", "delivering")

CONFIG = """
workspaces:
  - owner: acme
    slug: production
    retry: {{max_retries: 50, ttl: 2h, backoff_base: 1s, backoff_max: 4s}}
    destinations:
      - {{id: dest_s3, name: S3, kind: s3, bucket: {bucket}, endpoint_url: "{s3_url}", region: us-east-1,
         access_key_id: {access_key}, secret_access_key: "${{CHAOS_S3_SECRET}}",
         path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}
      - {{id: dest_folder, name: Folder, kind: folder, root: "{folder}", path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}
      - {{id: dest_sharepoint, name: SharePoint, kind: sharepoint, site_url: "{site_url}",
         access_token: "{token}", path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}
      # A plain relay (no TLS, no login). The large documents go as download links (above the default
      # 10 MiB bound), which also keeps the SMTP server's work (in this process) small.
      - {{id: dest_email, name: E-mail, kind: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port},
         starttls: false, from: relay@chaos.example, to: [archive@chaos.example], subject: "{{doc_id}}",
         path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}
      - {{id: dest_webhook, name: Webhook, kind: webhook, url: "{webhook_url}", secret: "${{CHAOS_WEBHOOK_SECRET}}",
         path: "/{{repo_id}}/{{doc_id}}{{ext}}"}}
    repositories:
      - {{id: Z1, description: Chaos, signature: none, destinations: [dest_s3, dest_folder, dest_sharepoint]}}
      - {{id: Z2, description: Chaos with e-mail and webhook, signature: none,
         destinations: [dest_s3, dest_folder, dest_sharepoint, dest_email, dest_webhook]}}
"""

STATUSES = text(
    "SELECT doc.doc_id, doc.sha256, dest.kind, d.status, d.path FROM documents doc "
    "JOIN deliveries d ON d.document_id = doc.id JOIN destinations dest ON dest.id = d.destination_id "
    "WHERE doc.doc_id LIKE :prefix AND doc.deleted_at IS NULL"
)
IN_FLIGHT_COUNT = text(
    "SELECT count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
    "WHERE doc.doc_id LIKE :prefix AND d.status IN ('pending', 'retrying', 'delivering')"
)


class Process:
    """A FileRelay process that a scenario may kill; started again by `start`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], work: Path, ready_url: str | None = None):
        self.name, self.args, self.env, self.ready_url = name, args, env, ready_url
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.ready_url:
            wait_ready(self.ready_url, self.proc, timeout=90)

    def kill(self) -> None:
        """SIGKILL the process and everything it started: nothing gets to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):
                kill_group(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@dataclass
class Stack:
    work: Path
    redis: PrivateRedis
    pg: PrivatePostgres
    s3: S3Server
    s3_proxy: OutageProxy
    sharepoint: Emulator
    smtp: SmtpServer
    webhook: Receiver
    engine: Engine
    api: Process
    worker: Process
    sweeper: Process
    api_port: int
    extra: list[Process] = field(default_factory=list)

    @property
    def processes(self) -> list[Process]:
        return [self.api, self.worker, self.sweeper, *self.extra]


# --- scenarios: each breaks one thing while the documents stream in, and heals it before returning ----


def _every(seconds: float, stop_at: threading.Event, action: Callable[[], None]) -> None:
    while not stop_at.wait(seconds):
        action()


def _at(fraction: float, duration: float, stop_at: threading.Event) -> bool:
    """Wait for `fraction` of the load's duration (from now); False if the load ended first."""
    return not stop_at.wait(fraction * duration)


def baseline(_s: Stack, _duration: float, _stop: threading.Event) -> None:
    """Nothing breaks: the figures to compare the others with."""


def worker_sigkill(s: Stack, _duration: float, stop_at: threading.Event) -> None:
    """The worker SIGKILLed every 5 s and started again at once (a pod's container restarting)."""

    def kill_and_restart() -> None:
        s.worker.kill()
        s.worker.start()

    _every(5, stop_at, kill_and_restart)


def _outage(at: float, seconds: float, duration: float, stop_at: threading.Event, down: Callable[[], None],
            up: Callable[[], None]) -> None:  # fmt: skip
    """`down()` once `at` of the load has passed, `up()` `seconds` later (even if the load ended meanwhile)."""
    if _at(at, duration, stop_at):
        down()
        time.sleep(seconds)
        up()


def redis_sigkill_twice(s: Stack, duration: float, stop_at: threading.Event) -> None:
    """Redis SIGKILLed a third of the way in (every queued wake-up gone), back 5 s later, and SIGKILLed
    again 5 s after that, back 5 s later. The second kill finds the worker busy with the wake-ups the
    sweeper sent again after the first: a worker that lost the acks it held then stopped taking work
    for good (filerelay.worker.consumer); it must deliver everything without being restarted."""
    if not _at(1 / 3, duration, stop_at):
        return
    for again in (False, True):
        if again:
            time.sleep(5)  # even if the load ended meanwhile: the second kill is the point
        s.redis.kill()
        time.sleep(5)
        s.redis.start()


def redis_flushall(s: Stack, duration: float, stop_at: threading.Event) -> None:
    """FLUSHALL at a quarter, a half and three quarters: queued and unacknowledged wake-ups vanish."""
    for _ in range(3):
        if not _at(1 / 4, duration, stop_at):
            return
        s.redis.flush()


def postgres_restart_fast(s: Stack, duration: float, stop_at: threading.Event) -> None:
    """`pg_ctl restart -m fast` half way: every session is ended, open transactions rolled back."""
    if _at(1 / 2, duration, stop_at):
        s.pg.restart("fast")


def postgres_restart_immediate(s: Stack, duration: float, stop_at: threading.Event) -> None:
    """`pg_ctl restart -m immediate` half way: a crash; the server replays its WAL on the way up."""
    if _at(1 / 2, duration, stop_at):
        s.pg.restart("immediate")


def s3_down_20s(s: Stack, duration: float, stop_at: threading.Event) -> None:
    """The S3 server unreachable for 20 s from a quarter of the way in (connections reset or refused)."""
    _outage(1 / 4, 20, duration, stop_at, s.s3_proxy.down, s.s3_proxy.up)


def api_sigkill(s: Stack, _duration: float, stop_at: threading.Event) -> None:
    """An API worker process SIGKILLed every 3 s, mid-upload (gunicorn starts another), and the whole
    API (master too) killed and started again half way."""
    kills = 0

    def kill_one() -> None:
        nonlocal kills
        kills += 1
        if kills == 5 and s.api.proc is not None:
            s.api.kill()
            s.api.start()
            return
        master = s.api.proc
        if master is None:
            return
        children = psutil.Process(master.pid).children()
        if children:
            with suppress(psutil.NoSuchProcess):
                children[0].send_signal(signal.SIGKILL)

    _every(3, stop_at, kill_one)


def two_sweepers(s: Stack, _duration: float, stop_at: threading.Event) -> None:
    """A second sweeper beside the first for the whole run (two replicas of the sweeper's Deployment)."""
    second = Process("sweeper-2", s.sweeper.args, s.sweeper.env, s.work)
    second.start()
    s.extra.append(second)
    stop_at.wait()
    second.stop()
    s.extra.remove(second)


def sharepoint_throttling(s: Stack, _duration: float, stop_at: threading.Event) -> None:
    """SharePoint answers 429 with Retry-After: 2 to bursts of 10 requests every 4 s."""

    def burst() -> None:
        s.sharepoint.inject(429, times=10, retry_after=2)

    _every(4, stop_at, burst)
    s.sharepoint.heal()


SCENARIOS: dict[str, Callable[[Stack, float, threading.Event], None]] = {
    "baseline": baseline,
    "worker SIGKILL every 5 s": worker_sigkill,
    "Redis SIGKILL x2, back in 5 s": redis_sigkill_twice,
    "Redis FLUSHALL x3": redis_flushall,
    "PostgreSQL restart -m fast": postgres_restart_fast,
    "PostgreSQL restart -m immediate": postgres_restart_immediate,
    "S3 down 20 s": s3_down_20s,
    "API SIGKILL mid-upload": api_sigkill,
    "two sweepers": two_sweepers,
    "SharePoint throttling": sharepoint_throttling,
}
SHORT = (
    "baseline",
    "worker SIGKILL every 5 s",
    # Killing Redis loses queued and unacknowledged wake-ups as FLUSHALL does, and breaks the worker's
    # connection besides: it takes FLUSHALL's place here, so --short takes no longer.
    "Redis SIGKILL x2, back in 5 s",
    "PostgreSQL restart -m immediate",
    "S3 down 20 s",
    "API SIGKILL mid-upload",
    "SharePoint throttling",
)


# --- the load ------------------------------------------------------------------------------------------


FILL = os.urandom(max(SIZES))


REPOSITORIES = ("Z1", "Z2")


def repository(n: int) -> str:
    """Z2 (wired to e-mail and the webhook as well) for every other document, the large ones among them."""
    return REPOSITORIES[n % 2]


def body_of(doc_id: str, size: int) -> bytes:
    """The document's bytes: its id first, so no two documents hold the same content."""
    head = f"{doc_id}|".encode()
    return head + FILL[: size - len(head)]


@dataclass
class Sent:
    acknowledged: dict[str, str] = field(default_factory=dict)  # doc_id -> sha256 of what SAP sent
    answers: Counter[str] = field(default_factory=Counter)


def stream(port: int, prefix: str, rate: float, duration: float) -> Sent:
    """ArchiveLink creates at `rate` per second for `duration` s, from 4 connections, each document once
    (no retry: a document SAP did not get a 201 for is not counted)."""
    sent = Sent()
    lock = threading.Lock()
    counter = itertools.count()
    started = time.monotonic()
    total = int(rate * duration)

    def sender() -> None:
        conn: http.client.HTTPConnection | None = None
        while (n := next(counter)) < total:
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            doc_id = f"{prefix}{n:05d}"
            data = body_of(doc_id, SIZES[n % len(SIZES)])
            path = f"{SCRIPT_PATH}?create&pVersion=0047&contRep={repository(n)}&docId={doc_id}&compId=data"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("PUT", path, body=data, headers={"Content-Type": "application/pdf"})
                reply = conn.getresponse()
                reply.read()
                answer = str(reply.status)
            except (OSError, http.client.HTTPException) as exc:
                answer = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                sent.answers[answer] += 1
                if answer == "201":
                    sent.acknowledged[doc_id] = hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(sender) for _ in range(4)]:
            future.result()
    return sent


# --- settling and checking ------------------------------------------------------------------------------


def settle(s: Stack, prefix: str, timeout: float) -> float | None:
    """Seconds until no delivery of the scenario's documents is in flight; None if that never came."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with s.engine.connect() as conn:
                left = conn.execute(IN_FLIGHT_COUNT, {"prefix": f"{prefix}%"}).scalar_one()
        except Exception:  # the database is still coming back
            left = -1
        if left == 0:
            return time.monotonic() - started
        for process in s.processes:  # a process the fault left dead is the fault's, not the relay's
            if process.proc is not None and process.proc.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.proc.returncode}; see {process.log}")
        time.sleep(0.5)
    return None


@dataclass
class Row:
    acknowledged: int = 0
    delivered: int = 0
    failed: int = 0
    lost: int = 0
    duplicates: int = 0
    resent: int = 0
    non_201: int = 0
    settle_s: float | None = None
    examples: list[str] = field(default_factory=list)  # what was lost or uploaded twice


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def check(s: Stack, prefix: str, sent: Sent, settle_s: float | None) -> Row:
    row = Row(acknowledged=len(sent.acknowledged), settle_s=settle_s)
    row.non_201 = sum(n for answer, n in sent.answers.items() if answer != "201")
    with s.engine.connect() as conn:
        found: dict[str, list[tuple[str, str, str]]] = {}
        stored: dict[str, str] = {}
        for doc_id, sha256, kind, status, _path in conn.execute(STATUSES, {"prefix": f"{prefix}%"}):
            stored[doc_id] = sha256
            found.setdefault(doc_id, []).append((kind, status, sha256))
    mails = _by_document(row, "e-mail", _mails(s.smtp, prefix))
    calls = _by_document(row, "webhook call", _calls(s.webhook, prefix))
    s3 = s.s3.client()
    versions: Counter[str] = Counter()
    for repo_id in REPOSITORIES:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=f"{repo_id}/{prefix}"):
            versions.update(v["Key"] for v in page.get("Versions", []))
    for key, n in versions.items():
        if n > 1:
            row.duplicates += n - 1
            row.examples.append(f"{key}: {n} versions in S3")
    for doc_id, sha in sent.acknowledged.items():
        path = f"{repository(int(doc_id.removeprefix(prefix)))}/{doc_id}.pdf"
        if again := _sharepoint_duplicates(s.sharepoint, f"{LIBRARY}/{path}"):
            row.duplicates += again
            row.examples.append(f"{path}: uploaded {again + 1} times to SharePoint")
        deliveries = found.get(doc_id)
        if deliveries is None or stored.get(doc_id) != sha:
            row.lost += 1
            row.examples.append(f"{doc_id}: no stored document with the bytes SAP sent")
            continue
        statuses = {kind: status for kind, status, _ in deliveries}
        held = {
            "s3": lambda p=path: _sha(s3.get_object(Bucket=BUCKET, Key=p)["Body"].read()),
            "folder": lambda p=path: _sha(_read(s.work / "out" / p)),
            "sharepoint": lambda p=path: _sha(s.sharepoint.files.get(f"{LIBRARY}/{p}")),
            "email": lambda d=doc_id: _carried(mails.get(d, []), sent.acknowledged[d]),
            "webhook": lambda d=doc_id: _carried(calls.get(d, []), sent.acknowledged[d]),
        }
        bad = [kind for kind, status in statuses.items() if status == "delivered" and _held(held[kind]) != sha]
        if bad:
            row.lost += 1
            row.examples.append(f"{doc_id}: recorded delivered to {', '.join(bad)}, not there")
        elif "failed" in statuses.values():
            row.failed += 1
        elif set(statuses.values()) == {"delivered"}:
            row.delivered += 1
    return row


@dataclass(frozen=True)
class Message:
    """An e-mail or a webhook call as received: the document it names, its id, the sha256 of what it carried."""

    doc_id: str
    message_id: str
    sha256: str | None


def _mails(server: SmtpServer, prefix: str) -> list[Message]:
    """The scenario's e-mails, read as a mail reader would (the subject is the document's id). What one
    carries: its attachment's sha256, or for a download link the sha256 its text names."""
    parser = email.parser.BytesParser(policy=email.policy.default)
    found = []
    for path in list(server.received):
        with path.open("rb") as raw:
            mail = parser.parse(raw)
        doc_id = str(mail["Subject"])
        if not doc_id.startswith(prefix):
            continue
        attached = [part.get_content() for part in mail.iter_attachments()]
        if attached:
            carried = _sha(attached[0]) if len(attached) == 1 and isinstance(attached[0], bytes) else None
        else:
            body = mail.get_body(("plain",))
            named = LINKED.search(body.get_content() if body is not None else "")
            carried = named.group(1) if named else None
        found.append(Message(doc_id, str(mail["Message-ID"]), carried))
    return found


def _calls(receiver: Receiver, prefix: str) -> list[Message]:
    """The scenario's webhook calls the receiver took (signature checked, answered 2xx)."""
    calls = [(r.headers.get("x-filerelay-doc-id", ""), r) for r in list(receiver.received)]
    return [Message(d, r.headers.get("webhook-id", ""), r.sha256) for d, r in calls if d.startswith(prefix)]


def _by_document(row: Row, what: str, messages: list[Message]) -> dict[str, list[Message]]:
    """The messages by document, their repeats counted: under the same id a repeat is `resent` (the
    receiver drops it by that id), under another id a duplicate (nothing tells the receiver)."""
    by_doc: dict[str, list[Message]] = {}
    for message in messages:
        by_doc.setdefault(message.doc_id, []).append(message)
    for doc_id, received in sorted(by_doc.items()):
        ids = Counter(m.message_id for m in received)
        if len(ids) > 1:
            row.duplicates += len(ids) - 1
            row.examples.append(f"{doc_id}: {len(received)} {what}s under {len(ids)} different ids")
        if again := len(received) - len(ids):
            row.resent += again
            row.examples.append(f"{doc_id}: {what} received {again + 1} times under one id {received[0].message_id}")
    return by_doc


def _carried(messages: list[Message], sha: str) -> str | None:
    return sha if any(m.sha256 == sha for m in messages) else None


def _forget_received(s: Stack) -> None:
    """Drop what the SMTP server and webhook receiver kept (counted already; nothing is in flight)."""
    for path in s.smtp.received:
        path.unlink(missing_ok=True)
    s.smtp.received.clear()
    for call in s.webhook.received:
        call.path.unlink(missing_ok=True)
    s.webhook.received.clear()


def _sharepoint_duplicates(sp: Emulator, path: str) -> int:
    """Earlier versions holding the current content: a complete upload repeated. (A large document's
    first version is the empty stub its upload session goes into, not an upload of its content.)"""
    current = sp.files.get(path)
    return 0 if current is None else sum(1 for earlier in sp.versions.get(path, []) if earlier == current)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _held(read: Callable[[], str | None]) -> str | None:
    try:
        return read()
    except Exception:  # not there (NoSuchKey) or unreadable: not the bytes SAP sent
        return None


# --- the stack ------------------------------------------------------------------------------------------


@contextmanager
def chaos_stack(work: Path) -> Iterator[Stack]:
    with ExitStack() as stack:
        redis_server = stack.enter_context(private_redis(work))
        pg = stack.enter_context(private_postgres(work))
        s3 = stack.enter_context(seaweedfs(work / "seaweedfs"))
        s3.client().create_bucket(Bucket=BUCKET)
        s3.client().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        host, port = s3.endpoint.removeprefix("http://").split(":")
        proxy = stack.enter_context(outage_proxy((host, int(port))))
        sp = stack.enter_context(sharepoint_emulator())
        smtp = stack.enter_context(smtp_server(work / "smtp"))
        hook = stack.enter_context(webhook_receiver(WEBHOOK_SECRET))
        home = work / "home"
        home.mkdir()
        (work / "out").mkdir()
        config = home / "filerelay.yaml"
        config.write_text(
            textwrap.dedent(
                CONFIG.format(
                    bucket=BUCKET,
                    s3_url=proxy.url,
                    access_key=s3.access_key,
                    folder=work / "out",
                    site_url=sp.site_url,
                    token=sp.token,
                    smtp_port=smtp.port,
                    webhook_url=hook.url,
                )
            )
        )
        url = pg.create_database("chaos")
        api_port = free_port()
        env = clean_environ(
            FILERELAY_HOME=str(home),
            FILERELAY_DATABASE_URL=url,
            FILERELAY_BROKER_URL=redis_server.url,
            # Short enough that a killed worker's delivery comes back within the run, as documented.
            FILERELAY_LEASE_SECONDS="15",
            FILERELAY_SWEEP_INTERVAL_SECONDS="2",
            FILERELAY_WAKE_GRACE_SECONDS="5",
            FILERELAY_BREAKER_COOLDOWN_SECONDS="5",
            CHAOS_S3_SECRET=s3.secret_key,
            CHAOS_WEBHOOK_SECRET=WEBHOOK_SECRET,
            # Its S3 server and SharePoint emulator listen on loopback, which the egress defaults refuse.
            FILERELAY_EGRESS_ALLOW="127.0.0.0/8,::1",
            # Where the e-mails' download links point.
            FILERELAY_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
        )
        log = work / "setup.log"
        run_command(filerelay_command("migrate"), env, log)
        run_command(filerelay_command("config", "apply", str(config)), env, log)
        serve = ("api", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "2", "--threads", "4")
        api = Process("api", filerelay_command(*serve), env, work, ready_url=f"http://127.0.0.1:{api_port}")
        worker = Process("worker", filerelay_command("worker", "--concurrency", "4"), env, work)
        sweeper = Process("sweeper", filerelay_command("sweeper"), env, work)
        engine = create_engine(url, pool_pre_ping=True, pool_size=2)
        stack.callback(engine.dispose)
        result = Stack(work, redis_server, pg, s3, proxy, sp, smtp, hook, engine, api, worker, sweeper, api_port)
        for process in (api, worker, sweeper):
            process.start()
            stack.callback(process.stop)
        yield result


def run_scenario(s: Stack, name: str, n: int, seconds: float, rate: float, settle_timeout: float) -> Row:
    prefix = f"C{n:02d}X"
    stop_at = threading.Event()
    fault = threading.Thread(target=SCENARIOS[name], args=(s, seconds, stop_at), name=name)
    fault.start()
    try:
        sent = stream(s.api_port, prefix, rate, seconds)
    finally:
        stop_at.set()
        fault.join()
    settled = settle(s, prefix, settle_timeout)
    row = check(s, prefix, sent, settled)
    _forget_received(s)
    return row


def print_table(rows: dict[str, Row]) -> None:
    print()
    print(
        f"{'scenario':<34} {'ack':>5} {'delivered':>9} {'failed':>6} {'lost':>4} {'dup':>4} {'resent':>6} "
        f"{'non-201':>7} {'settle s':>8}"
    )
    for name, r in rows.items():
        settle_s = "never" if r.settle_s is None else f"{r.settle_s:.1f}"
        print(
            f"{name:<34} {r.acknowledged:5d} {r.delivered:9d} {r.failed:6d} {r.lost:4d} {r.duplicates:4d} "
            f"{r.resent:6d} {r.non_201:7d} {settle_s:>8}"
        )
    for name, r in rows.items():
        for example in r.examples[:20]:
            print(f"  {name}: {example}")
        if len(r.examples) > 20:
            print(f"  {name}: and {len(r.examples) - 20} more")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=None)
    parser.add_argument("--short", action="store_true", help="fewer scenarios, 25 s each (what .ci/run runs)")
    parser.add_argument("--seconds", type=float, default=None, help="load per scenario (default 40; --short 25)")
    parser.add_argument("--rate", type=float, default=6.0, help="creates per second")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--check", action="store_true", help="exit 1 on a lost or twice-uploaded document")
    parser.add_argument("--workdir", default=None, help="keep the servers' files and logs here")
    args = parser.parse_args()
    names = args.scenarios or list(SHORT if args.short else SCENARIOS)
    seconds = args.seconds or (25.0 if args.short else 40.0)
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(names)} scenarios, {seconds:g} s of creates at {args.rate:g}/s each, sizes 2 KiB - 12 MiB", flush=True)
    rows: dict[str, Row] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chaos-", dir=args.workdir) as tmp:
        work = Path(tmp)
        with chaos_stack(work) as s:
            for n, name in enumerate(names):
                rows[name] = run_scenario(s, name, n, seconds, args.rate, args.settle_timeout)
                r = rows[name]
                print(
                    f"{name}: {r.acknowledged} acknowledged, {r.lost} lost, {r.duplicates} duplicates, "
                    f"{r.resent} resent",
                    flush=True,
                )
        print_table(rows)
    bad = [n for n, r in rows.items() if r.lost or r.duplicates or r.settle_s is None]
    if args.check and bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
