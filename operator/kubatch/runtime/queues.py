"""Status of JobQueues and ConsumableResources, computed from the view and written when it changes.

A queue shows VALID/INVALID (INVALID when an environment it names is missing or INVALID, or when its
environments are not all of one architecture, AWS's "must share the same architecture"), job
counts per state, and its front: the first (up to 100) RUNNABLE jobs in dispatch order, with the
time each became RUNNABLE, since when it is at its position and why the head waits, and the
capacity its jobs hold (like GetJobQueueSnapshot: ``kubatch.core.queue_snapshot``). The status is
written only when it changed, stamped ``lastUpdatedAt``; none is written before the dispatcher's
first plan (the front would be empty and lose its times). A DISABLED queue
records since when (``disabledAt``), so that the controller refuses only jobs submitted after that,
also after a restart. A consumable resource shows its in-use and available quantities.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.capacity import pool_nodes
from kubatch.core.instances import Architecture, InstanceTypeError, architecture_conflict, environment_architecture
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT
from kubatch.core.queue_snapshot import (
    QueueUse,
    queue_utilization,
    status_changed,
    tally,
    with_estimates,
    with_times_at_position,
)
from kubatch.core.timestamps import iso, parse_iso
from kubatch.runtime.periodic import every
from kubatch.scheduler import Policy, Resources, ShareUsage
from kubatch.scheduler.fairshare import ShareWeights

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def service_queue_validity(
    queue: Mapping[str, Any], service_envs: Mapping[str, Mapping[str, Any]]
) -> tuple[str, str]:
    """A service job queue: VALID, or INVALID with why: its service environment is missing, INVALID
    or of another type than the queue."""
    spec = queue.get("spec") or {}
    for entry in spec.get("serviceEnvironmentOrder") or []:
        name = str(entry.get("serviceEnvironment"))
        se = service_envs.get(name)
        if se is None:
            return "INVALID", f"CLIENT_ERROR - service environment not found: {name}"
        se_type = str((se.get("spec") or {}).get("serviceEnvironmentType") or "")
        if se_type != spec.get("jobQueueType"):
            return "INVALID", (
                f"CLIENT_ERROR - service environment {name} is of type {se_type}, "
                f"the queue of jobQueueType {spec.get('jobQueueType')}"
            )
        if (se.get("status") or {}).get("status") == "INVALID":
            return "INVALID", f"CLIENT_ERROR - service environment INVALID: {name}"
    return "VALID", ""


def queue_validity(
    queue: Mapping[str, Any],
    envs: Mapping[str, Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]] | None = None,
    service_envs: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[str, str]:
    """VALID, or INVALID with why: an environment missing or INVALID, or environments of different
    architectures (an UNMANAGED one's is its nodeSelector's, else that of its ``nodes``). A service
    job queue: ``service_queue_validity``."""
    if (queue.get("spec") or {}).get("serviceEnvironmentOrder"):
        return service_queue_validity(queue, service_envs or {})
    missing = []
    invalid = []
    architectures: dict[str, Architecture | None] = {}
    for entry in (queue.get("spec") or {}).get("computeEnvironmentOrder") or []:
        name = str(entry.get("computeEnvironment"))
        ce = envs.get(name)
        if ce is None:
            missing.append(name)
        elif (ce.get("status") or {}).get("status") == "INVALID":
            invalid.append(name)
        else:
            labels = [(n.get("metadata") or {}).get("labels") or {} for n in pool_nodes(name, nodes or {})]
            try:
                architectures[name] = environment_architecture(ce, labels)
            except InstanceTypeError:
                architectures[name] = None
    if missing:
        return "INVALID", f"CLIENT_ERROR - compute environment(s) not found: {', '.join(missing)}"
    if invalid:
        return "INVALID", f"CLIENT_ERROR - compute environment(s) INVALID: {', '.join(invalid)}"
    conflict = architecture_conflict(architectures)
    if conflict:
        return "INVALID", f"CLIENT_ERROR - {conflict}"
    return "VALID", ""


def disabled_since(view: View, name: str, now: float) -> float | None:
    """Since when queue ``name`` is DISABLED (None: it is not, or it does not exist): its
    ``status.disabledAt``, else the first time this replica looked while it was DISABLED (the status
    loop then records that). A disable that happened while no operator ran is dated when one first
    looks: jobs created in between are not refused by the controller (the webhook, when it ran,
    refused them at submission)."""
    queue = view.queues.get(name)
    if queue is None or (queue.get("spec") or {}).get("state") != "DISABLED":
        view.disabled_seen.pop(name, None)
        return None
    recorded = parse_iso((queue.get("status") or {}).get("disabledAt"))
    if recorded is not None:
        view.disabled_seen.pop(name, None)
        return recorded
    return view.disabled_seen.setdefault(name, now)


def queue_counts(view: View) -> dict[str, Counter[str]]:
    """Jobs per queue and state (array children by their parent's statusSummary): the view keeps
    these counts as jobs change, so a status round does not go over every job."""
    return view.job_counts


class StatusWriter:
    """Periodically writes JobQueue and ConsumableResource status (leader only)."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        front: Callable[[], Mapping[str, tuple[str, ...]]],
        blocked: Callable[[], Mapping[str, str]],
        in_use: Callable[[], Mapping[str, int]],
        shares: Callable[[], Iterable[ShareUsage]] = tuple,
        consumed: Callable[[], Mapping[str, int]] = dict,
        *,
        period: float = 2.0,
        is_leader: Callable[[], bool] | None = None,
        active_shares: Callable[[], Iterable[tuple[str, str]]] = tuple,
        planned: Callable[[], bool] = lambda: True,
        estimate: Callable[[str], float | None] = lambda _key: None,
        now: Callable[[], float] = time.time,
        service_use: Callable[[], Mapping[str, int]] = dict,
        quota_status: Callable[[str], Mapping[str, Any] | None] = lambda _queue: None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.front = front
        self.blocked = blocked
        self.in_use = in_use
        self.shares = shares
        self.consumed = consumed
        self.period = period
        self.is_leader = is_leader or (lambda: True)
        self.active_shares = active_shares  # (queue, share) pairs the scheduler counts as active
        self.planned = planned  # the dispatcher's front (and whether it has start estimates) is known
        self.estimate = estimate  # scheduler key -> expected start (epoch seconds), if estimated
        self.service_use = service_use  # service job queue -> instances its live workloads hold
        # Quota-managed queue -> its quotaShareUtilization and frontOfQuotaShares (None: not one).
        self.quota_status = quota_status
        self.now = now
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await every(
            self.period, self.sync, ready=self.ready, is_leader=self.is_leader, log=log, what="queue status sync"
        )

    def front_entries(self, queue: str) -> list[dict[str, Any]]:
        out = []
        blocked = self.blocked()
        for pos, key in enumerate(self.front().get(queue, ())[:100], start=1):
            job_key, _, index = key.partition(":")
            ns, name = job_key.split("/", 1)
            job = self.view.jobs.get(job_key) or {}
            st = job.get("status") or {}
            entry: dict[str, Any] = {
                "position": pos,
                "name": f"{name}:{index}" if index else name,
                "namespace": ns,
                "jobId": f"{st.get('jobId')}:{index}" if index else st.get("jobId"),
                "queuedAt": st.get("queuedAt") or st.get("createdAt"),
            }
            if (job.get("spec") or {}).get("shareIdentifier"):
                entry["shareIdentifier"] = job["spec"]["shareIdentifier"]
            expected = self.estimate(key)
            if expected is not None:
                entry["estimatedStartAt"] = expected
            if pos == 1 and job_key in blocked:
                entry["statusReason"] = blocked[job_key]
            out.append(entry)
        return out

    def utilization(self) -> dict[str, QueueUse]:
        """Per queue, what its jobs' live (STARTING or RUNNING) pods request."""
        from kubatch.runtime.dispatcher import pod_requests  # the dispatcher imports runtime.jobs, which imports us

        def holdings() -> Iterable[tuple[str, str | None, str | None, Resources]]:
            for key, pods in self.view.pods.items():
                spec = (self.view.jobs.get(key) or {}).get("spec") or {}
                if not spec:
                    continue
                queue, share = str(spec.get("jobQueue", "")), spec.get("shareIdentifier")
                for pod in pods.values():
                    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                        env = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPUTE_ENVIRONMENT)
                        yield queue, share, env, pod_requests(pod)

        return tally(holdings())

    def share_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Per fair-share queue, its shares' usage, effective weight factor (the policy's, a
        ``prefix*`` entry's times its active shares, as the scheduler weighs them) and unfinished
        jobs; the 20 heaviest users."""
        rows: dict[str, list[dict[str, Any]]] = {}
        jobs = self.view.share_jobs  # unfinished jobs per (queue, share), kept by the view
        listed: set[tuple[str, str]] = set()
        for su in self.shares():
            listed.add((su.queue, su.share))
            rows.setdefault(su.queue, []).append(
                {"shareIdentifier": su.share, "usage": round(su.usage, 3), "runningvCpus": round(su.running_vcpus, 3)}
            )
        for (queue, share), _ in jobs.items():
            if (queue, share) not in listed:
                rows.setdefault(queue, []).append({"shareIdentifier": share, "usage": 0.0, "runningvCpus": 0.0})
        for queue, items in rows.items():
            weights = ShareWeights(self.policy_of(queue), (r["shareIdentifier"] for r in items))
            for r in items:
                r["weightFactor"] = round(weights.weight(r["shareIdentifier"]), 6)
                r["activeJobs"] = jobs.get((queue, r["shareIdentifier"]), 0)
            items.sort(key=lambda r: (-r["usage"], -r["runningvCpus"], r["shareIdentifier"]))
            rows[queue] = items[:20]
        return rows

    def policy_of(self, queue: str) -> Policy | None:
        """The fair-share policy of ``queue`` as the scheduler reads it (weights; unset weightFactor 1)."""
        name = str(((self.view.queues.get(queue) or {}).get("spec") or {}).get("schedulingPolicy") or "")
        policy = self.view.policies.get(name)
        if policy is None:
            return None
        fs = (policy.get("spec") or {}).get("fairsharePolicy") or {}
        distribution = fs.get("shareDistribution") or []
        weights = tuple((str(d.get("shareIdentifier")), float(d.get("weightFactor") or 1.0)) for d in distribution)
        return Policy(name=name, weights=weights)

    async def sync(self) -> None:
        if self.planned():
            await self.sync_queues()
        await self.sync_consumables()

    async def sync_queues(self) -> None:
        counts = queue_counts(self.view)
        shares = self.share_rows()
        use = self.utilization()
        active: Counter[str] = Counter(queue for queue, _ in set(self.active_shares()))
        instances = self.service_use()
        now = self.now()
        for name, queue in list(self.view.queues.items()):
            status, reason = queue_validity(queue, self.view.envs, self.view.nodes, self.view.service_envs)
            c = counts.get(name, Counter())
            since = disabled_since(self.view, name, now)
            fair = bool((queue.get("spec") or {}).get("schedulingPolicy"))
            written = queue.get("status") or {}
            want: dict[str, Any] = {
                "status": status,
                "statusReason": reason,
                "jobCounts": {s: int(c.get(s, 0)) for s in STATES},
                "front": with_estimates(
                    written.get("front"),
                    with_times_at_position(written.get("front"), self.front_entries(name), iso(now)),
                    now,
                ),
                "queueUtilization": (
                    {"totalCapacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": instances.get(name, 0)}]}
                    if (queue.get("spec") or {}).get("serviceEnvironmentOrder")
                    else queue_utilization(use.get(name), fair_share=fair, active_shares=active[name])
                ),
                "disabledAt": None if since is None else iso(since),
            }
            if fair:
                want["shareUsage"] = shares.get(name, [])
            quota = self.quota_status(name)
            if quota is not None:
                want["queueUtilization"] = {
                    **want["queueUtilization"],
                    "quotaShareUtilization": quota["quotaShareUtilization"],
                }
                want["frontOfQuotaShares"] = quota["frontOfQuotaShares"]
            if status_changed(written, want, now):
                await self._write(self.view.queues, "jobqueues", name, {**want, "lastUpdatedAt": iso(now)})

    async def sync_consumables(self) -> None:
        in_use = self.in_use()
        consumed = self.consumed()
        for name, res in list(self.view.consumables.items()):
            spec = res.get("spec") or {}
            total = max(0, int(spec.get("totalQuantity") or 0) - int(consumed.get(name, 0)))
            used = int(in_use.get(name, 0))
            amounts: dict[str, Any] = {
                "totalQuantity": total,
                "inUseQuantity": used,
                "availableQuantity": max(0, total - used),
            }
            have = res.get("status") or {}
            if any(have.get(k) != v for k, v in amounts.items()):
                await self._write(self.view.consumables, "consumableresources", name, amounts)

    async def _write(self, store: dict[str, Any], plural: str, name: str, want: dict[str, Any]) -> None:
        try:
            updated = await self.kube.merge_patch(f"{GROUP_PATH}/{plural}/{name}/status", {"status": want})
            self.view.on_named(store, "MODIFIED", updated)
        except ApiError as e:
            if e.status != 404:
                raise
