"""Reading FileRelay's Prometheus text in tests: parse it into samples, scrape a server, read one value."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The samples of a /metrics text; a family that appears twice fails (Prometheus would refuse it)."""
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), f"a family appears twice: {sorted(names)}"
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def scrape(base_url: str) -> Samples:
    """GET {base_url}/metrics (no credentials: none needed), parsed."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse(response.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
