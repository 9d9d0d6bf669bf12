"""The connections a destination's client library makes, each through the egress guard (filerelay.egress).

Each library is given a connection of ours rather than patched globally, so the installation's own
connections (its staging S3, Redis, PostgreSQL) stay outside the workspace's policy:

- urllib3: connection classes whose `_new_conn` is `egress.connect`, in pool classes made per policy.
  TLS is still set up by urllib3 on the socket we return, with the URL's host name for SNI and for
  certificate verification: the checked address is where we connect, the name is what we verify.
- requests (webhook, SharePoint, Azure's RequestsTransport, google-auth's sessions): `guarded_session`,
  a Session mounting an adapter with those pools, not reading proxies or .netrc from the environment
  (a workspace's URL must not receive the host's credentials), and following no redirect.
- botocore: its URLLib3Session with the guarded pools, sending each request of one client through the
  client's public `before-send` event.
- smtplib: SMTP and SMTP_SSL whose `_get_socket` connects through the guard.
- paramiko: takes the socket `egress.connect` returns.
"""

from __future__ import annotations

import functools
import os
import re
import smtplib
import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from filerelay import egress
from filerelay.policy import OperatorPolicy


class _GuardedConnection:
    """Mixed into a urllib3 connection class: the TCP connection goes through the egress guard."""

    egress_policy: OperatorPolicy
    # What urllib3's HTTPConnection has; declared for the type checker.
    host: str
    _dns_host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        timeout = socket.getdefaulttimeout() if self.timeout is _DEFAULT_TIMEOUT else self.timeout
        try:
            return egress.connect(
                (self._dns_host, self.port),
                self.egress_policy,
                timeout=timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        # Wrapped as urllib3 wraps its own connection errors, so each library reports them as it always did.
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]


def _made(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
    return type(name, bases, namespace)


@functools.cache
def pool_classes(policy: OperatorPolicy, *, aws: bool = False) -> dict[str, type[connectionpool.HTTPConnectionPool]]:
    """{"http": pool class, "https": pool class} whose connections go through the guard under `policy`;
    `aws`: built on botocore's pool and connection classes (its 100-continue handling) instead of urllib3's."""
    if aws:
        from botocore import awsrequest

        bases: dict[str, tuple[type, type]] = {
            "http": (awsrequest.AWSHTTPConnectionPool, awsrequest.AWSHTTPConnection),
            "https": (awsrequest.AWSHTTPSConnectionPool, awsrequest.AWSHTTPSConnection),
        }
    else:
        bases = {
            "http": (connectionpool.HTTPConnectionPool, urllib3_connection.HTTPConnection),
            "https": (connectionpool.HTTPSConnectionPool, urllib3_connection.HTTPSConnection),
        }
    classes: dict[str, type[connectionpool.HTTPConnectionPool]] = {}
    for scheme, (pool, conn) in bases.items():
        guarded = _made(f"Guarded{conn.__name__}", (_GuardedConnection, conn), {"egress_policy": policy})
        classes[scheme] = _made(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": guarded})
    return classes


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go through the egress guard, and never through a proxy."""

    def __init__(self, policy: OperatorPolicy, **kwargs: Any) -> None:
        self._egress_policy = policy  # before HTTPAdapter.__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = pool_classes(self._egress_policy)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # A proxy would make the connection the guard checks the proxy's, not the destination's.
        raise egress.EgressRefused("egress refused: destinations do not connect through a proxy")


class NoRedirects(requests.Session):
    """A Session that follows no redirect: a 3xx comes back as the answer. A redirect could lead anywhere,
    and what is reached must be what was configured (and checked) only."""

    def resolve_redirects(self, *_: Any, **__: Any) -> Any:
        return iter(())


def guard(session: requests.Session, policy: OperatorPolicy, **adapter: Any) -> requests.Session:
    """`session` (one made for a destination) with every connection through the guard, and without what
    the environment would add: proxies and .netrc credentials. The operator's CA bundle stays honoured."""
    session.trust_env = False
    session.proxies.clear()
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    mounted = GuardedAdapter(policy, **adapter)
    session.mount("http://", mounted)
    session.mount("https://", mounted)
    return session


def guarded_session(policy: OperatorPolicy, **adapter: Any) -> requests.Session:
    """A requests Session for a destination: guarded connections, no redirects, nothing from the environment."""
    return guard(NoRedirects(), policy, **adapter)


def guard_boto_client(client: Any, policy: OperatorPolicy, *, timeout: tuple[float, float]) -> None:
    """Send every request of a boto3 client through botocore's own URLLib3Session, with guarded pools.

    botocore has no setting for its HTTP session; its `before-send` event, whose handler may answer a
    request itself, is the public way in: this client's requests take the guarded session, and the one
    botocore built (connecting nowhere until used) stays unused. No proxy is configured on it."""
    from botocore.httpsession import URLLib3Session

    http: Any = URLLib3Session(timeout=timeout, max_pool_connections=10)  # type: ignore[arg-type]  # a (connect, read) pair works; the stubs say int
    classes = pool_classes(policy, aws=True)
    http._manager.pool_classes_by_scheme = classes
    http._pool_classes_by_scheme = classes  # what a proxy manager would take, were one configured

    def send(request: Any, **_: Any) -> Any:
        return http.send(request)

    client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}", send)


class _GuardedSMTP(smtplib.SMTP):
    egress_policy: OperatorPolicy

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        source: Any = self.source_address  # smtplib's (host, port) or None
        return egress.connect((host, port), self.egress_policy, timeout=timeout, source_address=source)


class GuardedSMTP(_GuardedSMTP):
    """smtplib.SMTP connecting through the guard: construct, then `connect(host, port)`."""

    def __init__(self, policy: OperatorPolicy, *, timeout: float) -> None:
        self.egress_policy = policy
        super().__init__(timeout=timeout)


class GuardedSMTPSSL(smtplib.SMTP_SSL, _GuardedSMTP):
    """smtplib.SMTP_SSL connecting through the guard; TLS (SNI, the certificate) checked against the name
    given to `connect`, since SMTP_SSL wraps the socket `_GuardedSMTP._get_socket` returns."""

    def __init__(self, policy: OperatorPolicy, *, timeout: float, context: Any) -> None:
        self.egress_policy = policy
        super().__init__(timeout=timeout, context=context)


_CODE = re.compile(r"^-?[A-Za-z0-9][A-Za-z0-9 ,._:-]{0,79}$")


def peer_code(value: object) -> str:
    """An error code a destination's API answered (S3's `NoSuchBucket`, Azure's `ContainerNotFound`,
    SharePoint's `-2147024894, System.IO.FileNotFoundException`), fit to show: a short token, else "?".
    The peer is whatever the workspace named, so nothing freer from its answer reaches an error."""
    text = str(getattr(value, "value", value) if value is not None else "").strip()
    return text if _CODE.match(text) else "?"
