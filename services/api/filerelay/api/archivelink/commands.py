"""One function per ArchiveLink command (docs/archivelink.md#commands); the business rules live in documents.py."""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from flask import Response, request
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from filerelay import certificates, content, documents, metrics
from filerelay.api import served_content
from filerelay.api.archivelink import security
from filerelay.api.archivelink.multipart import MultipartWriter
from filerelay.api.archivelink.protocol import (
    ArchiveLinkRequest,
    ContentType,
    ProtocolError,
    attr_search,
    byte_range,
    content_disposition,
    descr_lines,
    format_attr_search_result,
    format_records,
    format_search_result,
    parse_attr_patterns,
    parse_content_type,
    parse_offset,
    sap_date,
    sap_time,
    search,
    search_span,
    validate_id,
)
from filerelay.api.archivelink.security import read_put_cert_body
from filerelay.api.archivelink.signatures import GUARDS, UNSIGNED, Guard
from filerelay.api.archivelink.upload import MAX_ID_LENGTH, StagedParts, new_component, replacement_key, stage_body
from filerelay.api.context import runtime
from filerelay.content import open_content
from filerelay.db.models import ArchiveDocument, Document, new_id
from filerelay.db.session import DISCONNECT_TRIES, dropped, read_scope, session_scope
from filerelay.documents import DocumentExists, NewComponent, Outcome, StaleConfiguration
from filerelay.logs import log_context
from filerelay.repositories import Lookup, RepositoryContext
from filerelay.runtime import Runtime

log = logging.getLogger(__name__)

# A component id that reads as a file name: a name, a dot and a short extension.
_FILE_NAME = re.compile(r"[^/\\]+\.[A-Za-z0-9]{1,8}")

SERVER_VENDOR = "FileRelay"
SERVER_VERSION = "0.1.0"


# The commands whose one write is made on condition that the workspace's configuration has not moved since
# the snapshot the request used (filerelay.documents.create): they need not check it beforehand.
CHECKED_BY_THEIR_WRITE = frozenset({"create", "mcreate"})
# How often a create whose snapshot went out of date under it is tried again with a fresh one.
STALE_TRIES = 5


@dataclass
class Call:
    owner: str
    slug: str
    req: ArchiveLinkRequest
    p_version: str
    command: str = ""  # lower case
    _lookup: Lookup | None = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)

    def cont_rep(self) -> str:
        return validate_id("contRep", self.req.require("contRep"), 32)

    def doc_id(self) -> str:
        return validate_id("docId", self.req.require("docId"), MAX_ID_LENGTH)

    def comp_id(self, *, required: bool) -> str | None:
        value = self.req.get("compId")
        if not value:
            if required:
                raise ProtocolError("missing mandatory parameter compId")
            return None
        return validate_id("compId", value, MAX_ID_LENGTH)

    def lookup(self) -> Lookup:
        """The workspace and repository this request names, from the process's snapshot of the workspace's
        configuration (filerelay.workspace_snapshot), found once (the security check and the handler share
        it) and before any body is read. The snapshot's version is checked by one small query first; a
        create skips that when the snapshot knows the repository, as its INSERT checks the version."""
        if self._lookup is None:
            repo_id = self.cont_rep()
            snapshots = runtime().snapshots
            cached = snapshots.cached(self.owner, self.slug)
            if self.command in CHECKED_BY_THEIR_WRITE and cached is not None and repo_id in cached.repositories:
                self._lookup, self._checked = cached.lookup(repo_id), False
            else:
                current = snapshots.current(self.owner, self.slug)
                self._lookup = current.lookup(repo_id) if current else Lookup(None, None)
                self._checked = True
        return self._lookup

    def checked(self) -> bool:
        """Whether the repository found was checked against the database's version (a refusal may rest
        only on a checked one)."""
        self.lookup()
        return self._checked

    def refresh(self) -> None:
        """Read the configuration again: the snapshot went out of date under this request."""
        current = runtime().snapshots.reload(self.owner, self.slug)
        self._lookup = current.lookup(self.cont_rep()) if current else Lookup(None, None)
        self._checked = True

    def repository(self) -> RepositoryContext:
        found = self.lookup()
        if found.workspace_id is None:
            raise ProtocolError(f"no content server at /archivelink/{self.owner}/{self.slug}", status=404)
        if found.repository is None:
            # 404, as the specification lists for "content repository not found", for every command that
            # names one (serverInfo included), as for an unknown document.
            raise ProtocolError(f"unknown content repository {self.cont_rep()}", status=404)
        return found.repository

    def document(self, session: Session) -> tuple[RepositoryContext, ArchiveDocument]:
        repository = self.repository()
        doc_id = self.doc_id()
        document = documents.find_document(session, repository=repository, doc_id=doc_id)
        if document is None:
            raise ProtocolError(f"document {doc_id} not found in {repository.repo_id}", status=404)
        return repository, document


Handler = Callable[[Call], Response]
ROUTES: dict[tuple[str, str], Handler] = {}


def command(name: str, *methods: str, guard: Guard) -> Callable[[Handler], Handler]:
    """Register `handler` for the command and methods, with the command's signature guard: declared here,
    beside the handler, so no command can be registered without saying what its signature protects."""
    if not isinstance(guard, Guard):
        raise TypeError(f"command {name}: guard must be a signatures.Guard, not {type(guard).__name__}")
    declared = GUARDS.setdefault(name.lower(), guard)
    if declared != guard:
        raise ValueError(f"command {name} declared with two guards: {declared} and {guard}")

    def register(handler: Handler) -> Handler:
        for method in methods:
            ROUTES[(method, name.lower())] = handler
        return handler

    return register


def _finish(outcome: Outcome) -> None:
    """After commit: wake the workers, drop bytes nobody will read."""
    rt = runtime()
    rt.enqueuer.enqueue(outcome.enqueue)
    for key in outcome.delete_staged:
        rt.staging.delete(key)


def _empty(status: int, **headers: str) -> Response:
    response = Response(b"", status=status, mimetype="text/plain")
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _stored_type(component: Document) -> ContentType:
    sent = component.content_type_sent
    return ContentType(component.content_type, component.charset, component.content_version, sent)


def _content_type(component: Document) -> str:
    return _stored_type(component).header()


def _component_headers(component: Document, p_version: str) -> list[tuple[str, str]]:
    return [
        ("X-compId", component.comp_id),
        ("X-Content-Length", str(component.size_bytes)),
        ("X-compDateC", sap_date(component.received_at)),
        ("X-compTimeC", sap_time(component.received_at)),
        ("X-compDateM", sap_date(component.updated_at)),
        ("X-compTimeM", sap_time(component.updated_at)),
        ("X-compStatus", "online" if content.readable(component) else "offline"),
        ("X-pVersion", p_version),
    ]


def _part_headers(component: Document, p_version: str, *, content_length: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", _content_type(component)),
        ("Content-Length", str(content_length)),
        *_component_headers(component, p_version),
    ]


def _document_headers(repository: RepositoryContext, document: ArchiveDocument, count: int) -> dict[str, str]:
    return {
        "X-dateC": sap_date(document.created_at),
        "X-timeC": sap_time(document.created_at),
        "X-dateM": sap_date(document.updated_at),
        "X-timeM": sap_time(document.updated_at),
        # The spec and SAP's own code disagree on these names; send both (docs/archivelink.md#answers-and-headers).
        "X-numberComps": str(count),
        "X-numComps": str(count),
        "X-docId": document.doc_id,
        "X-docStatus": "online",
        # Both names again, as for the count.
        "X-contentRep": repository.repo_id,
        "X-contRep": repository.repo_id,
    }


@command("serverInfo", "GET", guard=UNSIGNED)
def server_info(call: Call) -> Response:
    rt = runtime()
    now = rt.clock.now()
    with read_scope(rt.sessions) as session:
        if call.req.get("contRep"):
            listed = [(r.repo_id, r.description) for r in [call.repository()]]
        else:
            workspace = documents.find_workspace(session, owner=call.owner, slug=call.slug)
            if workspace is None:
                raise ProtocolError(f"no content server at /archivelink/{call.owner}/{call.slug}", status=404)
            listed = sorted((r.repo_id, r.description) for r in workspace.repositories)
        records = [
            [
                ("serverStatus", "running"),
                ("serverVendorId", SERVER_VENDOR),
                ("serverVersion", SERVER_VERSION),
                ("serverBuild", "1"),
                ("serverTime", sap_time(now)),
                ("serverDate", sap_date(now)),
                ("serverStatusDescription", "ready"),
                ("pVersion", call.p_version),
            ]
        ] + [
            [
                ("contRep", repo_id),
                ("contRepDescription", description),
                ("contRepStatus", "running"),
                ("contRepStatusDescription", ""),
                ("pVersion", call.p_version),
            ]
            for repo_id, description in listed
        ]
    return Response(format_records(records), status=200, mimetype="text/plain")


@command("putCert", "PUT", "POST", guard=UNSIGNED)
def put_cert(call: Call) -> Response:
    """SAP's OAC0 "Send certificate": stored inactive until an admin activates it."""
    rt = runtime()
    auth_id = call.req.require("authId")
    body = read_put_cert_body()
    repository = call.repository()
    with session_scope(rt.sessions) as session:
        try:
            certificates.store(session, repository=repository, auth_id=auth_id, body=body, now=rt.clock.now())
        except certificates.UnreadableCertificate as exc:
            raise ProtocolError(str(exc), status=406) from None
    return _empty(200)


@command("create", "PUT", guard=Guard("c", ("docId", "compId", "docProt")))
def create_single(call: Call) -> Response:
    rt = runtime()
    doc_id, comp_id = call.doc_id(), call.comp_id(required=True)
    assert comp_id is not None
    call.repository()  # an unknown repository is refused before the body is read
    content_type = parse_content_type(request.headers.get("Content-Type"))
    staged = stage_body(rt.staging, new_id("doc"), rt.settings.max_document_bytes)
    component = new_component(comp_id, content_type, staged)
    _create(call, doc_id, [component])
    return _empty(201, X_docId=doc_id)


def _create(call: Call, doc_id: str, components: list[NewComponent]) -> None:
    """Commit a new document whose components are staged; on a failure, unstage them unless the
    document was stored after all (its COMMIT went through, its answer did not)."""
    rt = runtime()
    with log_context(repo_id=call.req.get("contRep"), doc_id=doc_id):
        attempt, stale = 1, 0
        while True:
            # Committed with the creates of the process's other threads (filerelay.db.group_commit), which
            # may run this in their thread: it is given values, not the request.
            write = functools.partial(
                documents.create,
                repository=call.repository(),
                doc_id=doc_id,
                doc_prot=call.req.get("docProt"),
                components=components,
                now=rt.clock.now(),
            )
            decided: list[Outcome] = []  # kept if the COMMIT's answer is lost after the rows are stored
            try:
                rt.commits.run(_recorded(write, decided))
            except StaleConfiguration:
                # The configuration changed since the snapshot this request used: nothing was written. The
                # fresh one decides again, from the security check on (the body is staged by now).
                stale += 1
                _recheck(call, components, give_up=stale >= STALE_TRIES)
                continue
            except DocumentExists as exc:
                _unstage(components)
                if _already_stored(call, doc_id, components):
                    log.info("create repeated with identical content: answered 201, nothing changed")
                    return
                raise ProtocolError(str(exc), status=403) from None
            except BaseException as exc:
                # The error may have come with the COMMIT (a lost answer, a failover): then the rows exist
                # and the bytes are theirs. Only bytes known to be nobody's are deleted.
                committed = _committed(call, doc_id, components)
                if committed is False and dropped(exc) and attempt < DISCONNECT_TRIES:
                    # The database went away under the transaction (a restart) and kept nothing of it:
                    # the bytes are staged, so the rows can go in again instead of SAP getting a 500.
                    log.warning("the database dropped the connection before the create committed; again")
                    attempt += 1
                    continue
                if committed is not True:
                    if committed is False:
                        _unstage(components)
                    raise
                log.warning("the database's answer to COMMIT was lost, but the document is stored")
            break
        outcome = decided[-1]
        metrics.DOCUMENTS_RECEIVED.labels(workspace=f"{call.owner}/{call.slug}", repo_id=call.cont_rep()).inc()
        for accepted in outcome.documents:
            # The line that ties SAP's docId to our document_id, which the worker's lines carry.
            with log_context(document_id=accepted.id):
                log.info("accepted component %s: %d bytes", accepted.comp_id, accepted.size_bytes)
        _finish(outcome)


def _recorded(write: Callable[[Connection], Outcome], decided: list[Outcome]) -> Callable[[Connection], None]:
    return lambda connection: decided.append(write(connection))


def _recheck(call: Call, components: list[NewComponent], *, give_up: bool) -> None:
    """After a create found its snapshot out of date: reload it and run the checks made before the body
    was read (the repository still there, the signature still good) on the fresh one; a refusal now
    unstages the body. Gives up (503) if the configuration keeps changing under the request."""
    try:
        if give_up:
            raise ProtocolError("the repository's configuration keeps changing; send the document again", status=503)
        call.refresh()
        call.repository()
        security.authorize(call, call.command)
    except BaseException:
        _unstage(components)
        raise


def _unstage(components: list[NewComponent]) -> None:
    for component in components:
        runtime().staging.delete(component.staged.key)


def _committed(call: Call, doc_id: str, components: list[NewComponent]) -> bool | None:
    """After a failed create: are its rows there (True), not (False), or can nobody tell (None: the
    database is unreachable; the bytes stay, and SAP's retry finds them stored or stores them anew)?
    The components' rows carry their staging keys; a document without components is its header."""
    keys = [c.staged.key for c in components]
    try:
        with read_scope(runtime().sessions) as session:
            if not keys:
                return documents.find_document(session, repository=call.repository(), doc_id=doc_id) is not None
            return len(documents.existing_ids(session, keys)) == len(keys)
    except Exception:
        log.exception("cannot tell whether a failed create was committed; its staged bytes are kept")
        return None


def _already_stored(call: Call, doc_id: str, components: list[NewComponent]) -> bool:
    """A create of a docId that exists with byte-identical content: SAP's retry after an answer it
    never got (a lost connection, a lost COMMIT answer). It gets 201; different content gets 403."""
    with read_scope(runtime().sessions) as session:
        existing = documents.find_document(session, repository=call.repository(), doc_id=doc_id)
        return existing is not None and documents.holds_identical(existing, components)


@command("create", "POST", guard=Guard("c", ("docId", "compId", "docProt")))
def create_multipart(call: Call) -> Response:
    rt = runtime()
    doc_id = call.doc_id()
    call.repository()  # an unknown repository is refused before the body is read
    parts = StagedParts(rt.staging, rt.settings.max_document_bytes)
    parts.read()
    _create(call, doc_id, [c for _, c in parts.components])
    return _empty(201, X_docId=doc_id)


@command("mCreate", "POST", guard=Guard("c", ("docId", "docProt")))
def m_create(call: Call) -> Response:
    """Several documents in one body; each is its own transaction (docs/archivelink.md#mcreate).

    Nothing is committed until the whole body has been read: a body that turns out malformed is a
    400 that stored nothing, rather than a 400 for a call that quietly kept some documents.
    """
    rt = runtime()
    call.repository()
    parts = StagedParts(rt.staging, rt.settings.max_document_bytes, with_doc_id=True)
    parts.read()
    results: list[tuple[str, int, str]] = []
    # All parts of a document are consecutive: a new X-docId starts the next document.
    for doc_id, group in itertools.groupby(parts.components, key=lambda part: part[0]):
        components = [component for _, component in group]
        try:
            _create(call, str(doc_id), components)
            results.append((str(doc_id), 201, ""))
        except ProtocolError as exc:
            results.append((str(doc_id), exc.status, exc.description))
        except Exception as exc:
            results.append((str(doc_id), 500, f"{type(exc).__name__}"))
    records = [
        [("docId", d), ("retCode", str(code))] + ([("errorDescription", why)] if why else [])
        for d, code, why in results
    ]
    status = 201 if all(code == 201 for _, code, _ in results) else 250
    return Response(format_records(records), status=status, mimetype="text/plain")


@command("get", "GET", "HEAD", guard=Guard("r", ("docId",)))
def get(call: Call) -> Response:
    rt = runtime()
    with read_scope(rt.sessions) as session:
        _, document = call.document(session)
        component = documents.component(document, call.comp_id(required=False))
        if component is None:
            raise ProtocolError(f"component not found in document {document.doc_id}", status=404)
        start, length = byte_range(
            component.size_bytes,
            parse_offset("fromOffset", call.req.get("fromOffset"), 0),
            parse_offset("toOffset", call.req.get("toOffset"), -1),
        )
        body = _content(rt, session, component, start, length)
        doc_prot = document.doc_prot
        headers = _component_headers(component, call.p_version)
    response = Response(body, status=200, content_type=_content_type(component))
    response.headers["Content-Length"] = str(length)
    for name, value in headers:
        response.headers[name] = value
    if doc_prot is not None:
        response.headers["X-docProt"] = doc_prot
    if _FILE_NAME.fullmatch(component.comp_id):
        # GOS attachments are components named like files (scan.tif); SAP's handler names the download
        # after them, and a browser opening a signed URL saves it under that name.
        response.headers["Content-Disposition"] = content_disposition(component.comp_id)
    return served_content.protect(response)


def _content(rt: Runtime, session: Session, component: Document, start: int, length: int) -> Iterator[bytes]:
    """From staging while it holds the bytes; afterwards, back from a destination that has them."""
    chunks = open_content(rt.staging, session, component, start, length, clients=rt.clients)
    if chunks is None:
        raise ProtocolError(f"the content of component {component.comp_id} is no longer held by FileRelay", status=409)
    return chunks


@command("info", "GET", guard=Guard("r", ("docId",)))
def info(call: Call) -> Response:
    rt = runtime()
    with read_scope(rt.sessions) as session:
        repository, document = call.document(session)
        comp_id = call.comp_id(required=False)
        components = list(document.components)
        if comp_id is not None:
            components = [c for c in components if c.comp_id == comp_id]
            if not components:
                raise ProtocolError(f"component {comp_id} not found in document {document.doc_id}", 404)
        # info describes components without their content: Content-Length 0, the size in X-Content-Length.
        heads = [_part_headers(c, call.p_version, content_length=0) for c in components]
    writer = MultipartWriter()
    body = b"".join(writer.part_head(head) + writer.part_tail() for head in heads)
    response = Response(body + writer.closing(), status=200, content_type=writer.content_type)
    # SAP's handler counts the components it describes: with compId, that one.
    response.headers.update(_document_headers(repository, document, len(components)))
    return response


@command("docGet", "GET", guard=Guard("r", ("docId",)))
def doc_get(call: Call) -> Response:
    rt = runtime()
    with read_scope(rt.sessions) as session:
        repository, document = call.document(session)
        components = list(document.components)
        contents = [_content(rt, session, c, 0, c.size_bytes) for c in components]
        heads = [_part_headers(c, call.p_version, content_length=c.size_bytes) for c in components]
    writer = MultipartWriter()

    def body() -> Iterator[bytes]:
        for head, chunks in zip(heads, contents, strict=True):
            yield writer.part_head(head)
            yield from chunks
            yield writer.part_tail()
        yield writer.closing()

    response = Response(body(), status=200, content_type=writer.content_type)
    response.headers.update(_document_headers(repository, document, len(components)))
    # The parts carry the components as they are, but the answer as a whole is multipart/form-data,
    # not inert: it goes as a download. SAP reads the body part by part and no header of the answer
    # changes that; a browser never displays multipart/form-data anyway, so nothing is lost there.
    # The parts' headers stay as SAP's handler sends them (a part's Content-Disposition would have to
    # agree with its X-compId).
    return served_content.protect(response)


@command("delete", "GET", "DELETE", guard=Guard("d", ("docId", "compId")))
def delete(call: Call) -> Response:
    rt = runtime()
    with session_scope(rt.sessions) as session:
        _, document = call.document(session)
        comp_id = call.comp_id(required=False)
        if comp_id is not None and documents.component(document, comp_id) is None:
            raise ProtocolError(f"component {comp_id} not found in document {document.doc_id}", status=404)
        documents.delete(session, archive_document=document, comp_id=comp_id, now=rt.clock.now())
    return _empty(200)


def _put(call: Call, components: list[NewComponent], *, replace_all: bool) -> None:
    rt = runtime()
    try:
        with session_scope(rt.sessions) as session:
            repository, document = call.document(session)
            now = rt.clock.now()
            outcome = Outcome()
            sent = {c.comp_id for c in components}
            for component in components:
                outcome.merge(
                    documents.put_component(
                        session, repository=repository, archive_document=document, new=component, now=now
                    )
                )
            if replace_all:
                for old in list(document.components):
                    if old.comp_id not in sent:
                        documents.delete(session, archive_document=document, comp_id=old.comp_id, now=now)
    except BaseException:
        for component in components:
            rt.staging.delete(component.staged.key)
        raise
    _finish(outcome)


@command("update", "PUT", guard=Guard("u", ("docId", "compId")))
def update_single(call: Call) -> Response:
    rt = runtime()
    comp_id = call.comp_id(required=True)
    assert comp_id is not None
    with read_scope(rt.sessions) as session:
        _, document = call.document(session)
        existing = documents.component(document, comp_id)
        key = replacement_key(existing.id) if existing else new_id("doc")
    content_type = parse_content_type(request.headers.get("Content-Type"))
    staged = stage_body(rt.staging, key, rt.settings.max_document_bytes)
    _put(
        call,
        [new_component(comp_id, content_type, staged)],
        replace_all=False,
    )
    return _empty(200)


@command("update", "POST", guard=Guard("u", ("docId", "compId")))
def update_multipart(call: Call) -> Response:
    rt = runtime()
    with read_scope(rt.sessions) as session:
        call.document(session)
    parts = StagedParts(rt.staging, rt.settings.max_document_bytes)
    parts.read()
    _put(call, [c for _, c in parts.components], replace_all=True)
    return _empty(200)


@command("append", "PUT", guard=Guard("u", ("docId", "compId")))
def append(call: Call) -> Response:
    rt = runtime()
    comp_id = call.comp_id(required=True)
    with read_scope(rt.sessions) as session:
        _, document = call.document(session)
        existing = documents.component(document, comp_id)
        if existing is None:
            raise ProtocolError(f"component {comp_id} not found in document {document.doc_id}", status=404)
        old = _content(rt, session, existing, 0, existing.size_bytes)
    staged = stage_body(rt.staging, replacement_key(existing.id), rt.settings.max_document_bytes, prefix=old)
    _put(call, [new_component(existing.comp_id, _stored_type(existing), staged)], replace_all=False)
    return _empty(200)


@command("attrSearch", "GET", guard=Guard("r", ("docId",)))
def attr_search_command(call: Call) -> Response:
    """Attribute values in a print list: the DAIN lines of its description component (`descr`, or the
    compId given) whose columns hold every value of the pattern; `count;offset;length;…;`."""
    rt = runtime()
    comp_id = call.comp_id(required=False) or "descr"
    call.req.require("pattern")
    patterns = parse_attr_patterns(call.req.raw("pattern") or "")
    options = _search_options(call)
    with read_scope(rt.sessions) as session:
        _, document = call.document(session)
        component = documents.component(document, comp_id)
        if component is None:
            raise ProtocolError(f"document {document.doc_id} has no {comp_id} component to search", status=404)
        chunks = _content(rt, session, component, 0, component.size_bytes)
    try:
        hits = attr_search(
            descr_lines(chunks),
            patterns,
            case_sensitive=options.case_sensitive,
            from_offset=options.from_offset,
            to_offset=options.to_offset,
            num_results=options.num_results,
        )
    finally:
        content.release(chunks)
    return Response(format_attr_search_result(hits), status=200, mimetype="text/plain")


@dataclass(frozen=True)
class _SearchOptions:
    case_sensitive: bool
    from_offset: int
    to_offset: int
    num_results: int


def _search_options(call: Call) -> _SearchOptions:
    """caseSensitive (y/n, default n), fromOffset (0), toOffset (-1) and numResults (1), as search and
    attrSearch share them."""
    case = (call.req.get("caseSensitive") or "n").lower()
    if case not in ("y", "n"):
        raise ProtocolError("caseSensitive must be y or n")
    return _SearchOptions(
        case_sensitive=case == "y",
        from_offset=parse_offset("fromOffset", call.req.get("fromOffset"), 0),
        to_offset=parse_offset("toOffset", call.req.get("toOffset"), -1),
        num_results=parse_offset("numResults", call.req.get("numResults"), 1),
    )


@command("search", "GET", guard=Guard("r", ("docId",)))
def search_command(call: Call) -> Response:
    rt = runtime()
    comp_id = call.comp_id(required=True)
    pattern = call.req.require("pattern")
    options = _search_options(call)
    with read_scope(rt.sessions) as session:
        _, document = call.document(session)
        component = documents.component(document, comp_id)
        if component is None:
            raise ProtocolError(f"component {comp_id} not found in document {document.doc_id}", status=404)
        size = component.size_bytes
        fp = _searchable(rt, session, component, *search_span(size, options.from_offset, options.to_offset))
    with fp:
        offsets = search(
            fp,
            size,
            pattern.encode("latin-1", errors="replace"),
            case_sensitive=options.case_sensitive,
            from_offset=options.from_offset,
            to_offset=options.to_offset,
            num_results=options.num_results,
        )
    return Response(format_search_result(offsets), status=200, mimetype="text/plain")


def _searchable(rt: Runtime, session: Session, component: Document, first: int, last: int) -> BinaryIO | content.Window:
    """The staged file while staging holds it; else the searched range, read back from a destination
    into a temporary file (search may run backwards, which a stream cannot)."""
    staged = content.open_staged(rt.staging, component)
    if staged is not None:
        return staged
    length = last - first + 1 if component.size_bytes else 0
    return content.Window(_content(rt, session, component, first, length), first)
