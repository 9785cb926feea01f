"""One scheduling cycle of the service job queues: ``plan_service(snapshot) -> Plan`` — pure, no I/O.

Semantics (AWS Batch user guide, "Service jobs in AWS Batch", "Service environments"; spec §7):

* A service job queue feeds exactly one service environment; several queues may share one. Queues
  are served by descending ``priority`` (ties: name): a lower-priority queue gets what the
  higher-priority ones left of a shared environment in this cycle.
* Inside a queue, jobs come in the dispatch order of :mod:`kubatch.scheduler.plan`: FIFO = retried
  jobs first, then submission order; fair share = :class:`~kubatch.scheduler.fairshare.FairShareOrder`
  over the shares' usage, where a service job weighs its instances (``Job.needs.vcpus`` holds them)
  and its ``schedulingPriority`` orders it inside its share.
* A job is SCHEDULED when the environment accepts jobs (ENABLED and VALID, of the queue's type) and
  its instances fit in what is free: ``maxCapacity - in_use`` (``in_use``: the instances of the
  SCHEDULED, STARTING and RUNNING service jobs placed on the environment, whichever queue placed
  them). The limit is never exceeded; a lowered limit stops nothing, new jobs wait until the usage
  is below it.
* Head-of-line blocking, as for compute queues: the first job in a queue's order that cannot be
  scheduled stops the queue (AWS: "If the SE has room for the RUNNABLE jobs at the *front* of the
  queue") and gets a statusReason, returned in ``Plan.blocked``:
  1. ``ACTION_REQUIRED - Service environment associated with the job queue is invalid.`` — the
     environment is missing, not VALID (CREATING, INVALID, DELETING) or of another type than the
     queue; ``... is DISABLED.`` — it is DISABLED (its queues' jobs wait; nothing is refused);
  2. ``MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - ...`` — the job needs more instances than
     ``maxCapacity`` (it can never run there; AWS's reason code for SageMaker queues);
  3. ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for
     instance type [<environment>]`` — it fits in principle, not now.
  The statusReason is ``CODE - sentence``; the figures go to ``Plan.blocked_detail``.
* ``jobStateTimeLimitActions``: a head blocked with ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY`` or
  ``MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE`` (and recorded so by the runtime) for at
  least ``maxTimeSeconds`` is cancelled, and the next job becomes the head in the same cycle.
* A DISABLED queue is served like an ENABLED one (admission refuses new jobs; queued ones run).

Quota-managed queues (a ``quotaSharePolicy``) are not planned here but by
:mod:`kubatch.scheduler.quota` (quota shares, borrowing, preemption); the runtime leaves them out of
this snapshot.

Per-cycle cost: O(N) to group the N RUNNABLE service jobs by queue and build the orders, then
O((P + B + F) log n) for P placements, B cancelled heads and F <= 100 front entries per queue.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from kubatch.scheduler.fairshare import FairShareOrder, ShareWeights
from kubatch.scheduler.plan import (
    ACTION_REQUIRED,
    CANCEL_REASON_PREFIX,
    FRONT_SIZE,
    INSUFFICIENT_CAPACITY,
    Plan,
    reason_code,
)
from kubatch.scheduler.snapshot import Job, Policy, Queue, ShareUsage

SERVICE_ENV_MAX_RESOURCE = "MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE"
#: Reasons a service queue's ``jobStateTimeLimitActions`` entry may name.
ACTIONABLE_SERVICE_REASONS: frozenset[str] = frozenset({INSUFFICIENT_CAPACITY, SERVICE_ENV_MAX_RESOURCE})

_INVALID_SENTENCE = "Service environment associated with the job queue is invalid."
_DISABLED_SENTENCE = "Service environment associated with the job queue is DISABLED."
_MAX_SENTENCE = "Service environment associated with the job queue cannot meet the capacity requirement of the job."
_CAPACITY_SENTENCE = "Service cannot fulfill the capacity requested for instance type [{where}]"


@dataclass(frozen=True, slots=True)
class ServiceEnv:
    """A service environment as the scheduler sees it: its NUM_INSTANCES limit and what the service
    jobs placed on it hold now (``in_use``)."""

    name: str
    type: str
    max_capacity: int
    in_use: int = 0
    state: str = "ENABLED"
    status: str = "VALID"

    @property
    def free(self) -> int:
        return self.max_capacity - self.in_use


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    """Everything one service cycle looks at. ``queues`` are the service job queues (``Queue`` with
    ``service_env`` set through ``env_of``); ``jobs`` their RUNNABLE service jobs without a workload
    for their next attempt, ``needs.vcpus`` = instances."""

    now: float
    envs: tuple[ServiceEnv, ...]
    queues: tuple[Queue, ...]
    env_of: tuple[tuple[str, str], ...]  # (queue, service environment), one per queue
    queue_types: tuple[tuple[str, str], ...] = ()  # (queue, jobQueueType)
    jobs: tuple[Job, ...] = ()
    policies: tuple[Policy, ...] = ()
    share_usage: tuple[ShareUsage, ...] = ()
    active_shares: frozenset[tuple[str, str]] = field(default_factory=frozenset)


class _Order(Protocol):
    def peek(self) -> Job | None: ...

    def take(self, charge: bool = True) -> None: ...


class _FifoOrder:
    """FIFO: retried jobs first, then submission order, then key (``Job.fifo_rank``), as compute queues."""

    __slots__ = ("_heap",)

    def __init__(self, jobs: Iterable[Job]) -> None:
        self._heap = [(j.fifo_rank, j) for j in jobs]
        heapq.heapify(self._heap)

    def peek(self) -> Job | None:
        return self._heap[0][1] if self._heap else None

    def take(self, charge: bool = True) -> None:
        heapq.heappop(self._heap)


def _time_limit_cancel(now: float, job: Job, queue: Queue, reason: str) -> str | None:
    code = reason_code(reason)
    if code not in ACTIONABLE_SERVICE_REASONS or job.blocked_reason is None:
        return None
    if reason_code(job.blocked_reason) != code:
        return None
    since = job.runnable_since if job.blocked_since is None else max(job.runnable_since, job.blocked_since)
    for action in queue.time_limit_actions:
        if (
            action.action == "CANCEL"
            and action.state == "RUNNABLE"
            and action.reason == code
            and now - since >= action.max_time_seconds
        ):
            return CANCEL_REASON_PREFIX + code
    return None


def _order(queue: Queue, jobs: list[Job], snapshot: ServiceSnapshot) -> _Order:
    if queue.policy is None:
        return _FifoOrder(jobs)
    policy = next((p for p in snapshot.policies if p.name == queue.policy), None)
    usage = {u.share: u for u in snapshot.share_usage if u.queue == queue.name}
    active = {s for q, s in snapshot.active_shares if q == queue.name}
    active.update(j.share or "" for j in jobs)
    active.update(s for s, u in usage.items() if u.running_vcpus > 0)
    decay = 0.0 if policy is None else float(policy.share_decay_seconds)
    return FairShareOrder(jobs, ShareWeights(policy, active), usage, decay)


def environment_problem(env: ServiceEnv | None, name: str, queue_type: str | None) -> tuple[str, str] | None:
    """Why a queue's service environment takes no job now (statusReason, detail), or None."""
    if env is None:
        return (f"{ACTION_REQUIRED} - {_INVALID_SENTENCE}", f"service environment {name or '(none)'} not found")
    if env.status != "VALID":
        return (f"{ACTION_REQUIRED} - {_INVALID_SENTENCE}", f"service environment {name} is {env.status}")
    if (queue_type or env.type) != env.type:
        return (
            f"{ACTION_REQUIRED} - {_INVALID_SENTENCE}",
            f"service environment {name} is of type {env.type}, the queue of type {queue_type}",
        )
    if env.state != "ENABLED":
        return (f"{ACTION_REQUIRED} - {_DISABLED_SENTENCE}", f"service environment {name} is DISABLED")
    return None


def plan_service(snapshot: ServiceSnapshot) -> Plan:
    """Run one service scheduling cycle over ``snapshot`` (see the module docstring)."""
    envs = {e.name: e for e in snapshot.envs}
    free = {e.name: e.free for e in snapshot.envs}
    env_of = dict(snapshot.env_of)
    types = dict(snapshot.queue_types)
    by_queue: dict[str, list[Job]] = {}
    for job in snapshot.jobs:
        by_queue.setdefault(job.queue, []).append(job)
    placements: list[tuple[str, str]] = []
    blocked: dict[str, str] = {}
    detail: dict[str, str] = {}
    cancellations: dict[str, str] = {}
    fronts: dict[str, tuple[str, ...]] = {}
    blocked_queues: set[str] = set()
    for queue in sorted(snapshot.queues, key=lambda q: (-q.priority, q.name)):
        jobs = by_queue.get(queue.name, [])
        name = env_of.get(queue.name, "")
        env = envs.get(name)
        problem = environment_problem(env, name, types.get(queue.name))
        order = _order(queue, jobs, snapshot)
        placing = True
        front: list[str] = []
        while len(front) < FRONT_SIZE:
            head = order.peek()
            if head is None:
                break
            if placing:
                why = problem
                need = round(head.needs.vcpus)
                if why is None and env is not None:
                    if need > env.max_capacity:
                        why = (
                            f"{SERVICE_ENV_MAX_RESOURCE} - {_MAX_SENTENCE}",
                            f"needs {need} instances; service environment {env.name} has maxCapacity "
                            f"{env.max_capacity}",
                        )
                    elif need > free[env.name]:
                        why = (
                            f"{INSUFFICIENT_CAPACITY} - {_CAPACITY_SENTENCE.format(where=env.name)}",
                            f"needs {need} instances; {env.max_capacity - free[env.name]} of {env.max_capacity} "
                            f"in use in service environment {env.name}",
                        )
                    else:
                        free[env.name] -= need
                        placements.append((head.key, env.name))
                        order.take(True)
                        continue
                placing = False
                assert why is not None
                reason, text = why
                cancel = _time_limit_cancel(snapshot.now, head, queue, reason)
                if cancel is not None:
                    cancellations[head.key] = cancel
                    order.take(False)
                    placing = True
                    continue
                blocked[head.key] = reason
                detail[head.key] = text
                blocked_queues.add(queue.name)
            front.append(head.key)
            order.take(True)
        fronts[queue.name] = tuple(front)
    return Plan(
        placements=placements,
        blocked=blocked,
        blocked_detail=detail,
        cancellations=cancellations,
        queue_front=fronts,
        blocked_queues=frozenset(blocked_queues),
    )
