"""Scaling decisions for MANAGED compute environments: pure, no I/O, no clock.

One call to `decide` looks at an environment's sizing (`ScalingSpec`), its nodes (`NodeInfo`), the
resource requests of its pods that no node holds yet (`Request`) and the time, and answers which
nodes to add (instance types), which to remove, and the environment's desiredvCpus:

- Pending pods are first fitted (first-fit decreasing) onto the free room of existing nodes,
  booting ones included, so a pod that is merely not bound *yet* never buys a node. The rest are
  bin-packed onto new nodes: the cheapest allowed type that holds them all, else the type that
  packs them most cost-efficiently, repeated. GPU pods go only to GPU types and CPU pods never to
  GPU types (GPU nodes are tainted `nvidia.com/gpu`).
- BEST_FIT never goes above maxvCpus; BEST_FIT_PROGRESSIVE and the SPOT_* strategies may add one
  node while below maxvCpus, so the pool never exceeds maxvCpus plus one node (AWS §1.3).
- minvCpus is kept, also while DISABLED. A DISABLED environment gets no new jobs (the scheduler
  places none there), but the pods already placed on it are still served: in kubatch a job is
  STARTING from the moment its pod exists, before a node holds it, and AWS lets STARTING and RUNNING
  jobs of a disabled environment finish. So its pending pods (and the other nodes of a multi-node
  job that started there) still get nodes, and an idle node they are about to use is kept.
- Nodes with no running pod are removed after `idle_seconds` (nodes above maxvCpus as soon as they
  are idle) down to minvCpus; nodes of an outdated instance or capacity type (an infrastructure
  update) are cordoned while busy and removed as soon as they are idle, or `drain_grace` seconds
  after their `terminate_at` (the jobs there were terminated then; ``core.updates``) even when pods
  are still bound to them; nodes not Ready within `ready_timeout` are reported as failed and
  removed. Other busy nodes are never removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.instances import InstanceType, expand_or_default

PROGRESSIVE = frozenset({"BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"})
DEFAULT_MAX_PODS = 110

# A linear on-demand price model ($/h per vCPU, per GiB, per GPU) fitted to us-east-1 c5/m5/r5 and
# p3/g5 prices: only the ordering of types matters, never the absolute figure.
_PRICE_VCPU = 0.0357
_PRICE_GIB = 0.0034
_PRICE_GPU = 1.5


def relative_cost(vcpus: float, memory_mib: float, gpus: float) -> float:
    """Approximate hourly cost of that much compute (used to rank instance types)."""
    return _PRICE_VCPU * vcpus + _PRICE_GIB * memory_mib / 1024 + _PRICE_GPU * gpus


def type_cost(t: InstanceType) -> float:
    return relative_cost(t.vcpus, t.memory_mib, t.gpus)


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """The resource requests of one pod."""

    gpus: int = 0
    vcpus: float = 0.0
    memory_mib: float = 0.0
    spread: str = ""
    """A gang key (a multi-node job's id): pods with the same key need distinct nodes."""

    @property
    def cost(self) -> float:
        return relative_cost(self.vcpus, self.memory_mib, self.gpus)

    def __add__(self, other: Request) -> Request:
        return Request(
            self.gpus + other.gpus, self.vcpus + other.vcpus, self.memory_mib + other.memory_mib, self.spread
        )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node of the environment as the scaler sees it (times in seconds, any epoch)."""

    name: str
    instance_type: str
    vcpus: float
    memory_mib: float
    gpus: int = 0
    max_pods: int = DEFAULT_MAX_PODS
    ready: bool = True
    created: float = 0.0
    used: Request = Request()
    """Sum of the requests of the unfinished pods bound to the node."""
    pods: int = 0
    """Unfinished pods bound to the node."""
    idle_since: float | None = None
    """Since when the node has had no unfinished pod (None: unknown, taken as now)."""
    outdated: bool = False
    """Its instance or capacity type is no longer allowed by the environment's spec."""
    spread_keys: frozenset[str] = frozenset()
    """Gang keys of the unfinished pods bound to it (no second pod of those gangs fits here)."""
    terminate_at: float | None = None
    """An outdated node's deadline: when the jobs still running on it are terminated."""

    @property
    def busy(self) -> bool:
        return self.pods > 0


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """The sizing rules of one MANAGED environment."""

    min_vcpus: int
    max_vcpus: int
    instance_types: tuple[InstanceType, ...]
    strategy: str = "BEST_FIT"
    idle_seconds: float = 30.0
    ready_timeout: float = 60.0
    scale_out: bool = True
    """False while the environment is INVALID: only scale-in happens."""
    drain_grace: float = 120.0
    """Seconds after an outdated node's terminate_at at which it goes even if pods are still bound."""

    @property
    def progressive(self) -> bool:
        return self.strategy in PROGRESSIVE

    @property
    def largest_vcpus(self) -> int:
        return max((t.vcpus for t in self.instance_types), default=0)

    @classmethod
    def from_resources(
        cls,
        cr: Mapping[str, Any],
        *,
        default_idle_seconds: float = 30.0,
        ready_timeout: float = 60.0,
        scale_out: bool = True,
        instance_types: Sequence[InstanceType] | None = None,
        drain_grace: float = 120.0,
    ) -> ScalingSpec:
        """From `spec.computeResources` (raises UnknownInstanceType for a bad instanceTypes entry),
        or with the given ``instance_types`` (the catalogue's part of a list that Karpenter sizes)."""
        delay = cr.get("minScaleDownDelayMinutes")
        types = expand_or_default(cr.get("instanceTypes")) if instance_types is None else instance_types
        return cls(
            min_vcpus=int(cr.get("minvCpus") or 0),
            max_vcpus=int(cr.get("maxvCpus") or 0),
            instance_types=tuple(types),
            strategy=str(cr.get("allocationStrategy") or "BEST_FIT"),
            idle_seconds=float(delay) * 60 if delay is not None else default_idle_seconds,
            ready_timeout=ready_timeout,
            scale_out=scale_out,
            drain_grace=drain_grace,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What to change: `add` holds one instance type name per new node."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    cordon: tuple[str, ...] = ()
    """Outdated nodes still running pods: no new pods until they drain."""
    failed: tuple[str, ...] = ()
    """Nodes that never became Ready within the timeout (also in `remove`)."""
    desired_vcpus: int = 0
    unplaceable: int = 0
    """Pending pods that no allowed instance type can hold."""
    waiting: int = 0
    """Pending pods that wait for capacity (maxvCpus reached)."""

    @property
    def add_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.add).items()))

    @property
    def changes(self) -> bool:
        return bool(self.add or self.remove or self.cordon)


@dataclass(slots=True)
class _Room:
    vcpus: float
    memory_mib: float
    gpus: int
    pods: int
    gpu_node: bool
    placed: list[Request] = field(default_factory=list)
    spread: set[str] = field(default_factory=set)

    def fits(self, r: Request) -> bool:
        return (
            (not r.spread or r.spread not in self.spread)
            and (r.gpus > 0) == self.gpu_node
            and self.pods >= 1
            and r.vcpus <= self.vcpus + 1e-9
            and r.memory_mib <= self.memory_mib + 1e-9
            and r.gpus <= self.gpus
        )

    def take(self, r: Request) -> None:
        self.vcpus -= r.vcpus
        self.memory_mib -= r.memory_mib
        self.gpus -= r.gpus
        self.pods -= 1
        self.placed.append(r)
        if r.spread:
            self.spread.add(r.spread)


def _room(t: InstanceType) -> _Room:
    return _Room(t.vcpus, t.memory_mib, t.gpus, DEFAULT_MAX_PODS, t.gpus > 0)


def _largest_first(requests: Iterable[Request]) -> list[Request]:
    return sorted(requests, reverse=True)


def fill(t: InstanceType, requests: Sequence[Request]) -> tuple[list[Request], list[Request]]:
    """First-fit the (largest-first) requests into one new node of type `t`: (placed, left over)."""
    room = _room(t)
    left: list[Request] = []
    for r in requests:
        if room.fits(r):
            room.take(r)
        else:
            left.append(r)
    return room.placed, left


def _choose(pool: Sequence[InstanceType], remaining: Sequence[Request]) -> InstanceType:
    holders = [t for t in pool if not fill(t, remaining)[1]]
    if holders:
        return min(holders, key=lambda t: (type_cost(t), t.vcpus, t.name))

    def efficiency(t: InstanceType) -> tuple[float, int, str]:
        placed, _ = fill(t, remaining)
        return (-round(sum(r.cost for r in placed) / type_cost(t), 6), -t.vcpus, t.name)

    return min(pool, key=efficiency)


@dataclass(frozen=True, slots=True)
class Packing:
    """New nodes (type, the requests placed on it), plus what could not be placed."""

    nodes: tuple[tuple[InstanceType, tuple[Request, ...]], ...]
    unplaceable: int
    waiting: int
    total_vcpus: float


def pack(
    requests: Iterable[Request],
    types: Sequence[InstanceType],
    *,
    total_vcpus: float,
    max_vcpus: float,
    progressive: bool,
) -> Packing:
    """Bin-pack requests onto new nodes, GPU requests on GPU types only, within the vCPU budget."""
    nodes: list[tuple[InstanceType, tuple[Request, ...]]] = []
    unplaceable = waiting = 0
    total = total_vcpus
    reqs = _largest_first(requests)
    for gpu in (True, False):
        candidates = sorted((t for t in types if (t.gpus > 0) == gpu), key=lambda t: (type_cost(t), t.name))
        remaining = [r for r in reqs if (r.gpus > 0) == gpu]
        while remaining:
            first = remaining[0]
            fitting = [t for t in candidates if _room(t).fits(first)]
            if not fitting:
                unplaceable += 1
                remaining.pop(0)
                continue
            within = [t for t in fitting if total + t.vcpus <= max_vcpus]
            if within:
                pool = within
            elif progressive and total < max_vcpus:
                pool = [min(fitting, key=lambda t: (t.vcpus, type_cost(t), t.name))]
            else:
                waiting += len(remaining)
                break
            chosen = _choose(pool, remaining)
            placed, remaining = fill(chosen, remaining)
            nodes.append((chosen, tuple(placed)))
            total += chosen.vcpus
    return Packing(tuple(nodes), unplaceable, waiting, total)


def _top_up(spec: ScalingSpec, total: float) -> list[InstanceType]:
    """Nodes that bring the pool up to minvCpus (CPU types unless the environment has only GPU types)."""
    cpu_types = [t for t in spec.instance_types if t.gpus == 0]
    types = sorted(cpu_types or spec.instance_types, key=lambda t: (t.vcpus, type_cost(t), t.name))
    added: list[InstanceType] = []
    while types and total < spec.min_vcpus:
        gap = spec.min_vcpus - total
        under = [t for t in types if t.vcpus <= gap]
        t = under[-1] if under else types[0]
        if total + t.vcpus > spec.max_vcpus and not (spec.progressive and total < spec.max_vcpus):
            break
        added.append(t)
        total += t.vcpus
    return added


def decide(spec: ScalingSpec, nodes: Iterable[NodeInfo], pending: Iterable[Request], now: float) -> Decision:
    """The scaling decision for one environment at time `now`."""
    ordered = sorted(nodes, key=lambda n: n.name)
    failed = [n for n in ordered if not n.ready and now - n.created >= spec.ready_timeout]
    failed_names = {n.name for n in failed}
    live = [n for n in ordered if n.name not in failed_names]

    # 1. Pending pods the existing (current-spec) nodes can already hold.
    rooms = {
        n.name: _Room(
            n.vcpus - n.used.vcpus,
            n.memory_mib - n.used.memory_mib,
            n.gpus - n.used.gpus,
            n.max_pods - n.pods,
            n.gpus > 0,
            spread=set(n.spread_keys),
        )
        for n in live
        if not n.outdated
    }
    rest: list[Request] = []
    claimed: set[str] = set()
    for r in _largest_first(pending):
        home = next((name for name, room in rooms.items() if room.fits(r)), None)
        if home is None:
            rest.append(r)
        else:
            rooms[home].take(r)
            claimed.add(home)

    # 2. Scale in: outdated idle nodes first, then nodes above maxvCpus, then long-idle ones down to minvCpus.
    total = sum(n.vcpus for n in live)
    remove: list[str] = []
    idle = [n for n in live if not n.busy and n.name not in claimed]
    for n in idle:
        if n.outdated:
            remove.append(n.name)
            total -= n.vcpus
    current = [n for n in idle if not n.outdated]
    current.sort(key=lambda n: (n.idle_since if n.idle_since is not None else now, -n.vcpus, n.name))
    for n in current:
        idle_for = now - (n.idle_since if n.idle_since is not None else now)
        over_max = total > spec.max_vcpus
        if (over_max or idle_for >= spec.idle_seconds) and total - n.vcpus >= spec.min_vcpus:
            remove.append(n.name)
            total -= n.vcpus
    overdue = {
        n.name
        for n in live
        if n.outdated and n.busy and n.terminate_at is not None and now >= n.terminate_at + spec.drain_grace
    }
    for n in live:
        if n.name in overdue:
            remove.append(n.name)
            total -= n.vcpus
    cordon = [n.name for n in live if n.outdated and n.busy and n.name not in overdue]

    # 3. Scale out for the pods nothing holds, then up to minvCpus.
    add: list[InstanceType] = []
    unplaceable = waiting = 0
    if spec.scale_out:
        packing = pack(
            rest, spec.instance_types, total_vcpus=total, max_vcpus=spec.max_vcpus, progressive=spec.progressive
        )
        add = [t for t, _ in packing.nodes]
        unplaceable, waiting = packing.unplaceable, packing.waiting
        total = packing.total_vcpus
        top = _top_up(spec, total)
        add += top
        total += sum(t.vcpus for t in top)
    else:
        waiting = len(rest)

    desired = max(spec.min_vcpus, round(total))
    desired = min(desired, spec.max_vcpus + spec.largest_vcpus)
    return Decision(
        add=tuple(t.name for t in add),
        remove=tuple(sorted(remove + sorted(failed_names))),
        cordon=tuple(cordon),
        failed=tuple(sorted(failed_names)),
        desired_vcpus=desired,
        unplaceable=unplaceable,
        waiting=waiting,
    )
