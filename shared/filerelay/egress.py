"""The egress guard: which network addresses a workspace's destination may connect to.

A workspace admin writes a destination's host or URL, so without a guard a destination could reach the
cloud metadata service, the installation's own Redis or PostgreSQL on loopback, or services of the
cluster. Every connection a destination makes goes through `connect`, which resolves the name once,
judges every address it resolved to under the operator's policy (filerelay.policy), and connects only to
an address it judged: no second resolution happens between the check and the connection, so a name
whose answer changes (DNS rebinding) cannot slip past.

The rules (`refusal`): the operator's deny list wins; then the allow list opens; then the defaults
refuse loopback, link-local, "this network" (0.0.0.0/8), the unspecified addresses and the cloud
metadata addresses. Private ranges are allowed by default (a single-team installation's destinations
often live there); a shared installation refuses them with FILERELAY_EGRESS_DENY. An IPv6 address that
carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is refused when either form is.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from filerelay.policy import IPNetwork, OperatorPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# What the defaults refuse, and how a refusal names it.
DEFAULT_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("::1/128"), "a loopback address"),
    (_net("0.0.0.0/8"), "an unspecified or 'this network' address"),
    (_net("::/128"), "an unspecified or 'this network' address"),
    (_net("169.254.0.0/16"), "a link-local address (the cloud metadata service among them)"),
    (_net("fe80::/10"), "a link-local address"),
    # The metadata services that do not live in 169.254.0.0/16: AWS over IPv6, Alibaba Cloud, Oracle Cloud.
    (_net("fd00:ec2::254/128"), "a cloud metadata address"),
    (_net("100.100.100.200/32"), "a cloud metadata address"),
    (_net("192.0.0.192/32"), "a cloud metadata address"),
)

_NAT64 = _net("64:ff9b::/96")
# The names that stand for this host whatever DNS says (RFC 6761): judged as loopback when written.
LOCAL_NAMES = ("localhost", "localhost.")


class EgressRefused(ConnectionRefusedError):
    """The operator's egress policy refuses an address a destination would connect to.

    An OSError, so a client library treats it as the connection failure it is (and never sent anything);
    `refused_in` finds it again inside whatever the library wrapped it in."""


def _forms(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address it carries, if any; an IPv4-mapped address is only its IPv4 form
    (the kernel connects to that one)."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    forms: list[IPAddress] = [address]
    if address in _NAT64:
        forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        forms.append(address.sixtofour)
    return forms


def _judge(address: IPAddress, policy: OperatorPolicy) -> str | None:
    if any(address.version == net.version and address in net for net in policy.egress_deny):
        return f"{address} is refused by FILERELAY_EGRESS_DENY"
    if any(address.version == net.version and address in net for net in policy.egress_allow):
        return None
    for net, what in DEFAULT_REFUSED:
        if address.version == net.version and address in net:
            return f"{address} is {what}, which destinations may not reach (unless FILERELAY_EGRESS_ALLOW opens it)"
    return None


def refusal(address: IPAddress | str, policy: OperatorPolicy) -> str | None:
    """Why the policy refuses a connection to `address`, or None when it may be reached."""
    found = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(found, ipaddress.IPv6Address) and found.scope_id:
        found = ipaddress.IPv6Address(str(found).split("%", 1)[0])
    for form in _forms(found):
        reason = _judge(form, policy)
        if reason is not None:
            return reason
    return None


def literal_refusal(host: str, policy: OperatorPolicy) -> str | None:
    """When settings are written: why the policy refuses `host` if it is an address (or `localhost`,
    `*.localhost`) the policy refuses. Any other name is judged at each connection, not here: what it
    resolves to now says nothing about what it will resolve to then."""
    name = host.strip().strip("[]").lower()
    if name in LOCAL_NAMES or name.rstrip(".").endswith(".localhost"):
        for loopback in ("127.0.0.1", "::1"):
            reason = refusal(loopback, policy)
            if reason is not None:
                return f"{host} names this host: {reason}"
        return None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return _legacy_ipv4_refusal(name, policy)
    return refusal(address, policy)


def _legacy_ipv4_refusal(name: str, policy: OperatorPolicy) -> str | None:
    """`0x7f.1`, `2130706433`, `127.1`: spellings of an IPv4 address that inet_aton (and so some
    resolvers) accepts though ipaddress does not."""
    if not name or not all(c in "0123456789abcdefx." for c in name) or not name[0].isdigit():
        return None
    try:
        packed = socket.inet_aton(name)
    except OSError:
        return None
    return refusal(ipaddress.IPv4Address(packed), policy)


def resolve(host: str, port: int, policy: OperatorPolicy) -> list[tuple[Any, ...]]:
    """getaddrinfo's answers for a TCP connection to host:port, every one judged: raises EgressRefused
    when the policy refuses any of them (a name that also points at a refused address is not trusted)."""
    name = host.strip("[]")
    answers = socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM)
    if not answers:
        raise socket.gaierror(f"{host} resolved to no address")
    for answer in answers:
        reason = refusal(str(answer[4][0]), policy)
        if reason is not None:
            named = "" if name == str(answer[4][0]) else f"{host} resolves to "
            raise EgressRefused(f"egress refused: {named}{reason}")
    return answers


def connect(
    address: tuple[str, int],
    policy: OperatorPolicy,
    *,
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[Sequence[Any]] | None = None,
) -> socket.socket:
    """A TCP connection to `host:port` that goes only to an address the policy admits, resolved once
    (like socket.create_connection, which it replaces for every connection a destination makes)."""
    host, port = address
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve(host, port, policy):
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    assert error is not None  # resolve answers at least one address
    raise error


def refused_in(exc: BaseException | None) -> EgressRefused | None:
    """The EgressRefused behind an exception a client library raised, however deeply it was wrapped."""
    seen: set[int] = set()
    waiting: list[BaseException | None] = [exc]
    while waiting:
        found = waiting.pop()
        if found is None or id(found) in seen:
            continue
        if isinstance(found, EgressRefused):
            return found
        seen.add(id(found))
        waiting.extend([found.__cause__, found.__context__])
        waiting.extend(arg for arg in getattr(found, "args", ()) if isinstance(arg, BaseException))
        # urllib3's MaxRetryError keeps the failure it gave up on as `reason`, botocore its as `error`,
        # azure-core its as `inner_exception`.
        for name in ("reason", "error", "inner_exception"):
            inner = getattr(found, name, None)
            if isinstance(inner, BaseException):
                waiting.append(inner)
    return None


def without_userinfo(url: str) -> str:
    """`url` without `user:password@`: what any error, log line or page may show of a URL a workspace wrote."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")


def scrub(text: str) -> str:
    """`text` (a library's error message) with the user:password@ of any URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def url_host(url: str) -> str | None:
    """The host a URL names (no brackets around an IPv6 address), or None."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
