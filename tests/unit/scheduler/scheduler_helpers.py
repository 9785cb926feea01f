"""Small builders shared by the scheduler tests."""

from __future__ import annotations

from kubatch.scheduler import ComputeEnv, Job, Queue, Resources, Snapshot
from kubatch.scheduler.plan import Plan


def env(name: str, vcpus: float, memory: int = 1 << 20, gpus: int = 0, **kw: object) -> ComputeEnv:
    """An ENABLED/VALID environment with the given capacity (``kw`` overrides other fields)."""
    return ComputeEnv(name=name, capacity=Resources(vcpus, memory, gpus), **kw)  # type: ignore[arg-type]


def queue(name: str, *ces: str, priority: int = 1, **kw: object) -> Queue:
    """An ENABLED queue over ``ces`` (in order)."""
    return Queue(name=name, priority=priority, ce_order=tuple(ces), **kw)  # type: ignore[arg-type]


def job(key: str, q: str, vcpus: float = 1.0, seq: int = 0, memory: int = 0, gpus: int = 0, **kw: object) -> Job:
    """A RUNNABLE job; ``seq`` is its submission order."""
    return Job(key=key, queue=q, needs=Resources(vcpus, memory, gpus), order=(seq,), **kw)  # type: ignore[arg-type]


def snap(envs: list[ComputeEnv], queues: list[Queue], jobs: list[Job], now: float = 0.0, **kw: object) -> Snapshot:
    """A snapshot from lists."""
    return Snapshot(now=now, envs=tuple(envs), queues=tuple(queues), jobs=tuple(jobs), **kw)  # type: ignore[arg-type]


def placed_keys(p: Plan) -> list[str]:
    """Job keys of the placements, in dispatch order."""
    return [k for k, _ in p.placements]
