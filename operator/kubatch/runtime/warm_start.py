"""The warm start: a restarted leader dispatches before the view holds every job.

With a deep queue the BatchJob list dominates a restart (a minute and more at a few hundred
thousand jobs, see bench/README.md), and the full cycles wait for it: a cycle over part of a queue
would start jobs out of order. But each queue's written status names its front (up to 100 jobs, in
the order the last leader would start them; a leader that stops writes it last, after the job
statuses it held back, the front jobs' first, so only a crashed one leaves a front up to a status
period old, whose jobs started since are skipped and whose jobs not written RUNNABLE yet wait), and
every other collection (nodes, pods, queues, environments, definitions) is in long before the jobs.
So once those are in (and, before each cycle, the nodes that joined meanwhile are in their
environments' pools: ``before_cycle``, the caller's ``PoolController.sync``), the front jobs are
fetched one by one, with the jobs of the live pods (what holds capacity is sized from its job: a
multi-node job's nodes not created yet), and cycles over the front jobs alone
(:meth:`Dispatcher.warm_cycle`, one at once, then one a second while the list runs: capacity may
come meanwhile) start what fits. Nothing beyond the fronts is dispatched until the list is in.

Safe because a fetched copy is current (the list's older copy does not replace it: ``View.on_job``),
pod names are deterministic (the full cycles see the pods started here, and the API refuses a
second), jobs that need consumable resources wait (their ledger is read from every job), and no
other loop runs before the list is in.

Cost: one GET per front job (at most ``MAX_FRONT_JOBS`` in all, queues by priority) and per job of a
live pod, ``CONCURRENCY`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.informer import strip
from kubatch.cluster.view import View
from kubatch.core.job_ids import job_id
from kubatch.runtime.dispatcher import Dispatcher
from kubatch.runtime.jobs import GROUP_PATH
from kubatch.runtime.waits import wait_set

log = logging.getLogger(__name__)

JSON = Mapping[str, Any]

#: Front jobs fetched at most (each queue's front holds up to 100).
MAX_FRONT_JOBS = 2_000
#: GETs in flight at once.
CONCURRENCY = 32
#: The written states a front job is dispatched from (an array job is PENDING with RUNNABLE children).
RUNNABLE = ("RUNNABLE", "PENDING")
#: Seconds between the warm cycles while the list runs.
RETRY_SECONDS = 1.0


def front_jobs(queues: Iterable[JSON], limit: int = MAX_FRONT_JOBS) -> list[tuple[str, str]]:
    """The jobs (namespace/name key, jobId) of the queues' written fronts, queues by descending
    priority, each front in its order, an array child as its array job; at most ``limit``."""
    out: dict[str, str] = {}

    def priority(q: JSON) -> int:
        try:
            return -int((q.get("spec") or {}).get("priority") or 0)
        except (TypeError, ValueError):
            return 0

    for queue in sorted(queues, key=priority):
        if (queue.get("spec") or {}).get("state") == "DISABLED":
            continue
        for entry in (queue.get("status") or {}).get("front") or []:
            ns, name, job_id = entry.get("namespace"), entry.get("name"), entry.get("jobId")
            if not ns or not name:
                continue
            name, _, index = str(name).partition(":")
            if index and isinstance(job_id, str):
                job_id = job_id.rsplit(":", 1)[0]
            out.setdefault(f"{ns}/{name}", str(job_id or ""))
            if len(out) >= limit:
                return list(out.items())
    return list(out.items())


def holders(view: View) -> list[str]:
    """Jobs with a live pod that the view does not hold yet."""
    return [
        key
        for key, pods in view.pods.items()
        if key not in view.jobs
        and any((p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for p in pods.values())
    ]


async def fetch(kube: Kube, keys: Iterable[str], concurrency: int = CONCURRENCY) -> dict[str, dict[str, Any]]:
    """The current copy of each job ``keys`` names (gone ones left out)."""
    slots = asyncio.Semaphore(concurrency)
    out: dict[str, dict[str, Any]] = {}

    async def one(key: str) -> None:
        ns, name = key.split("/", 1)
        async with slots:
            try:
                out[key] = strip(await kube.get(f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{name}"))
            except ApiError as e:
                if e.status != 404:
                    log.warning("warm start: job %s: %s", key, e)

    await asyncio.gather(*(one(k) for k in keys))
    return out


async def warm_start(
    kube: Kube,
    view: View,
    dispatcher: Dispatcher,
    listed: asyncio.Event,
    *,
    every: float = RETRY_SECONDS,
    before_cycle: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Fetch the fronts' jobs (and the live pods' jobs) into ``view`` and run dispatcher cycles over
    the front jobs (one, then one every ``every`` seconds: capacity may come while the list runs, a
    node that was not ready, a pod that ended) until the BatchJob list (``listed``) is in. Returns
    the pods started."""
    front = front_jobs(view.queues.values())
    if not front or listed.is_set():
        return 0
    wanted = dict(front)
    got = await fetch(kube, [*wanted, *holders(view)])
    if listed.is_set():
        return 0  # the full cycles take over now
    keys = []
    for key, obj in got.items():
        view.on_job("MODIFIED", obj)
        if key in wanted and (not wanted[key] or job_id(obj) == wanted[key]):
            keys.append(key)  # the same job the front named (not one re-created under its name)
    # A front job whose RUNNABLE status was never written (a crashed leader's coalesced write) waits
    # for the full cycles: only its written status says what it may do.
    waiting = sum(1 for k in keys if ((view.jobs.get(k) or {}).get("status") or {}).get("status") not in RUNNABLE)
    started = await _cycle(dispatcher, keys, before_cycle)
    log.info(
        "warm start: %d pods started for %d front jobs before the job list is in (%d not written RUNNABLE)",
        started,
        len(keys),
        waiting,
    )
    while True:
        await wait_set(listed, every)
        if listed.is_set():
            return started
        more = await _cycle(dispatcher, keys, before_cycle)
        if more:
            log.info("warm start: %d more pods started", more)
        started += more


async def _cycle(dispatcher: Dispatcher, keys: list[str], before_cycle: Callable[[], Awaitable[None]] | None) -> int:
    """One warm cycle after ``before_cycle``. A failure of either (an API error patching some other
    node into its pool, say) is logged and the next cycle tries again: the warm start goes on."""
    if before_cycle is not None:
        try:
            await before_cycle()
        except Exception:
            log.exception("warm start: preparing a cycle failed (the cycle runs on the pools as they are)")
    try:
        return await dispatcher.warm_cycle(keys)
    except Exception:
        log.exception("warm start: a cycle failed (the next one tries again)")
        return 0
