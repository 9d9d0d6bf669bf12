"""The operator's policy: what a workspace's destinations may reach on the host and the network.

One installation serves many teams, and a workspace admin writes destination settings. What those
settings may name (a folder on the host, an address on the network, the installation's own cloud
identity) is bounded by this policy, which comes from the process environment only: no workspace
configuration, API call or config-file entry can widen it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyError(ValueError):
    """An environment variable of the operator's policy has a value FileRelay cannot use."""


def _networks(environ: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    found: list[IPNetwork] = []
    for raw in environ.get(name, "").split(","):
        text = raw.strip()
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise PolicyError(f"{name}: {text!r} is not an address or CIDR range") from None
    return tuple(found)


def _roots(environ: Mapping[str, str], home: Path) -> tuple[Path, ...]:
    raw = environ.get("FILERELAY_FOLDER_ROOTS", "").strip()
    if not raw:
        return (home / "out",)
    roots: list[Path] = []
    for text in raw.split(os.pathsep):
        if not text.strip():
            continue
        path = Path(text.strip()).expanduser()
        if not path.is_absolute():
            raise PolicyError(f"FILERELAY_FOLDER_ROOTS: {text!r} is not an absolute directory")
        # Resolved once here so that a root reached through a symlink compares like the folders under it.
        roots.append(path.resolve())
    return tuple(roots)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise PolicyError(f"{name} must be true or false, got {raw!r}")


def ambient_refused(kind: str, own: str) -> str:
    """Why a cloud destination without credentials of its own is refused: it would act as the
    installation, whose identity reaches the staging store and whatever else the operator's keys or role
    reach, for every workspace."""
    return (
        f"give {own}: without credentials of its own, the {kind} destination would act as this installation "
        "(its environment keys, instance or pod role), which the operator allows only with "
        "FILERELAY_ALLOW_AMBIENT_CREDENTIALS=true"
    )


@dataclass(frozen=True)
class OperatorPolicy:
    # Directories a folder destination's root must lie inside (after resolving symlinks).
    folder_roots: tuple[Path, ...]
    # Addresses a destination may connect to beyond the defaults, and addresses it may never reach;
    # deny wins (filerelay.egress has the defaults).
    egress_allow: tuple[IPNetwork, ...] = ()
    egress_deny: tuple[IPNetwork, ...] = ()
    # Whether a cloud destination without credentials of its own may act as the installation (its
    # environment keys, instance or pod role): only for an installation that serves a single team.
    allow_ambient_credentials: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, home: Path) -> OperatorPolicy:
        return cls(
            folder_roots=_roots(environ, home),
            egress_allow=_networks(environ, "FILERELAY_EGRESS_ALLOW"),
            egress_deny=_networks(environ, "FILERELAY_EGRESS_DENY"),
            allow_ambient_credentials=_flag(environ, "FILERELAY_ALLOW_AMBIENT_CREDENTIALS"),
        )

    def environ(self) -> dict[str, str]:
        """The environment that reproduces this policy in a child process."""
        env = {
            "FILERELAY_FOLDER_ROOTS": os.pathsep.join(str(root) for root in self.folder_roots),
            "FILERELAY_ALLOW_AMBIENT_CREDENTIALS": "true" if self.allow_ambient_credentials else "false",
        }
        if self.egress_allow:
            env["FILERELAY_EGRESS_ALLOW"] = ",".join(str(net) for net in self.egress_allow)
        if self.egress_deny:
            env["FILERELAY_EGRESS_DENY"] = ",".join(str(net) for net in self.egress_deny)
        return env
