"""AWS Batch fair share: decayed vCPU usage, weight factors, prefix shares, compute reservation.

Model (AWS Batch user guide, "Use fair-share scheduling to help schedule jobs"; spec §5):

* Usage of a share identifier is vCPU time ``T``, decayed exponentially with time constant
  ``shareDecaySeconds`` and stored as decayed vCPU-seconds by :class:`UsageTracker`. Identifiers
  are per queue ("not aggregated across job queues"), so usage is keyed by (queue, share).
* The ordering key of a share is ``weight * (running_vcpus + placed_vcpus + usage / D)``: the vCPUs
  it holds right now, plus what this cycle already gave it, plus its decayed history expressed as
  an average vCPU rate over the window ``D``. ``D = 0`` means "only current usage is measured".
  A share idle during the window therefore briefly gets more than its weight alone would allow.
* The share with the LOWEST weighted usage goes next; a LOWER weightFactor means MORE compute
  (0.125 gets 8x the compute of 1.0). Unlisted identifiers weigh 1.0.
* A prefix entry ``teamB*`` matches every identifier starting with ``teamB``; matching identifiers
  *share* the prefix's weight, so each one's effective weight is ``weightFactor * n`` where ``n`` is
  the number of active identifiers matching the prefix (guide: "jobs with share identifiers that
  start with the prefix will share the weight factor ... lowering their individual priority but
  maintaining the same weight factor for the share identifier prefix").
* computeReservation keeps ``(computeReservation/100) ** activeShares`` of the queue's maximum vCPUs
  free for identifiers that are not active yet. Active = has SUBMITTED..RUNNING jobs, or used
  within the decay window.
* Inside one share: retried jobs first (they go "to the front of the job queue"), then higher
  schedulingPriority, then submission order, then job key.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kubatch.scheduler.snapshot import Job, Policy, ShareUsage

#: Decayed usage below this many vCPU-seconds is forgotten once the share is inactive.
FORGET_BELOW = 1e-6

UsageKey = tuple[str, str]
"""(queue name, share identifier)."""


def decay(usage: float, elapsed: float, decay_seconds: float) -> float:
    """Decay ``usage`` (vCPU-seconds) over ``elapsed`` seconds; ``decay_seconds`` 0 forgets at once."""
    if decay_seconds <= 0:
        return 0.0
    if elapsed <= 0:
        return usage
    return usage * math.exp(-elapsed / decay_seconds)


def accumulate(usage: float, vcpus: float, elapsed: float, decay_seconds: float) -> float:
    """Add ``vcpus`` held for ``elapsed`` seconds to ``usage``, decaying old and new usage alike.

    This is the exact integral of a constant rate under exponential decay:
    ``u' = u * e^(-t/D) + vcpus * D * (1 - e^(-t/D))``. With ``D = 0`` nothing is remembered.
    """
    if decay_seconds <= 0:
        return 0.0
    if elapsed <= 0:
        return usage
    factor = math.exp(-elapsed / decay_seconds)
    return usage * factor + vcpus * decay_seconds * (1.0 - factor)


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """Decayed usage of one (queue, share), when it last held vCPUs, and its decay window."""

    usage: float
    last_active: float
    decay_seconds: float


@dataclass(frozen=True, slots=True)
class UsageTracker:
    """Pure value: decayed usage per (queue, share). ``advance`` returns a new tracker.

    The runtime keeps the latest tracker, calls :meth:`advance` once per cycle with the vCPUs each
    (queue, share) held since the previous call, and feeds :meth:`share_usage` and
    :meth:`active_shares` into the next :class:`~kubatch.scheduler.snapshot.Snapshot`.
    """

    at: float | None = None
    entries: Mapping[UsageKey, UsageEntry] = field(default_factory=lambda: MappingProxyType({}))

    def advance(
        self,
        now: float,
        running: Mapping[UsageKey, float],
        decay_seconds: Mapping[str, float],
    ) -> UsageTracker:
        """Account ``running`` vCPUs per (queue, share) for the time since the last call.

        ``decay_seconds`` maps a queue to its policy's shareDecaySeconds (missing: 0).
        """
        elapsed = 0.0 if self.at is None else max(0.0, now - self.at)
        out: dict[UsageKey, UsageEntry] = {}
        for key in sorted(set(self.entries) | set(running)):
            d = float(decay_seconds.get(key[0], 0.0))
            old = self.entries.get(key)
            vcpus = running.get(key, 0.0)
            usage = accumulate(0.0 if old is None else old.usage, vcpus, elapsed, d)
            last = now if vcpus > 0 else (now if old is None else old.last_active)
            if vcpus <= 0 and now - last > d and usage < FORGET_BELOW:
                continue
            out[key] = UsageEntry(usage, last, d)
        return UsageTracker(now, MappingProxyType(out))

    def share_usage(self, running: Mapping[UsageKey, float]) -> tuple[ShareUsage, ...]:
        """:class:`ShareUsage` rows for a snapshot: decayed usage plus the vCPUs held right now."""
        keys = sorted(set(self.entries) | {k for k, v in running.items() if v > 0})
        rows = []
        for key in keys:
            entry = self.entries.get(key)
            rows.append(ShareUsage(key[0], key[1], 0.0 if entry is None else entry.usage, running.get(key, 0.0)))
        return tuple(rows)

    def active_shares(self, now: float) -> frozenset[UsageKey]:
        """(queue, share) pairs that held vCPUs within their decay window (still "active")."""
        return frozenset(k for k, e in self.entries.items() if now - e.last_active <= e.decay_seconds)


def reserved_fraction(compute_reservation: float, active_shares: int) -> float:
    """``(computeReservation/100) ** activeShares``: the share of queue capacity kept free."""
    if compute_reservation <= 0:
        return 0.0
    return float((min(compute_reservation, 100.0) / 100.0) ** max(active_shares, 0))


class ShareWeights:
    """Effective weight factor per share identifier of one queue under one policy."""

    __slots__ = ("_effective", "_exact", "_prefixes")

    def __init__(self, policy: Policy | None, active: Iterable[str]) -> None:
        self._exact: dict[str, float] = {}
        prefixes: list[tuple[str, float]] = []
        for ident, weight in () if policy is None else policy.weights:
            if ident.endswith("*"):
                prefixes.append((ident[:-1], float(weight)))
            else:
                self._exact[ident] = float(weight)
        # Longest prefix first, so an overlap (rejected by validation anyway) resolves deterministically.
        prefixes.sort(key=lambda p: (-len(p[0]), p[0]))
        self._prefixes = [p for p, _ in prefixes]
        matches: dict[str, int] = {}
        for share in set(active):
            prefix = self._prefix_of(share)
            if prefix is not None:
                matches[prefix] = matches.get(prefix, 0) + 1
        self._effective = {p: w * max(1, matches.get(p, 0)) for p, w in prefixes}

    def _prefix_of(self, share: str) -> str | None:
        if share in self._exact:
            return None
        for prefix in self._prefixes:
            if share.startswith(prefix):
                return prefix
        return None

    def weight(self, share: str) -> float:
        """Exact entry, else the matching prefix's weight times its active matches, else 1.0."""
        exact = self._exact.get(share)
        if exact is not None:
            return exact
        prefix = self._prefix_of(share)
        return 1.0 if prefix is None else self._effective[prefix]


def within_share_rank(job: Job) -> tuple[int, int, tuple[float | int | str, ...], str]:
    """Order inside one share: retried first, higher schedulingPriority, submission order, key."""
    return (0 if job.retried else 1, -job.priority, job.order, job.key)


class _HeapCursor:
    """One share's jobs from a heap of (within-share rank, job): O(n) to build, O(log n) per take."""

    __slots__ = ("_heap",)

    def __init__(self, entries: list[tuple[tuple[int, int, tuple[float | int | str, ...], str], Job]]) -> None:
        heapq.heapify(entries)
        self._heap = entries

    def head(self) -> Job | None:
        return self._heap[0][1] if self._heap else None

    def advance(self) -> None:
        heapq.heappop(self._heap)


class _IterCursor:
    """One share's jobs from an iterator already in within-share order (kept between cycles)."""

    __slots__ = ("_head", "_it")

    def __init__(self, jobs: Iterator[Job]) -> None:
        self._it = jobs
        self._head = next(jobs, None)

    def head(self) -> Job | None:
        return self._head

    def advance(self) -> None:
        self._head = next(self._it, None)


class FairShareOrder:
    """Lazily yields one fair-share queue's jobs in dispatch order.

    ``peek`` shows the next job (lowest weighted share usage, then its best job); ``take`` removes
    it and, when ``charge`` is true, adds its vCPUs to its share so that the next pick reflects the
    placement — a wave of jobs thus splits between shares by weight. Cost: O(n) to build for n jobs,
    O(log n) per job taken; built with :meth:`of_shares` from per-share orders kept between cycles
    (:class:`~kubatch.scheduler.orders.DispatchOrders`), O(shares) to build.
    """

    __slots__ = ("_base", "_cursors", "_decay", "_heap", "_placed", "_weights")

    def __init__(
        self,
        jobs: Iterable[Job],
        weights: ShareWeights,
        usage: Mapping[str, ShareUsage],
        decay_seconds: float,
    ) -> None:
        per_share: dict[str, list[tuple[tuple[int, int, tuple[float | int | str, ...], str], Job]]] = {}
        for job in jobs:
            # within_share_rank(job), inlined: this loop runs once per RUNNABLE job per cycle.
            entry = ((0 if job.retried else 1, -job.priority, job.order, job.key), job)
            lst = per_share.get(job.share or "")
            if lst is None:
                per_share[job.share or ""] = [entry]
            else:
                lst.append(entry)
        cursors: dict[str, _HeapCursor | _IterCursor] = {share: _HeapCursor(e) for share, e in per_share.items()}
        self._setup(cursors, weights, usage, decay_seconds)

    @classmethod
    def of_shares(
        cls,
        shares: Mapping[str, Iterator[Job]],
        weights: ShareWeights,
        usage: Mapping[str, ShareUsage],
        decay_seconds: float,
    ) -> FairShareOrder:
        """The order over per-share job iterators, each already in within-share order and not empty."""
        order = cls.__new__(cls)
        cursors: dict[str, _HeapCursor | _IterCursor] = {share: _IterCursor(jobs) for share, jobs in shares.items()}
        order._setup({s: c for s, c in cursors.items() if c.head() is not None}, weights, usage, decay_seconds)
        return order

    def _setup(
        self,
        cursors: dict[str, _HeapCursor | _IterCursor],
        weights: ShareWeights,
        usage: Mapping[str, ShareUsage],
        decay_seconds: float,
    ) -> None:
        self._weights = weights
        self._decay = decay_seconds
        self._cursors = cursors
        self._base: dict[str, float] = {}
        self._placed: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        for share in cursors:
            row = usage.get(share)
            base = 0.0
            if row is not None:
                base = row.running_vcpus + (row.usage / decay_seconds if decay_seconds > 0 else 0.0)
            self._base[share] = base
            self._placed[share] = 0.0
            self._heap.append((self._key(share), share))
        heapq.heapify(self._heap)

    def _key(self, share: str) -> float:
        return self._weights.weight(share) * (self._base[share] + self._placed[share])

    def peek(self) -> Job | None:
        """The next job in dispatch order, or None when the queue is exhausted."""
        if not self._heap:
            return None
        return self._cursors[self._heap[0][1]].head()

    def take(self, charge: bool = True) -> None:
        """Remove the job returned by :meth:`peek`; ``charge`` its vCPUs to its share."""
        _, share = self._heap[0]
        cursor = self._cursors[share]
        job = cursor.head()
        assert job is not None
        cursor.advance()
        if charge:
            self._placed[share] += job.total.vcpus
        if cursor.head() is not None:
            heapq.heapreplace(self._heap, (self._key(share), share))
        else:
            heapq.heappop(self._heap)

    def placed_vcpus(self, share: str) -> float:
        """vCPUs charged to ``share`` during this cycle."""
        return self._placed.get(share, 0.0)
