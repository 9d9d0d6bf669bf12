"""Azurite, Microsoft's Azure Storage emulator (npm `azurite`), serving Blob storage on loopback for the
azure_blob destination's tests: the real service's REST protocol, its authentication (the emulator's
well-known account and key) and its refusals (a missing container, a wrong key). Stoppable and startable
again on the same port with the same data, for outages."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ended, free_port, listening
from tests.support.tools import installed

ACCOUNT = "devstoreaccount1"
# The emulator's published development key (learn.microsoft.com, "Use Azurite"): not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str:
    return installed(
        "azurite-blob",
        ci="azurite is missing: .ci/run installs it with `npm install -g azurite`",
        here="no Azurite here (npm install -g azurite)",
    )


@dataclass
class Azurite:
    location: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.account_url};"

    def start(self) -> None:
        self.process = listening(
            [
                azurite_binary(),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--silent",
                # The SDK may speak a newer API version than this Azurite knows; the requests it sends are the same.
                "--skipApiVersionCheck",
            ],
            self.port,
            "Azurite",
        )

    def stop(self) -> None:
        ended(self.process)
        self.process = None


@contextmanager
def azurite(location: Path) -> Iterator[Azurite]:
    location.mkdir(parents=True, exist_ok=True)
    server = Azurite(location=location, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
