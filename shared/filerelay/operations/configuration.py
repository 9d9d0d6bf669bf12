"""Configuration changes, each with its audit entry: destinations, repositories (their signature mode
included), routes, retry settings, API keys, certificates, and a config file's workspaces.

The rules stay in filerelay.workspace_config and filerelay.certificates; these functions read the item
before and after (`audit_view`: secrets only as digests) and record what differs. A change that
changes nothing records nothing, so applying the same config file twice leaves no entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from filerelay import audit, certificates
from filerelay.operations.transaction import Transaction
from filerelay.policy import OperatorPolicy
from filerelay.workspace_config import api_keys, destinations, repositories, retry_settings, workspaces
from filerelay.workspace_config.api_keys import KeyInfo, NewKey
from filerelay.workspace_config.destinations import DestinationInfo
from filerelay.workspace_config.repositories import RepositoryInfo, RouteInfo
from filerelay.workspace_config.retry_settings import RetrySettings

RETRY_SETTINGS_TARGET = "retry"

# --- destinations -----------------------------------------------------------------------------------


def _destination(tx: Transaction, workspace_id: int, destination_id: str) -> dict[str, Any] | None:
    return destinations.audit_view(tx.session, workspace_id=workspace_id, destination_id=destination_id)


def create_destination(
    tx: Transaction, *, workspace_id: int, values: Mapping[str, Any], policy: OperatorPolicy
) -> DestinationInfo:
    """Its settings are admitted by its kind under the operator's `policy`."""
    info = destinations.create_destination(
        tx.session, workspace_id=workspace_id, values=values, now=tx.now, policy=policy
    )
    after = _destination(tx, workspace_id, info.id)
    tx.audit(
        workspace_id=workspace_id, action=audit.DESTINATION_CREATE, target=info.id, changes=audit.diff(None, after)
    )
    return info


def update_destination(
    tx: Transaction, *, workspace_id: int, destination_id: str, changes: Mapping[str, Any], policy: OperatorPolicy
) -> DestinationInfo:
    before = _destination(tx, workspace_id, destination_id)
    info = destinations.update_destination(
        tx.session,
        workspace_id=workspace_id,
        destination_id=destination_id,
        changes=changes,
        now=tx.now,
        policy=policy,
    )
    changed = audit.diff(before, _destination(tx, workspace_id, destination_id))
    if changed:
        tx.audit(workspace_id=workspace_id, action=audit.DESTINATION_UPDATE, target=destination_id, changes=changed)
    return info


def put_destination(
    tx: Transaction, *, workspace_id: int, values: Mapping[str, Any], policy: OperatorPolicy
) -> str | None:
    """A config file's destination: created, or brought to exactly `values`."""
    before = _destination(tx, workspace_id, values["id"])
    change = destinations.put_destination(
        tx.session, workspace_id=workspace_id, values=values, now=tx.now, policy=policy
    )
    changed = audit.diff(before, _destination(tx, workspace_id, values["id"]))
    if change is not None and changed:
        action = audit.DESTINATION_CREATE if before is None else audit.DESTINATION_UPDATE
        tx.audit(workspace_id=workspace_id, action=action, target=values["id"], changes=changed)
    return change


def delete_destination(tx: Transaction, *, workspace_id: int, destination_id: str) -> None:
    before = _destination(tx, workspace_id, destination_id)
    destinations.delete_destination(tx.session, workspace_id=workspace_id, destination_id=destination_id)
    tx.audit(
        workspace_id=workspace_id,
        action=audit.DESTINATION_DELETE,
        target=destination_id,
        changes=audit.diff(before, None),
    )


# --- repositories and routes ------------------------------------------------------------------------


def _repository(tx: Transaction, workspace_id: int, repo_id: str) -> dict[str, Any] | None:
    return repositories.audit_view(tx.session, workspace_id=workspace_id, repo_id=repo_id)


def create_repository(tx: Transaction, *, workspace_id: int, values: Mapping[str, Any]) -> RepositoryInfo:
    info = repositories.create_repository(tx.session, workspace_id=workspace_id, values=values, now=tx.now)
    after = _repository(tx, workspace_id, info.repo_id)
    tx.audit(
        workspace_id=workspace_id,
        action=audit.REPOSITORY_CREATE,
        target=info.repo_id,
        changes=audit.diff(None, after),
    )
    return info


def update_repository(
    tx: Transaction, *, workspace_id: int, repo_id: str, changes: Mapping[str, Any]
) -> RepositoryInfo:
    """Its description, its signature mode (`none` turns signature checks off) or its wiring."""
    before = _repository(tx, workspace_id, repo_id)
    info = repositories.update_repository(tx.session, workspace_id=workspace_id, repo_id=repo_id, changes=changes)
    changed = audit.diff(before, _repository(tx, workspace_id, repo_id))
    if changed:
        tx.audit(workspace_id=workspace_id, action=audit.REPOSITORY_UPDATE, target=repo_id, changes=changed)
    return info


def put_repository(tx: Transaction, *, workspace_id: int, values: Mapping[str, Any]) -> tuple[str | None, bool]:
    """A config file's repository: created, or brought to exactly `values`, its wiring included."""
    before = _repository(tx, workspace_id, values["repo_id"])
    change, rewired = repositories.put_repository(tx.session, workspace_id=workspace_id, values=values, now=tx.now)
    changed = audit.diff(before, _repository(tx, workspace_id, values["repo_id"]))
    if changed:
        action = audit.REPOSITORY_CREATE if before is None else audit.REPOSITORY_UPDATE
        tx.audit(workspace_id=workspace_id, action=action, target=values["repo_id"], changes=changed)
    return change, rewired


def delete_repository(tx: Transaction, *, workspace_id: int, repo_id: str) -> None:
    before = _repository(tx, workspace_id, repo_id)
    repositories.delete_repository(tx.session, workspace_id=workspace_id, repo_id=repo_id)
    tx.audit(
        workspace_id=workspace_id, action=audit.REPOSITORY_DELETE, target=repo_id, changes=audit.diff(before, None)
    )


def add_route(tx: Transaction, *, workspace_id: int, repo_id: str, destination_id: str) -> RouteInfo:
    info = repositories.add_route(tx.session, workspace_id=workspace_id, repo_id=repo_id, destination_id=destination_id)
    tx.audit(workspace_id=workspace_id, action=audit.ROUTE_CREATE, target=f"{repo_id}/{destination_id}")
    return info


def remove_route(tx: Transaction, *, workspace_id: int, repo_id: str, destination_id: str) -> None:
    repositories.remove_route(tx.session, workspace_id=workspace_id, repo_id=repo_id, destination_id=destination_id)
    tx.audit(workspace_id=workspace_id, action=audit.ROUTE_DELETE, target=f"{repo_id}/{destination_id}")


# --- retry settings and workspaces ------------------------------------------------------------------


def _settings(settings: RetrySettings) -> dict[str, Any]:
    return {
        "max_retries": settings.max_retries,
        "ttl": settings.ttl,
        "backoff_base": settings.backoff_base,
        "backoff_max": settings.backoff_max,
    }


def update_retry_settings(tx: Transaction, *, workspace_id: int, changes: Mapping[str, Any]) -> RetrySettings:
    before = retry_settings.get_retry_settings(tx.session, workspace_id=workspace_id)
    after = retry_settings.update_retry_settings(tx.session, workspace_id=workspace_id, changes=changes)
    changed = audit.diff(_settings(before), _settings(after))
    if changed:
        tx.audit(workspace_id=workspace_id, action=audit.SETTINGS_UPDATE, target=RETRY_SETTINGS_TARGET, changes=changed)
    return after


def put_workspace(tx: Transaction, *, owner: str, slug: str, retry: Mapping[str, Any]) -> tuple[int, bool, bool]:
    """A config file's workspace, created if need be, with exactly these retry settings. Answers its id,
    whether it was created, and whether its existing settings changed."""
    workspace, created = workspaces.put_workspace(tx.session, owner=owner, slug=slug, now=tx.now)
    if created:
        tx.audit(workspace_id=workspace.id, action=audit.WORKSPACE_CREATE, target=f"{owner}/{slug}")
    before = retry_settings.get_retry_settings(tx.session, workspace_id=workspace.id)
    retry_settings.put_retry_settings(tx.session, workspace_id=workspace.id, values=retry)
    after = retry_settings.get_retry_settings(tx.session, workspace_id=workspace.id)
    changed = audit.diff(_settings(before), _settings(after))
    if changed:
        tx.audit(workspace_id=workspace.id, action=audit.SETTINGS_UPDATE, target=RETRY_SETTINGS_TARGET, changes=changed)
    return workspace.id, created, bool(changed)


# --- API keys ---------------------------------------------------------------------------------------


def _key(tx: Transaction, workspace_id: int, name: str) -> dict[str, Any] | None:
    return api_keys.audit_view(tx.session, workspace_id=workspace_id, name=name)


def create_key(tx: Transaction, *, workspace_id: int, name: str, role: str) -> NewKey:
    """A new key with a random value, returned this once; the entry holds its name, role and prefix."""
    new = api_keys.create_key(tx.session, workspace_id=workspace_id, name=name, role=role, now=tx.now)
    tx.audit(
        workspace_id=workspace_id,
        action=audit.API_KEY_CREATE,
        target=name,
        changes=audit.diff(None, _key(tx, workspace_id, name)),
    )
    return new


def put_key(tx: Transaction, *, workspace_id: int, name: str, role: str, key: str) -> str | None:
    """A config file's key, with the value the operator chose: created, or brought to this role and value."""
    before = _key(tx, workspace_id, name)
    change = api_keys.put_key(tx.session, workspace_id=workspace_id, name=name, role=role, key=key, now=tx.now)
    changed = audit.diff(before, _key(tx, workspace_id, name))
    if change is not None and changed:
        action = audit.API_KEY_CREATE if before is None else audit.API_KEY_UPDATE
        tx.audit(workspace_id=workspace_id, action=action, target=name, changes=changed)
    return change


def revoke_key(tx: Transaction, *, workspace_id: int, name: str) -> KeyInfo:
    """Revoking a revoked key changes nothing and records nothing."""
    before = _key(tx, workspace_id, name)
    info = api_keys.revoke_key(tx.session, workspace_id=workspace_id, name=name, now=tx.now)
    changed = audit.diff(before, _key(tx, workspace_id, name))
    if changed:
        tx.audit(workspace_id=workspace_id, action=audit.API_KEY_REVOKE, target=name, changes=changed)
    return info


# --- certificates -----------------------------------------------------------------------------------


def set_certificate(
    tx: Transaction, *, workspace_id: int, repo_id: str, fingerprint: str, active: bool
) -> certificates.CertificateInfo:
    """Trust (activate) or stop trusting (revoke) a certificate SAP sent for the repository."""
    before = {
        c.fingerprint: c.active for c in certificates.list_for(tx.session, workspace_id=workspace_id, repo_id=repo_id)
    }
    info = certificates.set_active(
        tx.session, workspace_id=workspace_id, repo_id=repo_id, fingerprint_=fingerprint, active=active, now=tx.now
    )
    tx.audit(
        workspace_id=workspace_id,
        action=audit.ACTIVATE if active else audit.REVOKE,
        target=f"{repo_id}/{info.fingerprint}",
        changes=audit.diff({"active": before.get(info.fingerprint)}, {"active": info.active}),
        subject=info.subject,
    )
    return info
