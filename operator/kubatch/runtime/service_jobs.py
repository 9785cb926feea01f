"""Service jobs in the runtime: their scheduling cycle (leader only) and their lifecycle steps.

``ServiceJobs.cycle`` runs after each cycle of the dispatcher: it builds a ``ServiceSnapshot`` from the
view (service job queues, service environments with the instances their live workloads hold,
RUNNABLE service jobs without a workload for their next attempt), asks the pure
:func:`kubatch.scheduler.service.plan_service` for a ``Plan`` and creates the workload of each
placed attempt (``core.service_jobs.build_workload``, named ``<job>-a<attempt>``: a second create is
a 409, never a second workload). The created workload goes straight into the view, so the next
cycle counts its instances at once. A workload the API server refuses for good (400, 422, 403 other
than a ResourceQuota) ends the attempt with the API server's words; a ResourceQuota refusal
(capacity of the namespace) is retried without using an attempt, as AWS retries insufficient
capacity; other errors are tried again in the next cycle.

Before each service cycle, suspended workloads (``batch/v1`` Jobs, or objects of a type declared by
configuration) labelled ``kubatch.dev/job-queue`` (and no service job's yet) are adopted
(``ServiceJobs.adopt``): their BatchJob is created, owned by the workload, then the workload is
labelled as its own; placing such a job unsuspends it instead of creating one.

Workloads of a type declared by configuration are listed by informers the runtime adds for it (not
waited for at start: its CRD may be installed later); until the first list is in
(``ServiceJobs.type_synced``) its jobs are neither stepped nor placed.

``ServiceJobs.step`` is the reconciler's step for a service job: ``core.service_jobs.reconcile_service``
over the job's workloads, applied through the reconciler (status coalescing, events), then the
deletes (a terminated job's workload, propagation Background) once the status is written.
Blocked reasons, time-limit cancellations and create failures reach the step through this object,
so every status write has one author.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kubatch.api.job_queue import COMPUTE_QUEUE_TYPE
from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.admission import quota_managed
from kubatch.core.lifecycle import Decision
from kubatch.core.service_jobs import (
    HOLDING,
    LABEL_JOB_QUEUE,
    LABEL_SERVICE_ENVIRONMENT,
    NUM_INSTANCES,
    ROUTINE_EVENTS,
    TERMINAL,
    PayloadError,
    ServiceContext,
    WorkloadType,
    adopted_workload,
    adoption_job,
    adoption_labels,
    build_workload,
    environment_limits,
    instances_limit,
    payload_instances,
    preempting,
    reconcile_service,
    type_of,
    unit_of,
    unsuspend_patch,
    workload_name,
    workload_number,
    workload_type,
)
from kubatch.core.timestamps import parse_iso
from kubatch.observability.events import EventRecorder
from kubatch.observability.metrics import Metrics
from kubatch.scheduler import Job, Plan, Policy, Queue, Resources, ShareUsage, TimeLimitAction
from kubatch.scheduler.plan import INSUFFICIENT_CAPACITY, reason_code
from kubatch.scheduler.quota import Holding, Preemption, QuotaPlan, QuotaShare, QuotaSnapshot, Waiting, plan_quota
from kubatch.scheduler.service import ServiceEnv, ServiceSnapshot, environment_problem, plan_service

if TYPE_CHECKING:
    from kubatch.runtime.jobs import JobReconciler

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: A new job waits this long for its service environment to leave CREATING before it is refused.
CREATING_GRACE_SECONDS = 30.0


def service_queue(queue: Mapping[str, Any] | None) -> bool:
    """Whether ``queue`` is a service job queue (jobQueueType other than EKS)."""
    if queue is None:
        return False
    return str((queue.get("spec") or {}).get("jobQueueType") or COMPUTE_QUEUE_TYPE) != COMPUTE_QUEUE_TYPE


def queue_environment(queue: Mapping[str, Any]) -> str:
    """The service environment a service job queue names ("" when none)."""
    order = (queue.get("spec") or {}).get("serviceEnvironmentOrder") or []
    return str(order[0].get("serviceEnvironment") or "") if order else ""


def environment_status(se: Mapping[str, Any] | None) -> str:
    """A service environment's status; CREATING until kubatch has looked at it."""
    if se is None:
        return "MISSING"
    if (se.get("metadata") or {}).get("deletionTimestamp"):
        return "DELETING"
    return str((se.get("status") or {}).get("status") or "CREATING")


def live(workload: Mapping[str, Any], wtype: WorkloadType) -> bool:
    """The workload holds its instances: started (not suspended) and not ended (a workload being
    deleted holds them until gone)."""
    return not wtype.suspended(workload) and wtype.observe(workload).state not in TERMINAL


def failure_reason(wtype: WorkloadType, error: ApiError) -> str | None:
    """The statusReason of an attempt whose workload the API server refused for good, or None when
    the refusal may pass (capacity, a conflict, the server's own trouble)."""
    if error.status not in (400, 403, 422) or error.namespace_terminating:
        return None
    message = error.body.get("message") if isinstance(error.body, dict) else None
    text = str(message or error)
    if error.status == 403 and "exceeded quota" in text:
        return None
    return wtype.status_reason(f"{error.reason or error.status}: {text}")


class ServiceJobs:
    """Schedules service jobs (leader only) and steps them through their lifecycle."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        events: EventRecorder,
        metrics: Metrics,
        *,
        is_leader: Callable[[], bool] | None = None,
        max_parallel_creates: int = 16,
        job_events: str = "notable",
    ) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.metrics = metrics
        self.is_leader = is_leader or (lambda: True)
        self.create_slots = asyncio.Semaphore(max_parallel_creates)
        self.job_events = job_events
        self.reconciler: JobReconciler | None = None
        self.now = time.time
        self.time_limit_scale = float(os.environ.get("KUBATCH_TIME_LIMIT_SCALE", "1") or 1)
        self.blocked: dict[str, str] = {}  # job key -> statusReason of a blocked queue head
        self.blocked_detail: dict[str, str] = {}
        self.blocked_since: dict[str, tuple[str, float]] = {}
        self.blocked_queues: frozenset[str] = frozenset()
        self.forced_cancel: dict[str, str] = {}  # job key -> a time-limit action's cancellation
        self.create_failures: dict[str, tuple[int, str]] = {}  # job key -> (attempt, statusReason)
        self.capacity_refusals: dict[str, str] = {}  # job key -> a ResourceQuota's refusal (retried)
        self.front: dict[str, tuple[str, ...]] = {}
        self.in_flight: set[str] = set()
        self.not_adopted: set[str] = set()  # Jobs told (an Event) why they are not adopted
        self._instances: dict[tuple[str, str], int] = {}  # (job key, uid) -> instances of its payload
        self._units: dict[tuple[str, str], str] = {}  # (job key, uid) -> capacity unit (quota management)
        self._waiting: dict[str, list[Waiting]] = {}  # quota-managed queue -> its RUNNABLE jobs (this cycle)
        # Quota management: victims decided and not yet written as preempting (job key -> why), and
        # the last plan of each quota-managed queue (its shares' usage and fronts, for the status).
        self.preempt: dict[str, Preemption] = {}
        self.quota_plans: dict[str, QuotaPlan] = {}
        # Types declared by configuration -> their workload informer's first list: until it is in, the
        # view does not hold their workloads, so their jobs are neither stepped nor placed.
        self.type_synced: dict[str, asyncio.Event] = {}
        self.cycles = 0
        self.last_plan: Plan | None = None
        # Fair-share service queues: the dispatcher's share usage rows and active shares.
        self.synced = asyncio.Event()  # ServiceEnvironments listed (the runtime's informer sets it)
        self.synced.set()
        self.share_usage: Callable[[], tuple[ShareUsage, ...]] = tuple
        self.active_shares: Callable[[], frozenset[tuple[str, str]]] = frozenset

    # ---- the reconciler's step ------------------------------------------------------------------
    def context(self, key: str, job: Mapping[str, Any]) -> tuple[ServiceContext, bool]:
        """The step's context, and whether the step should wait (a new job whose service environment
        is still CREATING, within the grace)."""
        spec = job.get("spec") or {}
        queue_name = str(spec.get("jobQueue", ""))
        queue_missing = queue_deleted = None
        wait = False
        now = self.now()
        if not (job.get("status") or {}).get("status"):
            queue_missing = self.submission_problem(job)
            if queue_missing is not None and queue_missing.startswith("WAIT:"):
                created = parse_iso(job["metadata"].get("creationTimestamp")) or now
                if now - created < CREATING_GRACE_SECONDS:
                    wait = True
                queue_missing = queue_missing.removeprefix("WAIT:")
        elif queue_name not in self.view.queues:
            from kubatch.core.states import queue_deleted_reason

            queue_deleted = queue_deleted_reason(queue_name)
        failure = self.create_failures.get(key)
        attempt = workload_number(job.get("status"))
        return (
            ServiceContext(
                now=now,
                queue_missing=queue_missing,
                queue_deleted=queue_deleted,
                blocked_reason=self.blocked.get(key),
                blocked_detail=self.blocked_detail.get(key),
                forced_cancel=self.forced_cancel.get(key),
                create_failure=failure[1] if failure is not None and failure[0] == attempt else None,
                preempt=self.preempt[key].reason if key in self.preempt else None,
            ),
            wait,
        )

    def submission_problem(self, job: Mapping[str, Any]) -> str | None:
        """Why a new service job is refused (the webhook's rules, checked again; ``WAIT:`` prefixed
        when it may pass by itself: its service environment is still CREATING)."""
        from kubatch.core.admission import World, validate_service_job
        from kubatch.core.states import queue_disabled_reason

        spec = job.get("spec") or {}
        queue_name = str(spec.get("jobQueue", ""))
        queue = self.view.queues.get(queue_name)
        if queue is None:
            return f"Job queue {queue_name} not found"
        if self.reconciler is not None and self.reconciler.submitted_while_disabled(job, queue_name):
            return queue_disabled_reason(queue_name)
        world = World(
            namespace=str(job["metadata"].get("namespace", "")),
            created_at=parse_iso(job["metadata"].get("creationTimestamp")) or self.now(),
            queues=dict(self.view.queues),
            policies=dict(self.view.policies),
            service_envs=dict(self.view.service_envs),
        )
        problems = validate_service_job(dict(job), world)
        if problems:
            return "; ".join(str(p) for p in problems)
        se = self.view.service_envs.get(queue_environment(queue))
        if environment_status(se) == "CREATING":
            name = queue_environment(queue)
            return f"WAIT:Service environment {name} is CREATING: its job queues do not accept service jobs yet"
        return None

    def type_ready(self, wtype: WorkloadType) -> bool:
        """Whether the view holds the workloads of ``wtype`` (built in: listed before start)."""
        synced = self.type_synced.get(wtype.name)
        return synced is None or synced.is_set()

    async def step(self, key: str, job: Mapping[str, Any]) -> None:
        reconciler = self.reconciler
        assert reconciler is not None
        wtype = workload_type((job.get("spec") or {}).get("serviceJobType"))
        if wtype is not None and not self.type_ready(wtype):
            reconciler.requeue(key, 2.0)  # its workloads are not listed yet (is its CRD installed?)
            return
        ctx, wait = self.context(key, job)
        if wait:
            reconciler.requeue(key, 0.5)
            return
        if wtype is None:
            # A type no environment can run (the webhook refuses it; the queue's check names it).
            ctx = replace(ctx, queue_missing=ctx.queue_missing or "Unknown serviceJobType")
            wtype = workload_type("KUBERNETES_JOB")
            assert wtype is not None
        decision = reconcile_service(job, self.view.workloads.get(key, {}), wtype, ctx)
        events = [
            e
            for e in decision.events
            if self.job_events == "all" or e.type != "Normal" or e.reason not in ROUTINE_EVENTS
        ]
        await reconciler.apply(job, Decision(status=decision.status, events=events))
        if (decision.status or job.get("status") or {}).get("status") in TERMINAL:
            self.forget(key)
        ns = job["metadata"]["namespace"]
        if decision.flush:
            await reconciler.flush(key)
        if decision.preemption_started:
            # A preemption starts: its status is written before the workload is stopped, so that a
            # restart finds the preemption (and finishes it) instead of a vanished workload.
            if not preempting(self.view.written_status(key)):
                reconciler.requeue(key, 1.0)
                return
            why = self.preempt.get(key)
            queue = str((job.get("spec") or {}).get("jobQueue", ""))
            share = str((job.get("spec") or {}).get("quotaShareName") or "")
            self.metrics.service_preemptions.labels(queue, share, why.kind if why else "unknown").inc()
        if preempting(self.view.written_status(key)):
            self.preempt.pop(key, None)  # written: the status carries it from now on
        for d in decision.delete:
            try:
                await self.kube.delete(f"{wtype.collection_path(ns)}/{d.name}", uid=d.uid, propagation=d.propagation)
            except ApiError as e:
                if e.status != 404:
                    raise
            self.view.workload_deleting(key, d.name, d.uid)
        for name in decision.suspend:
            suspended = await self.kube.merge_patch(f"{wtype.collection_path(ns)}/{name}", wtype.suspend_patch(True))
            self.view.on_workload("MODIFIED", suspended)

    def forget(self, key: str) -> None:
        """A finished job's entries go."""
        self.preempt.pop(key, None)
        self.blocked.pop(key, None)
        self.blocked_detail.pop(key, None)
        self.forced_cancel.pop(key, None)
        self.create_failures.pop(key, None)
        self.blocked_since.pop(key, None)

    # ---- scheduling -------------------------------------------------------------------------------
    def queues(self) -> dict[str, Mapping[str, Any]]:
        return {name: q for name, q in self.view.queues.items() if service_queue(q)}

    def _live_workloads(self) -> list[tuple[Mapping[str, str], int]]:
        """(labels, instances) of every workload that still holds its instances."""
        out = []
        for workloads in self.view.workloads.values():
            for w in workloads.values():
                wtype = type_of(w)
                if wtype is not None and live(w, wtype):
                    out.append((((w.get("metadata") or {}).get("labels") or {}), wtype.instances(w)))
        return out

    def in_use(self) -> dict[str, int]:
        """Instances the live workloads hold, per service environment (their label says where)."""
        used: dict[str, int] = {}
        for labels, count in self._live_workloads():
            env = str(labels.get(LABEL_SERVICE_ENVIRONMENT, ""))
            used[env] = used.get(env, 0) + count
        return used

    def in_use_by_queue(self) -> dict[str, int]:
        """Instances the live workloads hold, per job queue (for the queue's status)."""
        used: dict[str, int] = {}
        for labels, count in self._live_workloads():
            queue = str(labels.get(LABEL_JOB_QUEUE, ""))
            used[queue] = used.get(queue, 0) + count
        return used

    def in_use_by_share(self) -> dict[tuple[str, str], float]:
        """Instances the live workloads of fair-share service jobs hold, per (queue, share): their
        share usage, as vCPUs are a compute job's."""
        used: dict[tuple[str, str], float] = {}
        for key, workloads in self.view.workloads.items():
            share = ((self.view.jobs.get(key) or {}).get("spec") or {}).get("shareIdentifier")
            if not share:
                continue
            for w in workloads.values():
                wtype = type_of(w)
                if wtype is not None and live(w, wtype):
                    queue = str(((w.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_QUEUE, ""))
                    used[(queue, str(share))] = used.get((queue, str(share)), 0.0) + wtype.instances(w)
        return used

    def unit(self, key: str, job: Mapping[str, Any]) -> str:
        """A quota-managed job's capacity unit (from its payload; cached per job uid)."""
        cache_key = (key, str((job.get("metadata") or {}).get("uid", "")))
        unit = self._units.get(cache_key)
        if unit is None:
            if len(self._units) > 100_000:
                self._units.clear()
            unit = self._units[cache_key] = unit_of(job)
        return unit

    def instances(self, key: str, job: Mapping[str, Any], wtype: WorkloadType) -> int:
        cache_key = (key, str((job.get("metadata") or {}).get("uid", "")))
        count = self._instances.get(cache_key)
        if count is None:
            if len(self._instances) > 100_000:
                self._instances.clear()
            count = self._instances[cache_key] = payload_instances(job, wtype)
        return count

    def quota_queues(self) -> dict[str, Mapping[str, Any]]:
        """The quota-managed service job queues (their policy has a quotaSharePolicy)."""
        return {
            name: q
            for name, q in self.queues().items()
            if quota_managed(q, self.view.policies.get(str((q.get("spec") or {}).get("schedulingPolicy") or "")))
        }

    def snapshot(self) -> ServiceSnapshot:
        now = self.now()
        quota = self.quota_queues()
        queues = {name: q for name, q in self.queues().items() if name not in quota}
        self._waiting = {name: [] for name in quota}
        jobs: list[Job] = []
        for key in self.view.candidates:
            job = self.view.jobs[key]
            spec = job.get("spec") or {}
            queue_name = str(spec.get("jobQueue", ""))
            if not spec.get("serviceJobType") or (queue_name not in queues and queue_name not in quota):
                continue
            st = job.get("status") or {}
            if st.get("status") != "RUNNABLE" or key in self.in_flight:
                continue
            attempt = workload_number(st)
            name = job["metadata"]["name"]
            wtype = workload_type(spec.get("serviceJobType"))
            if wtype is None or not self.type_ready(wtype):
                continue
            existing = self.view.workloads.get(key, {}).get(workload_name(name, attempt, job))
            adopted = adopted_workload(job) is not None
            if existing is not None and not (adopted and wtype.suspended(existing)):
                continue  # created (or unsuspended) already
            if adopted and existing is None:
                continue  # its workload is not in the view (yet, or any more)
            failure = self.create_failures.get(key)
            if failure is not None and failure[0] == attempt:
                continue  # the step records the failed attempt first
            instances = wtype.instances(existing) if existing is not None else self.instances(key, job, wtype)
            created = parse_iso(job["metadata"].get("creationTimestamp")) or 0.0
            if queue_name in quota:
                self._waiting[queue_name].append(
                    Waiting(
                        key=key,
                        share=str(spec.get("quotaShareName") or ""),
                        instances=instances,
                        unit=self.unit(key, job),
                        priority=int(spec.get("schedulingPriority") or 0),
                        order=(created, name),
                        retried=attempt > 1,
                    )
                )
                continue
            reason, since = self.blocked_since.get(key) or (None, None)
            jobs.append(
                Job(
                    key=key,
                    queue=str(spec.get("jobQueue", "")),
                    needs=Resources(float(instances), 0, 0),
                    order=(created, name),
                    share=spec.get("shareIdentifier"),
                    priority=int(spec.get("schedulingPriority") or 0),
                    retried=attempt > 1,
                    runnable_since=parse_iso(st.get("queuedAt")) or created,
                    blocked_reason=reason,
                    blocked_since=since,
                )
            )
        used = self.in_use()
        envs = []
        for name, se in self.view.service_envs.items():
            spec = se.get("spec") or {}
            envs.append(
                ServiceEnv(
                    name=name,
                    type=str(spec.get("serviceEnvironmentType") or ""),
                    max_capacity=instances_limit(se),
                    in_use=used.get(name, 0),
                    state="DISABLED" if spec.get("state") == "DISABLED" else "ENABLED",
                    status=environment_status(se),
                )
            )
        q_objs = []
        for name, q in queues.items():
            spec = q.get("spec") or {}
            q_objs.append(
                Queue(
                    name=name,
                    priority=int(spec.get("priority", 0)),
                    ce_order=(),
                    state="DISABLED" if spec.get("state") == "DISABLED" else "ENABLED",
                    policy=spec.get("schedulingPolicy") or None,
                    time_limit_actions=tuple(
                        TimeLimitAction(
                            reason=str(a.get("reason")),
                            max_time_seconds=float(a.get("maxTimeSeconds", 600)) * self.time_limit_scale,
                        )
                        for a in spec.get("jobStateTimeLimitActions") or []
                    ),
                )
            )
        policies = []
        for name, p in self.view.policies.items():
            fs = (p.get("spec") or {}).get("fairsharePolicy") or {}
            policies.append(
                Policy(
                    name=name,
                    share_decay_seconds=float(fs.get("shareDecaySeconds") or 0),
                    weights=tuple(
                        (str(s.get("shareIdentifier")), float(s.get("weightFactor") or 1.0))
                        for s in fs.get("shareDistribution") or []
                    ),
                )
            )
        return ServiceSnapshot(
            now=now,
            envs=tuple(envs),
            queues=tuple(q_objs),
            env_of=tuple((name, queue_environment(q)) for name, q in queues.items()),
            queue_types=tuple(
                (name, str((q.get("spec") or {}).get("jobQueueType") or COMPUTE_QUEUE_TYPE))
                for name, q in queues.items()
            ),
            jobs=tuple(jobs),
            policies=tuple(policies),
            share_usage=self.share_usage() if any(q.policy for q in q_objs) else (),
            active_shares=self.active_shares() if any(q.policy for q in q_objs) else frozenset(),
        )

    async def cycle(self) -> Plan | None:
        """One service scheduling cycle (after the dispatcher's own)."""
        if not self.synced.is_set():
            return None  # which environments exist is not known yet
        idle = not self.view.service_envs and not self.blocked and not self.front and not self.view.adoptable
        if idle and not any(service_queue(q) for q in self.view.queues.values()):
            return None
        await self.adopt()
        snap = self.snapshot()
        plan = plan_service(snap)
        plan = self._plan_quota(snap, plan)
        self.cycles += 1
        self.last_plan = plan
        self._record(plan)
        for key, reason in plan.cancellations.items():
            self.forced_cancel[key] = reason
            self.view.mark(key)
        tasks = []
        for key, env in plan.placements:
            job = self.view.jobs.get(key)
            if job is None:
                continue
            self.in_flight.add(key)
            tasks.append(asyncio.create_task(self._start(key, job, env)))
        if tasks:
            await asyncio.gather(*tasks)
        return plan

    def _holdings(self) -> dict[str, list[Holding]]:
        """The live workloads of quota-managed jobs, per queue, as the quota scheduler sees them."""
        out: dict[str, list[Holding]] = {}
        for key, workloads in self.view.workloads.items():
            job = self.view.jobs.get(key)
            if job is None:
                continue
            spec = job.get("spec") or {}
            st = job.get("status") or {}
            for w in workloads.values():
                wtype = type_of(w)
                if wtype is None or not live(w, wtype):
                    continue
                md = w.get("metadata") or {}
                queue = str((md.get("labels") or {}).get(LABEL_JOB_QUEUE, ""))
                started = parse_iso(st.get("scheduledAt")) or parse_iso(md.get("creationTimestamp")) or 0.0
                out.setdefault(queue, []).append(
                    Holding(
                        key=key,
                        share=str(spec.get("quotaShareName") or ""),
                        instances=wtype.instances(w),
                        unit=self.unit(key, job),
                        priority=int(spec.get("schedulingPriority") or 0),
                        started=started,
                        stopping=bool(md.get("deletionTimestamp")) or preempting(st) or key in self.preempt,
                    )
                )
        return out

    def quota_snapshots(self, snap: ServiceSnapshot) -> list[QuotaSnapshot]:
        """One snapshot per quota-managed queue (after ``snapshot``, which gathered their RUNNABLE jobs)."""
        quota = self.quota_queues()
        envs = {e.name: e for e in snap.envs}
        holdings = self._holdings()
        users: dict[str, list[str]] = {}
        for name, q in self.queues().items():
            users.setdefault(queue_environment(q), []).append(name)
        out = []
        for name, q in sorted(quota.items()):
            spec = q.get("spec") or {}
            env_name = queue_environment(q)
            env = envs.get(env_name)
            problem = environment_problem(env, env_name, str(spec.get("jobQueueType") or COMPUTE_QUEUE_TYPE))
            others = sorted(set(users.get(env_name, [])) - {name})
            if problem is None and others:
                problem = (
                    "ACTION_REQUIRED - Service environment associated with the job queue is invalid.",
                    f"service environment {env_name} also serves job queue(s) {', '.join(others)}: the service "
                    "environment of a quota-managed queue serves no other queue",
                )
            se = self.view.service_envs.get(env_name) or {}
            other_use: dict[str, int] = {}
            for other in others:
                for h in holdings.get(other, []):
                    other_use[h.unit] = other_use.get(h.unit, 0) + h.instances
            shares = []
            for entry in spec.get("quotaShares") or []:
                sharing = entry.get("resourceSharingConfiguration") or {}
                limit = sharing.get("borrowLimit")
                shares.append(
                    QuotaShare(
                        name=str(entry.get("quotaShareName") or ""),
                        limits=tuple(
                            (str(c.get("capacityUnit") or NUM_INSTANCES), int(c.get("maxCapacity") or 0))
                            for c in entry.get("capacityLimits") or []
                        ),
                        strategy=str(sharing.get("strategy") or "RESERVE"),
                        borrow_limit=100 if limit is None else int(limit),
                        in_share_preemption=(entry.get("preemptionConfiguration") or {}).get("inSharePreemption")
                        == "ENABLED",
                    )
                )
            out.append(
                QuotaSnapshot(
                    queue=name,
                    env=env_name,
                    env_limits=tuple(environment_limits(se).items()),
                    shares=tuple(shares),
                    waiting=tuple(self._waiting.get(name, [])),
                    holding=tuple(holdings.get(name, [])),
                    env_other=tuple(other_use.items()),
                    problem=problem,
                )
            )
        return out

    def _plan_quota(self, snap: ServiceSnapshot, plan: Plan) -> Plan:
        """Plan the quota-managed queues and merge their decisions into ``plan``."""
        plans: dict[str, QuotaPlan] = {}
        for key in list(self.preempt):
            st = (self.view.jobs.get(key) or {}).get("status") or {}
            if st.get("status") not in HOLDING or preempting(self.view.written_status(key)):
                del self.preempt[key]  # done, or moot (the job ended or its workload went meanwhile)
        for qs in self.quota_snapshots(snap):
            plans[qs.queue] = qp = plan_quota(qs)
            plan.placements.extend(qp.placements)
            plan.blocked.update(qp.blocked)
            plan.blocked_detail.update(qp.blocked_detail)
            plan.queue_front[qs.queue] = qp.queue_front
            for key, why in qp.preemptions.items():
                if key not in self.preempt:
                    log.info("service job %s: preempted (%s, for %s): %s", key, why.kind, why.for_job, why.reason)
                self.preempt[key] = why
                self.view.mark(key)
        blocked = set(plan.blocked_queues)
        for name, qp in plans.items():
            if any(k in qp.blocked for k in qp.share_front.values()):
                blocked.add(name)
        self.quota_plans = plans
        return replace(plan, blocked_queues=frozenset(blocked))

    def quota_status(self, queue: str) -> dict[str, Any] | None:
        """A quota-managed queue's status fields (AWS GetJobQueueSnapshot's
        ``queueUtilization.quotaShareUtilization`` and ``frontOfQuotaShares``) from its last plan, or
        None for another queue."""
        plan = self.quota_plans.get(queue)
        q = self.view.queues.get(queue)
        if plan is None or q is None:
            return None
        rows = []
        for entry in (q.get("spec") or {}).get("quotaShares") or []:
            name = str(entry.get("quotaShareName") or "")
            held = plan.usage.get(name, {})
            units = [str(c.get("capacityUnit") or NUM_INSTANCES) for c in entry.get("capacityLimits") or []]
            units += [u for u in held if u not in units]
            row: dict[str, Any] = {
                "quotaShareName": name,
                "capacityUsage": [{"capacityUnit": u, "quantity": held.get(u, 0)} for u in units[:10]],
            }
            lent = plan.borrowed.get(name, {})
            if lent:
                row["borrowedCapacity"] = [{"capacityUnit": u, "quantity": n} for u, n in list(lent.items())[:10]]
            rows.append(row)
        rows.sort(key=lambda r: (-sum(c["quantity"] for c in r["capacityUsage"]), r["quotaShareName"]))
        # Every share has its entry ([] without a RUNNABLE job), and one the spec no longer lists is
        # removed (null): the status is written as a merge patch.
        written = ((q.get("status") or {}).get("frontOfQuotaShares") or {}).get("quotaShares") or {}
        fronts: dict[str, list[dict[str, Any]] | None] = {name: None for name in written}
        fronts.update({str(e.get("quotaShareName") or ""): [] for e in (q.get("spec") or {}).get("quotaShares") or []})
        for name, key in sorted(plan.share_front.items()):
            job = self.view.jobs.get(key) or {}
            md = job.get("metadata") or {}
            front: dict[str, Any] = {"namespace": md.get("namespace", ""), "name": md.get("name", "")}
            job_id = (job.get("status") or {}).get("jobId")
            if job_id:
                front["jobId"] = job_id
            priority = (job.get("spec") or {}).get("schedulingPriority")
            if priority is not None:
                front["schedulingPriority"] = int(priority)
            if key in plan.blocked:
                front["statusReason"] = plan.blocked[key]
            fronts[name] = [front]
        return {
            "quotaShareUtilization": {"topCapacityUtilization": rows[:20]},
            "frontOfQuotaShares": {"quotaShares": fronts},
        }

    def _record(self, plan: Plan) -> None:
        now = self.now()
        blocked = dict(plan.blocked)
        detail = dict(plan.blocked_detail)
        for key, text in self.capacity_refusals.items():
            if key in self.view.candidates and key not in blocked:
                env = queue_environment(self.view.queues.get(self.view.jobs[key]["spec"].get("jobQueue", "")) or {})
                blocked[key] = (
                    f"{INSUFFICIENT_CAPACITY} - Service cannot fulfill the capacity requested for instance type [{env}]"
                )
                detail[key] = f"the workload was refused: {text}"
        self.capacity_refusals = {}
        for key, reason in blocked.items():
            code = reason_code(reason)
            prev = self.blocked_since.get(key)
            if prev is None or prev[0] != code:
                self.blocked_since[key] = (code, now)
        for key in list(self.blocked_since):
            if key not in blocked:
                del self.blocked_since[key]
        for key in set(self.blocked) | set(blocked):
            if self.blocked.get(key) != blocked.get(key) or self.blocked_detail.get(key) != detail.get(key):
                self.view.mark(key)
        self.blocked, self.blocked_detail = blocked, detail
        for queue in plan.blocked_queues - self.blocked_queues:
            head = next(
                (k for k in plan.blocked if (self.view.jobs.get(k) or {}).get("spec", {}).get("jobQueue") == queue),
                None,
            )
            q = self.view.queues.get(queue)
            if q is not None and head is not None:
                message = f"job queue {queue} is blocked by {head}: {plan.blocked[head]}"
                if plan.blocked_detail.get(head):
                    message += f" ({plan.blocked_detail[head]})"
                self.events.record(q, "QueueBlocked", message, type_="Warning")
                self.metrics.queue_blocked_events.labels(queue, reason_code(plan.blocked[head])).inc()
        self.blocked_queues = plan.blocked_queues
        self.front = dict(plan.queue_front)

    # ---- adoption ---------------------------------------------------------------------------------
    async def adopt(self) -> None:
        """Suspended Jobs labelled kubatch.dev/job-queue become service jobs: their BatchJob is created
        (named as the Job, owned by it), then the Job is labelled as that service job's workload
        (which takes it out of ``view.adoptable``). A Job that is not suspended is not adopted: it
        already runs (an Event on it says so, once). The adoptions run side by side (as many at once
        as creates may): one after the other, a burst of 200 Jobs held this cycle's placements ~10 s."""
        pending = list(self.view.adoptable.items())
        if pending:
            await asyncio.gather(*(self._adopt(key, workload) for key, workload in pending))

    async def _adopt(self, key: str, workload: dict[str, Any]) -> None:
        md = workload.get("metadata") or {}
        wtype = type_of(workload)
        if md.get("deletionTimestamp") or wtype is None:
            return
        if not wtype.suspended(workload):
            if key not in self.not_adopted:
                self.not_adopted.add(key)
                suspend = ".".join(wtype.suspend_path)
                message = (
                    f"not queued by kubatch: only a {wtype.kind} created with {suspend}: true is adopted "
                    f"(label {LABEL_JOB_QUEUE}); this one already runs"
                )
                self.events.record(workload, "NotAdopted", message, type_="Warning")
            return
        ns = str(md.get("namespace", ""))
        async with self.create_slots:
            existing = self.view.jobs.get(key)
            if existing is None:
                batchjobs = f"/apis/kubatch.dev/v1alpha1/namespaces/{ns}/batchjobs"
                try:
                    existing = await self.kube.create(batchjobs, adoption_job(workload, wtype))
                except ApiError as e:
                    if e.status != 409:
                        log.warning("adopting job %s: %s", key, e)
                        return
                    existing = await self.kube.get(f"{batchjobs}/{md.get('name')}")
                self.view.put_job(existing)
            if adopted_workload(existing) != md.get("name"):
                if key not in self.not_adopted:
                    self.not_adopted.add(key)
                    message = f"not queued by kubatch: BatchJob {md.get('name')} exists and is not this Job's"
                    self.events.record(workload, "NotAdopted", message, type_="Warning")
                return
            patch = {"metadata": {"labels": adoption_labels(existing)}}
            try:
                labelled = await self.kube.merge_patch(f"{wtype.collection_path(ns)}/{md.get('name')}", patch)
            except ApiError as e:
                log.warning("adopting job %s: %s", key, e)
                return
        self.view.on_adoptable("DELETED", workload)
        self.view.on_workload("MODIFIED", labelled)
        log.info("adopted %s %s into job queue %s", wtype.kind, key, existing["spec"].get("jobQueue"))

    async def _start(self, key: str, job: Mapping[str, Any], env: str) -> None:
        ns = str(job["metadata"]["namespace"])
        spec = job.get("spec") or {}
        wtype = workload_type(spec.get("serviceJobType"))
        attempt = workload_number(job.get("status"))
        try:
            if wtype is None:
                return
            adopted = adopted_workload(job)
            if adopted is not None:
                path = f"{wtype.collection_path(ns)}/{adopted}"
                async with self.create_slots:
                    try:
                        started = await self.kube.merge_patch(path, unsuspend_patch(env, attempt, wtype))
                    except ApiError as e:
                        log.warning("service job %s: starting %s: %s", key, adopted, e)
                        return
                self.view.on_workload("MODIFIED", started)
                self.metrics.attempts.labels(str(spec.get("jobQueue", ""))).inc()
                return
            try:
                manifest = build_workload(job, wtype, attempt, service_environment=env)
            except PayloadError as e:
                self.create_failures[key] = (attempt, wtype.status_reason(f"Invalid: serviceRequestPayload {e}"))
                return
            async with self.create_slots:
                try:
                    created = await self.kube.create(wtype.collection_path(ns), manifest)
                except ApiError as e:
                    if e.status == 409:
                        return  # created before (a restart, or a retry of this cycle): the informer has it
                    reason = failure_reason(wtype, e)
                    if reason is not None:
                        self.create_failures[key] = (attempt, reason)
                    elif e.status == 403 and not e.namespace_terminating:
                        self.capacity_refusals[key] = str(e.body.get("message") if isinstance(e.body, dict) else e)
                    else:
                        (log.debug if e.namespace_terminating else log.warning)("service job %s: %s", key, e)
                    return
            self.view.on_workload("ADDED", created)
            self.metrics.attempts.labels(str(spec.get("jobQueue", ""))).inc()
        except ApiError as e:
            log.warning("service job %s: %s", key, e)
        finally:
            self.in_flight.discard(key)
            self.view.mark(key)
