"""One configuration, two write paths: a YAML file through `config apply` and the same settings
through the admin API must store the same rows and read back the same through the API."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.config_file import ConfigError, apply, load
from filerelay.db.models import ApiKey, Destination, Repository, Route, Workspace
from filerelay.db.session import session_scope
from filerelay.destinations import REGISTRY
from filerelay.runtime import Runtime
from tests.support.policy import LOOPBACK

FILE_ADMIN = "fr_live_file_admin_0123456789abcdef"
API_ADMIN = "fr_live_api_admin_0123456789abcdef"
ROBOT_KEY = "fr_live_robot_0123456789abcdef"

# Under the tests' folder roots (the system's temporary directory): nothing is written there.
OUT = str(LOOPBACK.folder_roots[0] / "filerelay-config-paths" / "out")
RETRY = {"max_retries": 2, "ttl": "6h", "backoff_base": "10s", "backoff_max": "5m"}
# Every kind, some with their own retry settings, secrets included.
DESTINATIONS: list[dict[str, Any]] = [
    {"id": "d_folder", "name": "Folder", "kind": "folder", "settings": {"root": OUT}, "max_retries": 0},
    {
        "id": "d_s3",
        "name": "S3",
        "kind": "s3",
        "settings": {
            "bucket": "archive",
            "endpoint_url": "http://127.0.0.1:9",
            "access_key_id": "AK",
            "secret_access_key": "s3-secret-value",
        },
        "path": "/{received:%Y/%m}/{doc_id}{ext}",
        "max_retries": 7,
        "retry_ttl": "2h",
    },
    {
        "id": "d_sp",
        "name": "SharePoint",
        "kind": "sharepoint",
        "settings": {
            "site_url": "https://contoso.sharepoint.com/sites/finance",
            "library": "Invoices",
            "access_token": "sp-token-value",
            "columns": {"SapDocId": "doc_id"},
        },
        "retry_ttl": "30m",
        "enabled": False,
    },
    {"id": "d_pull", "name": "ERP", "kind": "pull", "path": "/{doc_id}{ext}"},
    {
        "id": "d_hook",
        "name": "ERP inbox",
        "kind": "webhook",
        "settings": {
            "url": "https://erp.example.com/in",
            "secret": "whsec_" + "a2V5" * 12,
            "mode": "notification",
            "headers": {"x-api-token": "erp-token-value"},
        },
    },
    {
        "id": "d_sftp",
        "name": "Partner",
        "kind": "sftp",
        "settings": {
            "host": "sftp.example.com",
            "username": "relay",
            "password": "sftp-password-value",
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHmexamplekeyexamplekeyexamplekey0",
            "root": "/inbox",
        },
        "max_retries": 1,
    },
    {
        "id": "d_mail",
        "name": "Accounts payable",
        "kind": "email",
        "settings": {
            "smtp_host": "smtp.example.com",
            "username": "relay",
            "password": "smtp-password-value",
            "from": "sap@example.com",
            "to": ["ap@example.com", "audit@example.com"],
            "subject": "Invoice {doc_id}",
        },
    },
    {
        "id": "d_az",
        "name": "Azure archive",
        "kind": "azure_blob",
        "settings": {
            "container": "sap-archive",
            "account_url": "https://acme.blob.core.windows.net",
            "account_key": "azure-key-value",
        },
        "retry_ttl": "12h",
    },
    {
        "id": "d_gcs",
        "name": "GCS archive",
        "kind": "gcs",
        "settings": {
            "bucket": "sap-archive",
            "credentials_json": json.dumps(
                {
                    "type": "service_account",
                    "project_id": "acme",
                    "client_email": "relay@acme.iam.gserviceaccount.com",
                    "private_key": "gcs-key-value",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            ),
        },
    },
]
REPOSITORIES: list[dict[str, Any]] = [
    {"repo_id": "Z1", "description": "Invoices", "signature": "optional", "destinations": ["d_folder", "d_s3", "d_sp"]},
    {"repo_id": "Z2", "description": "Scans", "signature": "none", "destinations": ["d_pull"]},
    {"repo_id": "Z3", "description": "", "destinations": ["d_hook", "d_sftp", "d_mail", "d_az", "d_gcs"]},
]


def config_text() -> str:
    """The configuration as a file states it: kind settings inline, a repository's id as `id`."""
    destinations = [{**{k: v for k, v in d.items() if k != "settings"}, **d.get("settings", {})} for d in DESTINATIONS]
    repositories = [{"id": r["repo_id"], **{k: v for k, v in r.items() if k != "repo_id"}} for r in REPOSITORIES]
    workspace = {
        "owner": "acme",
        "slug": "from-file",
        "retry": RETRY,
        "api_keys": [
            {"name": "ops", "role": "admin", "key": FILE_ADMIN},
            {"name": "robot", "role": "member", "key": ROBOT_KEY},
        ],
        "destinations": destinations,
        "repositories": repositories,
    }
    return yaml.safe_dump({"workspaces": [workspace]})


def api_workspace_text() -> str:
    # The API cannot create a workspace; an empty one with its admin key is the starting point.
    return textwrap.dedent(
        f"""
        workspaces:
          - owner: acme
            slug: from-api
            api_keys: [{{name: ops, role: admin, key: {API_ADMIN}}}]
        """
    )


def call(client: FlaskClient, method: str, path: str, key: str, body: Any = None) -> Any:
    response = client.open(path, method=method, headers={"Authorization": f"Bearer {key}"}, json=body)
    assert response.status_code < 300, response.get_data(as_text=True)
    return response.get_json()["data"] if response.status_code != 204 else None


def read_back(client: FlaskClient, base: str, key: str) -> dict[str, Any]:
    """Everything the admin API shows of a workspace's configuration, without times and key prefixes."""

    def strip(items: list[dict[str, Any]], *drop: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k not in drop} for item in items]

    return {
        "destinations": strip(call(client, "GET", base + "/destinations", key), "created_at", "updated_at"),
        "repositories": strip(call(client, "GET", base + "/repositories", key), "created_at"),
        "routes": call(client, "GET", base + "/routes", key),
        "settings": call(client, "GET", base + "/settings", key),
        "keys": sorted((k["name"], k["role"]) for k in call(client, "GET", base + "/api-keys", key)),
    }


def stored_rows(runtime: Runtime, slug: str) -> dict[str, Any]:
    """The rows themselves (secrets included), without ids and times."""
    with session_scope(runtime.sessions) as session:
        workspace = session.scalars(select(Workspace).where(Workspace.slug == slug)).one()
        destinations = {
            d.public_id: (
                d.name,
                d.kind,
                d.settings,
                d.secrets,
                d.path_template,
                d.enabled,
                d.max_retries,
                d.retry_ttl_seconds,
            )
            for d in session.scalars(select(Destination).where(Destination.workspace_id == workspace.id))
        }
        repositories = {
            r.repo_id: (r.description, r.signature)
            for r in session.scalars(select(Repository).where(Repository.workspace_id == workspace.id))
        }
        routes = sorted(
            session.execute(
                select(Repository.repo_id, Destination.public_id)
                .join(Route, Route.repository_id == Repository.id)
                .join(Destination, Destination.id == Route.destination_id)
                .where(Repository.workspace_id == workspace.id)
            ).all()
        )
        retry = (
            workspace.max_retries,
            workspace.retry_ttl_seconds,
            workspace.backoff_base_seconds,
            workspace.backoff_max_seconds,
        )
        keys = sorted(
            (k.name, k.role) for k in session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace.id))
        )
        return {
            "destinations": destinations,
            "repositories": repositories,
            "routes": routes,
            "retry": retry,
            "keys": keys,
        }


@pytest.fixture
def client(runtime: Runtime) -> FlaskClient:
    return create_app(runtime=runtime).test_client()


def test_a_file_and_the_admin_api_store_the_same_configuration(runtime: Runtime, client: FlaskClient) -> None:
    assert {d["kind"] for d in DESTINATIONS} == set(REGISTRY), "every kind is in the comparison"
    now = runtime.clock.now()
    with session_scope(runtime.sessions) as session:
        apply(session, load(config_text(), {}), now=now, policy=LOOPBACK)
        apply(session, load(api_workspace_text(), {}), now=now, policy=LOOPBACK)

    base = "/api/acme/from-api"
    call(client, "PATCH", base + "/settings", API_ADMIN, RETRY)
    call(client, "POST", base + "/api-keys", API_ADMIN, {"name": "robot", "role": "member"})
    for body in DESTINATIONS:
        call(client, "POST", base + "/destinations", API_ADMIN, body)
    for body in REPOSITORIES:
        call(client, "POST", base + "/repositories", API_ADMIN, body)

    from_file = read_back(client, "/api/acme/from-file", FILE_ADMIN)
    from_api = read_back(client, base, API_ADMIN)
    assert from_file == from_api
    # Not vacuous: the retry overrides and the wiring made it through both paths.
    overrides = {d["id"]: (d["max_retries"], d["retry_ttl_seconds"]) for d in from_file["destinations"]}
    assert overrides == {
        "d_folder": (0, None),
        "d_s3": (7, 7200),
        "d_sp": (None, 1800),
        "d_pull": (None, None),
        "d_hook": (None, None),
        "d_sftp": (1, None),
        "d_mail": (None, None),
        "d_az": (None, 43200),
        "d_gcs": (None, None),
    }
    assert len(from_file["routes"]) == 9
    assert stored_rows(runtime, "from-file") == stored_rows(runtime, "from-api")


def test_applying_the_file_again_after_api_changes_restores_the_file(runtime: Runtime, client: FlaskClient) -> None:
    """The file states the whole destination: a setting or override added through the API is gone
    after the next `config apply`, exactly as the file says."""
    with session_scope(runtime.sessions) as session:
        apply(session, load(config_text(), {}), now=runtime.clock.now(), policy=LOOPBACK)
    base = "/api/acme/from-file"
    before = read_back(client, base, FILE_ADMIN)
    call(
        client,
        "PATCH",
        base + "/destinations/d_s3",
        FILE_ADMIN,
        {"max_retries": 1, "settings": {"region": "eu-west-1"}},
    )
    call(client, "PATCH", base + "/repositories/Z3", FILE_ADMIN, {"destinations": ["d_folder"]})
    assert read_back(client, base, FILE_ADMIN) != before

    with session_scope(runtime.sessions) as session:
        summary = apply(
            session, load(config_text(), {}), now=runtime.clock.now() + dt.timedelta(minutes=1), policy=LOOPBACK
        )
    assert summary.updated == ["destination d_s3", "routes of Z3"]
    assert read_back(client, base, FILE_ADMIN) == before


def test_a_file_gets_the_api_messages_for_a_destination_retry_override() -> None:
    text = textwrap.dedent(
        """
        workspaces:
          - owner: acme
            slug: production
            destinations:
              - {id: d1, name: D, kind: folder, root: /x, max_retries: 101, retry_ttl: soon}
        """
    )
    with pytest.raises(ConfigError) as info:
        load(text, {})
    assert (
        "workspaces.0.destinations.0.max_retries: Must be greater than or equal to 0 and less than or equal to 100"
        in str(info.value)
    )
    assert "workspaces.0.destinations.0.retry_ttl: 'soon' is not a duration" in str(info.value)
