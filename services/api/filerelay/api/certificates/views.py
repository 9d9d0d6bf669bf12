"""Certificate review for admins: what SAP sent, and the switch that makes it trusted."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from filerelay import certificates
from filerelay.api.auth import acting, requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.errors import ApiError
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint, UtcDateTime
from filerelay.db.models import Role
from filerelay.db.session import read_scope
from filerelay.operations import configuration, transaction

blueprint = RestBlueprint(
    "certificates",
    __name__,
    url_prefix=f"{WORKSPACE_PREFIX}/certificates",
    description="Certificates SAP sent with putCert (admin)",
)


class CertificateSchema(ma.Schema):
    repo_id = fields.String(required=True)
    auth_id = fields.String(required=True)
    fingerprint = fields.String(required=True, metadata={"description": "SHA-256 of the DER, hex"})
    subject = fields.String(required=True)
    issuer = fields.String(required=True)
    serial = fields.String(required=True)
    not_before = UtcDateTime(required=True)
    not_after = UtcDateTime(required=True)
    active = fields.Boolean(required=True)
    received_at = UtcDateTime(required=True)
    activated_at = UtcDateTime(required=True, allow_none=True)


class CertificateList(ma.Schema):
    data = fields.List(fields.Nested(CertificateSchema), required=True)


class CertificateEnvelope(ma.Schema):
    data = fields.Nested(CertificateSchema, required=True)


class ListArgs(ma.Schema):
    repo_id = fields.String(validate=validate.Length(min=1, max=32))


@blueprint.route("")
@requires(Role.ADMIN)
@blueprint.arguments(ListArgs, location="query", as_kwargs=True)
@blueprint.response(200, CertificateList)
def list_certificates(owner: str, slug: str, repo_id: str | None = None) -> dict[str, Any]:
    """Every certificate received for the workspace's repositories, active or not."""
    with read_scope(runtime().sessions) as session:
        return {"data": certificates.list_for(session, workspace_id=workspace_id(), repo_id=repo_id)}


def _switch(repo_id: str, fingerprint: str, *, active: bool) -> dict[str, Any]:
    try:
        with transaction(acting()) as tx:
            info = configuration.set_certificate(
                tx, workspace_id=workspace_id(), repo_id=repo_id, fingerprint=fingerprint, active=active
            )
    except certificates.UnknownCertificate as exc:
        raise ApiError(404, str(exc)) from None
    return {"data": info}


@blueprint.route("/<repo_id>/<fingerprint>/activate", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.response(200, CertificateEnvelope)
def activate(owner: str, slug: str, repo_id: str, fingerprint: str) -> dict[str, Any]:
    """Trust this certificate for signed URLs of the repository (compare the fingerprint with STRUST first)."""
    return _switch(repo_id, fingerprint, active=True)


@blueprint.route("/<repo_id>/<fingerprint>/revoke", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.response(200, CertificateEnvelope)
def revoke(owner: str, slug: str, repo_id: str, fingerprint: str) -> dict[str, Any]:
    """Stop trusting this certificate; signed URLs made with it get 401 from now on."""
    return _switch(repo_id, fingerprint, active=False)
