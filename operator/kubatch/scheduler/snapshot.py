"""Immutable scheduler input: one consistent view of environments, queues, RUNNABLE jobs and usage.

Every type here is a frozen, slotted dataclass holding only tuples, frozensets and scalars, so a
``Snapshot`` can be shared, hashed and replayed. The runtime builds one per scheduling cycle from
its cluster view (its RUNNABLE jobs it keeps apart, in dispatch order: ``scheduler.orders``);
:func:`kubatch.scheduler.plan.plan` turns it into a ``Plan`` without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EnvState = Literal["ENABLED", "DISABLED"]
EnvStatus = Literal["CREATING", "UPDATING", "DELETING", "DELETED", "VALID", "INVALID"]
EnvType = Literal["MANAGED", "UNMANAGED"]
QueueState = Literal["ENABLED", "DISABLED"]

#: Tolerance for vCPU arithmetic (vCPUs come in multiples of 0.25, but sums of floats drift).
EPSILON = 1e-9

#: Environment statuses that accept new jobs (UPDATING environments keep serving, AWS §1.4).
ACCEPTING_STATUSES: frozenset[str] = frozenset({"VALID", "UPDATING"})


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of compute: vCPUs (fractional), memory in MiB and whole GPUs."""

    vcpus: float = 0.0
    memory_mib: int = 0
    gpus: int = 0

    def add(self, other: Resources) -> Resources:
        """Component-wise sum."""
        return Resources(self.vcpus + other.vcpus, self.memory_mib + other.memory_mib, self.gpus + other.gpus)

    def sub(self, other: Resources) -> Resources:
        """Component-wise difference (may go negative when an environment is over its capacity)."""
        return Resources(self.vcpus - other.vcpus, self.memory_mib - other.memory_mib, self.gpus - other.gpus)

    def times(self, n: int) -> Resources:
        """``n`` copies of this amount (the whole of an ``n``-node gang)."""
        return Resources(self.vcpus * n, self.memory_mib * n, self.gpus * n)

    def fits(self, within: Resources) -> bool:
        """True when this amount fits inside ``within`` in every dimension."""
        return (
            self.vcpus <= within.vcpus + EPSILON and self.memory_mib <= within.memory_mib and self.gpus <= within.gpus
        )

    __add__ = add
    __sub__ = sub


@dataclass(frozen=True, slots=True)
class ComputeEnv:
    """A compute environment as the scheduler sees it.

    ``capacity`` is the most the environment may ever hold (maxvCpus and the matching memory/GPUs);
    ``used`` is what STARTING and RUNNING pods already request; ``max_node`` is the largest single
    node (instance type) — a job node larger than that can never run here (``None``: no per-node
    limit below ``capacity``). ``has_gpu_instance_types`` says whether GPU jobs can run at all.
    """

    name: str
    capacity: Resources
    used: Resources = Resources()
    max_node: Resources | None = None
    state: EnvState = "ENABLED"
    status: EnvStatus = "VALID"
    type: EnvType = "MANAGED"
    has_gpu_instance_types: bool = False
    spot: bool = False

    @property
    def accepts_jobs(self) -> bool:
        """ENABLED and VALID (or UPDATING): DISABLED/INVALID/CREATING/DELETING take no new jobs."""
        return self.state == "ENABLED" and self.status in ACCEPTING_STATUSES

    @property
    def node_limit(self) -> Resources:
        """The largest single node, defaulting to the whole capacity."""
        return self.capacity if self.max_node is None else self.max_node

    @property
    def free(self) -> Resources:
        """Capacity not yet requested by STARTING/RUNNING work."""
        return self.capacity.sub(self.used)


@dataclass(frozen=True, slots=True)
class TimeLimitAction:
    """A ``jobStateTimeLimitActions`` item: cancel a head job blocked with ``reason`` too long."""

    reason: str
    max_time_seconds: float
    state: str = "RUNNABLE"
    action: str = "CANCEL"


@dataclass(frozen=True, slots=True)
class Queue:
    """A job queue. ``ce_order`` lists environment names already sorted by ascending ``order``.

    ``policy`` names a :class:`Policy` (fair share); ``None`` means FIFO. ``state`` is informational:
    a DISABLED queue refuses new submissions (admission) but its queued jobs are dispatched.
    """

    name: str
    priority: int
    ce_order: tuple[str, ...]
    state: QueueState = "ENABLED"
    policy: str | None = None
    time_limit_actions: tuple[TimeLimitAction, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """A RUNNABLE job (or array child) waiting in ``queue``.

    ``key`` is unique and stable (e.g. ``ns/name`` or ``ns/name:7``); ``needs`` is per node;
    a gang (``num_nodes`` > 1 or ``multinode``) needs ``num_nodes * needs`` inside one environment.
    ``consumables`` are (resource name, quantity) pairs for the whole job. ``order`` is the
    submission order key, e.g. ``(createdAt epoch, name)``; ``retried`` jobs go to the front.
    ``priority`` is the schedulingPriority (fair-share queues only). ``blocked_reason`` and
    ``blocked_since`` are what the runtime recorded from earlier plans (the statusReason this job
    was blocked with and since when); they drive ``jobStateTimeLimitActions``.
    """

    key: str
    queue: str
    needs: Resources
    order: tuple[float | int | str, ...] = ()
    num_nodes: int = 1
    multinode: bool = False
    consumables: tuple[tuple[str, int], ...] = ()
    share: str | None = None
    priority: int = 0
    retried: bool = False
    runnable_since: float = 0.0
    blocked_reason: str | None = None
    blocked_since: float | None = None
    #: FIFO dispatch rank: retried jobs first, then submission order, then key (computed once).
    fifo_rank: tuple[int, tuple[float | int | str, ...], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fifo_rank", (0 if self.retried else 1, self.order, self.key))

    @property
    def gang(self) -> bool:
        """A multi-node parallel job: all nodes start together or not at all."""
        return self.multinode or self.num_nodes > 1

    @property
    def total(self) -> Resources:
        """Everything the job needs at once: ``num_nodes * needs``."""
        return self.needs if self.num_nodes == 1 else self.needs.times(self.num_nodes)


@dataclass(frozen=True, slots=True)
class Policy:
    """A fair-share SchedulingPolicy: ``weights`` are (shareIdentifier or ``prefix*``, weightFactor)."""

    name: str
    share_decay_seconds: float = 0.0
    compute_reservation: int = 0
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Consumable:
    """A ConsumableResource; ``available = total - in_use`` for both resource types."""

    name: str
    total: int
    in_use: int = 0
    replenishable: bool = True

    @property
    def available(self) -> int:
        """Units a new job may lock now (never negative)."""
        return max(0, self.total - self.in_use)


@dataclass(frozen=True, slots=True)
class ShareUsage:
    """Fair-share usage of one share identifier in one queue (identifiers are per queue).

    ``usage`` is decayed vCPU-seconds (see :class:`kubatch.scheduler.fairshare.UsageTracker`),
    ``running_vcpus`` the vCPUs its STARTING/RUNNING jobs hold right now.
    """

    queue: str
    share: str
    usage: float = 0.0
    running_vcpus: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scheduling cycle looks at. ``now`` is the injectable clock (epoch seconds).

    ``jobs`` holds RUNNABLE jobs only, in any order; it is empty when ``plan`` gets them as
    :class:`~kubatch.scheduler.orders.DispatchOrders` kept between cycles. ``active_shares`` holds
    (queue, share) pairs active for other reasons than RUNNABLE jobs (SUBMITTED/PENDING/STARTING/
    RUNNING jobs, or used within the decay window); shares of RUNNABLE jobs and running shares are
    active anyway.
    """

    now: float
    envs: tuple[ComputeEnv, ...]
    queues: tuple[Queue, ...]
    jobs: tuple[Job, ...]
    policies: tuple[Policy, ...] = ()
    share_usage: tuple[ShareUsage, ...] = ()
    consumables: tuple[Consumable, ...] = ()
    active_shares: frozenset[tuple[str, str]] = field(default_factory=frozenset)
