"""The operator's policy the tests run under.

Every server the tests deliver to listens on loopback, which the default egress policy refuses, and
every folder the tests write lies under the system's temporary directory. Tests that deliver build their
clients under `LOOPBACK`, as an operator would allow with `FILERELAY_EGRESS_ALLOW=127.0.0.0/8,::1` and
`FILERELAY_FOLDER_ROOTS=/tmp`; tests of the policy itself build their own.
"""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

from filerelay import egress
from filerelay.policy import OperatorPolicy

LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# The egress defaults, with the tests' folder roots: what a test of the guard's refusals runs under.
DEFAULT = OperatorPolicy(folder_roots=(Path(tempfile.gettempdir()).resolve(),))

LOOPBACK = OperatorPolicy(folder_roots=(Path(tempfile.gettempdir()).resolve(),), egress_allow=LOOPBACK_NETWORKS)


def refused_by_the_guard(error: BaseException) -> None:
    """`error` is the egress guard's refusal (raised before any connection was made), not any failure to
    connect: a loopback server that is up would otherwise have answered."""
    assert egress.refused_in(error) is not None, f"not the guard's refusal: {error!r}"
    assert "egress refused" in str(error)
