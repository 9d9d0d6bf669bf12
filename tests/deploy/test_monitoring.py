"""Watching FileRelay in Kubernetes: the alerts (PrometheusRule) pass promtool and cover every alert of
docs/operations.md; the Grafana dashboard and the rules name only metrics FileRelay exports; the
ServiceMonitor reaches every /metrics; workers and the sweeper have exec probes that are real commands;
and the kustomize components switch worker kinds on and off in every combination.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from filerelay import metrics
from filerelay.queue import KINDS
from filerelay.runtime import Runtime
from tests.support.manifests import (
    K8S,
    ROOT,
    all_containers,
    closed,
    compose,
    manifests,
    named,
    of_kind,
    resolve,
    resource,
)

MONITORING = K8S / "components" / "monitoring"
DASHBOARD = K8S / "grafana" / "filerelay-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL_TESTS = Path(__file__).parent / "prometheus" / "alerts.test.yaml"
# Metrics a rule may use that FileRelay does not export: kube-state-metrics' view of the pods' readiness.
EXTERNAL_METRICS = {"kube_pod_status_ready"}
WORKER_KINDS = [kind for kind in KINDS if kind != "pull"]


def rule_groups() -> dict[str, Any]:
    rule = named("PrometheusRule", "filerelay")
    spec: dict[str, Any] = rule["spec"]
    return spec


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups()["groups"] for rule in group["rules"]]


# ------------------------------------------------------------------------------------------ the metric names


@pytest.fixture
def exported(runtime: Runtime) -> set[str]:
    """Every sample name a FileRelay /metrics can show, from the collectors themselves: the API's scrape
    registry (counts, heartbeats, the database gauges) on the test database."""
    families = list(metrics.scrape_registry(runtime).collect())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = {family.name + suffix for family in families for suffix in suffixes[family.type]}
    assert "filerelay_delivery_oldest_due_age_seconds" in names  # the database was read
    return names


_FUNCTIONS_OR_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
_KEYWORDS = _FUNCTIONS_OR_KEYWORDS | {"bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
    names (in braces or in by/on/… lists), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group()
        if text[match.end() :].lstrip().startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function call, or a keyword
        if re.fullmatch(r"\d+[smhdwy]", name) or text[match.start() - 1 : match.start()].isdigit():
            continue
        names.add(name)
    return names


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, kind) (rate(filerelay_delivery_attempt_seconds_bucket{kind="s3"}[15m])))'
        " > 240 unless on (workspace) max by (workspace) (filerelay_destination_paused) == 1 and 10e9 > 1"
    )
    assert metric_names(expr) == {"filerelay_delivery_attempt_seconds_bucket", "filerelay_destination_paused"}
    assert metric_names("time() - max(filerelay_sweeper_last_pass_timestamp_seconds)") == {
        "filerelay_sweeper_last_pass_timestamp_seconds"
    }


def dashboard_queries() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))  # rows hold panels

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_every_dashboard_panel_queries_only_metrics_filerelay_exports(exported: set[str]) -> None:
    queries = list(dashboard_queries())
    assert len(queries) >= 10
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} is not a FileRelay metric"
    # The new signals each have a panel.
    shown = set().union(*(metric_names(expr) for _, expr in queries))
    for name in (
        "filerelay_delivery_latency_seconds_bucket",
        "filerelay_delivery_oldest_due_age_seconds",
        "filerelay_sweeper_last_pass_timestamp_seconds",
        "filerelay_worker_heartbeat_timestamp_seconds",
        "filerelay_certificate_expiry_days",
    ):
        assert name in shown, name


def test_the_dashboard_check_catches_a_metric_nobody_exports(exported: set[str]) -> None:
    assert not metric_names("sum(rate(filerelay_deliveries_totl[5m]))") <= exported


def test_every_rule_reads_only_metrics_that_exist(exported: set[str]) -> None:
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported | EXTERNAL_METRICS, f"{rule['alert']}: {sorted(names - exported)}"


def test_the_dashboard_is_shipped_in_a_configmap() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    [generator] = kustomization["configMapGenerator"]
    assert generator["files"] == [str(DASHBOARD.relative_to(K8S))]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}  # Grafana's sidecar picks it up


# -------------------------------------------------------------------------------------------------- alerts


def operations_alert_table() -> list[str]:
    """The first cells of the alert table in docs/operations.md's Monitoring section."""
    text = OPERATIONS.read_text()
    section = text[text.index("## Monitoring") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| (`[^|]+`(?: / `[^|]+`)*) \| [^|]+ \|$", section, re.MULTILINE)
    assert len(rows) >= 10, "the alert table moved or changed its shape"
    return rows


def test_every_alert_of_the_operations_table_is_a_rule() -> None:
    exprs = [rule["expr"] for rule in rules()]
    texts = [json.dumps(rule["annotations"]) for rule in rules()]
    for row in operations_alert_table():
        for cell in re.findall(r"`([^`]+)`", row):
            name = re.sub(r"\{.*", "", cell)
            if not name:  # `{outcome="retry"}`: more labels of the metric before it
                continue
            if name.startswith("/"):  # an endpoint (/readyz): a rule says it watches it
                assert any(name in text for text in texts), f"no rule for {cell}"
            else:
                samples = {name, *(name + suffix for suffix in ("_total", "_bucket", "_count", "_sum"))}
                assert any(samples & metric_names(expr) for expr in exprs), f"no rule reads {name} ({row})"
    # And the new signals each have one.
    for alert in ("FileRelayDeliveriesLate", "FileRelaySweeperNotPassing", "FileRelayCertificateExpiring"):
        assert alert in {rule["alert"] for rule in rules()}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain rule file, what promtool (and Prometheus) read."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups()))
    return path


def test_the_rules_pass_promtool_check(rule_file: Path) -> None:
    done = subprocess.run([promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_check_catches_a_broken_rule(tmp_path: Path) -> None:
    groups = rule_groups()
    groups["groups"][0]["rules"][0]["expr"] = "max by (destination_id (filerelay_delivery_oldest_due_age_seconds)"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(groups))
    assert subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, timeout=60).returncode != 0


def test_the_alerts_fire_when_they_should(rule_file: Path) -> None:
    """promtool's unit tests (tests/deploy/prometheus/alerts.test.yaml): deliveries late (and not for a
    paused destination), the sweeper not passing, certificates expiring and expired."""
    tests = rule_file.parent / PROMTOOL_TESTS.name
    shutil.copy(PROMTOOL_TESTS, tests)
    done = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", PROMTOOL_TESTS.read_text()))
    assert {"FileRelayDeliveriesLate", "FileRelaySweeperNotPassing", "FileRelayCertificateExpiring"} <= tested


# The Prometheus Operator's CRDs (monitoring.coreos.com/v1), the fields used here; unknown ones are errors.
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = closed({"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _LABELS}, required=["name"])
_DURATION = {"type": "string", "pattern": r"^[0-9]+[smh]$"}
_ENDPOINT = closed(
    {"port": {"type": "string"}, "path": {"type": "string"}, "interval": _DURATION, "scrapeTimeout": _DURATION},
    required=["port"],
)
SERVICE_MONITOR_SCHEMA = resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _METADATA,
    closed(
        {
            "selector": closed({"matchLabels": _LABELS, "matchExpressions": {"type": "array"}}),
            "namespaceSelector": {"type": "object"},
            "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
        },
        required=["selector", "endpoints"],
    ),
)
_RULE = closed(
    {
        "alert": {"type": "string", "pattern": "^FileRelay[A-Za-z]+$"},
        "expr": {"type": "string"},
        "for": _DURATION,
        "labels": _LABELS,
        "annotations": {
            "type": "object",
            "required": ["summary", "description"],
            "additionalProperties": {"type": "string"},
        },
    },
    required=["alert", "expr"],
)
_RULE_GROUP = closed(
    {"name": {"type": "string"}, "interval": {"type": "string"}, "rules": {"type": "array", "items": _RULE}},
    required=["name", "rules"],
)
PROMETHEUS_RULE_SCHEMA = resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _METADATA,
    closed({"groups": {"type": "array", "items": _RULE_GROUP}}, required=["groups"]),
)


def test_the_monitoring_resources_match_the_operators_schema() -> None:
    jsonschema.validate(named("ServiceMonitor", "filerelay"), SERVICE_MONITOR_SCHEMA)
    jsonschema.validate(named("PrometheusRule", "filerelay"), PROMETHEUS_RULE_SCHEMA)


# ------------------------------------------------------------------------------------------- scraping


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_the_service_monitor_reaches_the_api_and_every_pod_serving_metrics() -> None:
    monitor = named("ServiceMonitor", "filerelay")["spec"]
    services = [s for s in of_kind("Service") if selects(monitor["selector"], s["metadata"]["labels"])]
    ports = {port["name"]: service for service in services for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["endpoints"]} == set(ports)
    assert ports["http"]["metadata"]["name"] == "filerelay-api"
    metrics_service = ports["metrics"]
    # Every pod that serves --metrics-port is behind the metrics Service, on the port it names.
    serving = []
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]
        for container in all_containers(pod):
            if "--metrics-port" not in container.get("args", []):
                continue
            serving.append(deployment["metadata"]["name"])
            port = int(container["args"][container["args"].index("--metrics-port") + 1])
            assert selects({"matchLabels": metrics_service["spec"]["selector"]}, pod["metadata"]["labels"])
            assert {"name": "metrics", "containerPort": port} in container["ports"]
    assert sorted(serving) == sorted(
        ["filerelay-sweeper", *(f"filerelay-worker-{kind.replace('_', '-')}" for kind in WORKER_KINDS)]
    )


# ------------------------------------------------------------------------------------------- probes


def probe_commands() -> Iterator[tuple[str, str, list[str]]]:
    """(where, the role the process plays, each probe's command) of every worker and sweeper."""
    for deployment in of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            role = container["args"][0]
            if role not in ("worker", "sweeper"):
                continue
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{deployment['metadata']['name']}: no {probe}"
                yield deployment["metadata"]["name"], role, container[probe]["exec"]["command"]
    for name, service in compose()["services"].items():
        if name.startswith("worker-") or name == "sweeper":
            yield f"docker-compose.yml {name}", service["command"][0], service["healthcheck"]["test"][1:]


def test_workers_and_the_sweeper_are_probed_by_their_heartbeat() -> None:
    seen = set()
    for where, role, command in probe_commands():
        assert command[:3] == ["filerelay", "probe", role], where
        path, _ = resolve(command[1:])  # the real CLI parses it
        assert path == ["probe"], where
        seen.add(where.split()[-1])
    assert len(seen) == 2 * (len(WORKER_KINDS) + 1)  # every worker and the sweeper, in k8s and compose


# -------------------------------------------------------------------------------------- the components


def renderer() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.skip("neither kubectl nor kustomize is installed: the components cannot be rendered")


def render(base: Path, chosen: tuple[str, ...], command: list[str]) -> list[dict[str, Any]]:
    """k8s/ as an operator would edit it: only the chosen worker components (and monitoring) listed."""
    copy = base / ("-".join(chosen) or "none")
    shutil.copytree(K8S, copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kustomization["components"] = [f"components/worker-{kind.replace('_', '-')}" for kind in chosen] + [
        "components/monitoring"
    ]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    done = subprocess.run([*command, str(copy)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_kustomize_renders_every_combination_of_worker_kinds(tmp_path: Path) -> None:
    """All 2^8 subsets of the worker kinds: each renders, with exactly the chosen workers (and their
    ScaledObjects) beside everything else, unchanged."""
    command = renderer()
    combinations = [c for n in range(len(WORKER_KINDS) + 1) for c in itertools.combinations(WORKER_KINDS, n)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rendered = dict(zip(combinations, pool.map(lambda c: render(tmp_path, c, command), combinations), strict=True))
    everything = {(d["kind"], d["metadata"]["name"]) for d in rendered[tuple(WORKER_KINDS)]}
    for chosen, documents in rendered.items():
        names = {(d["kind"], d["metadata"]["name"]) for d in documents}
        workers = {f"filerelay-worker-{kind.replace('_', '-')}" for kind in chosen}
        assert {name for kind, name in names if kind == "Deployment" and "worker" in name} == workers, chosen
        assert {name for kind, name in names if kind == "ScaledObject"} == workers, chosen
        others = {item for item in everything if "filerelay-worker-" not in item[1]}
        assert others <= names, chosen
        assert all(d["metadata"].get("namespace") == "filerelay" for d in documents if d["kind"] != "Namespace")
    assert len(rendered) == 2 ** len(WORKER_KINDS)


def test_the_default_kustomization_renders_what_the_files_hold() -> None:
    command = renderer()
    done = subprocess.run([*command, str(K8S)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(done.stdout) if d}
    files = {(d["kind"], d["metadata"]["name"]) for name, d in manifests() if name != "secret.example.yaml"}
    assert rendered == files | {("ConfigMap", "filerelay-grafana-dashboard")}
