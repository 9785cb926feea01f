"""The job reconciler: runs the pure lifecycle step for every dirty BatchJob and applies its result.

Work arrives as job keys marked dirty by the view (watch events, our own writes, dependency
changes) and by timers (attempt timeouts). Each key is handled by one task at a time; writes run
with bounded concurrency so one slow call never holds the others back. Status is written with a
JSON merge patch computed against the last copy we saw, and the response goes straight back into
the view so the next step never acts on stale status.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View, job_key
from kubatch.core.admission import World, submitted_while_disabled, validate_batch_job
from kubatch.core.deps import DependencyStatus
from kubatch.core.lifecycle import (
    Context,
    Decision,
    Definition,
    DeletePod,
    JobEvent,
    reconcile,
    wanted_event,
)
from kubatch.core.podspec import PodSettings
from kubatch.core.revisions import ResolutionError, RevisionRecord, parse_reference, resolve, stored_records
from kubatch.core.states import TERMINAL, queue_deleted_reason, queue_disabled_reason
from kubatch.core.timestamps import parse_iso
from kubatch.core.updates import terminate_jobs_at
from kubatch.observability.events import EventRecorder
from kubatch.observability.metrics import Metrics
from kubatch.runtime.queues import disabled_since
from kubatch.runtime.waits import wait_set

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
PROGRESS = frozenset({"STARTING", "RUNNING"})


def merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` (null removes a key; lists are replaced)."""
    patch: dict[str, Any] = {}
    for k, v in new.items():
        if k not in old:
            patch[k] = v
        elif isinstance(v, dict) and isinstance(old[k], dict):
            sub = merge_diff(old[k], v)
            if sub:
                patch[k] = sub
        elif old[k] != v:
            patch[k] = v
    for k in old:
        if k not in new:
            patch[k] = None
    return patch


def revision_records(view: View, ns: str, name: str) -> list[RevisionRecord]:
    """The stored revisions of ``ns/name``; only those of the definition that exists now, and not
    deregistered, are ACTIVE (retired ones are there for the jobs pinned to them)."""
    jd = view.definitions.get(f"{ns}/{name}")
    inactive_all = bool(jd and (jd.get("spec") or {}).get("deregistered"))
    records = stored_records(view.revisions.get(f"{ns}/{name}", {}).values(), jd)
    if inactive_all:
        records = [RevisionRecord(r.revision, False, r.spec, r.current) for r in records]
    return records


_PINNED: dict[tuple[str, str, str], Definition] = {}


def resolve_definition(view: View, job: Mapping[str, Any]) -> tuple[Definition | None, str | None]:
    """The job's pinned revision (status.jobDefinition) or, for a new job, the one its spec names.

    A pinned revision never changes (ControllerRevisions are immutable), so it is looked up once
    per definition object and revision."""
    ns = job["metadata"]["namespace"]
    pinned = (job.get("status") or {}).get("jobDefinition")
    if pinned:
        jd = view.definitions.get(f"{ns}/{str(pinned).split(':', 1)[0]}")
        cache_key = (ns, str(pinned), str((jd or {}).get("metadata", {}).get("uid", "")))
        hit = _PINNED.get(cache_key)
        if hit is not None:
            return hit, None
        found, error = _resolve(view, job, ns, pinned)
        if found is not None:
            if len(_PINNED) > 50_000:
                _PINNED.clear()
            _PINNED[cache_key] = found
        return found, error
    return _resolve(view, job, ns, pinned)


def _resolve(view: View, job: Mapping[str, Any], ns: str, pinned: Any) -> tuple[Definition | None, str | None]:
    reference = pinned or (job.get("spec") or {}).get("jobDefinition", "")
    try:
        ref = parse_reference(str(reference))
    except ValueError as e:
        return None, f"Invalid job definition reference: {e}"
    records = revision_records(view, ns, ref.name)
    if pinned and ref.revision is not None:
        match = next((r for r in records if r.revision == ref.revision), None)
        if match is None:
            return None, f"Job definition {pinned} not found"
        return Definition(pinned, match.spec), None
    try:
        rec = resolve(ref, records)
    except ResolutionError as e:
        if not any(r.current for r in records) and f"{ns}/{ref.name}" in view.definitions:
            # Its first revision is being recorded right now (a re-created definition has only the
            # retired revisions of the deleted one): look again shortly.
            return None, None
        return None, str(e)
    return Definition(f"{ref.name}:{rec.revision}", rec.spec), None


#: Status writes waiting at which the operator counts as busy: coalescing windows reach their
#: maximum and Normal events that restate a status are shed (a burst of submissions, typically).
BUSY_PENDING_WRITES = 200


@dataclass
class PendingWrite:
    """A job's status decided but not written yet, and what must wait for that write."""

    due: float
    since: float = 0.0  # when the first unwritten change was decided
    progress: bool = False  # the pending status is STARTING/RUNNING (its window was lengthened)
    queued: bool = False  # the job's first status, plainly RUNNABLE (its window was lengthened)
    deletes: dict[str, DeletePod] = field(default_factory=dict)
    events: list[JobEvent] = field(default_factory=list)


class NodeUids(Mapping[str, str]):
    """The view's nodes as name -> metadata.uid, read on demand (a step must not copy every node)."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]]) -> None:
        self.nodes = nodes

    def __getitem__(self, name: str) -> str:
        uid = (self.nodes[name].get("metadata") or {}).get("uid")
        if not uid:
            raise KeyError(name)
        return str(uid)

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


class NodeDeadlines(Mapping[str, float]):
    """The view's nodes as name -> the deadline of a node an infrastructure update replaces
    (annotation ``kubatch.dev/terminate-jobs-at``), read on demand; nodes without one are absent."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]]) -> None:
        self.nodes = nodes

    def __getitem__(self, name: str) -> float:
        node = self.nodes.get(name)
        deadline = terminate_jobs_at(node) if node is not None else None
        if deadline is None:
            raise KeyError(name)
        return deadline

    def __iter__(self) -> Iterator[str]:
        return (name for name, node in self.nodes.items() if terminate_jobs_at(node) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class JobReconciler:
    """Drains the view's dirty set through ``core.lifecycle.reconcile``."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        events: EventRecorder,
        metrics: Metrics,
        *,
        workers: int = 32,
        delete_finished_pods: bool = True,
        settings: PodSettings | None = None,
        coalesce_seconds: float = 1.0,
        coalesce_max_seconds: float = 5.0,
        queued_max_seconds: float = 60.0,
        job_events: str = "notable",
        start_timeout: float | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.metrics = metrics
        self.workers = workers
        self.delete_finished_pods = delete_finished_pods
        self.settings = settings or PodSettings()
        self.in_flight: set[str] = set()
        self.timers: list[tuple[float, str]] = []
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        self.ready = asyncio.Event()
        self.scheduler: Any = None  # the Dispatcher: blocked reasons and time-limit cancellations
        self.services: Any = None  # runtime.service_jobs.ServiceJobs: the step of service jobs
        self.coalesce_seconds = coalesce_seconds
        self.coalesce_max_seconds = max(coalesce_seconds, coalesce_max_seconds)
        self.queued_max_seconds = max(coalesce_seconds, queued_max_seconds)
        self.job_events = job_events
        self.start_timeout = start_timeout
        self.delete_slots = asyncio.Semaphore(32)
        self.pending: dict[str, PendingWrite] = {}

    # ---- scheduling of work -------------------------------------------------------------------
    async def run(self) -> None:
        await self.ready.wait()
        await asyncio.gather(self._feeder(), *(self._worker() for _ in range(self.workers)))

    async def _feeder(self) -> None:
        while True:
            now = time.time()
            while self.timers and self.timers[0][0] <= now:
                _, key = heapq.heappop(self.timers)
                self.view.mark(key)
            if self.view.dirty:
                keys = list(self.view.dirty)
                self.view.dirty.clear()
                # Jobs never written first: deciding their first status needs no request, and it
                # makes them dispatchable (after a restart in a burst, thousands have none yet).
                # Then jobs with pods: their status may have to catch up with what the pods did,
                # and thousands of queued jobs must not hold those back.
                pods, written = self.view.pods, self.view.written_status
                unwritten: list[str] = []
                with_pods: list[str] = []
                rest: list[str] = []
                for k in keys:
                    (unwritten if not written(k) else with_pods if k in pods else rest).append(k)
                keys = unwritten + with_pods + rest
                for key in keys:
                    if key not in self.queued and key not in self.in_flight:
                        self.queued.add(key)
                        self.queue.put_nowait(key)
                    elif key in self.in_flight:
                        self.view.dirty.add(key)  # handled again once the current step ends
                if self.view.dirty:
                    await asyncio.sleep(0.01)
                    continue
            self.view.job_dirty.clear()
            wait = (self.timers[0][0] - time.time()) if self.timers else 1.0
            await wait_set(self.view.job_dirty, max(0.01, min(wait, 1.0)))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            self.in_flight.add(key)
            try:
                await self.step(key)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                log.warning("job %s: %s", key, e)
                heapq.heappush(self.timers, (time.time() + 1.0, key))
            except Exception:
                log.exception("job %s: reconcile failed", key)
                heapq.heappush(self.timers, (time.time() + 2.0, key))
            finally:
                self.in_flight.discard(key)

    # ---- one step -------------------------------------------------------------------------------
    def context(self, job: Mapping[str, Any]) -> Context:
        ns = job["metadata"]["namespace"]
        spec = job.get("spec") or {}
        definition, error = resolve_definition(self.view, job)
        deps: dict[str, DependencyStatus] = {}
        for entry in spec.get("dependsOn") or []:
            name = entry.get("jobName")
            dep = self.view.jobs.get(job_key(ns, name)) if name else None
            if dep is not None and (dep.get("status") or {}).get("status"):
                deps[name] = DependencyStatus.from_job(dep)
        queue_missing = queue_deleted = None
        if not (job.get("status") or {}).get("status"):
            queue_name = str(spec.get("jobQueue", ""))
            queue = self.view.queues.get(queue_name)
            if queue is None:
                queue_missing = f"Job queue {spec.get('jobQueue')} not found"
            elif self.submitted_while_disabled(job, queue_name):
                queue_missing = queue_disabled_reason(queue_name)
            elif error is None:
                queue_missing = self.admission_problems(job)
        elif str(spec.get("jobQueue", "")) not in self.view.queues:
            queue_deleted = queue_deleted_reason(str(spec.get("jobQueue", "")))
        key = job_key(ns, job["metadata"]["name"])
        blocked = self.scheduler.blocked.get(key) if self.scheduler is not None else None
        blocked_detail = self.scheduler.blocked_detail.get(key) if self.scheduler is not None else None
        forced = dict(self.scheduler.forced_cancel.get(key, {})) if self.scheduler is not None else {}
        return Context(
            blocked_reason=blocked,
            blocked_detail=blocked_detail,
            forced_cancel=forced,
            now=time.time(),
            definition=definition,
            definition_error=error,
            deps=deps,
            nodes=frozenset(self.view.nodes),
            queue_missing=queue_missing,
            queue_deleted=queue_deleted,
            delete_finished_pods=self.delete_finished_pods,
            settings=self.settings,
            environments=self.view.envs,
            node_uids=NodeUids(self.view.nodes),
            start_timeout=self.start_timeout,
            node_deadlines=NodeDeadlines(self.view.nodes),
        )

    def submitted_while_disabled(self, job: Mapping[str, Any], queue: str) -> bool:
        """A job seen for the first time whose queue is DISABLED: refused when it was created after
        the queue was disabled (AWS: "new jobs can't be added to the queue"); created before, it was
        already queued and runs."""
        since = disabled_since(self.view, queue, time.time())
        if since is None:
            return False
        created = parse_iso(job["metadata"].get("creationTimestamp"))
        return submitted_while_disabled(created if created is not None else time.time(), since)

    def admission_problems(self, job: Mapping[str, Any]) -> str | None:
        """The webhook's rules, checked again when a job is first seen: with the webhook down (or
        bypassed) a job is accepted and then checked here, never silently wrong. The namespace
        selector of the queue is the webhook's alone (the view does not hold namespaces)."""
        ns = job["metadata"]["namespace"]
        spec = job.get("spec") or {}
        jobs: dict[str, Any] = {}
        frontier = [str(e.get("jobName")) for e in spec.get("dependsOn") or [] if e.get("jobName")]
        while frontier and len(jobs) < 1000:
            name = frontier.pop()
            dep = self.view.jobs.get(job_key(ns, name))
            if dep is None or name in jobs:
                continue
            jobs[name] = dep
            frontier += [
                str(e.get("jobName")) for e in (dep.get("spec") or {}).get("dependsOn") or [] if e.get("jobName")
            ]
        try:
            ref = parse_reference(str(spec.get("jobDefinition", "")))
        except ValueError:
            return None  # reported by the definition resolution
        queue = str(spec.get("jobQueue", ""))
        since = disabled_since(self.view, queue, time.time())
        world = World(
            namespace=ns,
            created_at=parse_iso(job["metadata"].get("creationTimestamp")) or time.time(),
            disabled_since={} if since is None else {queue: since},
            queues=dict(self.view.queues),
            envs=dict(self.view.envs),
            policies=dict(self.view.policies),
            consumables=dict(self.view.consumables),
            definitions={ref.name: d} if (d := self.view.definitions.get(job_key(ns, ref.name))) else {},
            revisions={ref.name: revision_records(self.view, ns, ref.name)},
            jobs=jobs,
        )
        problems = validate_batch_job(dict(job), world)
        return "; ".join(str(p) for p in problems) or None

    def awaiting_dependencies(self, job: Mapping[str, Any], grace: float = 30.0) -> bool:
        """A new job whose dependency is not in the view yet: submitted together (one `kubectl apply`
        of several documents), the dependency's watch event may simply not have arrived. Wait a
        little before judging it missing."""
        if (job.get("status") or {}).get("status"):
            return False
        created = parse_iso(job["metadata"].get("creationTimestamp")) or time.time()
        if time.time() - created > grace:
            return False
        ns = job["metadata"]["namespace"]
        return any(
            e.get("jobName") and job_key(ns, str(e["jobName"])) not in self.view.jobs
            for e in (job.get("spec") or {}).get("dependsOn") or []
        )

    async def step(self, key: str) -> None:
        job = self.view.jobs.get(key)
        if job is None:
            self.pending.pop(key, None)
            return
        if key in self.pending and self.pending[key].due <= time.time():
            await self.flush(key)
            job = self.view.jobs.get(key)
            if job is None:
                return
        if self.services is not None and (job.get("spec") or {}).get("serviceJobType"):
            await self.services.step(key, job)
            return
        if self.awaiting_dependencies(job):
            heapq.heappush(self.timers, (time.time() + 0.5, key))
            return
        ctx = self.context(job)
        if ctx.definition is None and ctx.definition_error is None:
            heapq.heappush(self.timers, (time.time() + 0.5, key))
            return
        pods = self.view.pods.get(key, {})
        decision = reconcile(job, pods, ctx)
        await self.apply(job, decision, key)

    def requeue(self, key: str, seconds: float) -> None:
        """Look at ``key`` again in ``seconds`` at the latest."""
        heapq.heappush(self.timers, (time.time() + seconds, key))

    async def apply(self, job: Mapping[str, Any], decision: Decision, key: str | None = None) -> None:
        """Apply one step. Status changes are coalesced: the decided status goes into the view at
        once (so the dispatcher and dependents act on it) and is written within ``coalesce_seconds``
        together with later changes, so a short job costs one or two status writes instead of four.
        A terminal status is written at once. Pods are deleted only after the status that records
        their attempt is written: a crash in between can never make a finished attempt look
        vanished (and run again), and the lifecycle is a function of (written status, pods), so an
        unwritten decision is simply made again after a restart. ``key``: the job's key as the view
        holds it (the string object then indexes it everywhere: one copy per job of a deep queue)."""
        ns = job["metadata"]["namespace"]
        name = job["metadata"]["name"]
        key = key or job_key(ns, name)
        for manifest in decision.create:
            await self.create(ns, manifest)
        pending = self.pending.get(key)
        if decision.status is not None:
            self.view.set_status(key, decision.status)
            state = decision.status.get("status")
            progress = state in PROGRESS
            written = bool(self.view.written_status(key).get("status"))
            queued = state == "RUNNABLE" and not decision.status.get("statusReason") and not written
            now = time.time()
            if pending is None:
                window = self.coalesce_window(progress=progress, queued=queued)
                pending = self.pending[key] = PendingWrite(
                    due=now + window, since=now, progress=progress, queued=queued
                )
                heapq.heappush(self.timers, (pending.due, key))
            elif pending.queued and not queued:
                # No longer plainly queued: a blocked head's reason is written within the base
                # window of its first change, a dispatched job's progress within its own window.
                pending.queued = False
                pending.progress = progress
                due = now + self.coalesce_window(progress=True) if progress else pending.since + self.coalesce_window()
                if due < pending.due:
                    pending.due = due
                    heapq.heappush(self.timers, (due, key))
            elif progress and not pending.progress and written:
                # Dispatched while a RUNNABLE change waited: the write now records progress (a job
                # never written yet keeps its window: it should not stay without a status).
                pending.progress = True
                due = pending.since + self.coalesce_window(progress=True)
                if due > pending.due:
                    pending.due = due
                    heapq.heappush(self.timers, (due, key))
        if pending is not None:
            pending.deletes.update({d.name: d for d in decision.delete})
            pending.events.extend(decision.events)
            state = (decision.status or {}).get("status")
            if state in TERMINAL or self.coalesce_seconds <= 0:
                await self.flush(key)
        else:
            await self.delete_pods(ns, name, decision.delete)
            self.post(job, decision.events)
        if decision.requeue_at is not None:
            heapq.heappush(self.timers, (decision.requeue_at, key))

    async def flush(self, key: str) -> None:
        """Write the pending status of ``key``, then delete its pods and post its events."""
        pending = self.pending.pop(key, None)
        job = self.view.jobs.get(key)
        if pending is None or job is None:
            return
        ns = job["metadata"]["namespace"]
        name = job["metadata"]["name"]
        old = self.view.written_status(key)
        new = job.get("status") or {}
        patch = merge_diff(old, new)
        if patch:
            try:
                updated = await self.kube.merge_patch(
                    f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{name}/status", {"status": patch}
                )
            except BaseException:
                self.pending[key] = pending  # try again with the next step
                raise
            self.view.put_job(updated)
            self.view.settle(key, updated.get("status") or {})
            self.metrics.observe_transition(str((job.get("spec") or {}).get("jobQueue", "")), old, new)
            if new.get("status") in TERMINAL and old.get("status") not in TERMINAL and self.scheduler is not None:
                self.scheduler.forced_cancel.pop(key, None)
        else:
            self.view.settle(key, old)
        await self.delete_pods(ns, name, list(pending.deletes.values()))
        self.post(job, pending.events)

    async def flush_pending(self, first: Iterable[str] = (), *, timeout: float, concurrency: int = 32) -> int:
        """Write the pending status changes, those of the jobs ``first`` names before the others,
        for at most ``timeout`` seconds; a failed write is left (the next leader decides it again).
        A leader that stops calls it once its loops have ended: the next leader's warm start can
        start only the front jobs whose RUNNABLE status is written, and a job's first status may
        wait up to ``queued_max_seconds`` under a burst. Returns the writes made."""
        ordered = dict.fromkeys(k for k in first if k in self.pending)
        ordered.update(dict.fromkeys(self.pending))
        keys = list(ordered)
        slots = asyncio.Semaphore(concurrency)
        written = 0

        async def one(key: str) -> None:
            nonlocal written
            async with slots:
                try:
                    await self.flush(key)
                except ApiError as e:
                    log.warning("job %s: status not written at stop: %s", key, e)
                    return
                written += 1

        tasks = [asyncio.create_task(one(k)) for k in keys]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return written

    def coalesce_window(self, *, progress: bool = False, queued: bool = False) -> float:
        """How long a status change may wait for the next ones: the base window when few writes are
        pending, growing to the maximum with 200, where the writes saved matter most. A change that
        only records the progress of a dispatched attempt (STARTING, RUNNING: its pod shows it
        already) may wait three times as long, so that a short job ends in one write more often.
        The first status of a job that simply waits in its queue (RUNNABLE, no reason) may wait up
        to ``queued_max_seconds``, growing from 50 pending writes to 200: under a burst, most jobs
        are then written once, when they start or end, and the API server's capacity goes to moving
        jobs; until then the job reads as SUBMITTED (no status), the queue's status counts it
        RUNNABLE."""
        pending = len(self.pending)
        if queued:
            # Only a real burst delays a job's first status: none below a quarter of "busy".
            quiet = BUSY_PENDING_WRITES / 4
            load = min(1.0, max(0.0, (pending - quiet) / (BUSY_PENDING_WRITES - quiet)))
            return self.coalesce_seconds + (self.queued_max_seconds - self.coalesce_seconds) * load
        load = min(1.0, pending / BUSY_PENDING_WRITES)
        top = self.coalesce_max_seconds * (3 if progress else 1)
        return self.coalesce_seconds + (top - self.coalesce_seconds) * load

    def post(self, job: Mapping[str, Any], events: list[JobEvent]) -> None:
        busy = len(self.pending) >= BUSY_PENDING_WRITES
        for ev in events:
            if wanted_event(ev, self.job_events, busy=busy):
                self.events.record(job, ev.reason, ev.message, type_=ev.type)
            elif busy and wanted_event(ev, self.job_events):
                self.metrics.events_shed.labels(ev.reason).inc()

    async def delete_pods(self, ns: str, job_name: str, deletes: list[DeletePod]) -> None:
        """Delete pods in parallel (an array step may finish many children at once)."""

        async def one(d: DeletePod) -> None:
            async with self.delete_slots:
                await self.kube.delete(
                    f"/api/v1/namespaces/{ns}/pods/{d.name}", grace_seconds=d.grace_seconds, uid=d.uid
                )
            if d.grace_seconds == 0:
                self.view.pod_deleted(ns, d.name, d.uid, job_name)

        await asyncio.gather(*(one(d) for d in deletes))

    async def create(self, ns: str, manifest: dict[str, Any]) -> None:
        kind = manifest.get("kind")
        path = f"/api/v1/namespaces/{ns}/pods" if kind == "Pod" else f"/api/v1/namespaces/{ns}/services"
        try:
            created = await self.kube.create(path, manifest)
        except ApiError as e:
            if e.status == 409:
                return  # already there: created before a restart, or by a concurrent step
            raise
        if kind == "Pod":
            self.view.on_pod("ADDED", created)
            self.metrics.pods_created.inc()
