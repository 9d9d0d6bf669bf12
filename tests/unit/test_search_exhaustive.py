"""ArchiveLink `search` against a brute-force reference on every small case, not a random sample.

The chunked search keeps a few bytes of one chunk for a match that spans into the next, reads past the
range's end for a hit that starts inside it, and in the backward direction bounds each chunk's matches
by the previous hit (overlaps allowed); the off-by-one slips there only
show on particular layouts (a run of the pattern's byte across a chunk edge, a hit right at the
bound), which a random sample finds only sometimes. Every content of up to 6 bytes over {a, b}, every
pattern, offset pair and chunk size of 1-3 does find them, every time, in about a second.
"""

from __future__ import annotations

import io
import itertools
import tracemalloc

from tests.support.archivelink_search import search_bytes, search_file

PATTERNS = [b"a", b"aa", b"ab", b"aba", b"bab"]


def brute_force(data: bytes, pattern: bytes, from_offset: int, to_offset: int, limit: int) -> list[int]:
    """Every offset between the two (clamped, inclusive) offsets where the pattern starts, overlapping
    ones too, the match free to run past the range's end; taken from `from` towards `to`, at most
    `limit` of them. (The range bounds where a hit starts: a hit is reported by its first byte.)"""
    size = len(data)
    if size == 0:
        return []
    start = size - 1 if from_offset < 0 or from_offset >= size else from_offset
    end = size - 1 if to_offset < 0 or to_offset >= size else to_offset
    lo, hi = min(start, end), max(start, end) + 1
    every = [p for p in range(lo, hi) if data.startswith(pattern, p)]
    return (every if start <= end else every[::-1])[:limit]


def contents() -> list[bytes]:
    return [bytes(p) for n in range(7) for p in itertools.product(b"ab", repeat=n)]


def test_every_small_case_matches_the_brute_force_search() -> None:
    mismatches: list[tuple[bytes, bytes, int, int, int, int]] = []
    for data in contents():
        offsets = range(-1, len(data) + 1)
        for pattern, start, end, chunk, limit in itertools.product(PATTERNS, offsets, offsets, (1, 2, 3), (1, 2, 9)):
            got = search_bytes(data, pattern, from_offset=start, to_offset=end, num_results=limit, chunk_size=chunk)
            if got != brute_force(data, pattern, start, end, limit):
                mismatches.append((data, pattern, start, end, chunk, limit))
    assert mismatches[:5] == []


def test_case_folding_finds_every_spelling_in_both_directions() -> None:
    data = b"xAbAxaBaxABA"
    for chunk in (1, 2, 5, 64):
        for pattern in (b"aba", b"ABA", b"AbA"):
            forward = search_bytes(data, pattern, case_sensitive=False, num_results=10, chunk_size=chunk)
            backward = search_bytes(
                data, pattern, case_sensitive=False, from_offset=-1, to_offset=0, num_results=10, chunk_size=chunk
            )
            assert forward == [1, 5, 9]
            assert backward == [9, 5, 1]


def test_a_backward_search_through_a_large_document_holds_about_one_chunk() -> None:
    # SAP may search a document of hundreds of MB; the search must stream it, in either direction,
    # keeping only a chunk and the pattern's length of the one before.
    size, chunk = 4 << 20, 64 << 10
    data = bytes(size - 6) + b"needle"
    for from_offset, to_offset, expected in ((-1, 0, []), (0, -1, [size - 6])):
        fp = io.BytesIO(data)
        pattern = b"absent" if from_offset == -1 else b"needle"
        tracemalloc.start()
        try:
            hits = search_file(
                fp, size, pattern, from_offset=from_offset, to_offset=to_offset, num_results=1, chunk_size=chunk
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert hits == expected
        assert peak < 8 * chunk
