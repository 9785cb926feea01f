"""The dispatcher: one scheduling loop (leader only) from the cluster view to started pods.

Each cycle builds an immutable ``Snapshot`` (RUNNABLE jobs and array children without a pod for
their current attempt; compute environment capacity and what STARTING/RUNNING pods use; queues,
policies, share usage, consumables), asks the pure planner for a ``Plan`` and applies it: the
first pod of each placed attempt is created (bounded parallelism, never waiting on one slow call),
the pod goes straight into the view, and the job is marked dirty so the lifecycle step records
STARTING. Blocked reasons and time-limit cancellations are handed to the lifecycle step through
the view, so every status write of a job has one author.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.arrays import IndexSet
from kubatch.core.capacity import env_view
from kubatch.core.lifecycle import Definition, child_attempt_counts
from kubatch.core.podspec import (
    LABEL_COMPUTE_ENVIRONMENT,
    Needs,
    PodSettings,
    PodSpecError,
    build_headless_service,
    build_pod,
    environment_tolerations,
    main_node_of,
    num_nodes_of,
    parse_quantity,
    pod_name,
    resource_needs,
    scheduling_priority,
)
from kubatch.core.timestamps import parse_iso
from kubatch.observability.events import EventRecorder
from kubatch.observability.metrics import Metrics
from kubatch.runtime.consumables import Charge, Ledger, consumed_quantity, non_replenishable, started_units
from kubatch.runtime.estimates import DEFAULT_INTERVAL as ESTIMATE_INTERVAL
from kubatch.runtime.estimates import StartEstimator, head_waits
from kubatch.runtime.jobs import resolve_definition
from kubatch.scheduler import (
    Consumable,
    Job,
    Plan,
    Policy,
    Queue,
    Resources,
    ShareUsage,
    Snapshot,
    TimeLimitAction,
    UsageTracker,
)
from kubatch.scheduler import plan as make_plan
from kubatch.scheduler.plan import reason_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One dispatchable thing: a job, or one child of an array job."""

    key: str  # ns/name or ns/name:index
    job_key: str
    index: int | None
    attempt: int  # the attempt this dispatch starts (1-based)


def _pod_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


_REQUESTS = "_kubatch_requests"  # where a slim pod of the view keeps its parsed requests


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    cached = pod.get(_REQUESTS)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    requests = _pod_requests(pod)
    if isinstance(pod, dict):
        pod[_REQUESTS] = requests  # the view's pod copies are replaced, never edited: safe to memoize
    return requests


def _pod_requests(pod: Mapping[str, Any]) -> Resources:
    cpu = 0.0
    mem = 0
    gpus = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        lim = (c.get("resources") or {}).get("limits") or {}
        if "cpu" in req:
            cpu += float(parse_quantity(req["cpu"]))
        if "memory" in req:
            mem += int(parse_quantity(req["memory"]) / (1024 * 1024))
        g = req.get("nvidia.com/gpu", lim.get("nvidia.com/gpu"))
        if g is not None:
            gpus += int(parse_quantity(g))
    return Resources(cpu, mem, gpus)


def missing_service_account(error: ApiError, pod: Mapping[str, Any]) -> str | None:
    """The statusReason for a pod refused because the ServiceAccount its job definition names does
    not exist (the API server's ServiceAccount admission plugin: 403 "error looking up service
    account"), else None. The namespace's `default` account is not judged: a new namespace gets it
    a moment after it is created, so that refusal passes by itself."""
    name = (pod.get("spec") or {}).get("serviceAccountName")
    if error.status != 403 or not name or name == "default" or "error looking up service account" not in str(error):
        return None
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    return f"ServiceAccount {name} not found in namespace {namespace}: the job's pod cannot be created"


class Dispatcher:
    """Runs scheduling cycles while this replica leads."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        events: EventRecorder,
        metrics: Metrics,
        *,
        is_leader: Callable[[], bool] | None = None,
        max_parallel_creates: int = 64,
        tick_seconds: float = 1.0,
        settings: PodSettings | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.metrics = metrics
        self.is_leader = is_leader or (lambda: True)
        self.create_slots = asyncio.Semaphore(max_parallel_creates)
        self.tick = tick_seconds
        self.settings = settings or PodSettings()
        self.ready = asyncio.Event()
        self.needs_cache: dict[tuple[str, str], Needs] = {}
        self.consumers: set[str] = set()  # jobs that hold consumable resources
        self.sized: set[str] = set()  # jobs whose needs are known
        self.blocked: dict[str, str] = {}  # job key -> reason for the lifecycle step
        self.blocked_detail: dict[str, str] = {}  # job key -> kubatch's detail of that reason
        self.blocked_since: dict[str, tuple[str, float]] = {}
        self.forced_cancel: dict[str, dict[int | None, str]] = defaultdict(dict)
        self.front: dict[str, tuple[str, ...]] = {}
        self.blocked_queues: frozenset[str] = frozenset()
        self.in_flight: set[str] = set()
        # Per single job: what `units` derived from it last time (job object, first pod's name, unit,
        # scheduler entry), reused while the job object (the view replaces it on every change) and
        # every definition (`_cached_definitions`) are the same ones.
        self._single_cache: dict[str, tuple[dict[str, Any], str, tuple[Unit, Definition], Job]] = {}
        self._cached_definitions = -1  # the view's definitions_version the cache was built with
        self.cycles = 0
        self.last_plan: Plan | None = None
        self.now = time.time  # injectable clock (tests of jobStateTimeLimitActions)
        self.tracker = UsageTracker()
        # A testing knob: scales jobStateTimeLimitActions' maxTimeSeconds (1 in production).
        self.time_limit_scale = float(os.environ.get("KUBATCH_TIME_LIMIT_SCALE", "1") or 1)
        self.usage_rows: tuple[ShareUsage, ...] = ()
        self.ledger = Ledger(kube, view)  # NON_REPLENISHABLE units, charged before a unit's pod exists
        self.ledger_swept = False  # the startup sweep charged units started without a charge
        self.ledger_pruned_at = 0.0
        self.estimator = StartEstimator(
            view,
            requests=pod_requests,
            definition_spec=self._definition_spec,
            interval=float(os.environ.get("KUBATCH_ESTIMATE_INTERVAL_SECONDS", "") or ESTIMATE_INTERVAL),
            now=lambda: self.now(),
        )
        self._estimating: asyncio.Task[None] | None = None
        self.services: Any = None  # runtime.service_jobs.ServiceJobs: its cycle runs after each of ours
        self._estimated_queues: set[str] = set()  # queues with a head_estimated_wait value

    # ---- loop ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.ready.wait()
        while True:
            self.view.changed.clear()
            took = 0.0
            if not self.is_leader():
                self.ledger_swept = False  # a new leadership sweeps again (another leader may have acted)
            else:
                started = time.perf_counter()
                try:
                    await self.cycle()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduling cycle failed")
                took = time.perf_counter() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.view.changed.wait(), timeout=self.tick)
            # Coalesce bursts of events into one cycle, and under load leave at least two thirds of
            # the process to the reconciler and the watches (a cycle's cost grows with the queue).
            await asyncio.sleep(min(0.25, max(0.02, 2 * took)))

    # ---- snapshot ---------------------------------------------------------------------------------
    def _needs(self, key: str, definition: Definition, job: Mapping[str, Any]) -> Needs:
        cache_key = (key, definition.resolved)
        needs = self.needs_cache.get(cache_key)
        if needs is None:
            needs = resource_needs(definition.spec, job.get("spec") or {})
            if len(self.needs_cache) > 200_000:
                self.needs_cache.clear()
            self.needs_cache[cache_key] = needs
            if needs.consumables:
                self.consumers.add(key)
        self.sized.add(key)
        return needs

    def units(self) -> tuple[list[Job], dict[str, tuple[Unit, Definition]]]:
        """RUNNABLE jobs and array children that have no pod for their next attempt yet."""
        jobs: list[Job] = []
        units: dict[str, tuple[Unit, Definition]] = {}
        cache = self._single_cache
        # A cached entry stays valid while its job object and every definition are the same objects.
        if self._cached_definitions != self.view.definitions_version:
            self._cached_definitions = self.view.definitions_version
            cache.clear()
        for key in list(cache):
            if key not in self.view.candidates:
                del cache[key]
        all_jobs, all_pods, in_flight, blocked = self.view.jobs, self.view.pods, self.in_flight, self.blocked_since
        for key in self.view.candidates:
            job = all_jobs[key]
            hit = cache.get(key)
            if hit is not None and hit[0] is job:
                pods_of = all_pods.get(key)
                if (pods_of is not None and hit[1] in pods_of) or key in in_flight:
                    continue
                entry = hit[3]
                if entry.blocked_reason is not None or key in blocked:
                    entry = self._with_blocking(entry)
                    if entry is not hit[3]:
                        cache[key] = (job, hit[1], hit[2], entry)
                units[key] = hit[2]
                jobs.append(entry)
                continue
            st = job.get("status") or {}
            state = st.get("status")
            size = int(((job.get("spec") or {}).get("arrayProperties") or {}).get("size") or 0)
            if state not in ("RUNNABLE", "PENDING") or (job.get("spec") or {}).get("serviceJobType"):
                continue  # a service job is scheduled by the service cycle (runtime.service_jobs)
            if state == "PENDING" and size < 2:
                continue
            definition, _ = resolve_definition(self.view, job)
            if definition is None:
                continue
            spec = job.get("spec") or {}
            try:
                needs = self._needs(key, definition, job)
            except (PodSpecError, ValueError, KeyError) as e:
                log.warning("job %s: cannot size it: %s", key, e)
                continue
            per_node = needs.per_node[0] if needs.num_nodes == 1 and needs.per_node else None
            if needs.num_nodes > 1:
                per_node = Resources(
                    max(p.vcpus for p in needs.per_node),
                    max(p.memory_mib for p in needs.per_node),
                    max(p.gpus for p in needs.per_node),
                )  # type: ignore[assignment]
            node_needs = (
                Resources(per_node.vcpus, per_node.memory_mib, per_node.gpus)
                if per_node is not None
                else Resources(needs.vcpus, needs.memory_mib, needs.gpus)
            )
            created = parse_iso(job["metadata"].get("creationTimestamp")) or 0.0
            runnable_since = parse_iso(st.get("queuedAt")) or created
            common = {
                "queue": str(spec.get("jobQueue", "")),
                "needs": node_needs,
                "num_nodes": needs.num_nodes,
                "multinode": bool(definition.spec.get("nodeProperties")),
                "consumables": tuple(sorted(needs.consumables.items())),
                "share": spec.get("shareIdentifier"),
                "priority": scheduling_priority(definition.spec, spec),
                "runnable_since": runnable_since,
            }
            pods = self.view.pods.get(key, {})
            _ns, name = key.split("/", 1)
            if size >= 2:
                runnable = IndexSet.parse(((st.get("arrayProperties") or {}).get("indexes") or {}).get("RUNNABLE"))
                finished_attempts = child_attempt_counts(st)
                for i in runnable:
                    attempt = finished_attempts(i) + 1
                    pname = pod_name(name, attempt, array_index=i)
                    ukey = f"{key}:{i}"
                    if pname in pods or ukey in self.in_flight:
                        continue
                    units[ukey] = (Unit(ukey, key, i, attempt), definition)
                    jobs.append(self._job(ukey, common, (created, name, i), attempt > 1))
                continue
            attempt = len(st.get("attempts") or []) + 1
            first = pod_name(name, attempt, node_index=main_node_of(definition.spec) if common["multinode"] else None)
            unit, entry = Unit(key, key, None, attempt), self._job(key, common, (created, name, -1), attempt > 1)
            cache[key] = (job, first, (unit, definition), entry)
            if first in pods or key in self.in_flight:
                continue
            units[key] = (unit, definition)
            jobs.append(entry)
        return jobs, units

    def _job(self, key: str, common: Mapping[str, Any], order: tuple[Any, ...], retried: bool) -> Job:
        return self._with_blocking(Job(key=key, order=order, retried=retried, **common))

    def _with_blocking(self, job: Job) -> Job:
        """``job`` carrying the blocked reason and time recorded from earlier plans (itself when unchanged)."""
        reason, since = self.blocked_since.get(job.key) or (None, None)
        if (job.blocked_reason, job.blocked_since) == (reason, since):
            return job
        return replace(job, blocked_reason=reason, blocked_since=since)

    def usage(self) -> dict[str, Resources]:
        """What STARTING/RUNNING work holds per environment: the requests of live pods, plus, for a
        multi-node job whose main node runs, the nodes not created yet (the gang was admitted whole)."""
        used: dict[str, Resources] = defaultdict(Resources)
        for key, pods in self.view.pods.items():
            live_nodes: set[str] = set()
            gang_env = None
            for pod in pods.values():
                if _pod_finished(pod):
                    continue
                labels = (pod.get("metadata") or {}).get("labels") or {}
                ce = labels.get(LABEL_COMPUTE_ENVIRONMENT)
                if ce:
                    used[ce] = used[ce] + pod_requests(pod)
                node = labels.get("kubatch.dev/node-index")
                if node is not None:
                    live_nodes.add(node)
                    gang_env = ce
            if gang_env:
                used[gang_env] = used[gang_env] + self._pending_gang(key, live_nodes)
        return used

    def _pending_gang(self, key: str, live_nodes: set[str]) -> Resources:
        job = self.view.jobs.get(key)
        if job is None:
            return Resources()
        definition, _ = resolve_definition(self.view, job)
        if definition is None:
            return Resources()
        try:
            needs = self._needs(key, definition, job)
        except (PodSpecError, ValueError, KeyError):
            return Resources()
        missing = Resources()
        for index, node_needs in enumerate(needs.per_node):
            if str(index) not in live_nodes:
                missing = missing + Resources(node_needs.vcpus, node_needs.memory_mib, node_needs.gpus)
        return missing

    def consumables_in_use(self) -> dict[str, int]:
        """Units locked right now: from STARTING until the job (array child) ends. A unit counts when
        its status says STARTING/RUNNING or when it has a live pod (dispatched, status not yet
        updated), so a finished pod whose job is not yet marked ended still holds its units."""
        in_use: dict[str, int] = defaultdict(int)
        for key in self.view.pods:
            if key not in self.sized and (job := self.view.jobs.get(key)) is not None:
                definition, _ = resolve_definition(self.view, job)
                if definition is not None:
                    try:
                        self._needs(key, definition, job)  # after a restart: who holds consumables?
                    except (PodSpecError, ValueError, KeyError):
                        self.sized.add(key)
        for key in list(self.consumers):
            pods = self.view.pods.get(key) or {}
            job = self.view.jobs.get(key)
            if job is None:
                self.consumers.discard(key)
                continue
            st = job.get("status") or {}
            live_pods = {
                (p.get("metadata") or {}).get("labels", {}).get("kubatch.dev/array-index")
                for p in pods.values()
                if not _pod_finished(p)
            }
            props = st.get("arrayProperties") or {}
            if props:
                idx = props.get("indexes") or {}
                active = IndexSet.parse(idx.get("STARTING")) | IndexSet.parse(idx.get("RUNNING"))
                live = len(active | IndexSet.of(int(i) for i in live_pods if i is not None))
            else:
                live = 1 if live_pods or st.get("status") in ("STARTING", "RUNNING") else 0
            if not live:
                continue
            definition, _ = resolve_definition(self.view, job)
            if definition is None:
                continue
            needs = self._needs(key, definition, job)
            for cname, qty in needs.consumables.items():
                in_use[cname] += qty * live
        return in_use

    def consumables_consumed(self) -> dict[str, int]:
        """NON_REPLENISHABLE units used up for good and no longer in use: the units charged so far
        (the resource's ``status.consumedQuantity``, which deleting jobs does not lower) minus those
        that STARTING/RUNNING work holds now. Only computed when such resources exist."""
        out: dict[str, int] = defaultdict(int)
        spent = {name: consumed_quantity(c) for name, c in self.view.consumables.items() if non_replenishable(c)}
        if not spent:
            return out
        in_use = self.consumables_in_use()
        for name, charged in spent.items():
            out[name] = max(0, charged - in_use.get(name, 0))
        return out

    # ---- NON_REPLENISHABLE charges ------------------------------------------------------------------
    def _uid(self, job_key: str) -> str:
        return str(((self.view.jobs.get(job_key) or {}).get("metadata") or {}).get("uid", ""))

    def _without_charged(self, jobs: list[Job], units: Mapping[str, tuple[Unit, Definition]]) -> list[Job]:
        """A unit already charged on a NON_REPLENISHABLE resource (a retry; a dispatch whose pod
        creation failed) needs none of its units again."""
        out = []
        for job in jobs:
            if job.consumables:
                unit = units[job.key][0]
                uid = self._uid(unit.job_key)
                kept = tuple(
                    (name, qty) for name, qty in job.consumables if not self.ledger.settled(name, uid, unit.index)
                )
                if kept != job.consumables:
                    job = replace(job, consumables=kept)
            out.append(job)
        return out

    def _charges(self, placements: list[tuple[str, str]], units: Mapping[str, tuple[Unit, Definition]]) -> list[Charge]:
        charges = []
        for key, _env in placements:
            unit, definition = units[key]
            job = self.view.jobs.get(unit.job_key)
            if job is None or unit.job_key not in self.consumers:
                continue
            needs = self._needs(unit.job_key, definition, job)
            uid = self._uid(unit.job_key)
            for name, qty in needs.consumables.items():
                if self.ledger.owed(name, uid, unit.index):
                    charges.append(Charge(name, uid, unit.index, qty, key))
        return charges

    async def maintain_ledger(self) -> None:
        """Once per leadership, charge the units that started without a charge (jobs started by an
        operator that kept no ledger); every 10 s, prune the entries of deleted jobs."""
        if not self.ledger.has_any():
            return
        if not self.ledger_swept:
            charges = []
            for key, job in list(self.view.jobs.items()):
                whole, children = started_units(job, self.view.pods.get(key) or {})
                if not whole and not children:
                    continue
                definition, _ = resolve_definition(self.view, job)
                if definition is None:
                    continue
                try:
                    needs = self._needs(key, definition, job)
                except (PodSpecError, ValueError, KeyError):
                    continue
                uid = self._uid(key)
                for name, qty in needs.consumables.items():
                    for index in [None] if whole else list(children):
                        if self.ledger.owed(name, uid, index):
                            charges.append(Charge(name, uid, index, qty, key))
            failed = await self.ledger.charge(charges)
            self.ledger_swept = not failed
        if self.now() - self.ledger_pruned_at >= 10:
            self.ledger_pruned_at = self.now()
            await self.ledger.prune()

    def snapshot(self) -> tuple[Snapshot, dict[str, tuple[Unit, Definition]]]:
        now = self.now()
        jobs, units = self.units()
        if self.consumers and self.ledger.has_any():
            jobs = self._without_charged(jobs, units)
        used = self.usage()
        envs = tuple(
            env_view(name, ce, self.view.nodes, used.get(name, Resources())) for name, ce in self.view.envs.items()
        )
        queues = []
        for name, q in self.view.queues.items():
            self.metrics.known_queue(name)
            spec = q.get("spec") or {}
            order = sorted(spec.get("computeEnvironmentOrder") or [], key=lambda e: int(e.get("order", 0)))
            queues.append(
                Queue(
                    name=name,
                    priority=int(spec.get("priority", 0)),
                    ce_order=tuple(str(e.get("computeEnvironment")) for e in order),
                    state="DISABLED" if spec.get("state") == "DISABLED" else "ENABLED",
                    policy=spec.get("schedulingPolicy") or None,
                    time_limit_actions=tuple(
                        TimeLimitAction(
                            reason=str(a.get("reason")),
                            max_time_seconds=float(a.get("maxTimeSeconds", 600)) * self.time_limit_scale,
                            state=str(a.get("state", "RUNNABLE")),
                            action=str(a.get("action", "CANCEL")),
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
                    compute_reservation=int(fs.get("computeReservation") or 0),
                    weights=tuple(
                        (str(s.get("shareIdentifier")), float(s.get("weightFactor") or 1.0))
                        for s in fs.get("shareDistribution") or []
                    ),
                )
            )
        in_use = self.consumables_in_use()
        consumed = self.consumables_consumed()
        consumables = tuple(
            Consumable(
                name=name,
                total=int((c.get("spec") or {}).get("totalQuantity") or 0) - consumed.get(name, 0),
                in_use=in_use.get(name, 0),
                replenishable=(c.get("spec") or {}).get("resourceType", "REPLENISHABLE") != "NON_REPLENISHABLE",
            )
            for name, c in self.view.consumables.items()
        )
        # Share usage only matters to fair-share queues; without one the tracker starts afresh (from
        # the queues' status) when one appears.
        fair = any((q.get("spec") or {}).get("schedulingPolicy") for q in self.view.queues.values())
        if not fair:
            self.tracker = UsageTracker()
            self.usage_rows = ()
        snap = Snapshot(
            now=now,
            envs=envs,
            queues=tuple(queues),
            jobs=tuple(jobs),
            policies=tuple(policies),
            share_usage=self.share_usage() if fair else (),
            consumables=consumables,
            active_shares=(self.tracker.active_shares(now) | self.active_job_shares()) if fair else frozenset(),
        )
        return snap, units

    def running_by_share(self) -> dict[tuple[str, str], float]:
        """vCPUs held right now by STARTING/RUNNING pods, per (queue, share identifier)."""
        running: dict[tuple[str, str], float] = defaultdict(float)
        for key, pods in self.view.pods.items():
            job = self.view.jobs.get(key)
            if job is None:
                continue
            share = (job.get("spec") or {}).get("shareIdentifier")
            if not share:
                continue
            queue = str((job.get("spec") or {}).get("jobQueue", ""))
            for pod in pods.values():
                if not _pod_finished(pod):
                    running[(queue, str(share))] += pod_requests(pod).vcpus
        if self.services is not None:
            # A service job's share uses its instances as a compute job's uses vCPUs.
            for share_key, instances in self.services.in_use_by_share().items():
                running[share_key] += instances
        return running

    def active_job_shares(self) -> frozenset[tuple[str, str]]:
        """(queue, share) pairs with a job that is not finished (fair share's "active" shares)."""
        active = set()
        for key in self.view.active:
            spec = self.view.jobs[key].get("spec") or {}
            share = spec.get("shareIdentifier")
            if share:
                active.add((str(spec.get("jobQueue", "")), str(share)))
        return frozenset(active)

    def share_usage(self) -> tuple[ShareUsage, ...]:
        """Advance the decayed usage by the vCPUs held since the last cycle; rows for the snapshot."""
        now = self.now()
        running = self.running_by_share()
        decay: dict[str, float] = {}
        for name, q in self.view.queues.items():
            policy = self.view.policies.get(str((q.get("spec") or {}).get("schedulingPolicy") or ""))
            if policy is not None:
                fs = (policy.get("spec") or {}).get("fairsharePolicy") or {}
                decay[name] = float(fs.get("shareDecaySeconds") or 0)
        if self.tracker.at is None:
            self.tracker = self.restored_tracker(now, decay)
        self.tracker = self.tracker.advance(now, running, decay)
        self.usage_rows = self.tracker.share_usage(running)
        return self.usage_rows

    def restored_tracker(self, now: float, decay: Mapping[str, float]) -> UsageTracker:
        """Usage survives restarts: seed it from what the queues' status last recorded."""
        from types import MappingProxyType

        from kubatch.scheduler.fairshare import UsageEntry

        entries = {}
        for name, q in self.view.queues.items():
            for row in (q.get("status") or {}).get("shareUsage") or []:
                usage = float(row.get("usage") or 0)
                if usage > 0 and name in decay:
                    entries[(name, str(row.get("shareIdentifier")))] = UsageEntry(usage, now, decay[name])
        return UsageTracker(now, MappingProxyType(entries))

    # ---- one cycle ----------------------------------------------------------------------------------
    async def cycle(self) -> Plan:
        started = time.perf_counter()
        await self.maintain_ledger()
        snap, units = self.snapshot()
        plan = make_plan(snap)
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.cycles += 1
        self.last_plan = plan
        self._record_blocking(plan, units)
        if self.estimator.due():
            # Off the dispatch path: the cycle does not wait for the simulation.
            self._estimating = asyncio.create_task(self._estimate(snap, plan))
        for key, reason in plan.cancellations.items():
            unit, _ = units[key]
            self.forced_cancel[unit.job_key][unit.index] = reason
            self.view.mark(unit.job_key)
        tasks = []
        # NON_REPLENISHABLE units are charged before any pod exists: a unit not charged is not started.
        charges = self._charges(plan.placements, units) if self.consumers else []
        refused = await self.ledger.charge(charges) if charges else set()
        for key, env in plan.placements:
            if key in refused:
                continue
            unit, definition = units[key]
            self.in_flight.add(key)
            tasks.append(asyncio.create_task(self._start(unit, definition, env)))
        if tasks:
            await asyncio.gather(*tasks)
        if self.services is not None:
            await self.services.cycle()
        return plan

    def _definition_spec(self, job: Mapping[str, Any]) -> Mapping[str, Any] | None:
        definition, _ = resolve_definition(self.view, job)
        return None if definition is None else definition.spec

    async def _estimate(self, snap: Snapshot, plan: Plan) -> None:
        started = time.perf_counter()
        try:
            estimates = await self.estimator.refresh(snap, plan)
        except Exception:
            log.exception("start-time estimate failed")
            return
        self.metrics.estimate_seconds.observe(time.perf_counter() - started)
        if estimates is None:
            return
        waits = head_waits(estimates, plan.queue_front, snap.now)
        for queue, wait in waits.items():
            self.metrics.head_estimated_wait.labels(queue).set(wait)
        for queue in self._estimated_queues - set(waits):
            self.metrics.head_estimated_wait.remove(queue)  # no head, or none expected to start
        self._estimated_queues = set(waits)

    def _record_blocking(self, plan: Plan, units: Mapping[str, tuple[Unit, Definition]]) -> None:
        now = self.now()
        new_blocked: dict[str, str] = {}
        new_detail: dict[str, str] = {}
        for key, reason in plan.blocked.items():
            unit, _ = units[key]
            new_blocked[unit.job_key] = reason
            if key in plan.blocked_detail:
                new_detail[unit.job_key] = plan.blocked_detail[key]
            code = reason_code(reason)
            prev = self.blocked_since.get(key)
            if prev is None or prev[0] != code:
                self.blocked_since[key] = (code, now)
        for key in list(self.blocked_since):
            if key not in plan.blocked:
                del self.blocked_since[key]
        for job in set(self.blocked) | set(new_blocked):
            if self.blocked.get(job) != new_blocked.get(job) or self.blocked_detail.get(job) != new_detail.get(job):
                self.view.mark(job)
        self.blocked = new_blocked
        self.blocked_detail = new_detail
        for queue in plan.blocked_queues - self.blocked_queues:
            q = self.view.queues.get(queue)
            head = next(
                (
                    k
                    for k, r in plan.blocked.items()
                    if units[k][0].job_key.split("/")[0]
                    and self.view.jobs.get(units[k][0].job_key, {}).get("spec", {}).get("jobQueue") == queue
                ),
                None,
            )
            reason = plan.blocked.get(head, "") if head else ""
            detail = plan.blocked_detail.get(head, "") if head else ""
            self.metrics.queue_blocked_events.labels(queue, reason_code(reason)).inc()
            if q is not None:
                blocker = self.view.jobs.get(units[head][0].job_key) if head else None
                aws_name = ((blocker or {}).get("spec") or {}).get("jobName")
                by = f"{head} ({aws_name})" if aws_name else head  # with the job's AWS name, spec.jobName
                message = f"job queue {queue} is blocked by {by}: {reason}" + (f" ({detail})" if detail else "")
                self.events.record(q, "QueueBlocked", message, type_="Warning")
        self.blocked_queues = plan.blocked_queues
        self.front = dict(plan.queue_front)

    async def _start(self, unit: Unit, definition: Definition, env: str) -> None:
        job = self.view.jobs.get(unit.job_key)
        try:
            if job is None:
                return
            ns, _name = unit.job_key.split("/", 1)
            spec = job.get("spec") or {}
            st = job.get("status") or {}
            multinode = bool(definition.spec.get("nodeProperties"))
            size = int((spec.get("arrayProperties") or {}).get("size") or 0)
            try:
                pod = build_pod(
                    job,
                    definition.spec,
                    definition.resolved,
                    job_id=str(st.get("jobId") or job["metadata"]["uid"]),
                    queue=str(spec.get("jobQueue", "")),
                    compute_environment=env,
                    attempt=unit.attempt,
                    array_index=unit.index,
                    array_size=size if unit.index is not None else None,
                    node_index=main_node_of(definition.spec) if multinode else None,
                    num_nodes=num_nodes_of(definition.spec, spec) if multinode else None,
                    settings=self.settings,
                    environment_tolerations=environment_tolerations(self.view.envs.get(env)),
                )
            except PodSpecError as e:
                self.forced_cancel[unit.job_key][unit.index] = str(e)
                self.view.mark(unit.job_key)
                return
            async with self.create_slots:
                if multinode:
                    svc = build_headless_service(job, str(st.get("jobId") or job["metadata"]["uid"]))
                    try:
                        await self.kube.create(f"/api/v1/namespaces/{ns}/services", svc)
                    except ApiError as e:
                        if e.status != 409:
                            raise
                try:
                    created = await self.kube.create(f"/api/v1/namespaces/{ns}/pods", pod)
                except ApiError as e:
                    missing = missing_service_account(e, pod)
                    if missing is not None:
                        # Asked again every cycle it would fail every cycle: the job fails, saying why.
                        self.forced_cancel[unit.job_key][unit.index] = missing
                        return
                    if e.status != 409:
                        raise
                    return
            self.view.on_pod("ADDED", created)
            self.metrics.pods_created.inc()
            self.metrics.attempts.labels(str(spec.get("jobQueue", ""))).inc()
        except ApiError as e:
            # A namespace being deleted refuses every pod of its jobs, which go with it: not news.
            (log.debug if e.namespace_terminating else log.warning)("dispatch %s: %s", unit.key, e)
        finally:
            self.in_flight.discard(unit.key)
            self.view.mark(unit.job_key)
