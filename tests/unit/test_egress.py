"""The egress guard's rules (filerelay.egress) as plain functions, and its connect on loopback: a refused
address is refused before any socket connects, an admitted one is connected to."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from marshmallow import ValidationError

from filerelay import egress
from filerelay.destinations.base import REGISTRY
from filerelay.policy import OperatorPolicy
from tests.support.policy import DEFAULT, LOOPBACK

SHARED = OperatorPolicy.from_env(
    {"FILERELAY_EGRESS_DENY": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"}, home=LOOPBACK.folder_roots[0]
)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the metadata service of AWS, GCP, Azure
        "169.254.170.2",  # ECS task credentials
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",  # IPv4-mapped: the kernel connects to 127.0.0.1
        "::ffff:169.254.169.254",
        "0.0.0.0",  # connecting to it reaches this host
        "0.1.2.3",
        "::",
        "fe80::1",
        "fe80::1%1",
        "fd00:ec2::254",  # AWS's metadata service over IPv6
        "100.100.100.200",  # Alibaba Cloud's
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    ],
)
def test_the_defaults_refuse_this_host_link_local_and_metadata_addresses(address: str) -> None:
    assert egress.refusal(address, DEFAULT) is not None


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12::1", "8.8.8.8", "2001:db8::1"])
def test_private_and_public_addresses_are_reachable_by_default(address: str) -> None:
    assert egress.refusal(address, DEFAULT) is None


def test_the_allow_list_opens_loopback_in_every_spelling_and_nothing_else() -> None:
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert egress.refusal(address, LOOPBACK) is None, address
    for address in ("169.254.169.254", "0.0.0.0", "fe80::1"):
        assert egress.refusal(address, LOOPBACK) is not None, address


def test_the_deny_list_wins_over_the_allow_list_and_the_defaults() -> None:
    policy = OperatorPolicy.from_env(
        {"FILERELAY_EGRESS_ALLOW": "127.0.0.0/8,10.0.0.0/8", "FILERELAY_EGRESS_DENY": "127.0.0.2/32,10.9.0.0/16"},
        home=LOOPBACK.folder_roots[0],
    )
    assert egress.refusal("127.0.0.1", policy) is None
    assert egress.refusal("10.1.0.1", policy) is None
    assert "FILERELAY_EGRESS_DENY" in (egress.refusal("127.0.0.2", policy) or "")
    assert "FILERELAY_EGRESS_DENY" in (egress.refusal("10.9.1.1", policy) or "")
    assert "FILERELAY_EGRESS_DENY" in (egress.refusal("::ffff:10.9.1.1", policy) or "")


@pytest.mark.parametrize("address", ["10.0.0.1", "172.31.255.1", "192.168.0.1", "fd00::1", "::ffff:192.168.0.1"])
def test_a_shared_installations_deny_line_refuses_the_private_ranges(address: str) -> None:
    assert "FILERELAY_EGRESS_DENY" in (egress.refusal(address, SHARED) or "")
    assert egress.refusal("8.8.8.8", SHARED) is None


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "127.0.0.1",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "localhost",
        "LocalHost.",
        "api.localhost",
        "2130706433",  # 127.0.0.1, as inet_aton (and some resolvers) read it
        "0x7f.1",
        "127.1",
        "0",
    ],
)
def test_a_literal_address_or_localhost_is_refused_when_written(host: str) -> None:
    assert egress.literal_refusal(host, DEFAULT) is not None


def test_a_name_is_not_resolved_when_written_and_loopback_is_admitted_when_allowed() -> None:
    # "localhost" resolves to loopback, but a name is judged only at connect: here only its spelling counts.
    assert egress.literal_refusal("relay-receiver.example.com", DEFAULT) is None
    assert egress.literal_refusal("10.0.0.5", DEFAULT) is None
    assert egress.literal_refusal("localhost", LOOPBACK) is None
    assert egress.literal_refusal("127.0.0.1", LOOPBACK) is None


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback that tells whether anyone connected (nothing is accepted for them)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def connected(server: socket.socket) -> bool:
    try:
        peer, _ = server.accept()
    except BlockingIOError:
        return False
    peer.close()
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::ffff:127.0.0.1"])
def test_connect_refuses_before_any_socket_connects(listener: socket.socket, host: str) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(egress.EgressRefused, match="egress refused"):
        egress.connect((host, port), DEFAULT, timeout=5)
    assert not connected(listener)


def test_a_name_that_resolves_to_loopback_is_refused_at_connect_naming_both() -> None:
    with pytest.raises(egress.EgressRefused, match=r"localhost resolves to (127\.0\.0\.1|::1) is a loopback address"):
        egress.resolve("localhost", 80, DEFAULT)


def test_connect_goes_to_the_address_it_judged(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with egress.connect(("localhost", port), LOOPBACK, timeout=5) as sock:
        peer = ipaddress.ip_address(sock.getpeername()[0])
        assert peer.is_loopback or (isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None)
    assert connected(listener)


def test_the_refusal_is_found_inside_what_a_library_wraps_it_in(listener: socket.socket) -> None:
    """requests → urllib3 → the guarded connection: the guard's refusal, not a refused connection."""
    from filerelay.destinations.transport import guarded_session

    port = listener.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as info:
        guarded_session(DEFAULT).get(f"http://127.0.0.1:{port}/", timeout=5)
    assert isinstance(egress.refused_in(info.value), egress.EgressRefused)
    assert not connected(listener)
    assert egress.refused_in(requests.ConnectionError("Connection refused")) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa55@hooks.example.com/in?x=1", "https://hooks.example.com/in?x=1"),
        ("https://user@hooks.example.com/in", "https://hooks.example.com/in"),
        ("https://hooks.example.com/a@b", "https://hooks.example.com/a@b"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert egress.without_userinfo(url) == shown
    assert egress.scrub(f"POST {url} failed: it said {url}") == f"POST {shown} failed: it said {shown}"


def test_each_kind_that_connects_refuses_a_loopback_address_when_written() -> None:
    written: dict[str, tuple[str, dict[str, Any]]] = {
        "webhook": ("url", {"url": "http://127.0.0.1:8080/in", "secret": "whsec_" + "a" * 40}),
        "email": ("smtp_host", {"smtp_host": "::1", "from": "a@b.example", "to": ["c@d.example"]}),
        "sftp": (
            "host",
            {"host": "localhost", "username": "u", "password": "p", "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"},
        ),
        "s3": ("endpoint_url", {"bucket": "docs", "endpoint_url": "http://169.254.169.254/"}),
        "azure_blob": ("account_url", {"container": "docs", "account_url": "http://0.0.0.0:10000/a", "sas_token": "s"}),
        "sharepoint": ("site_url", {"site_url": "http://[::ffff:127.0.0.1]/sites/team", "access_token": "t"}),
    }
    for kind, (field, values) in written.items():
        with pytest.raises(ValidationError) as info:
            REGISTRY[kind].validate(values, DEFAULT)
        assert field in info.value.messages_dict, kind


def test_a_service_account_key_whose_token_uri_is_refused_is_refused_when_written() -> None:
    from tests.support.fake_gcs import service_account

    info, _ = service_account("http://169.254.169.254/token")
    values = {"bucket": "docs", "credentials_json": json.dumps(info)}
    with pytest.raises(ValidationError, match="token_uri"):
        REGISTRY["gcs"].validate(values, DEFAULT)
    info, _ = service_account("https://oauth2.googleapis.com/token")
    REGISTRY["gcs"].validate({**values, "credentials_json": json.dumps(info)}, DEFAULT)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only `localhost`; (port, the certificate)."""
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # valid whatever the clock says
        .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], cert_path
    server.shutdown()
    server.server_close()


def test_tls_is_verified_against_the_urls_name_while_the_checked_address_is_connected(
    tls_server: tuple[int, Path],
) -> None:
    """The guard connects to 127.0.0.1, an address; the certificate names only `localhost`: it is accepted
    for https://localhost (SNI and verification use the name), and refused for https://127.0.0.1."""
    from filerelay.destinations.transport import guarded_session

    port, cert = tls_server
    session = guarded_session(LOOPBACK)
    assert session.get(f"https://localhost:{port}/", verify=str(cert), timeout=10).status_code == 204
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://127.0.0.1:{port}/", verify=str(cert), timeout=10)
