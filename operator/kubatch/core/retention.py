"""How long finished jobs are kept (AWS Batch keeps SUCCEEDED and FAILED jobs for a bounded time).

A finished BatchJob (SUCCEEDED or FAILED, as written to the API server) is deleted once its time to
live has passed since ``status.stoppedAt``. The time to live is the job's
``spec.ttlSecondsAfterFinished``, else its definition's (the revision the job ran), else the operator's
default (``KUBATCH_FINISHED_JOB_TTL_SECONDS``, unset by default: finished jobs are kept until someone
deletes them). 0 means as soon as it finished.

A finished job is kept, whatever its time to live, while any job that depends on it has not finished:
a dependent reads its dependency's status each time it looks (``core.deps``), and a dependency that
is gone keeps it waiting for ever.

Deletions go in bounded batches, the longest expired first (``due``), so that a backlog (a default
switched on in a cluster holding a million finished jobs) is worked off at a steady pace instead of
in one burst at the API server.

Pure: the runtime (``runtime.retention``) feeds the view's jobs in and deletes what comes out.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubatch.core.states import TERMINAL, JobStatus

#: Deletions per sweep (the runtime sweeps every few seconds).
DEFAULT_BATCH = 100


def ttl_seconds(
    job: Mapping[str, Any], definition_spec: Mapping[str, Any] | None, default: float | None
) -> float | None:
    """The job's time to live after it finished: its own, else its definition's, else ``default``
    (None: kept for ever)."""
    for source in ((job.get("spec") or {}), (definition_spec or {})):
        value = source.get("ttlSecondsAfterFinished")
        if value is not None:
            return max(0.0, float(value))
    return default


def finished_at(status: Mapping[str, Any], parse: Callable[[str | None], float | None]) -> float | None:
    """When a finished job stopped (``stoppedAt``); None for a job that has not finished."""
    state = status.get("status")
    if state not in {s.value for s in TERMINAL}:
        return None
    return parse(status.get("stoppedAt")) if status.get("stoppedAt") else None


def expires_at(
    status: Mapping[str, Any], ttl: float | None, parse: Callable[[str | None], float | None]
) -> float | None:
    """When a finished job may be deleted; None for a job that is kept (not finished, no TTL)."""
    if ttl is None:
        return None
    stopped = finished_at(status, parse)
    return None if stopped is None else stopped + ttl


def due(
    expiries: Iterable[tuple[str, float]],
    now: float,
    *,
    held: Callable[[str], bool],
    limit: int = DEFAULT_BATCH,
) -> list[str]:
    """The keys to delete now: expired (``expiry <= now``), not ``held`` (a dependent still waits),
    at most ``limit``, the longest expired first."""
    ready = ((when, key) for key, when in expiries if when <= now and not held(key))
    return [key for _, key in heapq.nsmallest(limit, ready)]


def waiting_dependents(dependents: Iterable[str], states: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The dependents (job keys) that have not finished: each one holds the job it depends on."""
    out = []
    for key in dependents:
        job = states.get(key)
        if job is None:
            continue  # deleted: it waits for nothing
        state = (job.get("status") or {}).get("status") or JobStatus.SUBMITTED.value
        if state not in {s.value for s in TERMINAL}:
            out.append(key)
    return out
