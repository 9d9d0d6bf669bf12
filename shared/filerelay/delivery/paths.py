"""Destination path templates: a pure function of the document, so a repeated upload overwrites."""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filerelay.db.models import Destination, Document

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SIMPLE = frozenset({"doc_id", "repo_id", "comp_id", "ext"})
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
# What `{meta.NAME}` becomes when the document has no value for NAME (no business context arrived, or
# the repository's metadata wait ended first): one segment that says so, never an empty or merged path
# (docs/architecture.md#business-context).
MISSING_META = "_unknown"
# Extensions people expect, where mimetypes' first guess is surprising or platform-dependent.
_PREFERRED_EXT = {
    "application/pdf": ".pdf",
    "image/tiff": ".tif",
    "image/jpeg": ".jpg",
    "text/plain": ".txt",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "application/octet-stream": ".bin",
    "application/x-alf-descr": ".descr",
    "application/x-note": ".note",
}


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class PathFields:
    doc_id: str
    repo_id: str
    comp_id: str
    content_type: str
    received_at: dt.datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)


def extension_for(content_type: str) -> str:
    mime = content_type.split(";", 1)[0].strip().lower()
    return _PREFERRED_EXT.get(mime) or mimetypes.guess_extension(mime, strict=False) or ""


def validate_template(template: str) -> str:
    if not template or not template.strip():
        raise TemplateError("the path template is empty")
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        raise TemplateError(f"unbalanced braces in path template {template!r}")
    names = _PLACEHOLDER.findall(template)
    if not names:
        raise TemplateError(f"path template {template!r} names no field, so every document would collide")
    for name in names:
        if name in _SIMPLE or (name.startswith("meta.") and len(name) > 5):
            continue
        if name.startswith("received:") and len(name) > 9:
            continue
        raise TemplateError(
            f"unknown field {{{name}}} in path template; use doc_id, repo_id, comp_id, ext, "
            "received:<strftime>, meta.<name>"
        )
    return template


def _clean(value: str) -> str:
    """One expanded value: never a separator, never a dot-segment."""
    cleaned = _UNSAFE.sub("_", value).strip().replace("..", "__")
    # A lone "." would be dropped as a dot-segment, merging the path into its parent folder.
    return "_" if cleaned in ("", ".") else cleaned


def render(template: str, fields: PathFields) -> str:
    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "ext":
            return extension_for(fields.content_type)
        if name in _SIMPLE:
            return _clean(str(getattr(fields, name)))
        if name.startswith("received:"):
            # The format may hold '/' on purpose ({received:%Y/%m/%d}); each piece is cleaned.
            stamp = fields.received_at.astimezone(dt.UTC).strftime(name[9:])
            return "/".join(_clean(piece) for piece in stamp.split("/"))
        value = fields.metadata.get(name[5:])
        return MISSING_META if value is None or str(value).strip() == "" else _clean(str(value))

    expanded = _PLACEHOLDER.sub(expand, validate_template(template))
    segments = [s for s in expanded.replace("\\", "/").split("/") if s not in ("", ".", "..")]
    if not segments:
        raise TemplateError(f"path template {template!r} expanded to an empty path")
    return "/" + "/".join(segments)


def path_for(document: Document, destination: Destination) -> str:
    """Where the destination keeps the document: its path template rendered for this document."""
    return render(
        destination.path_template,
        PathFields(
            doc_id=document.doc_id,
            repo_id=document.repository.repo_id,
            comp_id=document.comp_id,
            content_type=document.content_type,
            received_at=document.received_at,
            metadata=document.metadata_,
        ),
    )
