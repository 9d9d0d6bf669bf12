"""The `email` destination: each document sent as an e-mail attachment over SMTP (smtplib).

The message is written to the SMTP connection as it is produced: headers and a short text part, then the
document base64-encoded 57 bytes to a line straight from staging, so no document (nor its encoded copy)
is ever held in memory. A document larger than `max_attachment_bytes` goes as a signed, expiring download
link instead (filerelay.file_links), like a webhook notification. `Message-ID` is the same for every
attempt of one delivery of one content generation, so a mail system or reader can drop a repeat; and
repeats happen: a mailbox cannot be asked whether an attempt nobody saw end (the worker killed after
the server's 250, the database gone before the outcome was recorded) arrived, so it is sent again.

The server's 250 after the data delivers. Refused credentials, a refused sender or recipients and other
permanent (5xx) answers fail at once; 4xx answers and connection errors are retried.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.policy
import email.utils
import re
import secrets
import smtplib
import ssl
import string
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from filerelay import egress
from filerelay.destinations.base import DestinationError, DestinationKind, Payload, admit_host_of, register
from filerelay.destinations.transport import GuardedSMTP, GuardedSMTPSSL
from filerelay.file_links import LinkError
from filerelay.policy import OperatorPolicy

TIMEOUT = 60
LINE = 57  # bytes per base64 line: 76 characters, as MIME wants
BLOCK = LINE * 1024
SUBJECT_FIELDS = frozenset({"doc_id", "repo_id", "comp_id", "document_id", "workspace", "path", "filename"})
DEFAULT_SUBJECT = "SAP document {doc_id} ({repo_id})"
# Above this a document goes as a link: most mail systems refuse messages past 25-35 MB (base64 adds a third).
MAX_ATTACHMENT = 20 * 1024 * 1024


class EmailSettings(Schema):
    smtp_host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    smtp_port = fields.Integer(load_default=587, validate=validate.Range(min=1, max=65535))
    starttls = fields.Boolean(load_default=True)
    tls = fields.Boolean(load_default=False)  # implicit TLS (port 465)
    username = fields.String(load_default=None)
    password = fields.String(load_default=None)
    from_ = fields.Email(required=True, data_key="from", attribute="from")
    to = fields.List(fields.Email(), required=True, validate=validate.Length(min=1, max=50))
    subject = fields.String(load_default=DEFAULT_SUBJECT, validate=validate.Length(min=1, max=200))
    max_attachment_bytes = fields.Integer(
        load_default=10 * 1024 * 1024, validate=validate.Range(min=0, max=MAX_ATTACHMENT)
    )

    @validates("subject")
    def _subject(self, value: str, **_: Any) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = names - SUBJECT_FIELDS
        if unknown:
            raise ValidationError(f"unknown fields {sorted(unknown)} in subject; use {sorted(SUBJECT_FIELDS)}")

    @validates_schema
    def _tls(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("tls") and data.get("starttls"):
            raise ValidationError("choose tls (implicit, port 465) or starttls (port 587), not both", field_name="tls")
        if data.get("username") and not data.get("password"):
            raise ValidationError("a username needs a password", field_name="password")


class EmailDestination:
    def __init__(self, settings: Mapping[str, Any], secrets_: Mapping[str, Any], policy: OperatorPolicy) -> None:
        self.policy = policy
        self.host: str = settings["smtp_host"]
        self.port: int = settings.get("smtp_port") or 587
        self.starttls: bool = bool(settings.get("starttls"))
        self.tls: bool = bool(settings.get("tls"))
        self.username: str | None = settings.get("username")
        self.sender: str = settings["from"]
        self.recipients: list[str] = list(settings["to"])
        self.subject: str = settings.get("subject") or DEFAULT_SUBJECT
        self.max_attachment: int = settings.get("max_attachment_bytes", 10 * 1024 * 1024)
        self._password: str | None = secrets_.get("password")

    def _connect(self) -> smtplib.SMTP:
        """Connected, in TLS (implicit or STARTTLS unless switched off) and logged in; closed again on failure."""
        where = f"smtp://{self.host}:{self.port}"
        if self.tls:
            smtp: smtplib.SMTP = GuardedSMTPSSL(self.policy, timeout=TIMEOUT, context=ssl.create_default_context())
        else:
            smtp = GuardedSMTP(self.policy, timeout=TIMEOUT)
        try:
            # The greeting's text is the server's: only its code may reach an error.
            code, _ = smtp.connect(self.host, self.port)
        except egress.EgressRefused as exc:
            smtp.close()
            raise DestinationError(f"{where} cannot be reached: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DestinationError(f"{where} cannot be reached: {_failure(exc)}") from exc
        if code != 220:
            smtp.close()
            raise DestinationError(f"{where} greeted with {code}, not 220")
        try:
            # STARTTLS and AUTH greet the server themselves; a plain relay (no TLS, no login) would send
            # MAIL ungreeted, which servers refuse with "503 send HELO first".
            smtp.ehlo_or_helo_if_needed()
            if self.starttls and not self.tls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise DestinationError(
                f"{where}: login refused: {exc.smtp_code}{_status(exc.smtp_error)}", retryable=False
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            smtp.close()
            raise DestinationError(f"{where}: {exc}", retryable=False) from exc  # smtplib's own words
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DestinationError(f"{where}: TLS or login did not complete: {_failure(exc)}") from exc
        return smtp

    def deliver(self, payload: Payload) -> str | None:
        attach = payload.size <= self.max_attachment
        link = None if attach else _link(payload)
        boundary = f"filerelay-{secrets.token_hex(12)}"
        headers = self._headers(payload, boundary)
        # Before connecting: a header that would break the message fails the delivery with nothing sent.
        check_headers([*headers, ("Content-Type", _attachment_type(payload))])
        smtp = self._connect()
        try:
            lines = self._lines(payload, link, headers, boundary)
            _send(smtp, f"smtp://{self.host}:{self.port}", self.sender, self.recipients, lines)
        finally:
            _hang_up(smtp)
        return None

    def _headers(self, payload: Payload, boundary: str) -> list[tuple[str, str]]:
        values = _values(payload)
        return [
            ("From", self.sender),
            ("To", ", ".join(self.recipients)),
            ("Subject", self.subject.format_map({k: values.get(k, "") for k in SUBJECT_FIELDS})),
            ("Date", email.utils.formatdate(localtime=False, usegmt=True)),
            ("Message-ID", f"<{payload.delivery_key or payload.sha256}@filerelay>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/mixed; boundary="{boundary}"'),
        ]

    def _lines(
        self, payload: Payload, link: tuple[str, dt.datetime] | None, headers: list[tuple[str, str]], boundary: str
    ) -> Iterator[bytes]:
        """The message, line by line (CRLF-terminated), the attachment read from staging as it goes."""
        values = _values(payload)
        filename = values["filename"]
        # The policy folds long lines and encodes what is not ASCII (a subject with umlauts) as RFC 2047.
        yield "".join(email.policy.SMTP.fold(name, value) for name, value in headers).encode() + b"\r\n"
        yield f"--{boundary}\r\n".encode()
        yield b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        yield from _base64_lines(_text_part(payload, values, link).encode())
        if link is None:
            kind = _attachment_type(payload)
            yield f"--{boundary}\r\n".encode()
            yield f'Content-Type: {kind}; name="{_quoted(filename)}"\r\n'.encode()
            yield f'Content-Disposition: attachment; filename="{_quoted(filename)}"\r\n'.encode()
            yield b"Content-Transfer-Encoding: base64\r\n\r\n"
            with payload.open() as body:
                yield from _attachment_lines(body, payload.size)
        yield f"--{boundary}--\r\n".encode()

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        raise DestinationError("an e-mail keeps no copy to read back", retryable=False)

    def check(self) -> None:
        """Connect, TLS and log in as a delivery would, then NOOP: nothing is sent."""
        smtp = self._connect()
        try:
            code, message = smtp.noop()
            if code >= 400:
                raise DestinationError(f"smtp://{self.host}:{self.port} answered {code}{_status(message)}")
        finally:
            _hang_up(smtp)

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        return False  # a mailbox cannot be asked; the Message-ID lets a reader drop a repeat


def _values(payload: Payload) -> dict[str, str]:
    filename = payload.path.rsplit("/", 1)[-1] or "document"
    return {**payload.identity, "path": payload.path, "filename": filename}


def _attachment_type(payload: Payload) -> str:
    return payload.content_type.replace('"', "")


# C0 and C1 controls (CR, LF, NUL, TAB, NEL...) and the Unicode line and paragraph separators: each can
# end a header line on the way to the wire (the header folding splits at any line boundary Python knows),
# letting a document's values add headers (Bcc) or a body of their own.
_CONTROL = frozenset({"Cc", "Zl", "Zp"})


def check_headers(headers: Sequence[tuple[str, str]]) -> None:
    """Refuse, for good, a message whose rendered headers hold a control character."""
    for name, value in headers:
        for position, char in enumerate(value):
            if unicodedata.category(char) in _CONTROL:
                raise DestinationError(
                    f"the e-mail header {name} would hold the control character U+{ord(char):04X} at position "
                    f"{position} (from the document's values): nothing was sent",
                    retryable=False,
                )


def _hang_up(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):  # delivered or not, the answer is in: QUIT is a courtesy
        smtp.quit()
    smtp.close()  # and the socket is closed even when QUIT could not be sent


def _link(payload: Payload) -> tuple[str, dt.datetime]:
    if payload.link is None:
        raise DestinationError("the document is above max_attachment_bytes and no link can be made", retryable=False)
    try:
        return payload.link()
    except LinkError as exc:
        raise DestinationError(f"the document is above max_attachment_bytes: {exc}", retryable=False) from exc


def _text_part(payload: Payload, values: Mapping[str, str], link: tuple[str, dt.datetime] | None) -> str:
    lines = [
        f"SAP document {values.get('doc_id', '')}, component {values.get('comp_id', '')}, "
        f"content repository {values.get('repo_id', '')}.",
        f"{payload.size:,} bytes, {payload.content_type}, sha256 {payload.sha256}.",
    ]
    if link is not None:
        url, expires = link
        lines.append(f"It is too large to attach. Download it until {expires:%Y-%m-%d %H:%M} UTC:\n{url}")
    return "\n".join(lines) + "\n"


def _base64_lines(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), LINE):
        yield base64.b64encode(data[start : start + LINE]) + b"\r\n"


def _attachment_lines(body: BinaryIO, size: int) -> Iterator[bytes]:
    sent = 0
    while block := body.read(BLOCK):
        sent += len(block)
        # Whole lines per block (BLOCK is a multiple of LINE), so lines stay 76 characters across blocks.
        yield b"".join(_base64_lines(block))
    if sent != size:
        raise DestinationError(f"staging held {sent} of {size} bytes", retryable=False)


def _send(smtp: smtplib.SMTP, where: str, sender: str, recipients: list[str], lines: Iterator[bytes]) -> None:
    """MAIL, RCPT, DATA with the message streamed; no line of ours starts with a dot (headers, boundaries
    and base64), so nothing needs dot-stuffing."""
    try:
        code, message = smtp.mail(sender)
        if code != 250:
            raise _refused(code, message, f"{where} refused the sender {sender}")
        for recipient in recipients:  # every recipient or none: a partial send would be retried for all
            code, message = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise _refused(code, message, f"{where} did not take the recipient {recipient}")
        smtp.putcmd("data")
        code, message = smtp.getreply()
        if code != 354:
            raise _refused(code, message, f"{where} refused DATA")
        for chunk in lines:
            smtp.send(chunk)
        smtp.send(b".\r\n")
        code, message = smtp.getreply()
        if code != 250:
            raise _refused(code, message, f"{where} refused the message")
    except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
        raise DestinationError(f"{where}: the connection broke: {_failure(exc)}") from exc


def _refused(code: int, message: bytes, what: str) -> DestinationError:
    return DestinationError(f"{what}: {code}{_status(message)}", retryable=code < 500)


_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def _status(message: bytes | str) -> str:
    """The enhanced status code (RFC 3463, `5.1.1`) a reply starts with, if any: the SMTP server's own
    code. The rest of its text is the server's, a server the workspace chose, and is not repeated."""
    first = _text(message).split(" ", 1)[0].strip()
    return f" {first}" if _ENHANCED.match(first) else ""


def _failure(exc: BaseException) -> str:
    """What failed, without text a server sent: a reply's code, or the local error."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}{_status(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPException):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"  # a local OSError (refused, reset, timed out, TLS verification)


def _text(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _quoted(name: str) -> str:
    """A file name fit for a quoted MIME parameter: ASCII, no quotes, backslashes or line breaks."""
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


KIND = register(
    DestinationKind(
        name="email",
        schema=EmailSettings,
        build=EmailDestination,
        pushed=True,
        secret_fields=frozenset({"password"}),
        readable=False,
        admit=admit_host_of("smtp_host", url=False),
    )
)
