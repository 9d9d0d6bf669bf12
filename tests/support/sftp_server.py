"""A real SSH/SFTP server on loopback (asyncssh, in a thread of its own) for the sftp destination's tests:
password or public-key login for one user, chrooted into a folder, with the OpenSSH extensions a real
server offers (posix-rename@openssh.com). It can be stopped and started again on the same port (an
outage), and started with another host key (a replaced or impersonated server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from tests.support.background import running

USER = "relay"
PASSWORD = "relay-password"


def new_host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def public_line(key: asyncssh.SSHKey) -> str:
    """The key as a known_hosts line holds it: `ssh-ed25519 AAAA…`."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


@dataclass
class SftpServer:
    root: Path
    host_key: asyncssh.SSHKey = field(default_factory=new_host_key)
    client_key: asyncssh.SSHKey = field(default_factory=new_host_key)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _acceptor: Any = None
    _connections: set[Any] = field(default_factory=set)

    @property
    def host_key_line(self) -> str:
        return public_line(self.host_key)

    @property
    def client_key_text(self) -> str:
        return self.client_key.export_private_key("openssh").decode()

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the SFTP server did not start")

    def _run(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._acceptor = self._loop.run_until_complete(self._listen())
        self.port = self._acceptor.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _listen(self) -> Any:
        server = self
        authorized = asyncssh.import_authorized_keys(self.client_key.export_public_key("openssh").decode())

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == USER and password == PASSWORD

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return username == USER and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None

            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                server._connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                pass

        return await asyncssh.listen(
            "127.0.0.1",
            self.port,
            server_factory=Server,
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(server.root).encode()),
            allow_scp=False,
            reuse_address=True,
        )

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, acceptor = self._loop, self._acceptor

        async def close() -> None:
            acceptor.close()
            await acceptor.wait_closed()
            # An outage ends the sessions too, as a stopped sshd's do.
            for conn in list(self._connections):
                conn.close()
                await conn.wait_closed()
            self._connections.clear()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()
        self._loop = None


@contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    root.mkdir(parents=True, exist_ok=True)
    with running(SftpServer(root=root)) as server:
        yield server
