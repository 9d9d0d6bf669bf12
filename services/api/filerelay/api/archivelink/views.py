"""The ArchiveLink endpoint: parse the raw query string, dispatch on (method, command), map errors."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from filerelay.api.archivelink import commands, security
from filerelay.api.archivelink.protocol import ProtocolError, parse_query

log = logging.getLogger(__name__)

blueprint = Blueprint("archivelink", __name__)

SUPPORTED_VERSIONS = frozenset({"0045", "0046", "0047"})
# Part of the protocol, but not (yet) offered by FileRelay: answered 400 with a clear reason.
NOT_OFFERED = frozenset({"getcert", "admincontrep"})
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def error_response(status: int, description: str) -> Response:
    text = _UNPRINTABLE.sub("?", description)[:1000]
    response = Response(text + "\r\n", status=status, mimetype="text/plain")
    response.headers["X-ErrorDescription"] = text
    # An error may leave part of the body unread; never reuse this connection for the next request.
    response.headers["Connection"] = "close"
    return response


@blueprint.route("/archivelink/<owner>/<slug>", methods=["GET", "HEAD", "PUT", "POST", "DELETE"], strict_slashes=False)
def endpoint(owner: str, slug: str) -> ResponseReturnValue:
    p_version = ""
    try:
        req = parse_query(request.query_string)
        command = req.command.lower()
        handler = commands.ROUTES.get((request.method, command))
        if handler is None:
            if command in NOT_OFFERED:
                raise ProtocolError(f"FileRelay does not offer the {req.command} command")
            if any(name == command for _, name in commands.ROUTES):
                raise ProtocolError(f"{req.command} is not allowed with HTTP {request.method}")
            raise ProtocolError(f"unknown command {req.command!r}")
        asked = req.require("pVersion")
        if asked not in SUPPORTED_VERSIONS:
            raise ProtocolError(f"pVersion {asked} is not supported; use 0045, 0046 or 0047")
        p_version = asked  # echoed in X-pVersion only once it is one we speak
        result_as = req.get("resultAs")
        if result_as is not None and result_as.lower() != "ascii":
            # The specification leaves the html layout open; answering ascii to a client that asked for
            # html would hand it a layout it does not parse.
            raise ProtocolError(f"resultAs={result_as} is not supported; FileRelay answers resultAs=ascii")
        call = commands.Call(owner=owner, slug=slug, req=req, p_version=p_version, command=command)
        security.authorize(call, command)
        response = handler(call)
    except ProtocolError as exc:
        if exc.status >= 500:
            log.error("archivelink %s failed: %s", request.method, exc.description)
        response = error_response(exc.status, exc.description)
    except Exception:
        log.exception("archivelink %s %s failed", request.method, request.query_string[:200])
        response = error_response(500, "internal error; see the FileRelay log")
    if p_version:
        response.headers["X-pVersion"] = p_version
    return response
