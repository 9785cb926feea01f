"""Array jobs: compact per-state child index sets and the parent's status (user guide, "Array
jobs"; spec 4.5, checklist I.78-85).

Owns ``IndexSet`` (an immutable set of non-negative ints stored as sorted, disjoint, non-adjacent
inclusive ranges, written ``"0-40,52,60-61"``), ``ArrayChildren`` (which state each child index is
in, as one ``IndexSet`` per state -- what the parent BatchJob stores in its status instead of
10,000 child objects), ``status_summary`` and ``array_status``.

Parent status rules: the parent only ever shows SUBMITTED, PENDING, SUCCEEDED or FAILED.
- SUCCEEDED when every child SUCCEEDED; FAILED when every child is final and at least one FAILED
  (the parent fails only "when all child jobs complete");
- SUBMITTED while every child is still SUBMITTED (the scheduler has not looked at any);
- PENDING otherwise (a child became PENDING/RUNNABLE: "An array parent job is updated to PENDING
  when any child job is updated to RUNNABLE", and it stays PENDING while children run).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.states import (
    ALL_STATUSES,
    REASON_ARRAY_ALL_SUCCEEDED,
    REASON_ARRAY_CHILD_FAILED,
    TERMINAL,
    JobStatus,
)

MIN_ARRAY_SIZE = 2
MAX_ARRAY_SIZE = 10_000

Range = tuple[int, int]


def _normalize(ranges: Iterable[Range]) -> tuple[Range, ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


@dataclass(frozen=True)
class IndexSet:
    """Immutable set of non-negative ints as sorted disjoint inclusive ranges.

    ``str(s)`` gives ``"0-40,52,60-61"`` (``""`` when empty); ``IndexSet.parse`` reads it back.
    Construct with ``IndexSet.of(...)``, ``IndexSet.span(start, stop)`` or ``IndexSet.parse``.
    """

    ranges: tuple[Range, ...] = ()
    _starts: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    _size: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        norm = _normalize(self.ranges)
        if any(lo < 0 for lo, _ in norm):
            raise ValueError("IndexSet holds non-negative integers only")
        object.__setattr__(self, "ranges", norm)
        object.__setattr__(self, "_starts", tuple(lo for lo, _ in norm))
        object.__setattr__(self, "_size", sum(hi - lo + 1 for lo, hi in norm))

    # construction ---------------------------------------------------------------------------
    @classmethod
    def of(cls, items: Iterable[int]) -> IndexSet:
        return cls(tuple((i, i) for i in items))

    @classmethod
    def span(cls, start: int, stop: int) -> IndexSet:
        """``range(start, stop)`` as an IndexSet (empty when stop <= start)."""
        return cls(((start, stop - 1),)) if stop > start else cls()

    @classmethod
    def parse(cls, text: str | None) -> IndexSet:
        """Parse ``"0-40,52,60-61"``; whitespace is ignored; ``""``/``None`` is empty."""
        if not text or not text.strip():
            return cls()
        ranges: list[Range] = []
        for part in text.replace(" ", "").split(","):
            if not part:
                raise ValueError(f"empty element in index set {text!r}")
            lo_s, sep, hi_s = part.partition("-")
            if not lo_s.isdigit() or (sep and not hi_s.isdigit()):
                raise ValueError(f"invalid index set element {part!r}")
            lo, hi = int(lo_s), int(hi_s) if sep else int(lo_s)
            if hi < lo:
                raise ValueError(f"descending range {part!r}")
            ranges.append((lo, hi))
        return cls(tuple(ranges))

    # queries --------------------------------------------------------------------------------
    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        pos = bisect.bisect_right(self._starts, item) - 1
        return pos >= 0 and item <= self.ranges[pos][1]

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def min(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    def max(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def first(self, n: int) -> IndexSet:
        """The ``n`` smallest members."""
        out: list[Range] = []
        left = n
        for lo, hi in self.ranges:
            if left <= 0:
                break
            take = min(hi - lo + 1, left)
            out.append((lo, lo + take - 1))
            left -= take
        return IndexSet(tuple(out))

    # algebra --------------------------------------------------------------------------------
    def add(self, item: int) -> IndexSet:
        return self if item in self else IndexSet((*self.ranges, (item, item)))

    def remove(self, item: int) -> IndexSet:
        """Without ``item`` (no error when absent, like ``set.discard``)."""
        return self.difference(IndexSet(((item, item),))) if item in self else self

    def union(self, other: IndexSet) -> IndexSet:
        return IndexSet((*self.ranges, *other.ranges))

    def difference(self, other: IndexSet) -> IndexSet:
        out: list[Range] = []
        j = 0
        oth = other.ranges
        for lo, hi in self.ranges:
            cur = lo
            while j < len(oth) and oth[j][1] < cur:
                j += 1
            k = j
            while k < len(oth) and oth[k][0] <= hi:
                olo, ohi = oth[k]
                if olo > cur:
                    out.append((cur, olo - 1))
                cur = max(cur, ohi + 1)
                if ohi >= hi:
                    break
                k += 1
            if cur <= hi:
                out.append((cur, hi))
        return IndexSet(tuple(out))

    def intersection(self, other: IndexSet) -> IndexSet:
        out: list[Range] = []
        i = j = 0
        a, b = self.ranges, other.ranges
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return IndexSet(tuple(out))

    def shift(self, delta: int) -> IndexSet:
        """Every member plus ``delta``; members that would go negative are dropped."""
        return IndexSet(tuple((max(lo + delta, 0), hi + delta) for lo, hi in self.ranges if hi + delta >= 0))

    __or__ = union
    __sub__ = difference
    __and__ = intersection


# --------------------------------------------------------------------------------------------
# per-state children of one array parent
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayChildren:
    """Which state each child index is in: one IndexSet per state (disjoint, covering 0..size-1).

    ``to_status()`` / ``from_status()`` convert to the plain dict stored in the parent's status,
    e.g. ``{"SUBMITTED": "", "RUNNABLE": "3-99", "RUNNING": "0-2", ...}``.
    """

    size: int
    by_state: Mapping[JobStatus, IndexSet]

    @classmethod
    def new(cls, size: int, state: JobStatus = JobStatus.SUBMITTED) -> ArrayChildren:
        sets = {s: IndexSet() for s in ALL_STATUSES}
        sets[state] = IndexSet.span(0, size)
        return cls(size, sets)

    @classmethod
    def from_status(cls, size: int, data: Mapping[str, Any] | None) -> ArrayChildren:
        """Read the stored per-state strings; indexes not listed anywhere count as SUBMITTED."""
        sets = {s: IndexSet.parse((data or {}).get(s.value)) for s in ALL_STATUSES}
        listed = IndexSet()
        for s in ALL_STATUSES:
            sets[s] = sets[s] - listed  # first state wins on (corrupt) overlaps
            listed = listed | sets[s]
        sets[JobStatus.SUBMITTED] = sets[JobStatus.SUBMITTED] | (IndexSet.span(0, size) - listed)
        return cls(size, sets)

    def to_status(self) -> dict[str, str]:
        return {s.value: str(self.get(s)) for s in ALL_STATUSES}

    def get(self, state: JobStatus | str) -> IndexSet:
        return self.by_state.get(JobStatus(state), IndexSet())

    def state_of(self, index: int) -> JobStatus:
        for s in ALL_STATUSES:
            if index in self.get(s):
                return s
        raise IndexError(f"array index {index} out of range 0..{self.size - 1}")

    def move(self, indexes: IndexSet | int, state: JobStatus | str) -> ArrayChildren:
        """Put ``indexes`` (one int or a set) into ``state``, removing them from every other state."""
        moving = IndexSet.of([indexes]) if isinstance(indexes, int) else indexes
        moving = moving & IndexSet.span(0, self.size)
        target = JobStatus(state)
        sets = {s: (self.get(s) - moving) for s in ALL_STATUSES}
        sets[target] = sets[target] | moving
        return ArrayChildren(self.size, sets)

    def summary(self) -> dict[str, int]:
        return {s.value: len(self.get(s)) for s in ALL_STATUSES}

    def status(self, current: JobStatus | str | None = None) -> tuple[JobStatus, str]:
        return array_status(self.summary(), self.size, current)


def status_summary(states: Iterable[JobStatus | str]) -> dict[str, int]:
    """Count children per state; every state appears (zeros included), as in api.md."""
    counts = {s.value: 0 for s in ALL_STATUSES}
    for s in states:
        counts[JobStatus(s).value] += 1
    return counts


def array_status(
    summary: Mapping[str, int], size: int | None = None, current: JobStatus | str | None = None
) -> tuple[JobStatus, str]:
    """The parent's (status, statusReason) from the per-state child counts (module docstring).

    ``size`` defaults to the sum of the counts. ``current`` keeps the parent monotonic: once
    PENDING it never goes back to SUBMITTED, and a terminal parent stays as it is.
    """
    counts = {s: int(summary.get(s.value, 0)) for s in ALL_STATUSES}
    total = size if size is not None else sum(counts.values())
    cur = JobStatus(current) if current is not None else None
    if cur is not None and cur in TERMINAL:
        return cur, ""
    final = counts[JobStatus.SUCCEEDED] + counts[JobStatus.FAILED]
    if total > 0 and final >= total:
        if counts[JobStatus.FAILED]:
            return JobStatus.FAILED, REASON_ARRAY_CHILD_FAILED
        return JobStatus.SUCCEEDED, REASON_ARRAY_ALL_SUCCEEDED
    if counts[JobStatus.SUBMITTED] >= total and cur in (None, JobStatus.SUBMITTED):
        return JobStatus.SUBMITTED, ""
    return JobStatus.PENDING, ""


def child_job_id(parent_job_id: str, index: int) -> str:
    """``<parentJobId>:<index>`` (user guide, "Array jobs")."""
    return f"{parent_job_id}:{index}"
