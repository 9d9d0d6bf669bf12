"""`filerelay up` hands out the demo workspace's admin key only for the demo configuration, on loopback."""

from __future__ import annotations

import pytest

from filerelay.cli.supervisor import offers_demo_key


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_the_demo_on_loopback_gets_a_key(host: str) -> None:
    assert offers_demo_key(["demo/local"], host) is True


@pytest.mark.parametrize(
    ("workspaces", "host"),
    [
        (["demo/local"], "0.0.0.0"),
        (["demo/local"], "10.0.0.5"),
        (["acme/production"], "127.0.0.1"),
        ([], "127.0.0.1"),
    ],
)
def test_any_other_address_or_configuration_gets_none(workspaces: list[str], host: str) -> None:
    assert offers_demo_key(workspaces, host) is False
