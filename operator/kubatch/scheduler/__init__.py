"""Pure scheduler: an immutable :class:`Snapshot` in, a :class:`Plan` out (no kopf, no I/O)."""

from kubatch.scheduler.fairshare import UsageTracker
from kubatch.scheduler.plan import Plan, plan
from kubatch.scheduler.snapshot import (
    ComputeEnv,
    Consumable,
    Job,
    Policy,
    Queue,
    Resources,
    ShareUsage,
    Snapshot,
    TimeLimitAction,
)

__all__ = [
    "ComputeEnv",
    "Consumable",
    "Job",
    "Plan",
    "Policy",
    "Queue",
    "Resources",
    "ShareUsage",
    "Snapshot",
    "TimeLimitAction",
    "UsageTracker",
    "plan",
]
