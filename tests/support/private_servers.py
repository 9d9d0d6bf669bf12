"""Redis and a PostgreSQL cluster of a benchmark's own, on loopback, to be killed and restarted at will
(bench.chaos) without touching the machine's shared servers.

PostgreSQL refuses to run as root; as root (CI) the cluster is created and run as the `postgres` user
(`runuser -u postgres`), in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.support.processes import free_port

PG_VERSIONS = ("17", "16", "15", "14")


def _pg_bin(name: str) -> str:
    for version in PG_VERSIONS:
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found (Debian: apt-get install -y postgresql)")
    return found


class PrivateRedis:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = work / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with open(self._log, "ab") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start; see {self._log}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: what it held in memory is gone (no persistence), as after a crash without a disk."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()


@contextmanager
def private_redis(work: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(work)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class PrivatePostgres:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.data = work / "pgdata"
        self.socket_dir = work / "pgsocket"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        self._log = work / "postgres.log"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        with open(self._log, "ab") as out:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} {' '.join(args[1:3])} failed; see {self._log}")

    def init(self) -> None:
        for folder in (self.data, self.socket_dir):
            folder.mkdir(parents=True)
        if self._as_postgres:
            # The postgres user must reach its folders through the benchmark's (root's) temp folder.
            for folder in (self.data.parent, *self.data.parent.parents):
                if folder == Path("/"):
                    break
                with contextlib.suppress(PermissionError):
                    folder.chmod(folder.stat().st_mode | 0o011)
            shutil.chown(self.data, "postgres")
            shutil.chown(self.socket_dir, "postgres")
            self._log.touch()
            shutil.chown(self._log, "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _options(self) -> str:
        return f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c max_connections=200"

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self._log), "-o", self._options(), "-w", "start")

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast|immediate`: fast ends every session cleanly; immediate is a crash (the
        server recovers from its WAL on the way up)."""
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self._log), "-o", self._options(), "-m", mode,
            "-w", "restart",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def private_postgres(work: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(work)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
