"""A running installation for the end-to-end tests: its API, its worker and sweeper processes, and this
run's own Redis database."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from filerelay.runtime import Runtime
from tests.support.redis_db import claim_url
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient

# This run's own database: a second run on the machine must not flush our queues (or we its).
REDIS_URL = claim_url()


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Relay:
    """A running installation: API (in-process HTTP), worker and sweeper processes, one S3 bucket."""

    runtime: Runtime
    sap: SapClient
    bucket: str
    out: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=self.env, start_new_session=True)
        self.processes[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def acme_config(
    destinations: Sequence[Mapping[str, object]], *, max_retries: int, wired: Sequence[str] | None = None
) -> str:
    """acme/production's configuration file: these destinations, wired to the repository Z1 (all of them
    in this order unless `wired` says otherwise), and a retry schedule of seconds so that a test sees its
    retries."""
    workspace = {
        "owner": "acme",
        "slug": "production",
        "retry": {"max_retries": max_retries, "ttl": "1h", "backoff_base": "1s", "backoff_max": "2s"},
        "destinations": destinations,
        "repositories": [
            {
                "id": "Z1",
                "description": "Invoices",
                "signature": "none",
                "destinations": list(wired or [str(d["id"]) for d in destinations]),
            }
        ],
    }
    return yaml.safe_dump({"workspaces": [workspace]}, sort_keys=False)


def s3_entry(s3: S3Server, bucket: str, *, secret: str, path: str) -> dict[str, object]:
    """The S3 Production Archive (dest_s3prod) on `s3`, for `acme_config`."""
    return {
        "id": "dest_s3prod",
        "name": "S3 Production Archive",
        "kind": "s3",
        "bucket": bucket,
        "endpoint_url": s3.endpoint,
        "access_key_id": s3.access_key,
        "secret_access_key": secret,
        "path": path,
    }


def relay_config(s3: S3Server, bucket: str, out: Path, *, secret: str, max_retries: int = 2) -> str:
    folder = {
        "id": "dest_folder",
        "name": "Local Folder",
        "kind": "folder",
        "root": str(out),
        "path": "/{repo_id}/{doc_id}_{comp_id}{ext}",
    }
    s3prod = s3_entry(s3, bucket, secret=secret, path="/{received:%Y/%m/%d}/{doc_id}{ext}")
    return acme_config([folder, s3prod], max_retries=max_retries)
