"""Timestamps as the API server writes them: RFC 3339 in UTC, second precision (and, where a
fraction of a second matters, milliseconds: :func:`iso_millis`).

Every reconcile step formats "now" and parses the times on its job and pods, thousands of times a
second on a busy queue, so both directions are cached. Pure: no clock is read here.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime


def iso(ts: float) -> str:
    """RFC 3339 (``2027-01-15T08:00:00Z``) of epoch seconds, truncated to the second."""
    return _iso_second(int(ts))


@functools.lru_cache(maxsize=8)
def _iso_second(second: int) -> str:
    # Thousands of steps share a second: the formatting is cached.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(ts: float) -> str:
    """RFC 3339 of epoch seconds to the millisecond, rounded (``2027-01-15T08:00:00.250Z``): for a
    time whose second alone would be off by up to a second, against waits of a few seconds (a start
    estimate)."""
    millis = round(ts * 1000)
    second, fraction = divmod(millis, 1000)
    return f"{_iso_second(second)[:-1]}.{fraction:03d}Z"


def parse_iso(value: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp as Kubernetes writes them, a fraction of a second
    included (None when absent or bad)."""
    if not value:
        return None
    return _parse_iso(value)


@functools.lru_cache(maxsize=65536)
def _parse_iso(value: str) -> float | None:
    try:
        second = datetime.fromisoformat(value[:19]).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    if len(value) > 20 and value[19] == ".":
        digits = value[20:].rstrip("Z")
        if digits.isdigit():
            second += int(digits) / 10 ** len(digits)
    return second
