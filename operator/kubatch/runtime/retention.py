"""Deletes finished BatchJobs whose time to live has passed (leader only; ``core.retention``).

Every ``period`` seconds the finished jobs of the view (``view.finished``, kept as jobs change; with a finished
status written to the API server) are weighed: the job's ``spec.ttlSecondsAfterFinished``, else its
definition revision's, else the operator's default. At most ``batch`` expired jobs are deleted per
sweep, ``parallel`` at a time, each with a uid precondition (a job re-created under the same name is
never the one deleted); the job's pods go with it (ownerReferences). A finished job that a job still
waiting depends on is kept until that one has finished too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubatch.cluster.client import Kube
from kubatch.cluster.view import View
from kubatch.core.retention import DEFAULT_BATCH, due, expires_at, ttl_seconds, waiting_dependents
from kubatch.core.timestamps import parse_iso
from kubatch.observability.metrics import Metrics
from kubatch.runtime.jobs import resolve_definition
from kubatch.runtime.periodic import every

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"


class RetentionController:
    """Deletes expired finished jobs in bounded batches."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        metrics: Metrics | None = None,
        *,
        default_ttl: float | None = None,
        period: float = 5.0,
        batch: int = DEFAULT_BATCH,
        parallel: int = 8,
        is_leader: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.view = view
        self.metrics = metrics
        self.default_ttl = default_ttl
        self.period = period
        self.batch = batch
        self.slots = asyncio.Semaphore(max(1, parallel))
        self.is_leader = is_leader or (lambda: True)
        self.clock = clock
        self.ready = asyncio.Event()
        self.deleted = 0
        self._cache: dict[str, tuple[Mapping[str, Any], float | None]] = {}

    async def run(self) -> None:
        await every(
            self.period, self.sweep, ready=self.ready, is_leader=self.is_leader, log=log, what="finished job retention"
        )

    def expiries(self) -> Iterator[tuple[str, float]]:
        """(key, when it may be deleted) of every finished job that has a time to live. A finished job
        changes rarely: its expiry is reused while the view holds the same object for it."""
        view = self.view
        cache: dict[str, tuple[Mapping[str, Any], float | None]] = {}
        for key in list(view.finished):
            job = view.jobs.get(key)
            if job is None:
                continue
            hit = self._cache.get(key)
            if hit is not None and hit[0] is job:
                when = hit[1]
            else:
                spec_ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
                definition = resolve_definition(view, job)[0] if spec_ttl is None else None
                ttl = ttl_seconds(job, definition.spec if definition else None, self.default_ttl)
                when = expires_at(view.written_status(key), ttl, parse_iso)
            cache[key] = (job, when)
            if when is not None:
                yield key, when
        self._cache = cache

    def held(self, key: str) -> bool:
        """A job that depends on ``key`` has not finished (it may still read ``key``'s status)."""
        return bool(waiting_dependents(self.view.dependents.get(key, ()), self.view.jobs))

    async def sweep(self) -> None:
        keys = due(self.expiries(), self.clock(), held=self.held, limit=self.batch)
        if keys:
            await asyncio.gather(*(self.delete(key) for key in keys))

    async def delete(self, key: str) -> None:
        job = self.view.jobs.get(key)
        if job is None:
            return
        md = job.get("metadata") or {}
        ns, name = str(md.get("namespace", "")), str(md.get("name", ""))
        async with self.slots:
            if not self.is_leader():
                return
            await self.kube.delete(f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{name}", uid=md.get("uid"))
        self.view.on_job("DELETED", {"metadata": {"namespace": ns, "name": name, "uid": md.get("uid")}})
        self.deleted += 1
        if self.metrics is not None:
            self.metrics.jobs_expired.inc()
        log.debug("deleted finished job %s (time to live passed)", key)
