"""Dispatch orders kept between scheduling cycles — pure, no I/O.

A cycle must not cost time in proportion to the queued jobs. :func:`kubatch.scheduler.plan.plan`
reads each queue from its front and stops at the queue's head plus ``FRONT_SIZE`` front entries;
given orders that are already sorted, a cycle therefore costs what it places and lists, not the
depth of the queues. :class:`DispatchOrders` holds every RUNNABLE job (or array child) of every
queue in those orders and is updated one job at a time: O(log n) per job added, removed or moved,
O(log n) per job replaced by one of the same rank (its blocked reason or charged consumables changed;
the sequence then holds the new entry's rank, so the old entry is freed).

* A FIFO queue keeps one sequence by :attr:`~kubatch.scheduler.snapshot.Job.fifo_rank` (retried
  jobs first, then submission order, then key).
* A fair-share queue keeps one sequence per share identifier (``job.share or ""``) by
  :func:`~kubatch.scheduler.fairshare.within_share_rank` (retried, higher schedulingPriority,
  submission order, key); which share goes next depends on usage and is decided by ``plan`` in
  every cycle.
* Which queues are fair share is told with :meth:`DispatchOrders.set_fair_queues`; a queue that
  changes kind is re-sorted once. ``plan`` falls back to sorting a queue's jobs itself when the
  orders were kept for the other kind, so a stale kind costs time, never a wrong plan.

The runtime owns one instance, changes it between cycles, and hands it to ``plan``, which only
reads it. It is not safe to read from one thread while another changes it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from typing import Any

from kubatch.scheduler.fairshare import within_share_rank
from kubatch.scheduler.snapshot import Job

Rank = tuple[Any, ...]
"""A job's place in its sequence; ends with the job's key, so ranks of distinct jobs differ."""

#: Items per chunk of a :class:`SortedSeq` (a chunk splits at twice this).
_LOAD = 512


class SortedSeq:
    """A sorted sequence of distinct ranks as a list of sorted chunks: O(log n) to find a place,
    inserting or deleting moves at most one chunk (<= 2 x 512 items), iterating is O(n)."""

    __slots__ = ("_len", "_lists", "_maxes")

    def __init__(self, items: Iterable[Rank] = ()) -> None:
        ordered = sorted(items)
        self._lists: list[list[Rank]] = [ordered[i : i + _LOAD] for i in range(0, len(ordered), _LOAD)]
        self._maxes: list[Rank] = [chunk[-1] for chunk in self._lists]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Rank]:
        for chunk in self._lists:
            yield from chunk

    def add(self, item: Rank) -> None:
        """Insert ``item`` (not present yet)."""
        maxes = self._maxes
        if not maxes:
            self._lists.append([item])
            maxes.append(item)
        else:
            i = bisect_left(maxes, item)
            if i == len(maxes):
                i -= 1
                self._lists[i].append(item)
                maxes[i] = item
            else:
                insort(self._lists[i], item)
            chunk = self._lists[i]
            if len(chunk) > 2 * _LOAD:
                self._lists[i : i + 1] = [chunk[:_LOAD], chunk[_LOAD:]]
                maxes[i : i + 1] = [chunk[_LOAD - 1], chunk[-1]]
        self._len += 1

    def _find(self, item: Rank) -> tuple[int, int]:
        """(chunk, position) of ``item``; KeyError when it is not there."""
        i = bisect_left(self._maxes, item)
        if i == len(self._maxes):
            raise KeyError(item)
        j = bisect_left(self._lists[i], item)
        if self._lists[i][j] != item:
            raise KeyError(item)
        return i, j

    def remove(self, item: Rank) -> None:
        """Delete ``item``; KeyError when it is not there."""
        i, j = self._find(item)
        chunk, maxes = self._lists[i], self._maxes
        del chunk[j]
        if not chunk:
            del self._lists[i]
            del maxes[i]
        elif j == len(chunk):
            maxes[i] = chunk[-1]
        self._len -= 1

    def replace(self, item: Rank) -> None:
        """Hold ``item`` in place of the equal rank held now (KeyError when none is): a job
        re-derived with the same rank must not keep its previous entry's tuples alive. O(log n)."""
        i, j = self._find(item)
        chunk = self._lists[i]
        chunk[j] = item
        if j == len(chunk) - 1:
            self._maxes[i] = item


class DispatchOrders:
    """Every RUNNABLE job by key, and each queue's dispatch order (see the module docstring)."""

    __slots__ = ("_fair", "_fifo", "_jobs", "_shares")

    def __init__(self, jobs: Iterable[Job] = (), fair_queues: Iterable[str] = ()) -> None:
        """Orders of ``jobs`` (distinct keys), sorted once: O(n log n)."""
        self._jobs: dict[str, Job] = {}
        self._fair: frozenset[str] = frozenset(fair_queues)
        self._fifo: dict[str, SortedSeq] = {}  # FIFO queue -> fifo ranks
        self._shares: dict[str, dict[str, SortedSeq]] = {}  # fair-share queue -> share -> within-share ranks
        grouped: dict[tuple[str, str | None], list[Rank]] = {}
        for job in jobs:
            if job.key in self._jobs:
                raise ValueError(f"two jobs of key {job.key}")
            self._jobs[job.key] = job
            share, rank = self._place(job)
            grouped.setdefault((job.queue, share), []).append(rank)
        for (queue, share), ranks in grouped.items():
            if share is None:
                self._fifo[queue] = SortedSeq(ranks)
            else:
                self._shares.setdefault(queue, {})[share] = SortedSeq(ranks)

    # ---- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def __iter__(self) -> Iterator[Job]:
        """Every job, in no particular order."""
        return iter(self._jobs.values())

    def get(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def keys(self) -> Iterable[str]:
        return self._jobs.keys()

    @property
    def fair_queues(self) -> frozenset[str]:
        return self._fair

    def is_fair(self, queue: str) -> bool:
        """Whether ``queue``'s jobs are kept in per-share orders (else in one FIFO order)."""
        return queue in self._fair

    def fifo(self, queue: str) -> Iterator[Job]:
        """A FIFO queue's jobs in dispatch order (nothing for a queue kept as fair share)."""
        seq = self._fifo.get(queue)
        if seq is None:
            return iter(())
        jobs = self._jobs
        return (jobs[rank[-1]] for rank in seq)

    def shares(self, queue: str) -> dict[str, Iterator[Job]]:
        """A fair-share queue's jobs per share identifier, each in its within-share order (only
        shares with jobs; nothing for a queue kept as FIFO)."""
        jobs = self._jobs
        return {share: (jobs[rank[-1]] for rank in seq) for share, seq in sorted(self._shares.get(queue, {}).items())}

    def jobs_of(self, queue: str) -> list[Job]:
        """A queue's jobs, in no particular order."""
        if queue in self._fair:
            ranks: Iterable[Rank] = (r for seq in self._shares.get(queue, {}).values() for r in seq)
        else:
            ranks = self._fifo.get(queue) or ()
        return [self._jobs[rank[-1]] for rank in ranks]

    # ---- changing -------------------------------------------------------------------------------
    def add(self, job: Job) -> None:
        """Add ``job``, or replace the job of the same key (moved only when its rank changed)."""
        old = self._jobs.get(job.key)
        if old is not None:
            share, rank = self._place(job)
            if old.queue == job.queue and self._place(old) == (share, rank):
                self._jobs[job.key] = job
                self._seq(job.queue, share).replace(rank)
                return
            self._unlink(old)
        self._jobs[job.key] = job
        self._link(job)

    def discard(self, key: str) -> Job | None:
        """Remove the job of ``key``; returns it (None when there was none)."""
        job = self._jobs.pop(key, None)
        if job is not None:
            self._unlink(job)
        return job

    def set_fair_queues(self, queues: Iterable[str]) -> None:
        """The queues that are fair share now; a queue that changed kind is re-sorted."""
        fair = frozenset(queues)
        if fair == self._fair:
            return
        changed = fair ^ self._fair
        moving = [j for q in changed for j in self.jobs_of(q)]
        for job in moving:
            self._unlink(job)
        self._fair = fair
        for job in moving:
            self._link(job)

    # ---- internals ------------------------------------------------------------------------------
    def _place(self, job: Job) -> tuple[str | None, Rank]:
        if job.queue in self._fair:
            return job.share or "", within_share_rank(job)
        return None, job.fifo_rank

    def _seq(self, queue: str, share: str | None) -> SortedSeq:
        """The sequence holding ``queue``'s (and, fair share, ``share``'s) ranks (KeyError: none)."""
        return self._fifo[queue] if share is None else self._shares[queue][share]

    def _link(self, job: Job) -> None:
        share, rank = self._place(job)
        if share is None:
            seq = self._fifo.get(job.queue)
            if seq is None:
                seq = self._fifo[job.queue] = SortedSeq()
        else:
            per_share = self._shares.setdefault(job.queue, {})
            seq = per_share.get(share)
            if seq is None:
                seq = per_share[share] = SortedSeq()
        seq.add(rank)

    def _unlink(self, job: Job) -> None:
        share, rank = self._place(job)
        if share is None:
            seq = self._fifo[job.queue]
            seq.remove(rank)
            if not seq:
                del self._fifo[job.queue]
        else:
            per_share = self._shares[job.queue]
            seq = per_share[share]
            seq.remove(rank)
            if not seq:
                del per_share[share]
                if not per_share:
                    del self._shares[job.queue]
