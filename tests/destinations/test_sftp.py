"""The `sftp` destination through the delivery engine against a real SSH/SFTP server on loopback
(tests/support/sftp_server.py): what lands, how it lands (a temporary name, then an atomic rename), the
pinned host key, outages, refused credentials, and reading back."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from marshmallow import ValidationError

from filerelay.clock import FrozenClock
from filerelay.destinations import sftp
from filerelay.destinations.base import DestinationError, Payload, read_verified
from filerelay.runtime import Runtime
from tests.support.destination_kinds import (
    PDF,
    assert_reads_back,
    attempted,
    create,
    delivered,
    delivered_after_an_outage,
    sized,
    wire,
)
from tests.support.documents import failed_at_once
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard
from tests.support.sftp_server import PASSWORD, USER, SftpServer, new_host_key, public_line, sftp_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with sftp_server(tmp_path / "sftp-root") as live:
        (live.root / "inbox").mkdir()
        yield live


def settings_for(server: SftpServer, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": USER,
        "password": PASSWORD,
        "host_key": server.host_key_line,
        "root": "/inbox",
        **changes,
    }
    return {k: v for k, v in values.items() if v is not None}


def client(server: SftpServer, **changes: object) -> sftp.SftpDestination:
    settings, secrets = sftp.KIND.validate(settings_for(server, **changes), LOOPBACK)
    return sftp.SftpDestination(settings, secrets, LOOPBACK)


def leftovers(server: SftpServer) -> list[str]:
    return [p.name for p in server.root.rglob("*.part")]


@pytest.mark.parametrize("size", [len(PDF), 20 * 1024 * 1024 + 3])
def test_a_document_lands_byte_identical_under_its_name_and_nothing_else(
    runtime: Runtime, server: SftpServer, engine: object, size: int
) -> None:
    data = sized(size)
    delivered(runtime, "sftp", settings_for(server), data)
    landed = server.root / "inbox" / "Z1" / "DOC1.pdf"
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert leftovers(server) == []


def test_a_private_key_logs_in_as_well(runtime: Runtime, server: SftpServer, engine: object) -> None:
    delivered(runtime, "sftp", settings_for(server, password=None, private_key=server.client_key_text), PDF)


def test_a_stopped_server_means_retrying_then_delivered_when_it_is_back(
    runtime: Runtime, server: SftpServer, clock: FrozenClock, engine: object
) -> None:
    wire(runtime, "sftp", settings_for(server))
    delivery_id = create(runtime, "sftp", PDF)
    # The same port and host key when it is back.
    delivered_after_an_outage(
        runtime, clock, delivery_id, stop=server.stop, start=server.start, error="cannot be reached"
    )


def test_a_wrong_password_fails_at_once_with_the_reason(runtime: Runtime, server: SftpServer, engine: object) -> None:
    wire(runtime, "sftp", settings_for(server, password="not-the-password"))
    delivery_id = create(runtime, "sftp", PDF)
    assert "authentication failed" in failed_at_once(runtime, delivery_id)


def test_a_changed_host_key_is_refused_before_logging_in(runtime: Runtime, server: SftpServer, engine: object) -> None:
    wire(runtime, "sftp", settings_for(server))
    server.stop()
    server.host_key = new_host_key()  # the same address answers with another key
    server.start()
    delivery_id = create(runtime, "sftp", PDF)

    row = attempted(runtime, delivery_id)
    assert row.status == "failed"
    assert "not the pinned one" in (row.last_error or "")
    assert not (server.root / "inbox" / "Z1").exists()


class Killed(BaseException):
    """What the upload sees of a worker killed mid-write: nothing of FileRelay's clean-up runs."""


class DyingStream(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= len(PDF) // 2:
            raise Killed
        # Small reads, so the upload is well under way when it dies.
        return super().read(4096 if size is None or size < 0 else min(size, 4096))


def test_a_killed_upload_leaves_no_part_file_once_the_next_attempt_ran(server: SftpServer) -> None:
    target = client(server)
    sha = hashlib.sha256(PDF).hexdigest()
    dying = Payload(
        open=lambda: DyingStream(PDF), size=len(PDF), sha256=sha, content_type="application/pdf", path="/Z1/DOC1.pdf"
    )
    with pytest.raises(Killed):
        target.deliver(dying)
    assert len(leftovers(server)) == 1  # what the killed worker left on the partner's server

    target.deliver(
        Payload(
            open=lambda: io.BytesIO(PDF), size=len(PDF), sha256=sha, content_type="application/pdf", path="/Z1/DOC1.pdf"
        )
    )
    assert (server.root / "inbox" / "Z1" / "DOC1.pdf").read_bytes() == PDF
    assert leftovers(server) == []


def test_a_failed_re_delivery_leaves_the_previous_copy_intact(server: SftpServer) -> None:
    target = client(server)
    good = Payload(
        open=lambda: io.BytesIO(PDF),
        size=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(),
        content_type="application/pdf",
        path="/Z1/DOC1.pdf",
    )
    target.deliver(good)
    new = PDF.replace(b"EOF", b"XXX")
    # The staged bytes of the new version do not match its sha256 (a disk error): caught before the rename.
    broken = Payload(
        open=lambda: io.BytesIO(new),
        size=len(new),
        sha256=hashlib.sha256(b"other").hexdigest(),
        content_type="application/pdf",
        path="/Z1/DOC1.pdf",
    )
    with pytest.raises(DestinationError, match="sha256 differs"):
        target.deliver(broken)
    assert (server.root / "inbox" / "Z1" / "DOC1.pdf").read_bytes() == PDF
    assert leftovers(server) == []


def test_read_back_holds_and_check(server: SftpServer) -> None:
    target = client(server)
    assert_reads_back(target, missing="FileNotFoundError")
    target.check()
    with pytest.raises(DestinationError, match="/nowhere"):
        client(server, root="/nowhere").check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host_key": "AAAAC3NzaC1lZDI1NTE5"}, "public key line"),
        ({"password": None}, "password or a private_key"),
        ({"password": None, "private_key": "-----BEGIN NOTHING-----"}, "private_key"),
        ({"root": "relative/path"}, "absolute"),
        ({"port": 70000}, "port"),
    ],
)
def test_settings_are_checked(server: SftpServer, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        sftp.KIND.validate(settings_for(server, **changes), LOOPBACK)


def test_the_password_and_key_are_secrets(server: SftpServer) -> None:
    key = server.client_key_text  # OpenSSH's export differs each time (a random check number)
    settings, secrets = sftp.KIND.validate(settings_for(server, private_key=key), LOOPBACK)
    assert "password" not in settings
    assert "private_key" not in settings
    assert secrets == {"password": PASSWORD, "private_key": key}
    assert public_line(server.host_key) == settings["host_key"]


def test_read_back_serves_only_the_delivered_bytes(server: SftpServer) -> None:
    # Over a chunk, so the check and the ranged read both cross chunk boundaries on the one handle.
    data = sized(2 * sftp.CHUNK + 5)
    sha = hashlib.sha256(data).hexdigest()
    target = client(server)
    target.deliver(
        Payload(open=lambda: io.BytesIO(data), size=len(data), sha256=sha, content_type="x/y", path="/Z1/DOC1.pdf")
    )
    for start, length in [(0, None), (sftp.CHUNK - 2, 7), (len(data) - 3, None)]:
        got = b"".join(read_verified(target, "/Z1/DOC1.pdf", sha256=sha, size=len(data), start=start, length=length))
        assert got == data[start : None if length is None else start + length]

    # Replaced on the server after its delivery (another writer, the same size): refused, nothing served.
    (server.root / "inbox" / "Z1" / "DOC1.pdf").write_bytes(data[:-1] + b"\0")
    with pytest.raises(DestinationError, match="is not the delivered document") as refused:
        next(read_verified(target, "/Z1/DOC1.pdf", sha256=sha, size=len(data), start=0, length=4))
    assert refused.value.retryable is False


def test_the_default_policy_refuses_the_loopback_server_at_connect(server: SftpServer) -> None:
    """Written under LOOPBACK (the tests' policy), connected under the defaults: paramiko gets no socket."""
    settings, secrets = sftp.KIND.validate(settings_for(server), LOOPBACK)
    with pytest.raises(DestinationError) as info:
        sftp.SftpDestination(settings, secrets, DEFAULT).check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable


@pytest.mark.parametrize("host", ["::1", "169.254.169.254", "localhost"])
def test_a_host_the_policy_refuses_is_refused_when_written(server: SftpServer, host: str) -> None:
    with pytest.raises(ValidationError, match="host"):
        sftp.KIND.validate(settings_for(server, host=host), DEFAULT)
