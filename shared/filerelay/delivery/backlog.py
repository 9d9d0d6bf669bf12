"""How much work a destination kind has, in the database: what an autoscaler scales its workers on.

With coalesced wake-ups the broker's queue holds at most one message per kind, so its length no longer
measures work. The backlog counts the deliveries a worker of the kind would take now (waiting, due,
their destination attemptable: the claim's own rule, held by a test) and those running (so a busy
worker is never scaled away). KEDA's PostgreSQL scaler runs this query (k8s/worker-*.yaml); the waiting
part walks the partial index of waiting deliveries per destination, the running part the status index.
"""

from __future__ import annotations

from filerelay.destinations.base import is_pushed

_QUERY = (
    "SELECT count(*) FROM deliveries d JOIN destinations t ON t.id = d.destination_id "
    "WHERE t.kind = '{kind}' AND ((d.status = 'delivering' AND d.lease_until IS NOT NULL) "
    "OR (d.status IN ('pending', 'retrying') AND d.next_attempt_at <= now() AND t.enabled "
    "AND t.paused_at IS NULL AND (t.breaker_opened_at IS NULL OR t.probe_delivery_id = d.id)))"
)


def backlog_query(kind: str) -> str:
    """PostgreSQL's count of the kind's due and running deliveries (a literal: KEDA passes no parameters)."""
    if not is_pushed(kind):
        raise ValueError(f"no worker delivers {kind!r}")
    return _QUERY.format(kind=kind)
