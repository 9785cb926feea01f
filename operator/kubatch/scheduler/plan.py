"""One scheduling cycle: ``plan(snapshot) -> Plan`` — pure, deterministic, no I/O.

Semantics (AWS Batch user guide; spec §1.2, §2, §5, §6):

* Queues are served by descending ``priority`` (ties: name). A lower-priority queue only gets what
  higher-priority queues left on a shared environment in this cycle (no cross-queue reservation).
* Inside a queue, jobs come in dispatch order: FIFO = retried jobs first, then submission order;
  fair share = :class:`~kubatch.scheduler.fairshare.FairShareOrder` (lowest weighted share usage
  first, re-evaluated after every placement).
* A job goes to the first environment in ``ce_order`` that accepts jobs (ENABLED and VALID or
  UPDATING) and has room for all of it now; it falls through only past environments that do not
  accept jobs or cannot fit it. A gang (multi-node) job needs ``num_nodes * needs`` in one
  environment, each node within ``max_node``, never Spot; it starts whole or not at all. (AWS also
  refuses UNMANAGED environments; kubatch runs gangs on the admin's own nodes: docs/differences.md.)
  Consumable resources must all be available (``total - in_use``). Nothing is over-committed.
* Head-of-line blocking: the first job in a queue's dispatch order that cannot be placed is the
  head; it stops the queue (later jobs never overtake it) and gets a statusReason, returned in
  ``Plan.blocked``. Jobs behind the head are simply queued (no reason). This holds for fair-share
  queues too: the guide describes blocking and ``jobStateTimeLimitActions`` per queue head only
  ("RUNNABLE job at the head and blocking the queue"), and the fair-share order *is* that queue's
  order. One exception: a fair-share head held back only by ``computeReservation`` gets no reason
  and the queue is not reported blocked — that is the policy working, not a stuck job.
* Reasons of the head, checked in this order:
  1. ``ACTION_REQUIRED`` — no attached environment accepts jobs (all INVALID/DISABLED/missing...);
  2. ``MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE`` — every accepting environment fails and
     all for its maximum (the job's total vCPUs, or total memory/GPUs, exceed ``capacity``);
     ``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`` — every accepting environment fails and at least
     one because no instance fits a node (above ``max_node``; GPU job without GPU instance types;
     multi-node job on Spot only);
  3. ``ACTION_REQUIRED`` — a consumable resource is missing or its total is below the request;
  4. (no reason, fair share only) the queue's ``computeReservation`` limit is reached;
  5. ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY`` — fits in principle, not now: consumable units or
     environment capacity are taken.
* The statusReason is ``CODE - sentence`` with AWS's fixed sentence for the code (the capacity
  sentence names the environments where AWS names an instance type; the consumable sentence is
  kubatch's, AWS has none); kubatch's detail (which environment, which figures) is kept apart in
  ``Plan.blocked_detail`` so that the statusReason stays AWS's.
* ``jobStateTimeLimitActions``: a head job whose reason code equals an action's ``reason`` (only the
  three actionable codes), and which the runtime recorded as blocked with that same code
  (``Job.blocked_reason``) for at least ``maxTimeSeconds`` (since ``blocked_since``, or
  ``runnable_since`` if unknown), is cancelled; the next job becomes the head in the same cycle.
* A DISABLED queue is served like an ENABLED one: AWS stops *new submissions* to it ("new jobs can't
  be added to the queue, but jobs already in the queue can finish"), which admission enforces; the
  jobs already queued are dispatched as usual. ``Queue.state`` does not change the plan.

Per-cycle cost: scanning a queue stops at its head plus F <= 100 front entries, so the unplaceable
tail of a queue is never examined. With the jobs in ``snapshot.jobs``: O(N) to group the N RUNNABLE
jobs by queue and build one heap per queue (one per share in fair-share queues), then
O((P + B + F) log n) where P is the number of placements and B the cancelled heads. With
``orders`` (:class:`~kubatch.scheduler.orders.DispatchOrders`, kept sorted by the caller between
cycles): O(Q + S + (P + B + F) log S) for Q queues and S shares — independent of N (a queue whose
orders were kept for the other kind, FIFO or fair share, is sorted afresh: O(n log n) for its n
jobs). Both give the same plan for the same jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kubatch.scheduler.fairshare import FairShareOrder, ShareWeights, reserved_fraction
from kubatch.scheduler.orders import DispatchOrders
from kubatch.scheduler.snapshot import EPSILON, ComputeEnv, Job, Queue, ShareUsage, Snapshot

CE_MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
JOB_RESOURCE_REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
INSUFFICIENT_CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
ACTION_REQUIRED = "ACTION_REQUIRED"

#: Reasons a ``jobStateTimeLimitActions`` entry may name (the others are not configurable).
ACTIONABLE_REASONS: frozenset[str] = frozenset({INSUFFICIENT_CAPACITY, CE_MAX_RESOURCE, JOB_RESOURCE_REQUIREMENT})

#: Prefix of the statusReason of a job cancelled by a time-limit action.
CANCEL_REASON_PREFIX = "Canceled by JobStateTimeLimit action due to reason: "

#: How many RUNNABLE jobs ``Plan.queue_front`` lists per queue (GetJobQueueSnapshot shows 100).
FRONT_SIZE = 100

#: The statusReason sentences, exactly AWS's (user guide, "Jobs stuck in a RUNNABLE status"); what
#: kubatch knows beyond them (which environment, which figures) goes to ``Plan.blocked_detail``.
_CE_MAX_SENTENCE = "CE(s) associated with the job queue cannot meet the CPU requirement of the job."
_JOB_REQ_SENTENCE = (
    "The job resource requirement (vCPU/memory/GPU) is higher than that can be met by the CE(s) "
    "attached to the job queue."
)
_CE_INVALID_SENTENCE = "CE(s) associated with the job queue are invalid."
#: AWS's capacity sentence names an instance type; kubatch does not choose one per job and names
#: the queue's compute environment(s) in the brackets instead.
_CAPACITY_SENTENCE = "Service cannot fulfill the capacity requested for instance type [{where}]"
#: A consumable resource that does not exist or is too small: AWS documents no reason for this
#: (kubatch's own sentence, under the non-actionable ACTION_REQUIRED code).
_CONSUMABLE_SENTENCE = "A consumable resource the job requires does not exist or is smaller than the request."


def reason_code(status_reason: str) -> str:
    """The code part of a statusReason: ``"CAPACITY:X - detail"`` -> ``"CAPACITY:X"``."""
    return status_reason.split(" - ", 1)[0].strip()


@dataclass(frozen=True, slots=True)
class Plan:
    """The decisions of one cycle.

    ``placements``: (job key, environment name) in dispatch order — start these jobs there.
    ``blocked``: job key -> statusReason (``CODE - sentence``, AWS's fixed sentence) for each queue
    head that cannot run; ``blocked_detail``: job key -> kubatch's detail for it (which environment,
    which figures; may be empty), which the runtime writes to ``status.statusReasonDetail``.
    ``cancellations``: job key -> statusReason for heads cancelled by a time-limit action.
    ``queue_front``: queue name -> the first (up to 100) job keys still RUNNABLE after this plan,
    in dispatch order (the GetJobQueueSnapshot view). ``blocked_queues``: queues whose head has a
    reason in ``blocked``.
    """

    placements: list[tuple[str, str]] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    blocked_detail: dict[str, str] = field(default_factory=dict)
    cancellations: dict[str, str] = field(default_factory=dict)
    queue_front: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocked_queues: frozenset[str] = frozenset()


class _Order(Protocol):
    def peek(self) -> Job | None: ...

    def take(self, charge: bool = True) -> None: ...


class _FifoOrder:
    """FIFO dispatch order: retried jobs first, then submission order, then key (a lazy heap on the
    ranks computed when the jobs were made: O(n) to build, O(log n) per job taken)."""

    __slots__ = ("_heap",)

    def __init__(self, jobs: Iterable[Job]) -> None:
        self._heap: list[tuple[tuple[int, tuple[float | int | str, ...], str], Job]] = [(j.fifo_rank, j) for j in jobs]
        heapq.heapify(self._heap)

    def peek(self) -> Job | None:
        return self._heap[0][1] if self._heap else None

    def take(self, charge: bool = True) -> None:
        heapq.heappop(self._heap)


class _KeptFifoOrder:
    """FIFO dispatch order read from a sequence already sorted by rank (kept between cycles)."""

    __slots__ = ("_head", "_it")

    def __init__(self, jobs: Iterator[Job]) -> None:
        self._it = jobs
        self._head = next(jobs, None)

    def peek(self) -> Job | None:
        return self._head

    def take(self, charge: bool = True) -> None:
        self._head = next(self._it, None)


def _fmt_res(vcpus: float, memory_mib: int, gpus: int) -> str:
    return f"{vcpus:g} vCPU, {memory_mib} MiB, {gpus} GPU"


def _misfit(job: Job, env: ComputeEnv) -> tuple[str, str] | None:
    """Why ``job`` can never run on ``env`` (reason code, detail), or None if it fits in principle."""
    if job.gang and env.spot:
        return JOB_RESOURCE_REQUIREMENT, "multi-node jobs cannot run on Spot CEs"
    need = job.needs
    if need.gpus > 0 and not env.has_gpu_instance_types:
        return JOB_RESOURCE_REQUIREMENT, "GPU job but the CE has no GPU instance types"
    total = job.total
    cap = env.capacity
    if total.vcpus > cap.vcpus + EPSILON:
        return CE_MAX_RESOURCE, f"needs {total.vcpus:g} vCPU, maxvCpus {cap.vcpus:g}"
    node = env.node_limit
    if not need.fits(node):
        return JOB_RESOURCE_REQUIREMENT, (
            f"a node needs {_fmt_res(need.vcpus, need.memory_mib, need.gpus)}; largest instance has "
            f"{_fmt_res(node.vcpus, node.memory_mib, node.gpus)}"
        )
    if not total.fits(cap):
        return CE_MAX_RESOURCE, (
            f"needs {_fmt_res(total.vcpus, total.memory_mib, total.gpus)}, CE maximum "
            f"{_fmt_res(cap.vcpus, cap.memory_mib, cap.gpus)}"
        )
    return None


class _QueueContext:
    """Per-queue facts computed once per cycle."""

    __slots__ = ("all_names", "envs", "queue", "reservation_limit", "used_vcpus")

    def __init__(self, queue: Queue, envs: dict[str, ComputeEnv]) -> None:
        self.queue = queue
        self.all_names = queue.ce_order
        seen: set[str] = set()
        accepting: list[ComputeEnv] = []
        for name in queue.ce_order:
            env = envs.get(name)
            if env is not None and env.accepts_jobs and name not in seen:
                seen.add(name)
                accepting.append(env)
        self.envs = tuple(accepting)
        self.reservation_limit: float | None = None
        self.used_vcpus = 0.0


class _Cycle:
    """Mutable bookkeeping of one ``plan`` call (free capacity, consumables, results)."""

    __slots__ = ("consumable_avail", "consumable_total", "env_states", "free", "now", "result")

    def __init__(self, snapshot: Snapshot) -> None:
        self.now = snapshot.now
        self.free: dict[str, list[float]] = {}
        self.env_states: dict[str, str] = {}
        for env in snapshot.envs:
            self.env_states[env.name] = f"{env.state}/{env.status}"
            if env.accepts_jobs:
                f = env.free
                self.free[env.name] = [f.vcpus, float(f.memory_mib), float(f.gpus)]
        self.consumable_avail = {c.name: c.available for c in snapshot.consumables}
        self.consumable_total = {c.name: c.total for c in snapshot.consumables}
        self.result = Plan()

    def _no_env_reason(self, ctx: _QueueContext) -> tuple[str, str]:
        states = ", ".join(f"{n}: {self.env_states.get(n, 'MISSING')}" for n in ctx.all_names)
        return f"{ACTION_REQUIRED} - {_CE_INVALID_SENTENCE}", states

    def try_place(self, job: Job, ctx: _QueueContext) -> tuple[str | None, tuple[str, str] | None]:
        """Place ``job`` if possible: (env name, None) placed; (None, (statusReason, detail)) head
        reason; (None, None) held by computeReservation."""
        if not ctx.envs:
            return None, self._no_env_reason(ctx)
        total = job.total
        tv, tm, tg = total.vcpus, float(total.memory_mib), float(total.gpus)
        target: str | None = None
        misfits: list[tuple[str, str, str]] = []
        for env in ctx.envs:
            why = _misfit(job, env)
            if why is not None:
                misfits.append((env.name, why[0], why[1]))
                continue
            if target is None:
                fv, fm, fg = self.free[env.name]
                if tv <= fv + EPSILON and tm <= fm and tg <= fg:
                    target = env.name
                    break
        if len(misfits) == len(ctx.envs):
            codes = {code for _, code, _ in misfits}
            code = CE_MAX_RESOURCE if codes == {CE_MAX_RESOURCE} else JOB_RESOURCE_REQUIREMENT
            sentence = _CE_MAX_SENTENCE if code == CE_MAX_RESOURCE else _JOB_REQ_SENTENCE
            details = "; ".join(f"{name}: {detail}" for name, c, detail in misfits if c == code)
            return None, (f"{code} - {sentence}", details)
        waiting: list[str] = []
        for name, qty in job.consumables:
            if name not in self.consumable_total:
                return None, (
                    f"{ACTION_REQUIRED} - {_CONSUMABLE_SENTENCE}",
                    f"consumable resource {name} does not exist",
                )
            if qty > self.consumable_total[name]:
                return None, (
                    f"{ACTION_REQUIRED} - {_CONSUMABLE_SENTENCE}",
                    f"the job needs {qty} of consumable resource {name}, whose total is {self.consumable_total[name]}",
                )
            if qty > self.consumable_avail[name]:
                waiting.append(name)
        if ctx.reservation_limit is not None and ctx.used_vcpus + tv > ctx.reservation_limit + EPSILON:
            return None, None
        names = ", ".join(e.name for e in ctx.envs)
        capacity = f"{INSUFFICIENT_CAPACITY} - {_CAPACITY_SENTENCE.format(where=names)}"
        if waiting:
            return None, (capacity, f"waiting for consumable resource(s) [{', '.join(waiting)}]")
        if target is None:
            return None, (
                capacity,
                f"{_fmt_res(tv, total.memory_mib, total.gpus)} requested; "
                f"no room now in compute environment(s) [{names}]",
            )
        free = self.free[target]
        free[0] -= tv
        free[1] -= tm
        free[2] -= tg
        for name, qty in job.consumables:
            self.consumable_avail[name] -= qty
        ctx.used_vcpus += tv
        return target, None

    def time_limit_cancel(self, job: Job, queue: Queue, reason: str) -> str | None:
        """The cancellation statusReason if a time-limit action fires for this head job."""
        code = reason_code(reason)
        if code not in ACTIONABLE_REASONS or job.blocked_reason is None:
            return None
        if reason_code(job.blocked_reason) != code:
            return None
        since = job.runnable_since
        if job.blocked_since is not None:
            since = max(since, job.blocked_since)
        for action in queue.time_limit_actions:
            if (
                action.action == "CANCEL"
                and action.state == "RUNNABLE"
                and action.reason == code
                and self.now - since >= action.max_time_seconds
            ):
                return CANCEL_REASON_PREFIX + code
        return None


class _FairShareInputs:
    """Policies, usage rows and active shares of the snapshot, grouped by queue once per cycle."""

    __slots__ = ("active", "policies", "usage")

    def __init__(self, snapshot: Snapshot) -> None:
        self.policies = {p.name: p for p in snapshot.policies}
        self.usage: dict[str, dict[str, ShareUsage]] = {}
        for row in snapshot.share_usage:
            self.usage.setdefault(row.queue, {})[row.share] = row
        self.active: dict[str, set[str]] = {}
        for queue_name, share in snapshot.active_shares:
            self.active.setdefault(queue_name, set()).add(share)

    def order(
        self, queue: Queue, jobs: list[Job], ctx: _QueueContext, kept: Mapping[str, Iterator[Job]] | None = None
    ) -> FairShareOrder:
        """The fair-share order of ``queue`` over ``jobs``, or over ``kept`` (its jobs per share, each
        already in within-share order); also sets the queue's computeReservation limit."""
        policy = self.policies.get(queue.policy or "")
        usage = self.usage.get(queue.name, {})
        active = set(self.active.get(queue.name, ()))
        if kept is None:
            active.update(j.share or "" for j in jobs)
        else:
            active.update(kept)
        active.update(s for s, u in usage.items() if u.running_vcpus > 0)
        decay_seconds = 0.0 if policy is None else float(policy.share_decay_seconds)
        ctx.used_vcpus = sum(u.running_vcpus for u in usage.values())
        if policy is not None and policy.compute_reservation > 0:
            max_vcpus = sum(e.capacity.vcpus for e in ctx.envs)
            reserved = reserved_fraction(policy.compute_reservation, len(active))
            ctx.reservation_limit = max_vcpus * (1.0 - reserved)
        weights = ShareWeights(policy, active)
        if kept is None:
            return FairShareOrder(jobs, weights, usage, decay_seconds)
        return FairShareOrder.of_shares(kept, weights, usage, decay_seconds)


def _kept_order(queue: Queue, orders: DispatchOrders, fair: _FairShareInputs, ctx: _QueueContext) -> _Order:
    """``queue``'s dispatch order read from ``orders``; sorted afresh when they were kept for the
    other kind of queue (FIFO / fair share)."""
    if queue.policy is None:
        if orders.is_fair(queue.name):
            return _FifoOrder(orders.jobs_of(queue.name))
        return _KeptFifoOrder(orders.fifo(queue.name))
    if not orders.is_fair(queue.name):
        return fair.order(queue, orders.jobs_of(queue.name), ctx)
    return fair.order(queue, [], ctx, kept=orders.shares(queue.name))


def plan(snapshot: Snapshot, orders: DispatchOrders | None = None) -> Plan:
    """Run one scheduling cycle over ``snapshot`` and return the decisions (see module docstring).

    The RUNNABLE jobs are ``snapshot.jobs``, or ``orders`` when given (kept in dispatch order by the
    caller between cycles; only read here), in which case ``snapshot.jobs`` must be empty.
    """
    if orders is not None and snapshot.jobs:
        raise ValueError("plan: the jobs come from the snapshot or from the kept orders, not both")
    cycle = _Cycle(snapshot)
    result = cycle.result
    envs = {e.name: e for e in snapshot.envs}
    by_queue: dict[str, list[Job]] = {}
    for job in snapshot.jobs:
        lst = by_queue.get(job.queue)
        if lst is None:
            by_queue[job.queue] = [job]
        else:
            lst.append(job)
    fair = _FairShareInputs(snapshot)
    blocked_queues: set[str] = set()
    for queue in sorted(snapshot.queues, key=lambda q: (-q.priority, q.name)):
        ctx = _QueueContext(queue, envs)
        order: _Order
        if orders is not None:
            order = _kept_order(queue, orders, fair, ctx)
        elif queue.policy is not None:
            order = fair.order(queue, by_queue.get(queue.name, []), ctx)
        else:
            order = _FifoOrder(by_queue.get(queue.name, []))
        placing = True
        front: list[str] = []
        while len(front) < FRONT_SIZE:
            head = order.peek()
            if head is None:
                break
            job = head
            if placing:
                target, why = cycle.try_place(job, ctx)
                if target is not None:
                    result.placements.append((job.key, target))
                    order.take(True)
                    continue
                placing = False
                if why is not None:
                    reason, detail = why
                    cancel = cycle.time_limit_cancel(job, queue, reason)
                    if cancel is not None:
                        result.cancellations[job.key] = cancel
                        order.take(False)
                        placing = True
                        continue
                    result.blocked[job.key] = reason
                    if detail:
                        result.blocked_detail[job.key] = detail
                    blocked_queues.add(queue.name)
            front.append(job.key)
            order.take(True)
        result.queue_front[queue.name] = tuple(front)
    return Plan(
        placements=result.placements,
        blocked=result.blocked,
        blocked_detail=result.blocked_detail,
        cancellations=result.cancellations,
        queue_front=result.queue_front,
        blocked_queues=frozenset(blocked_queues),
    )
