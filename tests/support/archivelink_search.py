"""ArchiveLink's chunked `search` with the defaults of SAP's `search` command (forward from the start,
case-sensitive, ten hits), so a test names only what it varies."""

from __future__ import annotations

import io
from typing import Any

from filerelay.api.archivelink.protocol import Seekable, search


def search_file(
    fp: Seekable,
    size: int,
    pattern: bytes,
    *,
    case_sensitive: bool = True,
    from_offset: int = 0,
    to_offset: int = -1,
    num_results: int = 10,
    chunk_size: int = 1 << 20,
) -> list[int]:
    return search(
        fp,
        size,
        pattern,
        case_sensitive=case_sensitive,
        from_offset=from_offset,
        to_offset=to_offset,
        num_results=num_results,
        chunk_size=chunk_size,
    )


def search_bytes(data: bytes, pattern: bytes, **options: Any) -> list[int]:
    """`search_file` over content held in memory."""
    return search_file(io.BytesIO(data), len(data), pattern, **options)
