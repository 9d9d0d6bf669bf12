"""The `pull` destination: an integration (an ERP) fetches documents over the Files API itself.

No worker ever delivers to it. Its delivery waits `pending` until the integration reports back with
PATCH /files/{id} (filerelay.files.report_export); the retry TTL still applies, so a document nobody
picks up fails visibly instead of waiting for ever.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from marshmallow import Schema

from filerelay.destinations.base import DestinationError, DestinationKind, Payload, register
from filerelay.policy import OperatorPolicy

NAME = "pull"


class PullSettings(Schema):
    """Nothing beyond the settings every destination has (id, name, path)."""


class PullClient:
    def deliver(self, payload: Payload) -> str | None:
        # Reaching this is a bug (workers never claim pull deliveries); failing for good says so loudly.
        raise DestinationError("a pull destination is fetched by its integration, never pushed to", retryable=False)

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        raise DestinationError("the integration keeps its copy; FileRelay cannot read it back")

    def check(self) -> None:
        """Nothing to reach: the integration comes to FileRelay."""

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        return False  # the integration's copy is out of sight


def build(_settings: Mapping[str, Any], _secrets: Mapping[str, Any], _policy: OperatorPolicy) -> PullClient:
    return PullClient()


KIND = register(DestinationKind(name=NAME, schema=PullSettings, build=build, pushed=False, readable=False))
