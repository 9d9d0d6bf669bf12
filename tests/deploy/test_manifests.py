"""The deployment files (Dockerfile, docker-compose.yml, k8s/) checked against their schemas and the code.

Offline and without Docker: the Kubernetes schemas ship in kubernetes-validate, the Compose specification
schema in check-jsonschema, and KEDA's ScaledObject is checked against a schema written below from the KEDA
docs. Against the code: every command the files run parses as a real `filerelay` command, and every
FILERELAY_* variable they set is one the code reads.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import re
import secrets
import shlex
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from click.testing import CliRunner
from flask import Flask

from filerelay.api.ops import blueprint as ops_blueprint
from filerelay.cli.main import main as cli
from filerelay.config_file import load as load_config
from filerelay.delivery.backlog import backlog_query
from filerelay.policy import OperatorPolicy
from filerelay.queue import PUSHED, celery_config
from filerelay.settings import Settings, SettingsError
from filerelay.workspace_config.common import InvalidInput
from filerelay.workspace_config.destinations import destination_columns
from tests.support.manifests import (
    COMPOSE,
    CONFIG_REF,
    ENV_EXAMPLE,
    INTERPOLATION,
    K8S,
    KEDA_SCALED_OBJECT_SCHEMA,
    KUBERNETES_VERSION,
    NOT_RESOURCES,
    PRODUCTION_REQUIRED,
    REFUSED_PLACEHOLDERS,
    ROOT,
    SECRET_NAME,
    URL_PASSWORD,
    all_containers,
    as_argv,
    code_variables,
    command_option,
    compose,
    compose_environment,
    compose_filerelay_services,
    container_environment,
    dockerfile_env,
    dockerfile_instructions,
    dockerfile_json,
    env_example,
    filerelay_processes,
    k8s_sources,
    manifest_id,
    manifests,
    named,
    of_kind,
    pod_templates,
    resolve,
    seconds,
    strings,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check here works offline: any connection or name lookup is a failure."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the deployment tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - NOT_RESOURCES
    assert sorted(kustomization["resources"]) == sorted(files)
    # Every component is listed (on by default), and lists every manifest of its folder.
    components = {path.parent for path in K8S.glob("components/*/kustomization.yaml")}
    assert sorted(kustomization["components"]) == sorted(str(path.relative_to(K8S)) for path in components)
    for folder in components:
        component = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert component["kind"] == "Component", folder
        own = {path.name for path in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert sorted(component["resources"]) == sorted(own), folder
    assert kustomization["namespace"] == named("Namespace", kustomization["namespace"])["metadata"]["name"]
    assert {image["name"] for image in kustomization["images"]} == {"filerelay"}


# Custom resources, checked against their own schemas (KEDA's here, the Prometheus Operator's in test_monitoring.py).
CUSTOM_API_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


@pytest.mark.parametrize(
    "item", [m for m in manifests() if not m[1]["apiVersion"].startswith(CUSTOM_API_GROUPS)], ids=manifest_id
)
def test_manifest_matches_the_kubernetes_schema(item: tuple[str, dict[str, Any]]) -> None:
    _, doc = item
    # strict: additional properties are errors, so a misspelt field fails instead of being ignored.
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) == "1.31"


def test_the_kubernetes_schema_check_catches_a_misspelt_field() -> None:
    deployment = named("Deployment", "filerelay-api")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/healthz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("item", [m for m in manifests() if m[1]["kind"] == "ScaledObject"], ids=manifest_id)
def test_scaled_object_matches_the_keda_schema(item: tuple[str, dict[str, Any]]) -> None:
    jsonschema.Draft202012Validator(KEDA_SCALED_OBJECT_SCHEMA).validate(item[1])


def test_the_keda_schema_catches_a_missing_query_and_an_inline_password() -> None:
    scaled = of_kind("ScaledObject")[0]
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    del metadata["query"]
    metadata["password"] = "secret"
    messages = {e.message for e in jsonschema.Draft202012Validator(KEDA_SCALED_OBJECT_SCHEMA).iter_errors(scaled)}
    assert any("query" in m for m in messages)
    assert any("password" in m for m in messages)


def test_one_autoscaled_worker_per_pushed_destination_kind(tmp_path: Path) -> None:
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path), "FILERELAY_BROKER_URL": "redis://redis:6379/0"})
    soft_shutdown = float(celery_config(settings).get("worker_soft_shutdown_timeout", 0))
    kinds = []
    for scaled in of_kind("ScaledObject"):
        spec = scaled["spec"]
        target = named("Deployment", spec["scaleTargetRef"]["name"])
        pod = target["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == spec["scaleTargetRef"]["envSourceContainerName"]]
        kind = command_option(container["args"], "--queues")
        kinds.append(kind)
        # The HPA KEDA makes owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in target["spec"]
        # The backlog counts what is due and what runs: a kind may scale to zero, never above its maximum.
        assert 0 <= spec["minReplicaCount"] <= spec.get("maxReplicaCount", 100)
        # SIGTERM lets running deliveries finish; the grace period must outlast any soft-shutdown cut-off.
        assert pod["terminationGracePeriodSeconds"] > soft_shutdown
        assert pod["terminationGracePeriodSeconds"] >= 60
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "postgresql"
        assert metadata["query"] == backlog_query(kind)
        env = container_environment(container)
        keda_db, app_db = urlsplit(env[metadata["connectionFromEnv"]]), urlsplit(env["FILERELAY_DATABASE_URL"])
        assert (keda_db.scheme, keda_db.netloc, keda_db.path) == ("postgresql", app_db.netloc, app_db.path)
    # `pull` deliveries are moved by their integration's PATCH; nothing is ever queued on deliver.pull.
    assert sorted(kinds) == sorted(PUSHED)  # derived from the kinds' declarations
    assert len(of_kind("Deployment")) == len(kinds) + 2  # plus the API and the sweeper


def cpus(quantity: str) -> float:
    """A Kubernetes CPU quantity (`1`, `"2"`, `500m`) in cores."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_a_worker_pod_runs_no_more_processes_than_its_cpu_limit() -> None:
    """`filerelay worker` starts one process per core by default, and counts the node's cores, not the
    pod's CPU limit: on a large node a 1-CPU pod would run dozens of processes (each with its threads,
    database pool and memory) into its CPU and memory limits. Each worker pod says how many."""
    for scaled in of_kind("ScaledObject"):
        pod = named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])["spec"]["template"]["spec"]
        (container,) = [
            c for c in pod["containers"] if c["name"] == scaled["spec"]["scaleTargetRef"]["envSourceContainerName"]
        ]
        where = scaled["metadata"]["name"]
        assert "--processes" in container["args"], f"{where}: no --processes"
        processes = int(command_option(container["args"], "--processes"))
        assert 1 <= processes <= max(1, math.ceil(cpus(str(container["resources"]["limits"]["cpu"])))), where


@pytest.mark.parametrize("where_pod", list(pod_templates()), ids=lambda wp: wp[0])
def test_pods_run_unprivileged_with_limits(where_pod: tuple[str, dict[str, Any]]) -> None:
    where, pod = where_pod
    spec = pod["spec"]
    user = dockerfile_user()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == user
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec.get("automountServiceAccountToken") is False
    writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v or "persistentVolumeClaim" in v}
    for container in all_containers(pod):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, f"{where}: {bound}"
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        # With a read-only root, /tmp and FILERELAY_HOME must be volumes of their own.
        for path in ("/tmp", dockerfile_env()["FILERELAY_HOME"]):
            assert mounts.get(path) in writable, f"{where} {container['name']}: {path} is not writable"


def test_every_selector_matches_its_pods() -> None:
    for doc in of_kind("Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    api = named("Deployment", "filerelay-api")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    service = named("Service", "filerelay-api")
    assert service["spec"]["selector"].items() <= api_labels.items()
    ports = {p["name"] for p in api["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert (
        named("PodDisruptionBudget", "filerelay-api")["spec"]["selector"]["matchLabels"].items() <= api_labels.items()
    )
    hpa = named("HorizontalPodAutoscaler", "filerelay-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "filerelay-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in api["spec"]


def test_the_api_probes_ask_the_real_health_routes() -> None:
    app = Flask(__name__)
    app.register_blueprint(ops_blueprint)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    template = named("Deployment", "filerelay-api")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz", template["metadata"]["annotations"]["prometheus.io/path"]} <= routes
    assert "/readyz" in " ".join(compose()["services"]["api"]["healthcheck"]["test"])


def test_the_sweeper_runs_alone() -> None:
    sweeper = named("Deployment", "filerelay-sweeper")
    assert sweeper["spec"]["replicas"] == 1
    assert sweeper["spec"]["strategy"] == {"type": "Recreate"}


def test_no_secret_outside_the_secrets() -> None:
    for configmap in of_kind("ConfigMap"):
        for key, value in (configmap.get("data") or {}).items():
            assert not SECRET_NAME.search(key), f"ConfigMap {configmap['metadata']['name']} holds {key}"
            assert not URL_PASSWORD.search(value), f"ConfigMap {configmap['metadata']['name']}: a password in {key}"
    for where, pod in pod_templates():
        for container in all_containers(pod):
            for item in container.get("env", []):
                assert "value" not in item or not SECRET_NAME.search(item["name"]), f"{where}: {item['name']}"


# ----------------------------------------------------------------------------------- (b) docker-compose


def test_compose_matches_the_compose_specification() -> None:
    # The official schema (github.com/compose-spec/compose-spec, schema/compose-spec.json) as check-jsonschema
    # vendors it; compose itself validates against the same file.
    schema = json.loads(
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    broken = compose()
    broken["services"]["api"]["helthcheck"] = {"test": ["CMD", "true"]}
    assert list(validator.iter_errors(broken)), "the compose schema check must catch a misspelt key"


def test_compose_starts_in_order_with_health_checks() -> None:
    services = compose()["services"]
    for name in ("redis", "postgres", "s3", "api"):
        assert services[name]["healthcheck"]["test"], name
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis
    assert "--maxmemory-policy noeviction" in redis
    for name, svc in compose_filerelay_services().items():
        if name == "migrate":
            assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert svc["depends_on"]["s3-init"]["condition"] == "service_completed_successfully", name
    workers = {
        command_option(as_argv(svc["command"]) or [], "--queues"): name
        for name, svc in compose_filerelay_services().items()
        if name.startswith("worker-")
    }
    assert workers == {kind: f"worker-{kind}" for kind in PUSHED}
    soft_shutdown = float(
        celery_config(Settings.from_env({"FILERELAY_BROKER_URL": "redis://r"})).get("worker_soft_shutdown_timeout", 0)
    )
    assert all(seconds(services[w]["stop_grace_period"]) > max(soft_shutdown, 60) for w in workers.values())


def test_compose_takes_every_secret_from_env_file() -> None:
    example = env_example()
    used = {name for value in strings(compose()) for name in INTERPOLATION.findall(value)}
    assert used <= set(example), "every ${VAR} of the compose file is in .env.example"
    for name, svc in compose()["services"].items():
        environment = svc.get("environment") or {}
        for key, value in environment.items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert value.startswith("${"), f"{name}: {key} must come from .env"
            for password in URL_PASSWORD.findall(value):
                assert password.startswith("${"), f"{name}: the password in {key} must come from .env"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_compose_staging_is_the_s3_server_with_its_bucket_created() -> None:
    services = compose()["services"]
    init_script = " ".join(services["s3-init"]["command"])
    for name, svc in compose_filerelay_services().items():
        env = compose_environment(svc)
        staging = urlsplit(env["FILERELAY_STAGING_URL"])
        assert staging.scheme == "s3", name
        assert staging.netloc in init_script, f"{name}: s3-init does not create bucket {staging.netloc}"
        assert urlsplit(env["FILERELAY_STAGING_S3_ENDPOINT_URL"]).hostname == "s3", name
        assert env["AWS_ACCESS_KEY_ID"], name
        assert env["AWS_SECRET_ACCESS_KEY"], name


# ------------------------------------------------------------------------- (c) the commands they all run


@pytest.mark.parametrize(
    "process", filerelay_processes(), ids=lambda p: f"{p[0]}: filerelay {' '.join(p[1])}".replace(" ", "_")
)
def test_every_command_is_a_real_filerelay_command(process: tuple[str, list[str], dict[str, str]]) -> None:
    where, args, _ = process
    try:
        path, context = resolve(args)
    except click.ClickException as exc:
        pytest.fail(f"{where}: `filerelay {' '.join(args)}`: {exc.format_message()}")
    assert CliRunner().invoke(cli, [*path, "--help"]).exit_code == 0
    if path == ["worker"]:
        kinds = context.params["queues"].split(",")
        assert set(kinds) <= set(PUSHED), f"{where}: queues {kinds}"


def test_a_wrong_command_is_caught() -> None:
    with pytest.raises(click.ClickException):
        resolve(["worker", "--queue", "s3"])
    with pytest.raises(click.ClickException):
        resolve(["config", "apply"])
    with pytest.raises(AssertionError):
        resolve(["serve"])


def applied_configs() -> list[tuple[str, str, dict[str, str]]]:
    """(where, the config file's text, the environment) of every `config apply` the files run."""
    applies = [(where, args, env) for where, args, env in filerelay_processes() if args[:2] == ["config", "apply"]]
    assert {where.split()[0] for where, _, _ in applies} == {"docker-compose.yml", "k8s"}
    found = []
    for where, args, env in applies:
        target = Path(args[2])
        if where.startswith("docker-compose.yml"):
            (volume,) = [
                v for v in compose()["services"]["migrate"]["volumes"] if v.split(":")[1] == str(target.parent)
            ]
            text = (ROOT / volume.split(":")[0] / target.name).read_text()
        else:
            job = named("Job", "filerelay-migrate")["spec"]["template"]["spec"]
            (container,) = [c for c in job["containers"] if c["args"][:2] == ["config", "apply"]]
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(target.parent)]
            (volume,) = [v for v in job["volumes"] if v["name"] == mount["name"]]
            text = k8s_sources()["ConfigMap", volume["configMap"]["name"]][target.name]
        found.append((where, text, env))
    return found


def test_the_config_file_applied_is_mounted_and_valid() -> None:
    for where, text, env in applied_configs():
        missing = {name for value in strings(yaml.safe_load(text)) for name in CONFIG_REF.findall(value)} - set(env)
        assert not missing, f"{where}: the config refers to unset variables {sorted(missing)}"
        load_config(text, env)  # the real parser and validation of `config apply`, without a database


def folder_mounts(where: str) -> list[str]:
    """Where the folder worker of docker-compose.yml or k8s mounts storage."""
    if where == "docker-compose.yml":
        return [v.split(":")[1] for v in compose()["services"]["worker-folder"].get("volumes", [])]
    pod = named("Deployment", "filerelay-worker-folder")["spec"]["template"]
    return [m["mountPath"] for c in all_containers(pod) for m in c.get("volumeMounts", [])]


def policy_of(env: dict[str, str]) -> OperatorPolicy:
    """The operator's policy an environment sets (alone: the templates' keys are placeholders on purpose)."""
    return OperatorPolicy.from_env(env, home=Path(env.get("FILERELAY_HOME") or "./var").resolve())


def test_the_folder_roots_set_hold_the_folder_destinations_configured() -> None:
    """`config apply` admits the file's destinations under the policy its environment sets (as it does
    when it runs): its folder roots hold the folder destinations, and lie on the folder worker's storage,
    and every process of the installation has the same roots (the API reads copies back under them)."""
    for where, text, env in applied_configs():
        policy = policy_of(env)
        assert env.get("FILERELAY_FOLDER_ROOTS"), f"{where}: FILERELAY_FOLDER_ROOTS left to its default"
        folders = 0
        for workspace in load_config(text, env)["workspaces"]:
            for destination in workspace["destinations"]:
                destination_columns(destination, policy)  # what `config apply` checks before it stores
                folders += destination["kind"] == "folder"
        assert folders, f"{where}: no folder destination to check"
        installation = where.split()[0]
        mounts = [Path(m) for m in folder_mounts(installation)]
        for root in policy.folder_roots:
            assert any(root.is_relative_to(m) for m in mounts), f"{where}: {root} is on no volume of the worker"
        for other, _, other_env in filerelay_processes():
            if other.split()[0] == installation:
                assert other_env.get("FILERELAY_FOLDER_ROOTS") == env["FILERELAY_FOLDER_ROOTS"], other
        assert not policy.allow_ambient_credentials, f"{where}: a multi-team installation allows ambient credentials"


def test_the_folder_roots_check_catches_a_destination_outside_them() -> None:
    _, text, env = applied_configs()[0]
    outside = {**env, "FILERELAY_FOLDER_ROOTS": "/somewhere/else"}
    data = load_config(text, outside)
    [folder] = [d for w in data["workspaces"] for d in w["destinations"] if d["kind"] == "folder"]
    with pytest.raises(InvalidInput, match="outside the operator's folder roots"):
        destination_columns(folder, policy_of(outside))


# ---------------------------------------------------------------------------- (d) the environment they set


def test_the_defaults_of_the_required_variables_are_single_host_ones(tmp_path: Path) -> None:
    embedded = Settings.from_env({"FILERELAY_HOME": str(tmp_path)})
    assert embedded.database_url.startswith("sqlite")
    assert embedded.embedded_broker
    assert embedded.staging_url.startswith("file:")
    values = dict(zip(PRODUCTION_REQUIRED, ("postgresql+psycopg://h/db", "redis://h:6379/0", "s3://b/p"), strict=True))
    chosen = Settings.from_env({"FILERELAY_HOME": str(tmp_path), **values})
    assert (chosen.database_url, chosen.broker_url, chosen.staging_url) == tuple(values.values())


def test_every_filerelay_variable_set_is_one_the_code_reads() -> None:
    known = code_variables()
    assert set(PRODUCTION_REQUIRED) <= known
    set_anywhere: dict[str, set[str]] = {}
    for where, _, env in filerelay_processes():
        for name in env:
            set_anywhere.setdefault(name, set()).add(where)
    documented = set(re.findall(r"^#?\s*(FILERELAY_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    documented |= {key for source in k8s_sources().values() for key in source}
    documented |= set(re.findall(r"\b(FILERELAY_[A-Z0-9_]+)\b", COMPOSE.read_text()))
    unknown = {name for name in set(set_anywhere) | documented if name.startswith("FILERELAY_")} - known
    assert not unknown, f"set, but read by no code: {sorted(unknown)}"


@pytest.mark.parametrize("process", filerelay_processes(), ids=lambda p: p[0].replace(" ", "_"))
def test_every_process_names_its_database_broker_and_shared_staging(
    process: tuple[str, list[str], dict[str, str]],
) -> None:
    where, _, env = process
    if where == "Dockerfile CMD":
        assert not any(name in env for name in PRODUCTION_REQUIRED), "no URL (with its password) in the image"
        return
    missing = [name for name in PRODUCTION_REQUIRED if not env.get(name)]
    assert not missing, f"{where} leaves {missing} to their single-host defaults"
    # API and worker pods on different hosts must see the same staged bytes.
    assert env["FILERELAY_STAGING_URL"].startswith("s3://"), where
    # A database server: every process seals and opens destination secrets with the keys it is given (it
    # refuses to generate one of its own), and signs sessions with the shared key.
    assert all(env.get(name) for name in REFUSED_PLACEHOLDERS), f"{where} lacks {REFUSED_PLACEHOLDERS}"
    settings = Settings.from_env(filled_in(env))
    assert settings.database_url.startswith("postgresql")
    assert settings.broker_url.startswith("redis://")
    assert settings.encryption_keys


def filled_in(env: Mapping[str, str]) -> dict[str, str]:
    """The template's environment once its keys are replaced as its comments say (a generated token)."""
    return {**env, **{name: secrets.token_urlsafe(32) for name in REFUSED_PLACEHOLDERS if name in env}}


@pytest.mark.parametrize("process", filerelay_processes(), ids=lambda p: p[0].replace(" ", "_"))
def test_no_template_ships_a_key_that_would_be_accepted(process: tuple[str, list[str], dict[str, str]]) -> None:
    """Started from a template as shipped, a process refuses: whoever copies it without generating keys
    gets no console whose sessions anyone who read the template could forge."""
    _, _, env = process
    for name in REFUSED_PLACEHOLDERS:
        if name not in env:
            continue
        with pytest.raises(SettingsError, match=rf"^{name}\b.*(placeholder|bytes long)"):
            Settings.from_env({**filled_in(env), name: env[name]})


def test_the_templates_say_how_to_generate_the_keys() -> None:
    for template in (ENV_EXAMPLE, ROOT / "k8s" / "secret.example.yaml"):
        text = template.read_text()
        for name in REFUSED_PLACEHOLDERS:
            assert name in text, f"{template.name} does not set {name}"
        assert "secrets.token_urlsafe(32)" in text, f"{template.name} does not say how to generate a key"


# ------------------------------------------------------------------------------------------ (e) the image


def dockerfile_user() -> int:
    users = [rest for name, rest in dockerfile_instructions() if name == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].partition(":")[0]
    assert user.isdigit(), "a numeric USER, so Kubernetes can verify runAsNonRoot"
    return int(user)


def test_the_image_runs_filerelay_as_a_fixed_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert dockerfile_json("ENTRYPOINT") == ["filerelay"]
    assert dockerfile_json("CMD") == ["api"]
    assert dockerfile_user() == 10001
    home = dockerfile_env()["FILERELAY_HOME"]
    runs = " ".join(rest for name, rest in instructions if name == "RUN")
    assert re.search(rf"install -d -o 10001 -g 10001 [^&]*{re.escape(home)}", runs), "FILERELAY_HOME writable"


def test_the_image_bakes_in_no_secret() -> None:
    for name, rest in dockerfile_instructions():
        if name in ("ENV", "ARG"):
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                assert not SECRET_NAME.search(key), token
                assert not URL_PASSWORD.search(value), token
        if name in ("COPY", "ADD"):
            assert ".env" not in rest.split(), rest
