"""Clients that send their request heads a byte a second do not keep SAP's `create` waiting: the real
`filerelay api` (gunicorn, 8 threads per process) with 64 of them trickling."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support.processes import environment, filerelay, free_port
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 64
TRICKLE_SECONDS = 30.0


@contextmanager
def api_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`filerelay api` with one worker process of 8 threads (the default per process) over a migrated,
    configured SQLite file. One process, so that no slow client can land on another process by chance and
    leave this one's threads free: without the protection, 8 slow clients would be enough to stall it."""
    home, port = tmp_path / "home", free_port()
    env = environment(home, f"sqlite:///{home / 'filerelay.db'}")
    env.pop("FILERELAY_BROKER_URL", None)
    cli = [sys.executable, "-m", "filerelay.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, timeout=120, capture_output=True)
    subprocess.run(
        [*cli, "config", "apply", env["FILERELAY_CONFIG"]], env=env, check=True, timeout=120, capture_output=True
    )
    with filerelay(["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, port) as proc:
        yield port, proc


def kept_alive(port: int) -> socket.socket:
    """A connection that has had one ordinary request answered and is kept alive for the next."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    assert response.status == 200
    response.read()
    assert conn.sock is not None
    assert not response.will_close
    sock: socket.socket = conn.sock
    conn.sock = None  # ours now: the HTTPConnection must not close it
    return sock


class Trickle:
    """SLOW_CLIENTS connections, each sending a request head one byte a second (never finishing it),
    for TRICKLE_SECONDS: new ones, or ones kept alive after an ordinary request (their second request is
    the slow one). `closed_by_server` counts the ones the server has hung up on."""

    HEAD = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000

    def __init__(self, port: int, *, kept_alive_first: bool) -> None:
        self.sockets = [
            kept_alive(port) if kept_alive_first else socket.create_connection(("127.0.0.1", port))
            for _ in range(SLOW_CLIENTS)
        ]
        self.sent = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + TRICKLE_SECONDS
        while time.monotonic() < end and not self._stop.is_set():
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # hung up on: closed_by_server tells
                    sock.send(self.HEAD[self.sent : self.sent + 1])
            self.sent += 1
            self._stop.wait(1.0)
        # Done, then hang up: threads held by these heads come free only now, so a create answered
        # after this point was waiting for them.
        self.done.set()
        for sock in self.sockets:
            sock.close()

    def start(self) -> None:
        self._thread.start()

    def closed_by_server(self) -> int:
        readable, _, _ = select.select(self.sockets, [], [], 0)
        return sum(1 for sock in readable if sock.recv(1, socket.MSG_PEEK) == b"")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("kept_alive_first", [False, True], ids=["new connections", "kept-alive connections"])
def test_an_ordinary_create_is_answered_while_64_clients_trickle_their_headers(
    tmp_path: Path, kept_alive_first: bool
) -> None:
    with ExitStack() as stack:
        port, _ = stack.enter_context(api_server(tmp_path))
        trickle = Trickle(port, kept_alive_first=kept_alive_first)
        stack.callback(trickle.stop)
        trickle.start()
        # Every slow client has sent its first bytes (past gunicorn's wait for a first byte), so each would
        # be in the middle of its headers on a thread of its own if connections took threads early.
        while trickle.sent < 3:
            time.sleep(0.1)
        sap = SapClient(f"http://127.0.0.1:{port}/archivelink/acme/production")
        reply = sap.create("SLOWLORIS1", "data", b"%PDF-1.4 an ordinary invoice", "application/pdf")
        # Answered while every slow client is still connected and trickling, not after they stopped.
        assert not trickle.done.is_set(), "the create was answered only once the slow clients stopped"
        assert reply.status == 201, reply.error
        assert trickle.closed_by_server() == 0
        assert sap.get("SLOWLORIS1").body == b"%PDF-1.4 an ordinary invoice"


def test_heads_split_over_packets_and_kept_alive_connections_are_served(tmp_path: Path) -> None:
    """The worker gathers heads itself: one arriving in pieces, a second request on a kept-alive
    connection and a pipelined pair all reach the application whole."""
    with api_server(tmp_path) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for piece in (b"GET /rea", b"dyz HTTP/1.1\r\nHo", b"st: 127.0.0.1\r\n", b"\r\n"):
                sock.sendall(piece)
                time.sleep(0.2)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        conn.close()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            request = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            sock.sendall(request + request[:10])
            time.sleep(0.5)
            sock.sendall(request[10:])
            received = b""
            while received.count(b"HTTP/1.1 200") < 2:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk


def test_a_stopping_server_closes_unfinished_heads_instead_of_waiting_for_them(tmp_path: Path) -> None:
    """gunicorn waits up to its graceful timeout (30 s) for open connections; a head that is still
    coming is closed a moment after the stop instead, so slow clients cannot hold a deployment's restart."""
    with api_server(tmp_path) as (port, proc):
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        for sock in slow:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        for sock in slow:
            sock.settimeout(5)
            assert sock.recv(1) == b""  # hung up on, without an answer
            sock.close()
