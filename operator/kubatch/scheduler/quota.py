"""One scheduling cycle of a quota-managed service job queue: ``plan_quota(snapshot) -> QuotaPlan`` —
pure, no I/O.

A quota-managed queue (AWS: a service job queue whose scheduling policy has a ``quotaSharePolicy``;
spec §7.3) is split into **quota shares**, virtual queues with capacity of their own per capacity
unit (``NUM_INSTANCES`` or an instance type). Every job names its share; inside a share jobs are
served by ``schedulingPriority`` (higher first), then FIFO (retried first, then submission order,
then key), with head-of-line blocking per share. One cycle:

0. **Limit lowered.** A share whose running jobs hold more of a unit than it may (its own
   ``maxCapacity``; for LEND_AND_BORROW also what it may borrow: ``borrowLimit`` % of it) has
   running jobs preempted until it fits: lowest priority first, then the shortest running, then
   key. (AWS: "lowering a share's capacity limit below what it is using makes its running jobs
   preemption candidates, even under RESERVE or LEND".) A lowered *environment* limit stops
   nothing.
1. **Own capacity**, FIFO across shares (``idleResourceAssignmentStrategy: FIFO``): a share's head
   that fits in the share's own limit is *entitled*. It is placed when the environment's limit for
   its unit has room. If not, capacity that is on its way back (workloads being stopped) is claimed
   for it, and, if that is not enough, **cross-share reclaim**: running jobs of shares that hold
   more than their own limit (borrowers) are preempted, the one holding the most borrowed capacity
   first, then the lowest priority, then the shortest running; only when that frees enough
   (nothing is preempted in vain). The head waits for the capacity it claimed: room claimed for an
   owner is taken from what this cycle may give anyone else, so lent capacity goes back to its
   owner first.
2. **Borrowing**, FIFO across shares: the heads of LEND_AND_BORROW shares that do not fit in their
   own limit may use the idle capacity of LEND and LEND_AND_BORROW shares (a RESERVE share never
   lends): what the lenders' own jobs do not hold, less what borrowers hold already, up to the
   borrower's ``borrowLimit`` % of its own limit, and within the environment's limit.
3. **In-share preemption**, for a share with ``inSharePreemption: ENABLED`` whose head still
   waits because the share is full: its running jobs of a *strictly lower* priority are preempted,
   lowest priority first, then the shortest running, until the head fits in the share's own limit;
   only when that frees enough. Never for an equal or lower priority.

A head that cannot be placed stops its share and gets a statusReason: ``MISCONFIGURATION:
SERVICE_ENVIRONMENT_MAX_RESOURCE`` when it can never fit (more than the environment's limit for its
unit, or than the share's own limit plus what it may borrow), else ``CAPACITY:
INSUFFICIENT_INSTANCE_CAPACITY``; the detail says what it waits for (reclaim, borrow limit...).

A running job that is already being stopped (``Holding.stopping``) is never chosen again; its
capacity counts as used until it is gone, and as coming back to whoever claims it. A job is never
both placed and preempted in one plan (RUNNABLE jobs are placed, running ones preempted).

Per-cycle cost: O(W log W) for W RUNNABLE jobs (sorting per share and the FIFO heap), plus
O(V * H) for V victims chosen among H running jobs of a unit.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from kubatch.scheduler.plan import FRONT_SIZE, INSUFFICIENT_CAPACITY
from kubatch.scheduler.service import SERVICE_ENV_MAX_RESOURCE

NUM_INSTANCES = "NUM_INSTANCES"
RESERVE = "RESERVE"
LEND = "LEND"
LEND_AND_BORROW = "LEND_AND_BORROW"

PREEMPTION_PREFIX = "PREEMPTION_IN_PROGRESS: "
#: AWS's wording (the "Batch Service Job Preemption Started" event).
CROSS_SHARE = PREEMPTION_PREFIX + "Cross-share preemption triggered to reclaim borrowed capacity"
#: kubatch's, in parallel (AWS documents no wording for these two).
IN_SHARE = PREEMPTION_PREFIX + "In-share preemption triggered to run a higher priority job"
LIMIT_LOWERED = PREEMPTION_PREFIX + "Quota share capacity limit lowered below its usage"

_MAX_SENTENCE = "Service environment associated with the job queue cannot meet the capacity requirement of the job."
_SHARE_MAX_SENTENCE = "Quota share associated with the job cannot meet the capacity requirement of the job."
_CAPACITY_SENTENCE = "Service cannot fulfill the capacity requested for instance type [{where}]"


@dataclass(frozen=True, slots=True)
class QuotaShare:
    """A quota share: own limits per unit, how it shares them, and in-share preemption."""

    name: str
    limits: tuple[tuple[str, int], ...]
    strategy: str = RESERVE
    borrow_limit: int = 100  # percent of the own limit (LEND_AND_BORROW)
    in_share_preemption: bool = False

    def own(self, unit: str) -> int:
        for u, n in self.limits:
            if u == unit:
                return n
        return 0

    @property
    def lends(self) -> bool:
        return self.strategy in (LEND, LEND_AND_BORROW)

    @property
    def borrows(self) -> bool:
        return self.strategy == LEND_AND_BORROW

    def cap(self, unit: str) -> int:
        """The most the share's jobs may hold of ``unit``: its own limit, plus what it may borrow."""
        own = self.own(unit)
        return own + (own * self.borrow_limit) // 100 if self.borrows else own


@dataclass(frozen=True, slots=True)
class Waiting:
    """A RUNNABLE job of the queue (no workload for its next attempt)."""

    key: str
    share: str
    instances: int
    unit: str = NUM_INSTANCES
    priority: int = 0
    order: tuple[float | int | str, ...] = ()
    retried: bool = False

    @property
    def rank(self) -> tuple[int, int, tuple[float | int | str, ...], str]:
        """Order inside its share: priority (higher first), retried first, submission, key."""
        return (-self.priority, 0 if self.retried else 1, self.order, self.key)

    @property
    def fifo(self) -> tuple[int, tuple[float | int | str, ...], str]:
        """Order across shares (idleResourceAssignmentStrategy FIFO)."""
        return (0 if self.retried else 1, self.order, self.key)


@dataclass(frozen=True, slots=True)
class Holding:
    """A SCHEDULED, STARTING or RUNNING job of the queue: its workload holds ``instances``.
    ``started``: when it was scheduled (epoch seconds); ``stopping``: its workload is being stopped
    (a preemption or terminate in progress): it holds its capacity until gone."""

    key: str
    share: str
    instances: int
    unit: str = NUM_INSTANCES
    priority: int = 0
    started: float = 0.0
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    """Everything one cycle of one quota-managed queue looks at. ``problem``: why the environment
    takes no job now (statusReason, detail), e.g. DISABLED or INVALID; then nothing is placed or
    preempted. ``env_limits``: the environment's limits per unit; ``env_other``: what workloads of
    other queues hold in the environment (none when it serves this queue only, as AWS requires)."""

    queue: str
    env: str
    env_limits: tuple[tuple[str, int], ...]
    shares: tuple[QuotaShare, ...]
    waiting: tuple[Waiting, ...] = ()
    holding: tuple[Holding, ...] = ()
    env_other: tuple[tuple[str, int], ...] = ()
    problem: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Preemption:
    """Why a running job is preempted: ``reason`` (its statusReason), the kind (``cross-share``,
    ``in-share``, ``limit``), and the RUNNABLE job it makes room for (None for a lowered limit)."""

    reason: str
    kind: str
    share: str
    unit: str
    for_job: str | None = None


@dataclass
class QuotaPlan:
    """The decisions of one cycle: placements (job key, environment), preemptions (job key ->
    Preemption), the blocked heads' statusReasons and details, each share's first RUNNABLE job
    left (``share_front``), the queue's front (up to 100 keys, share heads first), and what each
    share holds and borrows per unit after the plan (``usage``, ``borrowed``; stopping jobs count
    until gone)."""

    placements: list[tuple[str, str]] = field(default_factory=list)
    preemptions: dict[str, Preemption] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    blocked_detail: dict[str, str] = field(default_factory=dict)
    share_front: dict[str, str] = field(default_factory=dict)
    queue_front: tuple[str, ...] = ()
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    borrowed: dict[str, dict[str, int]] = field(default_factory=dict)


def _where(env: str, unit: str) -> str:
    return env if unit == NUM_INSTANCES else unit


class _Ledger:
    """What is held, per share and unit, as the cycle decides."""

    def __init__(self, snap: QuotaSnapshot) -> None:
        self.shares = {s.name: s for s in snap.shares}
        self.env_limit = dict(snap.env_limits)
        self.env_used: dict[str, int] = defaultdict(int)
        for unit, n in snap.env_other:
            self.env_used[unit] += n
        self.usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.live: dict[str, dict[str, list[Holding]]] = defaultdict(lambda: defaultdict(list))
        self.freeing: dict[str, int] = defaultdict(int)  # capacity of stopping workloads, per unit
        self.claimed: dict[str, int] = defaultdict(int)  # of that, claimed by waiting heads
        self.share_freeing: dict[tuple[str, str], int] = defaultdict(int)
        for h in snap.holding:
            self.usage[h.share][h.unit] += h.instances
            self.env_used[h.unit] += h.instances
            if h.stopping:
                self.freeing[h.unit] += h.instances
                self.share_freeing[(h.share, h.unit)] += h.instances
            else:
                self.live[h.share][h.unit].append(h)

    def own(self, share: str, unit: str) -> int:
        s = self.shares.get(share)
        return 0 if s is None else s.own(unit)

    def env_free(self, unit: str) -> int:
        return self.env_limit.get(unit, 0) - self.env_used[unit]

    def borrowed(self, share: str, unit: str) -> int:
        return max(0, self.usage[share][unit] - self.own(share, unit))

    def lendable(self, unit: str, borrower: str) -> int:
        """Idle capacity of lending shares not yet lent: what borrowers may still take."""
        idle = sum(
            max(0, s.own(unit) - self.usage[s.name][unit])
            for s in self.shares.values()
            if s.lends and s.name != borrower
        )
        lent = sum(self.borrowed(name, unit) for name in self.shares)
        return idle - lent

    def stop(self, h: Holding) -> None:
        """``h`` is preempted: it holds its capacity until gone, which then comes back."""
        self.live[h.share][h.unit].remove(h)
        self.freeing[h.unit] += h.instances
        self.share_freeing[(h.share, h.unit)] += h.instances

    def usage_after(self, share: str, unit: str) -> int:
        """What the share will hold once its stopping workloads are gone."""
        return self.usage[share][unit] - self.share_freeing[(share, unit)]


def _victim_order(candidates: Iterable[Holding]) -> list[Holding]:
    """Lowest priority first, then the shortest running (latest started), then key."""
    return sorted(candidates, key=lambda h: (h.priority, -h.started, h.key))


def _borrowed_parts(ledger: _Ledger, share: str, unit: str) -> dict[str, int]:
    """How much of each live job of ``share`` is borrowed: the jobs started first fill the share's
    own limit (and its stopping jobs' capacity, still held), the later ones borrow."""
    room = ledger.own(share, unit) - ledger.share_freeing[(share, unit)]
    out: dict[str, int] = {}
    for h in sorted(ledger.live[share][unit], key=lambda h: (h.started, h.key)):
        own_part = max(0, min(h.instances, room))
        room -= h.instances
        out[h.key] = h.instances - own_part
    return out


def _reclaim(ledger: _Ledger, owner: str, unit: str, need: int) -> list[Holding] | None:
    """Borrowers' jobs to preempt so that ``need`` more of ``unit`` comes back, or None when all the
    borrowed capacity would not be enough (nothing is preempted then)."""
    chosen: list[Holding] = []
    freed = 0
    taken: set[str] = set()
    while freed < need:
        best: tuple[tuple[int, int, float, str], Holding] | None = None
        for name in ledger.shares:
            if name == owner:
                continue
            parts = _borrowed_parts(ledger, name, unit)
            for h in ledger.live[name][unit]:
                borrowed = parts.get(h.key, 0)
                if borrowed <= 0 or h.key in taken:
                    continue
                rank = (-borrowed, h.priority, -h.started, h.key)
                if best is None or rank < best[0]:
                    best = (rank, h)
        if best is None:
            break
        victim = best[1]
        chosen.append(victim)
        taken.add(victim.key)
        freed += victim.instances
        # Its share now borrows less: the next pick sees that.
        ledger.live[victim.share][unit].remove(victim)
    for h in chosen:  # undo the trial removal; the caller commits through ``stop``
        ledger.live[h.share][unit].append(h)
    return chosen if freed >= need else None


def plan_quota(snap: QuotaSnapshot) -> QuotaPlan:
    """Run one cycle of a quota-managed queue (module docstring)."""
    plan = QuotaPlan()
    ledger = _Ledger(snap)
    by_share: dict[str, list[Waiting]] = defaultdict(list)
    for job in snap.waiting:
        by_share[job.share].append(job)
    for jobs in by_share.values():
        jobs.sort(key=lambda w: w.rank)
    pos: dict[str, int] = {name: 0 for name in by_share}

    def head(share: str) -> Waiting | None:
        jobs = by_share.get(share, [])
        i = pos.get(share, 0)
        return jobs[i] if i < len(jobs) else None

    def block(w: Waiting, reason: str, detail: str) -> None:
        plan.blocked[w.key] = reason
        plan.blocked_detail[w.key] = detail

    def place(w: Waiting) -> None:
        plan.placements.append((w.key, snap.env))
        ledger.usage[w.share][w.unit] += w.instances
        ledger.env_used[w.unit] += w.instances
        pos[w.share] += 1

    def preempt(h: Holding, reason: str, kind: str, for_job: str | None) -> None:
        plan.preemptions[h.key] = Preemption(reason, kind, h.share, h.unit, for_job)
        ledger.stop(h)

    def capacity_reason(w: Waiting) -> str:
        return f"{INSUFFICIENT_CAPACITY} - {_CAPACITY_SENTENCE.format(where=_where(snap.env, w.unit))}"

    def figures(w: Waiting) -> str:
        u = w.unit
        return (
            f"needs {w.instances} {u}; quota share {w.share} holds {ledger.usage[w.share][u]} of its own "
            f"{ledger.own(w.share, u)}; {ledger.env_used[u]} of {ledger.env_limit.get(u, 0)} in use in service "
            f"environment {snap.env}"
        )

    if snap.problem is not None:
        for name in by_share:
            w = head(name)
            if w is not None:
                block(w, *snap.problem)
        _finish(plan, snap, ledger, by_share, pos)
        return plan

    # 0. A share over what it may hold (its limit was lowered): preempt down to it.
    for share in snap.shares:
        for unit, holders in list(ledger.live[share.name].items()):
            excess = ledger.usage_after(share.name, unit) - share.cap(unit)
            for h in _victim_order(holders):
                if excess <= 0:
                    break
                preempt(h, LIMIT_LOWERED, "limit", None)
                excess -= h.instances

    # 1. Entitled heads, FIFO across shares.
    borrowing: list[str] = []  # shares whose head needs more than its own limit
    heap = [(first.fifo, name) for name in by_share if (first := head(name)) is not None]
    heapq.heapify(heap)
    while heap:
        _, name = heapq.heappop(heap)
        w = head(name)
        if w is None:
            continue
        qs = ledger.shares.get(name)
        u, n = w.unit, w.instances
        if qs is None:
            block(w, f"{SERVICE_ENV_MAX_RESOURCE} - {_SHARE_MAX_SENTENCE}", f"quota share {name} not found")
            continue
        if n > ledger.env_limit.get(u, 0) or n > qs.cap(u):
            sentence = _MAX_SENTENCE if n > ledger.env_limit.get(u, 0) else _SHARE_MAX_SENTENCE
            block(
                w,
                f"{SERVICE_ENV_MAX_RESOURCE} - {sentence}",
                figures(w) + f"; quota share {name} may hold {qs.cap(u)}",
            )
            continue
        if ledger.usage_after(name, u) + n > qs.own(u):
            borrowing.append(name)
            continue
        if ledger.usage[name][u] + n > qs.own(u):
            # Entitled once the share's own stopping jobs are gone: their capacity is its.
            ledger.claimed[u] += min(n, ledger.share_freeing[(name, u)])
            block(w, capacity_reason(w), figures(w) + "; waiting for its preempted jobs to stop")
            continue
        free = ledger.env_free(u)
        if free >= n:
            place(w)
            nxt = head(name)
            if nxt is not None:
                heapq.heappush(heap, (nxt.fifo, name))
            continue
        coming = ledger.freeing[u] - ledger.claimed[u]
        short = n - max(0, free) - max(0, coming)
        detail = figures(w)
        if short <= 0:
            detail += "; waiting for preempted jobs to stop"
        else:
            victims = _reclaim(ledger, name, u, short)
            if victims is None:
                block(w, capacity_reason(w), detail)
                continue
            for h in victims:
                preempt(h, CROSS_SHARE, "cross-share", w.key)
            detail += f"; reclaiming {sum(h.instances for h in victims)} lent to " + ", ".join(
                sorted({h.share for h in victims})
            )
        # Claim the room for this owner: nobody else gets it this cycle.
        take = max(0, free)
        ledger.env_used[u] += take
        ledger.claimed[u] += n - take
        block(w, capacity_reason(w), detail)

    # 2. Borrowing, FIFO across LEND_AND_BORROW shares.
    waiting_in_share: list[str] = []
    heap = []
    for name in borrowing:
        w = head(name)
        share = ledger.shares[name]
        if w is not None and share.borrows:
            heap.append((w.fifo, name))
        elif w is not None:
            waiting_in_share.append(name)
    heapq.heapify(heap)
    while heap:
        _, name = heapq.heappop(heap)
        w = head(name)
        if w is None:
            continue
        share = ledger.shares[name]
        u, n = w.unit, w.instances
        if ledger.usage_after(name, u) + n > share.own(u):
            more = max(0, ledger.usage[name][u] + n - share.own(u)) - ledger.borrowed(name, u)
            fits = (
                ledger.usage[name][u] + n <= share.cap(u)
                and more <= ledger.lendable(u, name)
                and n <= ledger.env_free(u)
            )
            if fits:
                place(w)
                nxt = head(name)
                if nxt is not None:
                    if ledger.usage_after(name, nxt.unit) + nxt.instances > share.own(nxt.unit):
                        heapq.heappush(heap, (nxt.fifo, name))
                    else:
                        waiting_in_share.append(name)  # entitled again next cycle
                continue
        waiting_in_share.append(name)

    # 3. In-share preemption, or wait.
    for name in waiting_in_share:
        w = head(name)
        if w is None or w.key in plan.blocked:
            continue
        share = ledger.shares[name]
        u, n = w.unit, w.instances
        detail = figures(w)
        if share.borrows:
            detail += (
                f"; may borrow up to {share.cap(u) - share.own(u)} (borrowLimit {share.borrow_limit}%), "
                f"{max(0, ledger.lendable(u, name))} lendable now"
            )
        if share.in_share_preemption:
            need = ledger.usage_after(name, u) + n - share.own(u)
            chosen: list[Holding] = []
            freed = 0
            for h in _victim_order(x for x in ledger.live[name][u] if x.priority < w.priority):
                if freed >= need:
                    break
                chosen.append(h)
                freed += h.instances
            if chosen and freed >= need:
                for h in chosen:
                    preempt(h, IN_SHARE, "in-share", w.key)
                detail += f"; preempting {len(chosen)} lower-priority job(s) of the share"
        block(w, capacity_reason(w), detail)
    _finish(plan, snap, ledger, by_share, pos)
    return plan


def _finish(
    plan: QuotaPlan,
    snap: QuotaSnapshot,
    ledger: _Ledger,
    by_share: dict[str, list[Waiting]],
    pos: dict[str, int],
) -> None:
    fronts: list[list[str]] = []
    for name in sorted(by_share):
        rest = by_share[name][pos.get(name, 0) :]
        if rest:
            plan.share_front[name] = rest[0].key
            fronts.append([w.key for w in rest[:FRONT_SIZE]])
    # The queue's front: the share heads first (by their order), then the next of each, ...
    merged: list[str] = []
    depth = 0
    while len(merged) < FRONT_SIZE and any(depth < len(f) for f in fronts):
        merged.extend(f[depth] for f in fronts if depth < len(f))
        depth += 1
    plan.queue_front = tuple(merged[:FRONT_SIZE])
    for share in snap.shares:
        units = {u for u, _ in share.limits} | set(ledger.usage[share.name])
        plan.usage[share.name] = {u: ledger.usage[share.name][u] for u in sorted(units) if ledger.usage[share.name][u]}
        plan.borrowed[share.name] = {
            u: ledger.borrowed(share.name, u) for u in sorted(units) if ledger.borrowed(share.name, u)
        }
