"""A JobQueue's snapshot fields, as AWS's GetJobQueueSnapshot returns them (pure; no I/O).

* ``earliestTimeAtPosition`` of each front entry: when the job moved to its current position. The
  writer of the queue's status carries it over from the status it wrote before while the job (same
  namespace, name and jobId) is at the same position, so it stays put across cycles and across an
  operator restart; a job that moved gets the current time.
* ``estimatedStartAt`` of each front entry (kubatch's addition): when the job is expected to start
  (:mod:`kubatch.scheduler.estimate`), to the millisecond (a second's truncation made estimates of
  waits of a few seconds early by a tenth and more). A new estimate within
  ``ESTIMATE_TOLERANCE_SECONDS`` or a tenth of the remaining wait of the written one keeps the
  written one, so estimates that wobble do not rewrite the queue every cycle.
* ``queueUtilization``: the capacity (vCPU, MiB of memory, GPU) the queue's STARTING and RUNNING
  pods request, in total, per compute environment and, for a fair-share queue, per share (the 20
  largest) with the number of active shares.
* :func:`status_changed`: whether a newly computed status differs from the written one. A share's
  decayed usage drifts every cycle while it decays or runs, and start estimates drift with the
  clock (overdue work is expected to end "now") and with what is learned; drift alone counts as a
  change at most every ``usage_refresh`` seconds (judged by the written ``lastUpdatedAt``), so a
  queue is not rewritten every cycle. Anything else counts at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.timestamps import iso_millis, parse_iso
from kubatch.scheduler.snapshot import Resources

#: Shares listed in ``fairshareUtilization.topCapacityUtilization`` (AWS's console shows 20).
TOP_SHARES = 20
#: Compute environments listed in ``queueUtilization.computeEnvironmentUsage``.
MAX_ENVIRONMENTS = 10
#: Seconds between writes caused only by shares' decayed usage drifting.
USAGE_REFRESH_SECONDS = 30.0
#: A front entry's new start estimate this close to the written one keeps the written one.
ESTIMATE_TOLERANCE_SECONDS = 5.0


def with_times_at_position(
    previous: Sequence[Mapping[str, Any]] | None, entries: Iterable[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """``entries`` (front entries with ``namespace``, ``name``, ``jobId``, ``position``), each given
    its ``earliestTimeAtPosition``: the one ``previous`` (the written front) recorded when the same
    job was at the same position, else ``now``."""
    before = {(p.get("namespace"), p.get("name"), p.get("jobId")): p for p in previous or ()}
    out = []
    for entry in entries:
        old = before.get((entry.get("namespace"), entry.get("name"), entry.get("jobId")))
        if old is not None and old.get("position") == entry.get("position") and old.get("earliestTimeAtPosition"):
            entry["earliestTimeAtPosition"] = old["earliestTimeAtPosition"]
        else:
            entry["earliestTimeAtPosition"] = now
        out.append(entry)
    return out


def with_estimates(
    previous: Sequence[Mapping[str, Any]] | None, entries: list[dict[str, Any]], now: float
) -> list[dict[str, Any]]:
    """``entries`` whose ``estimatedStartAt`` (epoch seconds when set) is written as RFC 3339: the
    written one (in ``previous``, the written front) when the new one is within the tolerance (see
    module docstring) of it, else the new one."""
    before = {(p.get("namespace"), p.get("name"), p.get("jobId")): p for p in previous or ()}
    for entry in entries:
        expected = entry.get("estimatedStartAt")
        if not isinstance(expected, int | float):
            continue
        old = before.get((entry.get("namespace"), entry.get("name"), entry.get("jobId")))
        written = parse_iso((old or {}).get("estimatedStartAt"))
        if written is not None:
            tolerance = max(ESTIMATE_TOLERANCE_SECONDS, 0.1 * (written - now))
            if abs(float(expected) - written) <= tolerance:
                entry["estimatedStartAt"] = old["estimatedStartAt"]  # type: ignore[index]
                continue
        entry["estimatedStartAt"] = iso_millis(float(expected))
    return entries


_NONE = Resources()


@dataclass
class QueueUse:
    """What one queue's live pods request: in total, per share and per compute environment."""

    total: Resources = _NONE
    by_share: dict[str, Resources] = field(default_factory=dict)
    by_env: dict[str, Resources] = field(default_factory=dict)


def tally(holdings: Iterable[tuple[str, str | None, str | None, Resources]]) -> dict[str, QueueUse]:
    """Sum (queue, share or None, compute environment or None, requests) per queue."""
    out: dict[str, QueueUse] = {}
    for queue, share, env, res in holdings:
        use = out.get(queue)
        if use is None:
            use = out[queue] = QueueUse()
        use.total = use.total + res
        if share:
            use.by_share[share] = use.by_share.get(share, Resources()) + res
        if env:
            use.by_env[env] = use.by_env.get(env, Resources()) + res
    return out


def capacity_usage(res: Resources) -> list[dict[str, Any]]:
    """AWS's ``capacityUsage`` items: vCPU (AWS's unit), then MiB of memory and GPUs."""
    return [
        {"capacityUnit": "vCPU", "quantity": round(max(res.vcpus, 0.0), 3)},
        {"capacityUnit": "MiB", "quantity": max(res.memory_mib, 0)},
        {"capacityUnit": "GPU", "quantity": max(res.gpus, 0)},
    ]


def _heaviest(items: Mapping[str, Resources]) -> list[tuple[str, Resources]]:
    return sorted(items.items(), key=lambda kv: (-kv[1].vcpus, -kv[1].memory_mib, -kv[1].gpus, kv[0]))


def queue_utilization(use: QueueUse | None, *, fair_share: bool, active_shares: int) -> dict[str, Any]:
    """``status.queueUtilization`` of one queue. A FIFO queue's ``fairshareUtilization`` is None
    (a merge patch removes one left behind)."""
    use = use or QueueUse()
    envs = sorted(_heaviest(use.by_env)[:MAX_ENVIRONMENTS])
    out: dict[str, Any] = {
        "totalCapacityUsage": capacity_usage(use.total),
        "computeEnvironmentUsage": [{"computeEnvironment": n, "capacityUsage": capacity_usage(r)} for n, r in envs],
        "fairshareUtilization": None,
    }
    if fair_share:
        top = [(s, r) for s, r in _heaviest(use.by_share) if r.vcpus > 0 or r.memory_mib > 0 or r.gpus > 0]
        out["fairshareUtilization"] = {
            "activeShareCount": active_shares,
            "topCapacityUtilization": [
                {"shareIdentifier": s, "capacityUsage": capacity_usage(r)} for s, r in top[:TOP_SHARES]
            ],
        }
    return out


def _normal(value: Any) -> Any:
    """``value`` with None-valued keys dropped at every depth (a merge patch's None deletes)."""
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _rows(value: Any) -> dict[str, dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return {str(r.get("shareIdentifier")): dict(r) for r in value if isinstance(r, Mapping)}


def _usage_only(old: Any, new: Any) -> bool:
    """The same share rows but for their ``usage``."""
    was, wants = _rows(old), _rows(new)
    if was is None or wants is None or set(was) != set(wants):
        return False
    return all(
        {k: v for k, v in was[s].items() if k != "usage"} == {k: v for k, v in row.items() if k != "usage"}
        for s, row in wants.items()
    )


def _estimates_only(old: Any, new: Any) -> bool:
    """The same front but for the value of its entries' ``estimatedStartAt`` (an estimate that
    appears or goes is a change)."""
    if not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new):
        return False
    return all(
        isinstance(a, Mapping)
        and isinstance(b, Mapping)
        and ("estimatedStartAt" in a) == ("estimatedStartAt" in b)
        and {k: v for k, v in a.items() if k != "estimatedStartAt"}
        == {k: v for k, v in b.items() if k != "estimatedStartAt"}
        for a, b in zip(old, new, strict=True)
    )


def status_changed(
    have: Mapping[str, Any],
    want: Mapping[str, Any],
    now: float,
    *,
    usage_refresh: float = USAGE_REFRESH_SECONDS,
) -> bool:
    """Whether writing ``want`` would change the written status ``have``. A difference in
    ``shareUsage`` rows' ``usage`` only (same shares, all else equal) counts once ``usage_refresh``
    seconds have passed since ``have``'s ``lastUpdatedAt``."""
    drifted = False
    for key, value in want.items():
        old = have.get(key)
        if _normal(old) == _normal(value):
            continue
        if (key == "shareUsage" and _usage_only(old, value)) or (key == "front" and _estimates_only(old, value)):
            drifted = True
            continue
        return True
    if not drifted:
        return False
    written = parse_iso(have.get("lastUpdatedAt"))
    return written is None or now - written >= usage_refresh
