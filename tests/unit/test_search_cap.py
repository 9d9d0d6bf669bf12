"""`search` and `attrSearch` answer at most MAX_SEARCH_HITS hits, in memory that does not grow with the
component or with numResults."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from filerelay.api.archivelink.protocol import MAX_SEARCH_HITS, attr_search, parse_attr_patterns, search
from tests.support.archivelink_search import search_file

MB = 1024 * 1024


class Repeated(io.RawIOBase):
    """A seekable component of `size` bytes of one repeated byte, made up as it is read: the test's
    own data takes no memory, so what tracemalloc sees is the search's."""

    def __init__(self, size: int, byte: bytes = b"a") -> None:
        self.size, self.byte, self.position = size, byte, 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        n = max(min(size, self.size - self.position), 0)
        self.position += n
        return self.byte * n


def _search_peak(size: int, *, backward: bool) -> tuple[list[int], int]:
    fp = Repeated(size)
    tracemalloc.start()
    try:
        start, end = (-1, 0) if backward else (0, -1)
        hits = search_file(fp, size, b"a", from_offset=start, to_offset=end, num_results=10**12, chunk_size=64 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return hits, peak


@pytest.mark.parametrize("backward", [False, True])
def test_a_huge_num_results_gets_the_first_ten_thousand_hits(backward: bool) -> None:
    hits, _ = _search_peak(8 * MB, backward=backward)
    assert len(hits) == MAX_SEARCH_HITS == 10_000
    expected = range(10_000) if not backward else range(8 * MB - 1, 8 * MB - 1 - 10_000, -1)
    assert hits == list(expected)


@pytest.mark.parametrize("backward", [False, True])
def test_memory_does_not_grow_with_the_component(backward: bool) -> None:
    """8 MiB of `a` would be 8 million offsets (hundreds of MB as a list); 64 times more content costs
    the same as the small one: the hits list is capped and the component is read in chunks."""
    _, small = _search_peak(1 * MB, backward=backward)
    _, large = _search_peak(64 * MB, backward=backward)
    assert small < 2 * MB, small
    assert large < small + 256 * 1024, (small, large)


def test_num_results_below_the_cap_still_counts() -> None:
    hits = search(Repeated(MB), MB, b"a", case_sensitive=True, from_offset=0, to_offset=-1, num_results=3)
    assert hits == [0, 1, 2]


def test_attr_search_is_capped_too() -> None:
    lines = (b"%d 1 DAINvalue" % n for n in range(3 * MAX_SEARCH_HITS))
    patterns = parse_attr_patterns("0+5+value")
    found = attr_search(lines, patterns, case_sensitive=True, from_offset=0, to_offset=-1, num_results=10**9)
    assert len(found) == MAX_SEARCH_HITS
    assert found[-1] == (MAX_SEARCH_HITS - 1, 1)
