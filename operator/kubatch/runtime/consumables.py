"""NON_REPLENISHABLE consumable resources: units used up for good, recorded in the API server.

AWS Batch: a NON_REPLENISHABLE quantity "is taken permanently from both total and available, whether
the job succeeds or fails". Deleting the finished jobs must not bring the units back, nor may an
operator restart, so they are not derived from the jobs that exist: each job (array child) is
charged, in its ConsumableResource's status, when it is placed and before its pod is created:

    status.consumedQuantity   units charged so far (never decreases)
    status.consumers          BatchJob uid -> the array indexes charged (``""``: the whole job), for
                              the jobs that still exist

One merge patch, conditional on the resource's resourceVersion (so a stale copy never overwrites a
newer count), adds the units and the ledger entries together: a unit is charged exactly once, and a
unit already in the ledger (a retry, a dispatch whose pod creation failed) needs no new units. The
entries of deleted jobs are pruned; the count stays. Once per leadership, a sweep charges the units
that started without a charge (jobs started by an operator that kept no ledger).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.arrays import IndexSet

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
NON_REPLENISHABLE = "NON_REPLENISHABLE"


@dataclass(frozen=True)
class Charge:
    """``quantity`` units of ``resource`` for job ``uid`` (its array child ``index``, or the whole job)."""

    resource: str
    uid: str
    index: int | None
    quantity: int
    unit: str  # the dispatcher's unit key (ns/name or ns/name:index), to report failures


def non_replenishable(resource: Mapping[str, Any] | None) -> bool:
    return ((resource or {}).get("spec") or {}).get("resourceType") == NON_REPLENISHABLE


def consumed_quantity(resource: Mapping[str, Any]) -> int:
    """Units charged so far (``status.consumedQuantity``)."""
    return int((resource.get("status") or {}).get("consumedQuantity") or 0)


class Ledger:
    """Reads and writes the charges of NON_REPLENISHABLE resources (leader only)."""

    def __init__(self, kube: Kube, view: View) -> None:
        self.kube = kube
        self.view = view

    def has_any(self) -> bool:
        return any(non_replenishable(c) for c in self.view.consumables.values())

    def charged(self, resource: str, uid: str, index: int | None) -> bool:
        """Whether the unit (job ``uid``, array child ``index``) is charged on ``resource``."""
        res = self.view.consumables.get(resource)
        if res is None:
            return False
        entry = ((res.get("status") or {}).get("consumers") or {}).get(uid)
        if entry is None:
            return False
        return index is None or index in IndexSet.parse(str(entry))

    def settled(self, resource: str, uid: str, index: int | None) -> bool:
        """``resource`` is NON_REPLENISHABLE and the unit is charged on it already."""
        return non_replenishable(self.view.consumables.get(resource)) and self.charged(resource, uid, index)

    def owed(self, resource: str, uid: str, index: int | None) -> bool:
        """``resource`` is NON_REPLENISHABLE and the unit is not charged on it yet."""
        return non_replenishable(self.view.consumables.get(resource)) and not self.charged(resource, uid, index)

    async def charge(self, charges: Iterable[Charge]) -> set[str]:
        """Record ``charges`` (those not recorded yet); returns the unit keys that could not be
        charged (the resource is gone, or changed under us: they are tried again next cycle)."""
        by_resource: dict[str, list[Charge]] = defaultdict(list)
        for c in charges:
            by_resource[c.resource].append(c)
        failed: set[str] = set()
        for name, items in by_resource.items():
            if not await self._charge_one(name, items):
                failed.update(c.unit for c in items)
        return failed

    async def _charge_one(self, name: str, items: list[Charge]) -> bool:
        res = self.view.consumables.get(name)
        if res is None:
            return False
        status = res.get("status") or {}
        consumers: dict[str, str] = {str(k): str(v) for k, v in (status.get("consumers") or {}).items()}
        changed: dict[str, str] = {}
        added = 0
        for c in items:
            if self.charged(name, c.uid, c.index) or _in(changed.get(c.uid), c.index):
                continue
            if c.index is None:
                changed[c.uid] = ""
            else:
                current = changed.get(c.uid, consumers.get(c.uid, ""))
                changed[c.uid] = str(IndexSet.parse(current).add(c.index))
            added += c.quantity
        if not changed:
            return True
        patch = {
            "metadata": {"resourceVersion": res["metadata"].get("resourceVersion")},
            "status": {"consumedQuantity": consumed_quantity(res) + added, "consumers": changed},
        }
        return await self._patch(name, patch)

    async def prune(self) -> None:
        """Drop the ledger entries of jobs that no longer exist (their units stay consumed)."""
        resources = [(n, c) for n, c in self.view.consumables.items() if (c.get("status") or {}).get("consumers")]
        if not resources:
            return
        uids = {str(j["metadata"].get("uid")) for j in self.view.jobs.values()}
        for name, res in resources:
            gone = [uid for uid in (res.get("status") or {}).get("consumers") or {} if uid not in uids]
            if gone:
                patch = {
                    "metadata": {"resourceVersion": res["metadata"].get("resourceVersion")},
                    "status": {"consumers": dict.fromkeys(gone)},
                }
                await self._patch(name, patch)

    async def _patch(self, name: str, patch: dict[str, Any]) -> bool:
        path = f"{GROUP_PATH}/consumableresources/{name}"
        try:
            updated = await self.kube.merge_patch(f"{path}/status", patch)
        except ApiError as e:
            if e.status == 409:  # changed since our copy: read it again, try again next cycle
                try:
                    self.view.on_named(self.view.consumables, "MODIFIED", await self.kube.get(path))
                except ApiError as again:
                    if again.status != 404:
                        log.warning("consumable resource %s: %s", name, again)
            elif e.status != 404:
                log.warning("consumable resource %s: charging failed: %s", name, e)
            return False
        self.view.on_named(self.view.consumables, "MODIFIED", updated)
        return True


def _in(ranges: str | None, index: int | None) -> bool:
    if ranges is None:
        return False
    return index is None or index in IndexSet.parse(ranges)


def started_units(job: Mapping[str, Any], pods: Mapping[str, Mapping[str, Any]]) -> tuple[bool, IndexSet]:
    """Which units of ``job`` ever started an attempt: (the whole job, for a single job; the array
    children, for an array) -- from the attempts its status records, its STARTING/RUNNING state
    and its pods."""
    st = job.get("status") or {}
    props = st.get("arrayProperties") or {}
    size = int(((job.get("spec") or {}).get("arrayProperties") or {}).get("size") or 0)
    if size < 2:
        return bool(st.get("attempts") or st.get("status") in ("STARTING", "RUNNING") or pods), IndexSet()
    started = IndexSet()
    for members in (props.get("attempts") or {}).values():
        started = started | IndexSet.parse(str(members))
    indexes = props.get("indexes") or {}
    started = started | IndexSet.parse(indexes.get("STARTING")) | IndexSet.parse(indexes.get("RUNNING"))
    with_pods = (((p.get("metadata") or {}).get("labels") or {}).get("kubatch.dev/array-index") for p in pods.values())
    return False, started | IndexSet.of(int(i) for i in with_pods if i is not None)
