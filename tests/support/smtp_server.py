"""A real SMTP server on loopback (aiosmtpd) for the email destination's tests: AUTH LOGIN/PLAIN for one
user, every accepted message kept on disk as received, refusals on request (a recipient it does not
know, a full mailbox), and stoppable and startable again on the same port for outages."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.background import running
from tests.support.processes import free_port

USER = "relay"
PASSWORD = "smtp-password"


@dataclass
class SmtpServer:
    folder: Path
    port: int = 0
    # Recipients answered 550 (unknown mailbox), and how many messages to answer 452 (try later) first.
    unknown: set[str] = field(default_factory=set)
    busy: int = 0
    received: list[Path] = field(default_factory=list)
    _controller: Controller | None = None

    def start(self) -> None:
        # aiosmtpd's Controller checks it is up by connecting to the port it was given: it must be a real one.
        self.port = self.port or free_port()
        server = self

        class Handler:
            async def handle_RCPT(self, smtp: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                if address in server.unknown:
                    return "550 5.1.1 no such mailbox here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                if server.busy:
                    server.busy -= 1
                    return "452 4.3.1 mailbox full, try later"
                path = server.folder / f"message-{len(server.received)}.eml"
                path.write_bytes(envelope.original_content or envelope.content)
                server.received.append(path)
                return "250 Message accepted"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        self._controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_require_tls=False,  # a test on loopback; FileRelay itself uses STARTTLS unless told not to
            # smtplib tries CRAM-MD5, PLAIN, LOGIN in turn after a refusal; aiosmtpd's LOGIN then waits for
            # a username smtplib already sent. PLAIN is what the tests mean.
            auth_exclude_mechanism=["LOGIN"],
            data_size_limit=64 * 1024 * 1024,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message(self, n: int = 0) -> EmailMessage:
        parsed = email.message_from_bytes(self.received[n].read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@contextmanager
def smtp_server(folder: Path) -> Iterator[SmtpServer]:
    folder.mkdir(parents=True, exist_ok=True)
    with running(SmtpServer(folder=folder)) as server:
        yield server
