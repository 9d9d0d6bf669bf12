"""The folder destination on a real filesystem: where files land, what it refuses, reading back,
`holds`, `check`, and the errors an admin reads."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from filerelay.destinations.base import DestinationError, Payload
from filerelay.destinations.folder import FolderClient
from tests.support.policy import LOOPBACK

DATA = bytes(range(256)) * 10
ROOTS = LOOPBACK.folder_roots


def payload(path: str, data: bytes = DATA) -> Payload:
    sha = hashlib.sha256(data).hexdigest()
    return Payload(open=lambda: io.BytesIO(data), size=len(data), sha256=sha, content_type="x/y", path=path)


def test_files_land_under_the_root_at_their_path(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path / "out"), ROOTS)
    assert client.deliver(payload("/X/Xfile.pdf")) is None  # at the template's path
    assert (tmp_path / "out" / "X" / "Xfile.pdf").read_bytes() == DATA
    assert [p.name for p in (tmp_path / "out" / "X").iterdir()] == ["Xfile.pdf"]  # no temporary left


@pytest.mark.parametrize("path", ["/../escape.pdf", "/a/../../escape.pdf", "/", ""])
def test_a_path_outside_the_root_or_the_root_itself_is_refused_for_good(tmp_path: Path, path: str) -> None:
    client = FolderClient(str(tmp_path / "out"), ROOTS)
    with pytest.raises(DestinationError) as info:
        client.deliver(payload(path))
    assert str(info.value) == f"path {path!r} leaves the folder {tmp_path / 'out'}"
    assert info.value.retryable is False
    assert not (tmp_path / "escape.pdf").exists()


def test_reading_back_whole_and_by_range(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path), ROOTS)
    client.deliver(payload("/r.pdf"))
    assert b"".join(client.read("/r.pdf")) == DATA
    assert b"".join(client.read("/r.pdf", 7, 1)) == DATA[7:8]
    assert b"".join(client.read("/r.pdf", 100, 50)) == DATA[100:150]
    assert b"".join(client.read("/r.pdf", len(DATA) - 2)) == DATA[-2:]
    with pytest.raises(DestinationError) as info:
        client.read("/missing.pdf")
    assert str(info.value) == f"cannot read {tmp_path / 'missing.pdf'}: No such file or directory"


def test_holds_compares_size_and_sha256(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path), ROOTS)
    sha = hashlib.sha256(DATA).hexdigest()
    assert not client.holds("/h.pdf", sha256=sha, size=len(DATA))
    client.deliver(payload("/h.pdf"))
    assert client.holds("/h.pdf", sha256=sha, size=len(DATA))
    assert not client.holds("/h.pdf", sha256=sha, size=len(DATA) - 1)
    (tmp_path / "h.pdf").write_bytes(DATA[:-1] + b"\0")  # same size, other bytes
    assert not client.holds("/h.pdf", sha256=sha, size=len(DATA))


def test_check_creates_a_missing_root_and_passes_again(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path / "a" / "b" / "c"), ROOTS)
    client.check()
    client.check()
    assert (tmp_path / "a" / "b" / "c").is_dir()


def test_write_errors_name_the_file_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_bytes(b"a file where a folder should be")
    client = FolderClient(str(tmp_path), ROOTS)
    with pytest.raises(DestinationError) as info:
        client.deliver(payload("/blocked/x.pdf"))
    assert str(info.value) == f"cannot write {tmp_path / 'blocked' / 'x.pdf'}: File exists"
    assert info.value.retryable


def test_a_killed_attempt_s_temporary_file_is_cleared_by_the_next(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path), ROOTS)
    (tmp_path / "Z1").mkdir()
    left = tmp_path / "Z1" / ".x[1].pdf.0badc0de.part"  # what SIGKILL mid-write leaves
    left.write_bytes(b"half")
    other = tmp_path / "Z1" / ".y.pdf.0badc0de.part"  # another path's: not this attempt's to clear
    other.write_bytes(b"half")
    client.deliver(payload("/Z1/x[1].pdf"))
    assert sorted(p.name for p in (tmp_path / "Z1").iterdir()) == [".y.pdf.0badc0de.part", "x[1].pdf"]


# --- the operator's roots, checked again whenever the client acts -------------------------------------


def test_a_root_replaced_by_a_symlink_to_outside_is_refused_at_every_use(tmp_path: Path) -> None:
    roots = ((tmp_path / "roots").resolve(),)
    (tmp_path / "roots" / "team").mkdir(parents=True)
    (tmp_path / "theirs").mkdir()
    client = FolderClient(str(tmp_path / "roots" / "team"), roots)
    client.deliver(payload("/x.pdf"))
    sha = hashlib.sha256(DATA).hexdigest()

    (tmp_path / "roots" / "team").rename(tmp_path / "roots" / "team-moved")
    (tmp_path / "roots" / "team").symlink_to(tmp_path / "theirs")
    (tmp_path / "theirs" / "x.pdf").write_bytes(DATA)  # even the very bytes: they are not where they were

    for use in (
        lambda: client.deliver(payload("/y.pdf")),
        lambda: client.read("/x.pdf"),
        lambda: client.read_checked("/x.pdf", sha256=sha, size=len(DATA)),
        lambda: client.holds("/x.pdf", sha256=sha, size=len(DATA)),
        client.check,
    ):
        with pytest.raises(DestinationError, match=r"^refused: root .* is outside the operator's folder roots") as info:
            use()
        assert info.value.retryable is False
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["x.pdf"]


def test_a_root_that_resolves_elsewhere_inside_the_roots_is_refused_too(tmp_path: Path) -> None:
    # Still inside the roots, but not the directory this client was built for (another team's, say).
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    client = FolderClient(str(tmp_path / "a"), ROOTS)
    (tmp_path / "a").rmdir()
    (tmp_path / "a").symlink_to(tmp_path / "b")
    with pytest.raises(DestinationError, match=f"now resolves to {tmp_path / 'b'}"):
        client.deliver(payload("/x.pdf"))
    assert list((tmp_path / "b").iterdir()) == []


def test_a_checked_read_serves_only_the_delivered_bytes(tmp_path: Path) -> None:
    client = FolderClient(str(tmp_path), ROOTS)
    client.deliver(payload("/r.pdf"))
    sha = hashlib.sha256(DATA).hexdigest()
    assert b"".join(client.read_checked("/r.pdf", sha256=sha, size=len(DATA))) == DATA
    assert b"".join(client.read_checked("/r.pdf", sha256=sha, size=len(DATA), start=7, length=3)) == DATA[7:10]
    for other in (DATA[:-1] + b"\0", DATA + b"\0", b""):
        (tmp_path / "r.pdf").write_bytes(other)
        with pytest.raises(DestinationError, match="is not the delivered document") as info:
            client.read_checked("/r.pdf", sha256=sha, size=len(DATA))
        assert info.value.retryable is False
