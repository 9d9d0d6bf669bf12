"""`filerelay up` on its embedded defaults under sustained mixed ArchiveLink load: creates, gets, infos
and searches from many connections, the worker optionally killed mid-way. What was accepted, what landed in
the folder destination and when, and whether every process stayed up (or was started again).

For tests/integration/test_up.py (a short run) and bench/embedded.py (minutes, with figures).
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support.processes import environment, filerelay_command, free_port, stop_group, wait_ready

BODY = b"%PDF-1.4 " + bytes(range(256)) * 80  # 20 KiB
PATH = "/archivelink/acme/production"


@dataclass
class LoadReport:
    accepted: list[str] = field(default_factory=list)  # docIds answered 201
    answers: dict[int, int] = field(default_factory=dict)  # status -> count, every request
    refused: int = 0  # connections refused or reset: the server was not there
    load_seconds: float = 0.0
    landed_during_load: int = 0
    landed_after: float | None = None  # seconds from the end of the load until every 201 had landed
    worker_pids: list[int] = field(default_factory=list)  # the worker processes seen, in order
    up_alive: bool = True

    @property
    def ingest_rate(self) -> float:
        return len(self.accepted) / self.load_seconds

    @property
    def delivery_rate(self) -> float:
        return self.landed_during_load / self.load_seconds


@contextmanager
def embedded_up(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}")
    env.pop("FILERELAY_BROKER_URL", None)  # the embedded broker
    proc = subprocess.Popen(
        [sys.executable, "-m", "filerelay.cli", "up", "--port", str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        yield proc, port
    finally:
        stop_group(proc, signal.SIGINT, timeout=60)


def worker_pid(up: subprocess.Popen[bytes]) -> int | None:
    for child in psutil.Process(up.pid).children(recursive=True):
        if filerelay_command(child) == "worker":
            return child.pid
    return None


def landed(home: Path) -> set[str]:
    folder = home / "out" / "Z1"
    return {entry.name.partition("_")[0] for entry in os.scandir(folder)} if folder.exists() else set()


def _client(port: int, report: LoadReport, until: float, seed: int, lock: threading.Lock) -> None:
    rand = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    mine: list[str] = []
    n = 0
    while time.monotonic() < until:
        roll = rand.random()
        try:
            if roll < 0.7 or not mine:
                doc_id = f"L{seed}x{n}"
                n += 1
                conn.request(
                    "PUT",
                    f"{PATH}?create&pVersion=0047&contRep=Z1&docId={doc_id}&compId=data",
                    body=BODY,
                    headers={"Content-Type": "application/pdf"},
                )
            elif roll < 0.8:
                conn.request("GET", f"{PATH}?get&pVersion=0047&contRep=Z1&docId={rand.choice(mine)}&compId=data")
            elif roll < 0.9:
                conn.request("GET", f"{PATH}?info&pVersion=0047&contRep=Z1&docId={rand.choice(mine)}")
            else:
                query = f"?search&pVersion=0047&contRep=Z1&docId={rand.choice(mine)}&compId=data&pattern=PDF"
                conn.request("GET", PATH + query)
            response = conn.getresponse()
            response.read()
        except (ConnectionError, http.client.HTTPException, OSError):
            with lock:
                report.refused += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            time.sleep(0.05)
            continue
        with lock:
            report.answers[response.status] = report.answers.get(response.status, 0) + 1
            if response.status == 201:
                report.accepted.append(doc_id)
                mine.append(doc_id)
    conn.close()


def run_load(
    home: Path, *, seconds: float, connections: int, kill_worker_at: float | None = None, settle: float = 120.0
) -> LoadReport:
    """Load `filerelay up` for `seconds` from `connections` connections; kill its worker once at
    `kill_worker_at` seconds; then wait up to `settle` seconds for every 201 to land."""
    report = LoadReport()
    lock = threading.Lock()
    with embedded_up(home) as (up, port):
        first = worker_pid(up)
        report.worker_pids = [first] if first else []
        start = time.monotonic()
        until = start + seconds
        threads = [
            threading.Thread(target=_client, args=(port, report, until, seed, lock)) for seed in range(connections)
        ]
        for thread in threads:
            thread.start()
        killed = False
        while any(t.is_alive() for t in threads):
            if kill_worker_at is not None and not killed and time.monotonic() - start >= kill_worker_at:
                pid = worker_pid(up)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.1)
        report.load_seconds = time.monotonic() - start
        report.landed_during_load = len(landed(home))
        ended = time.monotonic()
        wanted = set(report.accepted)
        while time.monotonic() - ended < settle:
            if wanted <= landed(home):
                report.landed_after = time.monotonic() - ended
                break
            time.sleep(0.2)
        now = worker_pid(up)
        if now is not None and now not in report.worker_pids:
            report.worker_pids.append(now)
        report.up_alive = up.poll() is None
    return report
