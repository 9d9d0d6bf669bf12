"""Reviewing and activating certificates SAP sent with putCert, over REST."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization

from filerelay.api import create_app
from filerelay.runtime import Runtime
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient
from tests.support.signing import certificate

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
BASE = "/api/acme/production/certificates"


def test_put_cert_then_list_activate_and_revoke(configured: Runtime, sap: SapClient) -> None:
    cert = certificate(configured.clock.now())
    der = cert.public_bytes(serialization.Encoding.DER)
    reply = sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", der)
    assert reply.status == 200, reply.error
    client = create_app(runtime=configured).test_client()

    (listed,) = client.get(BASE, headers=HEADERS).get_json()["data"]
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    assert listed == {
        "repo_id": "Z1",
        "auth_id": "CN=S4H",
        "fingerprint": fingerprint,
        "subject": "CN=S4H",
        "issuer": "CN=S4H",
        "serial": "1234abcd",
        "not_before": "2026-04-03T10:30:00Z",
        "not_after": "2027-04-04T10:30:00Z",
        "active": False,
        "received_at": "2026-04-04T10:30:00Z",
        "activated_at": None,
    }
    # Sending the same certificate again changes nothing.
    assert sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", der).status == 200
    assert len(client.get(BASE, headers=HEADERS).get_json()["data"]) == 1

    activated = client.post(f"{BASE}/Z1/{fingerprint.upper()}/activate", headers=HEADERS).get_json()["data"]
    assert activated["active"] is True
    assert activated["activated_at"] == "2026-04-04T10:30:00Z"
    assert client.get(f"{BASE}?repo_id=Z2", headers=HEADERS).get_json()["data"] == []
    revoked = client.post(f"{BASE}/Z1/{fingerprint}/revoke", headers=HEADERS).get_json()["data"]
    assert (revoked["active"], revoked["activated_at"]) == (False, None)


def test_unknown_certificate_or_repository_is_404(configured: Runtime) -> None:
    client = create_app(runtime=configured).test_client()
    reply = client.post(f"{BASE}/Z1/{'ab' * 32}/activate", headers=HEADERS)
    assert reply.status_code == 404
    assert reply.get_json()["errors"][0]["detail"] == f"no certificate {'ab' * 32} for repository Z1"


def test_put_cert_refuses_what_is_not_a_certificate(configured: Runtime, sap: SapClient) -> None:
    reply = sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", b"not a certificate")
    assert reply.status == 406
    assert reply.error == "the certificate could not be read (DER, PEM, PKCS#7 or Base64 expected)"
    assert sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1", b"x").status == 400
    too_big = sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", b"x" * (64 * 1024 + 1))
    assert too_big.status == 413
