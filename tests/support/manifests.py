"""The deployment files as the tests read them: manifests, compose, the Dockerfile, and what they run."""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from filerelay.cli.main import main as cli

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes the manifests must apply to; kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.31.0"
# Not a Kubernetes manifest, and a template kept out of the kustomization on purpose.
NOT_RESOURCES = {"kustomization.yaml", "secret.example.yaml"}
# Without these, a process falls back to an embedded default that only works on one host (SQLite, a broker
# in folders, staging on local disk): see test_the_defaults_of_the_required_variables_are_single_host_ones.
PRODUCTION_REQUIRED = ("FILERELAY_DATABASE_URL", "FILERELAY_BROKER_URL", "FILERELAY_STAGING_URL")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEYS?$|CERTIFICATE")
# The keys FileRelay itself refuses as long as they are the templates' placeholders (filerelay.settings).
REFUSED_PLACEHOLDERS = ("FILERELAY_SECRET_KEY", "FILERELAY_ENCRYPTION_KEYS")
URL_PASSWORD = re.compile(r"://[^/@\s]*:([^@/\s]+)@")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?])[^}]*)?\}")
CONFIG_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def closed(properties: Mapping[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-schema object that refuses unknown fields, so a misspelt knob cannot pass silently."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema


def resource(api_version: str, kind: str, metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a custom resource of `kind`: exactly apiVersion, kind, metadata and spec."""
    fields = {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": metadata, "spec": spec}
    return closed(fields, required=list(fields))


# KEDA ScaledObject (keda.sh/v1alpha1) with the Redis Lists trigger, from the KEDA docs summarised in
# docs/operations.md#scaling-workers (keda-docs 2.21: reference/scaledobject-spec.md and
# scalers/redis-lists.md). Unknown fields are errors, so a misspelt knob cannot pass silently.
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "string", "pattern": r"^[0-9]+$"}
_TEXT = {"type": "string", "minLength": 1}
_DECIMAL = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
_KEDA_SPEC = closed(
    {
        "scaleTargetRef": closed(
            {
                "name": _NAME,
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "envSourceContainerName": {"type": "string"},
            },
            required=["name"],
        ),
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {
            "type": "object",
            "required": ["failureThreshold", "replicas"],
            "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}},
        },
        "advanced": closed(
            {
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "horizontalPodAutoscalerConfig": closed({"name": {"type": "string"}, "behavior": {"type": "object"}}),
                "scalingModifiers": {"type": "object"},
            }
        ),
        "triggers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/trigger"}},
    },
    required=["scaleTargetRef", "triggers"],
)
_KEDA_TRIGGER = {
    **closed(
        {
            "type": {"type": "string"},
            "name": {"type": "string"},
            "metadata": _STRINGS,
            "authenticationRef": closed(
                {
                    "name": {"type": "string"},
                    "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                },
                required=["name"],
            ),
            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
            "useCachedMetrics": {"type": "boolean"},
        },
        required=["type", "metadata"],
    ),
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "redis"}}},
            "then": {"properties": {"metadata": {"$ref": "#/$defs/redisLists"}}},
        },
        {
            "if": {"properties": {"type": {"const": "postgresql"}}},
            "then": {"properties": {"metadata": {"$ref": "#/$defs/postgresql"}}},
        },
    ],
}
# keda-docs scalers/postgresql.md: a connection string from the env, or its parts with the password
# from the env; never `password` or `connection` inline.
_KEDA_POSTGRESQL = {
    **closed(
        {
            **dict.fromkeys(
                ("connectionFromEnv", "host", "port", "userName", "dbName", "sslmode", "passwordFromEnv"), _TEXT
            ),
            "query": {"type": "string", "pattern": r"^SELECT "},
            "targetQueryValue": _DECIMAL,
            "activationTargetQueryValue": _DECIMAL,
        },
        required=["query", "targetQueryValue"],
    ),
    "anyOf": [{"required": ["connectionFromEnv"]}, {"required": ["host", "userName", "dbName"]}],
}
# No `password`: a password goes through passwordFromEnv or a TriggerAuthentication, never inline.
_REDIS_TEXT_KEYS = (
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
)
_KEDA_REDIS_LISTS = {
    **closed(
        {
            **dict.fromkeys(_REDIS_TEXT_KEYS, _TEXT),
            "listLength": _COUNT,
            "activationListLength": _COUNT,
            "databaseIndex": _COUNT,
            "enableTLS": {"enum": ["true", "false"]},
            "unsafeSsl": {"enum": ["true", "false"]},
        },
        required=["listName", "listLength"],
    ),
    "anyOf": [
        {"required": ["address"]},
        {"required": ["addressFromEnv"]},
        {"required": ["host", "port"]},
        {"required": ["hostFromEnv", "portFromEnv"]},
    ],
}
KEDA_SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        closed({"name": _NAME, "namespace": _NAME, "labels": _STRINGS, "annotations": _STRINGS}, required=["name"]),
        _KEDA_SPEC,
    ),
    "$defs": {"trigger": _KEDA_TRIGGER, "postgresql": _KEDA_POSTGRESQL, "redisLists": _KEDA_REDIS_LISTS},
}


# ---------------------------------------------------------------------------------------------- reading


@functools.cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file, each caller getting its own copy to change."""
    return copy.deepcopy(list(_parsed(path)))


def manifest_files() -> list[Path]:
    """The manifests of k8s/ and of its components (k8s/components/<name>/), not the kustomizations."""
    paths = [*K8S.glob("*.yaml"), *K8S.glob("components/*/*.yaml")]
    return sorted(path for path in paths if path.name != "kustomization.yaml")


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in manifest_files() for doc in yaml_documents(path)]


def manifest_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1]['kind']}/{item[1]['metadata']['name']}"


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, rest = (pending + line).partition(" ")
        out.append((instruction.upper(), rest.strip()))
        pending = ""
    last_from = max(i for i, (instruction, _) in enumerate(out) if instruction == "FROM")
    return out[last_from:]


def dockerfile_json(instruction: str) -> list[str]:
    values = [rest for name, rest in dockerfile_instructions() if name == instruction]
    assert values, f"the Dockerfile has no {instruction}"
    parsed = json.loads(values[-1])  # exec form: a JSON list, so no shell sits between signals and filerelay
    assert isinstance(parsed, list)
    return [str(item) for item in parsed]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, rest in dockerfile_instructions():
        if name == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_0-9]+=", line))
    return {key: value for key, value in pairs}


def compose() -> dict[str, Any]:
    (document,) = yaml_documents(COMPOSE)
    return document


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:?message}`, `${VAR:-default}` and `$$`, from `env`."""
    return INTERPOLATION.sub(lambda m: env[m.group(1)], value).replace("$$", "$")


def strings(value: object) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def as_argv(value: str | list[str] | None) -> list[str] | None:
    return shlex.split(value) if isinstance(value, str) else value


def uses_filerelay_image(image: str | None) -> bool:
    return (image or "").partition(":")[0] == "filerelay"


def compose_filerelay_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {name: svc for name, svc in services.items() if uses_filerelay_image(svc.get("image"))}


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """What the container sees: the env_file (.env, here its template) overlaid by `environment`."""
    assert service.get("env_file") == ".env", "FileRelay services take their secrets from .env"
    example = env_example()
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "write `environment` as a mapping"
    return {**example, **{key: interpolate(str(value), example) for key, value in raw.items()}}


def k8s_sources() -> dict[tuple[str, str], dict[str, str]]:
    """ConfigMap and Secret data by (kind, name): configmap.yaml and the secret template."""
    sources: dict[tuple[str, str], dict[str, str]] = {}
    for doc in of_kind("ConfigMap"):
        sources["ConfigMap", doc["metadata"]["name"]] = dict(doc.get("data") or {})
    for doc in of_kind("Secret"):
        sources["Secret", doc["metadata"]["name"]] = dict(doc.get("stringData") or {})
    return sources


def container_environment(container: Mapping[str, Any]) -> dict[str, str]:
    sources = k8s_sources()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
        )
        assert (kind, ref["name"]) in sources, f"{container['name']}: no {kind} {ref['name']} in k8s/"
        env.update(sources[kind, ref["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref_kind = "ConfigMap" if "configMapKeyRef" in item["valueFrom"] else "Secret"
            ref = item["valueFrom"].get("configMapKeyRef") or item["valueFrom"]["secretKeyRef"]
            assert ref["key"] in sources[ref_kind, ref["name"]], f"{item['name']}: no key {ref['key']}"
            env[item["name"]] = sources[ref_kind, ref["name"]][ref["key"]]
    return env


def pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind("Deployment") + of_kind("Job"):
        yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]


def all_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def filerelay_processes() -> list[tuple[str, list[str], dict[str, str]]]:
    """Every FileRelay process the files start: (where, argv after `filerelay`, its environment)."""
    entrypoint, cmd = dockerfile_json("ENTRYPOINT"), dockerfile_json("CMD")
    found: list[tuple[str, list[str], dict[str, str]]] = [("Dockerfile CMD", [*entrypoint, *cmd], dockerfile_env())]
    for name, svc in compose_filerelay_services().items():
        # Compose, like Docker: a service's entrypoint replaces the image's and clears its CMD.
        own_entrypoint = as_argv(svc.get("entrypoint"))
        command = as_argv(svc.get("command"))
        argv = [*own_entrypoint, *(command or [])] if own_entrypoint is not None else [*entrypoint, *(command or cmd)]
        found.append((f"docker-compose.yml {name}", argv, {**dockerfile_env(), **compose_environment(svc)}))
    for where, pod in pod_templates():
        for container in all_containers(pod):
            assert uses_filerelay_image(container["image"]), f"{where}: unexpected image {container['image']}"
            argv = [*(container.get("command") or entrypoint), *(container.get("args") or cmd)]
            env = {**dockerfile_env(), **container_environment(container)}
            found.append((f"k8s {where} {container['name']}", argv, env))
    processes: list[tuple[str, list[str], dict[str, str]]] = []
    for where, argv, env in found:
        if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
            steps = [shlex.split(step) for step in " ".join(argv[2:]).split("&&")]
        else:
            steps = [argv]
        for step in steps:
            assert step[0] == "filerelay", f"{where} runs {step[0]!r}, not filerelay"
            processes.append((where, step[1:], env))
    return processes


def resolve(args: list[str]) -> tuple[list[str], click.Context]:
    """Parse like `filerelay ARGS` would, without running anything: the command path and its context."""
    command: click.Command = cli
    context = click.Context(cli, info_name="filerelay")
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"`filerelay {' '.join(path)}` needs a subcommand"
        name = rest.pop(0)
        sub = command.get_command(context, name)
        assert sub is not None, f"`filerelay {' '.join([*path, name])}` is not a command"
        path.append(name)
        command = sub
        context = click.Context(command, info_name=name, parent=context)
    # Options, types and required arguments, exactly as click checks them when the command runs.
    leaf = command.make_context(path[-1], rest, parent=context.parent)
    return path, leaf


def command_option(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def seconds(value: str) -> int:
    """Compose durations such as 45s, 10m, 1h30m."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", value)
    assert "".join(n + u for n, u in parts) == value, f"unexpected duration {value!r}"
    return sum(int(n) * units[u] for n, u in parts)


def code_variables() -> set[str]:
    """Every FILERELAY_* name the code mentions as a string literal: what it can read."""
    found: set[str] = set()
    for root in (ROOT / "shared", ROOT / "services"):
        for path in root.rglob("*.py"):
            found.update(re.findall(r"""["'](FILERELAY_[A-Z0-9_]+)["']""", path.read_text()))
    return found


# ------------------------------------------------------------------------------ (a) Kubernetes manifests
