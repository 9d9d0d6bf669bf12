"""The `s3` kind against a second S3-compatible server, moto's (its server mode speaks S3's REST protocol
over HTTP): what R2, MinIO or Wasabi users configure, `endpoint_url` and `addressing_style: path`, carries
both upload paths and the read-back the same way SeaweedFS does."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from filerelay.destinations import s3
from tests.support.destination_kinds import PDF, payload, sized
from tests.support.policy import LOOPBACK
from tests.support.processes import free_port

BUCKET = "compatible"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.mark.parametrize("size", [len(PDF), 20 * 1024 * 1024 + 9])
def test_path_style_to_another_s3_compatible_server(moto: str, size: int) -> None:
    settings, secrets = s3.KIND.validate(
        {
            "bucket": BUCKET,
            "endpoint_url": moto,
            "addressing_style": "path",
            "access_key_id": "k",
            "secret_access_key": "s",
        },
        LOOPBACK,
    )
    target = s3.S3Destination(settings, secrets, LOOPBACK)
    data = sized(size)
    target.deliver(payload(data))
    assert hashlib.sha256(b"".join(target.read("/Z1/DOC1.pdf"))).hexdigest() == hashlib.sha256(data).hexdigest()
    assert target.holds("/Z1/DOC1.pdf", sha256=hashlib.sha256(data).hexdigest(), size=size) is True
    target.check()
