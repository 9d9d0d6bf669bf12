"""Time and chance held still for the tests of the retry schedule."""

from __future__ import annotations


def half() -> float:
    """The jitter's random draw, fixed at the middle: every backoff is then exact and known in advance."""
    return 0.5
