"""The console's pages. Thin: who is signed in (signin.py), then the shared core, then a template.

Every page is readable without JavaScript; every change is a POST form carrying a CSRF token, offered
only to the roles allowed to make it and refused to the others (whatever the form says).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from filerelay import audit, business_context, catalog, certificates, files, overview
from filerelay.api import served_content
from filerelay.api.audit.schemas import AuditArgs
from filerelay.api.console import chart, signin
from filerelay.api.console.signin import page, person
from filerelay.api.context import operations_context, runtime
from filerelay.api.documents.schemas import FILTERS, ListArgs, to_filter
from filerelay.content import open_content
from filerelay.db.models import DocumentStatus, Role
from filerelay.db.session import session_scope
from filerelay.delivery import retention
from filerelay.delivery.retry import NothingToRetry, StagedBytesReleased
from filerelay.destinations.base import is_pushed
from filerelay.operations import Context, UnknownItem, configuration, relay, transaction
from filerelay.workspace_config import destinations
from filerelay.workspace_config.common import ConfigurationError

blueprint = Blueprint("console", __name__, url_prefix="/ui/<owner>/<slug>", template_folder="templates")
# The stylesheet is the same for every workspace: served once, outside the workspace's URLs.
assets = Blueprint("console_assets", __name__, static_folder="static", static_url_path="/ui/static")

PER_PAGE = 25
# The documents page counts the failed deliveries a bulk retry would take up to this many ("1,000+");
# the confirmation counts them all.
FAILED_SHOWN = 1_000
# Pages that show something in flight reload themselves this often (seconds), without JavaScript.
REFRESH_SECONDS = 5
IN_FLIGHT = {DocumentStatus.PENDING.value, DocumentStatus.RETRYING.value}
AUDIT_PER_PAGE = 50


def _now() -> dt.datetime:
    return runtime().clock.now()


def _acting() -> Context:
    """The operations context of a change made by the signed-in key."""
    return operations_context(person().actor)


def _document(db: Any, document_id: str) -> Any:
    """The signed-in workspace's live document, or 404."""
    document = catalog.find_document(db, workspace_id=person().workspace_id, document_id=document_id)
    if document is None:
        abort(404)
    return document


def _back(view: str, **values: Any) -> BaseResponse:
    who = person()
    return redirect(url_for(view, owner=who.owner, slug=who.slug, **values))


# --- signing in and out ------------------------------------------------------------------------------


def _safe_next(owner: str, slug: str) -> str | None:
    """Where to go after signing in: only a page of this console, never another site."""
    target = request.values.get("next", "")
    home = f"/ui/{owner}/{slug}/"
    return target if target.startswith(home) and "//" not in target and "\\" not in target else None


@blueprint.route("/login", methods=["GET", "POST"])
def login(owner: str, slug: str) -> str | BaseResponse | tuple[str, int]:
    if request.method == "POST":
        if signin.sign_in(owner, slug, request.form.get("api_key", "")) is not None:
            return redirect(_safe_next(owner, slug) or url_for("console.overview_page", owner=owner, slug=slug))
        error = "That key cannot sign in here: it is unknown, revoked, or belongs to another workspace."
        return render_template("console/login.html", owner=owner, slug=slug, error=error), 401
    return render_template("console/login.html", owner=owner, slug=slug, error=None)


@blueprint.route("/logout", methods=["POST"])
def logout(owner: str, slug: str) -> BaseResponse:
    signin.sign_out()
    flash("Signed out.")
    return redirect(url_for("console.login", owner=owner, slug=slug))


# --- overview ----------------------------------------------------------------------------------------


@blueprint.route("/")
@page()
def overview_page(owner: str, slug: str) -> str:
    who, now = person(), _now()
    with session_scope(runtime().sessions) as db:
        day, week = overview.status_counts(
            db, workspace_id=who.workspace_id, since=(now - dt.timedelta(hours=24), now - dt.timedelta(days=7))
        )
        lines = overview.destination_lines(db, workspace_id=who.workspace_id, now=now)
        oldest = overview.oldest_undelivered(db, workspace_id=who.workspace_id)
        hourly = overview.delivered_per_hour(db, workspace_id=who.workspace_id, now=now)
        due = overview.due_by_kind(db, workspace_id=who.workspace_id, now=now)
        oldest_info = None if oldest is None else {"id": oldest.id, "doc_id": oldest.doc_id, "at": oldest.received_at}
    labels = [f"{start:%H}:00" for start in overview.hour_starts(now)]
    return render_template(
        "console/overview.html",
        day=day,
        week=week,
        lines=lines,
        oldest=oldest_info,
        due={line.kind: due.get(line.kind, 0) for line in lines if is_pushed(line.kind)},
        chart=chart.bars(hourly, labels, title="Deliveries per hour, last 24 hours (UTC)"),
        delivered_24h=sum(hourly),
        refresh=REFRESH_SECONDS if any(line.waiting for line in lines) else None,
        now=now,
    )


# --- documents ---------------------------------------------------------------------------------------


def _filter_args() -> tuple[dict[str, Any], dict[str, Any]]:
    """The query's filters (as the REST API takes them) and any errors, field by field."""
    raw = {k: v for k, v in request.args.items() if v != "" and k in ListArgs().fields}
    try:
        return ListArgs().load(raw), {}
    except ma.ValidationError as exc:
        return {}, exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}


@blueprint.route("/documents")
@page()
def documents_page(owner: str, slug: str) -> str | tuple[str, int]:
    who = person()
    args, errors = _filter_args()
    shown = {k: request.args.get(k, "") for k in FILTERS}
    if errors:
        return _invalid(errors, shown)
    cursor = args.pop("cursor", None)
    args.pop("page", None)
    args.pop("per_page", None)
    try:
        after = catalog.Cursor.decode(cursor) if cursor else None
    except ValueError as exc:
        return _invalid({"cursor": [f"{exc}: start again from the newest page"]}, shown)
    filters = to_filter(args)
    with session_scope(runtime().sessions) as db:
        found = catalog.list_documents(
            db, workspace_id=who.workspace_id, filters=filters, per_page=PER_PAGE, after=after
        )
        now = _now()
        rows = [_row(d, now) for d in found.documents]
        failed = catalog.count_failed(db, workspace_id=who.workspace_id, filters=filters, cap=FAILED_SHOWN)
        wired = overview.destination_ids(db, workspace_id=who.workspace_id)
    return render_template(
        "console/documents.html",
        errors={},
        shown=shown,
        found=found,
        rows=rows,
        failed=failed,
        failed_cap=FAILED_SHOWN,
        destinations=wired,
        statuses=[s.value for s in DocumentStatus],
        next_cursor=found.next_cursor.encode() if found.next_cursor else None,
        refresh=REFRESH_SECONDS if any(r["status"] in IN_FLIGHT for r in rows) else None,
    )


def _invalid(errors: dict[str, Any], shown: dict[str, str]) -> tuple[str, int]:
    """The documents page with the filters as given and what is wrong with them; no query runs."""
    return render_template("console/documents.html", errors=errors, shown=shown, found=None, destinations=[]), 400


def _row(document: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "business_object": (document.sap_object_type, document.sap_object_id),
        "waiting_for_metadata": business_context.waiting_for_metadata(document, now=now),
        "id": document.id,
        "doc_id": document.doc_id,
        "comp_id": document.comp_id,
        "repo_id": document.repository.repo_id,
        "status": document.status,
        "received_at": document.received_at,
        "size_bytes": document.size_bytes,
        "export_status": document.export_status,
        "deliveries": [(d.destination.public_id, d.status) for d in document.deliveries],
    }


@blueprint.route("/documents/retry", methods=["GET", "POST"])
@page(Role.MEMBER)
def bulk_retry(owner: str, slug: str) -> str | BaseResponse | tuple[str, int]:
    """GET: how many would be retried, and a form to confirm; POST (the form): retry them."""
    who = person()
    source = request.args if request.method == "GET" else request.form
    raw = {k: v for k, v in source.items() if v != "" and k in FILTERS}
    try:
        args = ListArgs().load(raw)
    except ma.ValidationError as exc:
        return render_template("console/error.html", message=f"These filters are not valid: {exc.messages}"), 400
    filters = to_filter(args)
    rt = runtime()
    if request.method == "GET":
        with session_scope(rt.sessions) as db:
            documents, deliveries = catalog.count_failed(db, workspace_id=who.workspace_id, filters=filters)
        return render_template("console/confirm_retry.html", raw=raw, documents=documents, deliveries=deliveries)
    done = relay.retry_matching(_acting(), workspace_id=who.workspace_id, filters=filters, described=raw)
    flash(f"Re-queued {done.deliveries} failed deliveries of {done.documents} documents.")
    return _back("console.documents_page", **raw)


@blueprint.route("/documents/<document_id>")
@page()
def document_page(owner: str, slug: str, document_id: str) -> str:
    with session_scope(runtime().sessions) as db:
        document = _document(db, document_id)
        deliveries = [
            {
                "destination": d.destination.public_id,
                "name": d.destination.name,
                "status": d.status,
                "path": d.path,
                "attempts": [
                    {
                        "number": a.number,
                        "started_at": a.started_at,
                        "seconds": (a.finished_at - a.started_at).total_seconds() if a.finished_at else None,
                        "outcome": a.outcome,
                        "error": a.error_message,
                    }
                    for a in d.attempt_log
                ],
                "last_error": d.last_error,
            }
            for d in document.deliveries
        ]
        info = {
            "id": document.id,
            "repo_id": document.repository.repo_id,
            "doc_id": document.doc_id,
            "comp_id": document.comp_id,
            "components": [c.comp_id for c in document.archive_document.components],
            "content_type": document.content_type,
            "size_bytes": document.size_bytes,
            "sha256": document.sha256,
            "status": document.status,
            "received_at": document.received_at,
            "export_status": document.export_status,
            "export_messages": list(document.export_messages or []),
            "failed": any(d["status"] == "failed" for d in deliveries),
            "metadata": dict(document.metadata_ or {}),
            "waiting_for_metadata": business_context.waiting_for_metadata(document, now=_now()),
            "staged": document.staging_key is not None,
            "staging_expires_at": retention.staging_expires_at(document, runtime().settings.retention),
            "staging_released_at": document.staging_released_at,
            "staging_released_reason": document.staging_released_reason,
            "record_expires_at": retention.record_expires_at(document, runtime().settings.retention),
        }
    return render_template(
        "console/document.html",
        doc=info,
        deliveries=deliveries,
        refresh=REFRESH_SECONDS if info["status"] in IN_FLIGHT else None,
    )


@blueprint.route("/documents/<document_id>/retry", methods=["POST"])
@page(Role.MEMBER)
def retry_one(owner: str, slug: str, document_id: str) -> BaseResponse:
    try:
        with transaction(_acting()) as tx:  # wakes the deliveries after its commit
            retried = relay.retry(tx, workspace_id=person().workspace_id, document_id=document_id)
    except UnknownItem:
        abort(404)
    except StagedBytesReleased as exc:
        flash(f"Not retried: {exc}.")
    except NothingToRetry:
        flash("Nothing to retry: no delivery of this document has failed.")
    else:
        flash(f"Re-queued {retried} failed deliveries.")
    return _back("console.document_page", document_id=document_id)


@blueprint.route("/documents/<document_id>/content")
@page()
def download(owner: str, slug: str, document_id: str) -> Response:
    """The bytes as an attachment. SAP may archive text/html: never rendered on the console's origin."""
    rt = runtime()
    with session_scope(rt.sessions) as db:
        document = _document(db, document_id)
        body = open_content(rt.staging, db, document, clients=rt.clients)
        if body is None:
            abort(409, "no copy of this document can be read any more")
        response = Response(body, content_type=files.media_type(document))
        response.headers["Content-Length"] = str(document.size_bytes)
        response.headers.set("Content-Disposition", "attachment", filename=files.filename(document))
    return served_content.protect(response)


# --- destinations ------------------------------------------------------------------------------------


@blueprint.route("/destinations")
@page()
def destinations_page(owner: str, slug: str) -> str:
    who = person()
    with session_scope(runtime().sessions) as db:
        lines = overview.destination_lines(db, workspace_id=who.workspace_id, now=_now())
    return render_template("console/destinations.html", lines=lines)


@blueprint.route("/destinations/<destination_id>/test", methods=["POST"])
@page(Role.ADMIN)
def test_destination(owner: str, slug: str, destination_id: str) -> BaseResponse:
    who = person()
    try:
        rt = runtime()
        with session_scope(rt.sessions) as db:
            check = destinations.destination_check(
                db, workspace_id=who.workspace_id, destination_id=destination_id, policy=rt.settings.policy
            )
    except ConfigurationError as exc:
        flash(str(exc), "error")
    else:
        result = check()  # after the session: it may wait on the network
        flash(
            ("Connection works: " if result.ok else "Connection failed: ") + result.detail,
            "ok" if result.ok else "error",
        )
    return _back("console.destinations_page")


@blueprint.route("/destinations/<destination_id>/<any(pause, resume):action>", methods=["POST"])
@page(Role.ADMIN)
def switch_destination(owner: str, slug: str, destination_id: str, action: str) -> BaseResponse:
    switch = relay.pause if action == "pause" else relay.resume
    try:
        with transaction(_acting()) as tx:  # a resume wakes the due deliveries after its commit
            switch(tx, workspace_id=person().workspace_id, destination_id=destination_id)
    except ConfigurationError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{destination_id} {'paused' if action == 'pause' else 'resumed'}.")
    return _back("console.destinations_page")


# --- certificates and the audit log (admins) ---------------------------------------------------------


@blueprint.route("/certificates")
@page(Role.ADMIN)
def certificates_page(owner: str, slug: str) -> str:
    with session_scope(runtime().sessions) as db:
        found = certificates.list_for(db, workspace_id=person().workspace_id, repo_id=None)
    return render_template("console/certificates.html", certificates=found, now=_now())


@blueprint.route("/certificates/<repo_id>/<fingerprint>/<any(activate, revoke):action>", methods=["POST"])
@page(Role.ADMIN)
def switch_certificate(owner: str, slug: str, repo_id: str, fingerprint: str, action: str) -> BaseResponse:
    try:
        with transaction(_acting()) as tx:
            info = configuration.set_certificate(
                tx,
                workspace_id=person().workspace_id,
                repo_id=repo_id,
                fingerprint=fingerprint,
                active=action == "activate",
            )
    except certificates.UnknownCertificate as exc:
        flash(str(exc), "error")
    else:
        flash(f"Certificate {info.subject} of {repo_id} {'activated' if info.active else 'revoked'}.")
    return _back("console.certificates_page")


@blueprint.route("/audit")
@page(Role.ADMIN)
def audit_page(owner: str, slug: str) -> str | tuple[str, int]:
    """The audit log, newest first: the rows GET /api/OWNER/WORKSPACE/audit answers, with its filters."""
    raw = {k: v for k, v in request.args.items() if v != "" and k in AuditArgs().fields}
    shown = {k: request.args.get(k, "") for k in ("action", "target", "since")}
    try:
        args = AuditArgs().load({**raw, "per_page": raw.get("per_page", AUDIT_PER_PAGE)})
        after = audit.decode_cursor(args["cursor"]) if "cursor" in args else None
    except (ma.ValidationError, ValueError) as exc:
        message = exc.messages if isinstance(exc, ma.ValidationError) else {"cursor": [str(exc)]}
        return render_template("console/audit.html", events=[], errors=message, shown=shown, next_cursor=None), 400
    with session_scope(runtime().sessions) as db:
        found = audit.listing(
            db,
            workspace_id=person().workspace_id,
            per_page=args["per_page"],
            action=args.get("action"),
            target=args.get("target"),
            since=args.get("since"),
            after=after,
        )
        events = [
            {
                "at": e.at,
                "actor": e.actor,
                "actor_prefix": e.actor_prefix,
                "via": e.via,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
                "changes": e.changes or {},
            }
            for e in found.events
        ]
    return render_template(
        "console/audit.html",
        events=events,
        errors={},
        shown=shown,
        actions=audit.ACTIONS,
        next_cursor=found.next_cursor.encode() if found.next_cursor else None,
    )
