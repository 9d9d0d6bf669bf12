"""Swagger UI's stylesheet without `data:` URLs, so the page's policy can allow images from its own origin
only: each inline image becomes a file of its own, named by its content, served beside the stylesheet."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

# url("data:…"), url('data:…') (a CSS string: `\"` escapes a quote) and url(data:…) (no `)` inside).
_QUOTED = re.compile(r"""url\((?P<q>["'])data:(?P<head>[^,"']*),(?P<body>(?:(?!(?P=q))[^\\]|\\.)*)(?P=q)\)""")
_BARE = re.compile(r"url\(data:(?P<head>[^,)]*),(?P<body>[^)]*)\)")
_CSS_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_EXTENSIONS = {"image/svg+xml": ".svg", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif"}


@dataclass(frozen=True)
class Image:
    media_type: str
    body: bytes


def _decode(head: str, body: str, *, quoted: bool) -> Image:
    media_type, *params = head.split(";")
    if quoted:
        body = _CSS_ESCAPE.sub(r"\1", body)
    if "base64" in params:
        return Image(media_type, base64.b64decode(body))
    charset = next((p.split("=", 1)[1] for p in params if p.startswith("charset=")), "utf-8")
    return Image(media_type, unquote(body, encoding=charset).encode("utf-8"))


def without_data_urls(css: str, prefix: str) -> tuple[str, dict[str, Image]]:
    """The stylesheet with each `data:` image replaced by `url("{prefix}{name}")`, and the images by name."""
    images: dict[str, Image] = {}

    def replace(match: re.Match[str], *, quoted: bool) -> str:
        image = _decode(match["head"], match["body"], quoted=quoted)
        digest = hashlib.sha256(image.body).hexdigest()[:20]
        name = digest + _EXTENSIONS.get(image.media_type, ".bin")
        images[name] = image
        return f'url("{prefix}{name}")'

    css = _QUOTED.sub(lambda m: replace(m, quoted=True), css)
    css = _BARE.sub(lambda m: replace(m, quoted=False), css)
    return css, images
