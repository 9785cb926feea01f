"""Service environment controller: status, finalizer and deletion, in one periodic loop (leader only).

Per ServiceEnvironment and sync (every second, once the ServiceEnvironments are listed):

- adds the finalizer `kubatch.dev/service-environment`;
- status VALID, or INVALID when its serviceEnvironmentType is not a known workload type
  (``core.service_jobs.environment_validity``; it becomes VALID by itself once one is). Until kubatch
  has written a status the environment counts as CREATING, and its queues take no service jobs;
- ``jobQueues``: the queues that name it; ``capacityUsage``: the instances the live workloads placed
  on it hold (``NUM_INSTANCES``); ``observedGeneration``;
- deleted (deletionTimestamp): DELETING, and it waits until it is DISABLED, no job queue names it
  and no workload holds its capacity (``core.deletion``; the statusReason says what it waits for,
  with a Warning Event ``DeletionWaiting`` each time that changes); then the finalizer goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubatch.api.constants import API_VERSION
from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.deletion import (
    attached_service_queues,
    service_environment_deletion_blockers,
    service_environment_deletion_wait,
)
from kubatch.core.service_jobs import environment_validity
from kubatch.observability.events import EventRecorder
from kubatch.runtime.periodic import every
from kubatch.runtime.service_jobs import ServiceJobs

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
FINALIZER = "kubatch.dev/service-environment"
JSON = dict[str, Any]


class ServiceEnvironmentController:
    """Writes ServiceEnvironment status and carries out their deletion."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        services: ServiceJobs,
        *,
        is_leader: Callable[[], bool] | None = None,
        events: EventRecorder | None = None,
        period: float = 1.0,
    ) -> None:
        self.kube = kube
        self.view = view
        self.services = services
        self.is_leader = is_leader or (lambda: True)
        self.events = events
        self.period = period
        self.ready = asyncio.Event()
        self.synced = asyncio.Event()
        self.synced.set()
        self.deletion_waits: dict[str, str] = {}

    async def run(self) -> None:
        await self.synced.wait()
        await every(
            self.period,
            self.sync,
            ready=self.ready,
            is_leader=self.is_leader,
            log=log,
            what="service environment sync",
        )

    async def sync(self) -> None:
        used = self.services.in_use()
        for name, se in list(self.view.service_envs.items()):
            try:
                await self.sync_one(name, se, used.get(name, 0))
            except ApiError as e:
                log.warning("service environment %s: %s", name, e)

    async def sync_one(self, name: str, se: JSON, in_use: int) -> None:
        md = se.get("metadata") or {}
        finalizers = list(md.get("finalizers") or [])
        if md.get("deletionTimestamp"):
            if FINALIZER not in finalizers:
                return
            blockers = service_environment_deletion_blockers(name, se, self.view.queues, in_use)
            if not blockers:
                self.deletion_waits.pop(name, None)
                await self._write_status(name, se, {"status": "DELETING", "statusReason": "deleting"})
                if await self._set_finalizers(se, [f for f in finalizers if f != FINALIZER]) is not None:
                    log.info("service environment %s: deleted", name)
                return
            waiting = service_environment_deletion_wait(blockers)
            self._announce_wait(name, se, waiting)
            status, reason = "DELETING", waiting
        else:
            if FINALIZER not in finalizers:
                updated = await self._set_finalizers(se, [*finalizers, FINALIZER])
                if updated is None:
                    return
                se = updated
            status, reason = environment_validity(se)
        want: JSON = {
            "status": status,
            "statusReason": reason,
            "jobQueues": attached_service_queues(name, self.view.queues),
            "capacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": in_use}],
            "observedGeneration": md.get("generation"),
        }
        await self._write_status(name, se, want)

    def _announce_wait(self, name: str, se: JSON, waiting: str) -> None:
        """A Warning Event on the environment each time what its deletion waits for changes."""
        if self.deletion_waits.get(name) == waiting:
            return
        self.deletion_waits[name] = waiting
        log.info("service environment %s: deletion waits: %s", name, waiting)
        if self.events is not None:
            obj = {"apiVersion": API_VERSION, "kind": "ServiceEnvironment", **se}
            self.events.record(obj, "DeletionWaiting", waiting, type_="Warning")

    async def _set_finalizers(self, se: JSON, finalizers: list[str]) -> JSON | None:
        md = se.get("metadata") or {}
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": md.get("resourceVersion")}}
        try:
            updated = await self.kube.merge_patch(f"{GROUP_PATH}/serviceenvironments/{md.get('name')}", body)
        except ApiError as e:
            if e.status in (404, 409):
                return None  # gone, or changed since we read it: next sync
            raise
        gone = (updated.get("metadata") or {}).get("deletionTimestamp") and not updated["metadata"].get("finalizers")
        self.view.on_named(self.view.service_envs, "DELETED" if gone else "MODIFIED", updated)
        return updated

    async def _write_status(self, name: str, se: JSON, want: JSON) -> None:
        have = se.get("status") or {}
        if all(have.get(k) == v for k, v in want.items()):
            return
        try:
            updated = await self.kube.merge_patch(f"{GROUP_PATH}/serviceenvironments/{name}/status", {"status": want})
        except ApiError as e:
            if e.status == 404:
                return
            raise
        if (have.get("status"), have.get("statusReason")) != (want.get("status"), want.get("statusReason")):
            log.info("service environment %s: %s %s", name, want.get("status"), want.get("statusReason") or "")
        self.view.on_named(self.view.service_envs, "MODIFIED", updated)
