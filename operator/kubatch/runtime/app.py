"""The operator's runtime: informers feeding one view, and the loops that act on it.

Start-up order matters for "a restart loses nothing and duplicates nothing": every informer must
have listed its collection (so the view holds every job and every pod) before any loop decides
anything, and only the Lease holder writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubatch.cluster.client import Kube
from kubatch.cluster.informer import Informer
from kubatch.cluster.leader import ThreadedLeaderElector
from kubatch.cluster.view import LABEL_JOB_DEFINITION, LABEL_JOB_NAME, LABEL_SERVICE_JOB, View
from kubatch.core.lifecycle import EVENT_LEVELS
from kubatch.core.podspec import PodSettings
from kubatch.core.service_jobs import KUBERNETES_JOB, LABEL_JOB_QUEUE, WorkloadType
from kubatch.core.workload_types import configured as configured_workload_types
from kubatch.observability.events import EventRecorder
from kubatch.observability.metrics import Metrics, quota_share_metrics
from kubatch.observability.views import register_view_metrics
from kubatch.runtime.compute import ComputeController
from kubatch.runtime.definitions import DefinitionController
from kubatch.runtime.dispatcher import Dispatcher
from kubatch.runtime.estimates import job_key_of
from kubatch.runtime.jobs import JobReconciler
from kubatch.runtime.queues import StatusWriter
from kubatch.runtime.retention import RetentionController
from kubatch.runtime.schedules import ScheduleController
from kubatch.runtime.service_environments import ServiceEnvironmentController
from kubatch.runtime.service_jobs import ServiceJobs
from kubatch.runtime.waits import where_waits
from kubatch.runtime.warm_start import warm_start

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
#: Seconds a stopping leader gives its last write of the queues' status (``Runtime._write_fronts``).
FINAL_STATUS_SECONDS = 10.0
#: Seconds a stopping leader gives the job status changes it decided but has not written yet
#: (``Runtime._write_decided``): well inside the Lease's renew deadline, which runs from the last
#: renewal, before the queues' status.
FINAL_JOB_WRITES_SECONDS = 4.0
#: Seconds a stopping operator waits for its loops to end once cancelled (they end at their next
#: await; one that does not is logged rather than waited for).
TASKS_END_SECONDS = 5.0


Handler = Callable[[str, dict[str, Any]], None]


def typed(handler: Handler, wtype: WorkloadType) -> Handler:
    """``handler`` given objects that name their apiVersion and kind: the items of a list of a
    built-in resource (batch/v1 Jobs) name neither, and kubatch tells workload types apart by them."""

    def handle(typ: str, obj: dict[str, Any]) -> None:
        if not obj.get("kind") or not obj.get("apiVersion"):
            obj = {**obj, "apiVersion": wtype.api_version, "kind": wtype.kind}
        handler(typ, obj)

    return handle


@dataclass
class Options:
    kubeconfig: str | None = None
    lease_namespace: str = "default"
    lease_name: str = "kubatch-dispatcher"
    metrics_port: int = 8080
    metrics_host: str = "127.0.0.1"
    delete_finished_pods: bool = True
    reconcile_workers: int = 32
    max_parallel_creates: int = 64
    leader_election: bool = True
    coalesce_seconds: float = 1.0
    coalesce_max_seconds: float = 5.0
    queued_max_seconds: float = 60.0
    events_per_second: float = 50.0
    job_events: str = "notable"
    # Seconds a pod that shows a start problem may take to start ("Task failed to start" after), 0:
    # no bound. Already multiplied by KUBATCH_TIME_LIMIT_SCALE (a testing knob, 1 in production).
    start_timeout_seconds: float = 300.0
    # Seconds a finished job is kept before it is deleted, when neither it nor its definition sets
    # ttlSecondsAfterFinished; None: kept until deleted by hand.
    finished_job_ttl_seconds: float | None = None
    # Dispatch the queues' written fronts before the job list is in (runtime.warm_start).
    warm_start: bool = True

    @classmethod
    def from_env(cls) -> Options:
        env = os.environ
        return cls(
            kubeconfig=env.get("KUBECONFIG") or None,
            lease_namespace=env.get("KUBATCH_LEASE_NAMESPACE", env.get("KUBATCH_NAMESPACE", "default")),
            lease_name=env.get("KUBATCH_LEASE_NAME", "kubatch-dispatcher"),
            metrics_port=int(env.get("KUBATCH_METRICS_PORT", "8080")),
            metrics_host=env.get(
                "KUBATCH_METRICS_HOST", "0.0.0.0" if "KUBERNETES_SERVICE_HOST" in env else "127.0.0.1"
            ),
            delete_finished_pods=env.get("KUBATCH_DELETE_FINISHED_PODS", "true").lower() != "false",
            leader_election=env.get("KUBATCH_LEADER_ELECTION", "true").lower() != "false",
            coalesce_seconds=float(env.get("KUBATCH_STATUS_COALESCE_SECONDS", "1.0")),
            coalesce_max_seconds=float(env.get("KUBATCH_STATUS_COALESCE_MAX_SECONDS", "5.0")),
            queued_max_seconds=float(env.get("KUBATCH_STATUS_QUEUED_MAX_SECONDS", "60")),
            events_per_second=float(env.get("KUBATCH_EVENTS_PER_SECOND", "50")),
            job_events=job_events_level(env.get("KUBATCH_JOB_EVENTS", "notable")),
            start_timeout_seconds=seconds_setting(env, "KUBATCH_START_TIMEOUT_SECONDS", 300.0) * time_limit_scale(env),
            finished_job_ttl_seconds=optional_seconds(env, "KUBATCH_FINISHED_JOB_TTL_SECONDS"),
            warm_start=env.get("KUBATCH_WARM_START", "true").lower() != "false",
        )


def time_limit_scale(env: Mapping[str, str]) -> float:
    """KUBATCH_TIME_LIMIT_SCALE: a testing knob that shortens the time limits (jobStateTimeLimitActions,
    the start bound) by this factor; 1 in production."""
    return float(env.get("KUBATCH_TIME_LIMIT_SCALE", "1") or 1)


def optional_seconds(env: Mapping[str, str], name: str) -> float | None:
    """A non-negative number of seconds from the environment, or None when unset or empty."""
    if not env.get(name, "").strip():
        return None
    return seconds_setting(env, name, 0.0)


def seconds_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """A non-negative number of seconds from the environment (unset or empty: ``default``)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {raw!r}")
    return value


def job_events_level(value: str) -> str:
    level = value.strip().lower()
    if level not in EVENT_LEVELS:
        raise ValueError(f"KUBATCH_JOB_EVENTS must be one of {', '.join(EVENT_LEVELS)}, not {value!r}")
    return level


class Runtime:
    """All long-running parts of one operator process."""

    def __init__(self, kube: Kube, options: Options) -> None:
        self.kube = kube
        self.options = options
        self.view = View()
        self.metrics = Metrics()
        self.events = EventRecorder(kube, per_second=options.events_per_second)
        # The Lease is renewed from a thread with its own client: a busy loop or a connection pool
        # full of pod creations must never make the leader miss a renewal.
        self.leader = ThreadedLeaderElector(kube.creds, options.lease_namespace, options.lease_name)
        settings = PodSettings()

        # Read at each decision: the loops must stop acting the moment the Lease lapses.
        def leading() -> bool:
            return self.is_leader

        self.jobs = JobReconciler(
            kube,
            self.view,
            self.events,
            self.metrics,
            workers=options.reconcile_workers,
            delete_finished_pods=options.delete_finished_pods,
            settings=settings,
            coalesce_seconds=options.coalesce_seconds,
            coalesce_max_seconds=options.coalesce_max_seconds,
            queued_max_seconds=options.queued_max_seconds,
            job_events=options.job_events,
            start_timeout=options.start_timeout_seconds or None,
        )
        self.dispatcher = Dispatcher(
            kube,
            self.view,
            self.events,
            self.metrics,
            is_leader=leading,
            max_parallel_creates=options.max_parallel_creates,
            settings=settings,
        )
        self.jobs.scheduler = self.dispatcher
        self.services = ServiceJobs(
            kube, self.view, self.events, self.metrics, is_leader=leading, job_events=options.job_events
        )
        self.services.reconciler = self.jobs
        self.services.share_usage = lambda: self.dispatcher.usage_rows
        self.services.active_shares = lambda: (
            self.dispatcher.tracker.active_shares(self.dispatcher.now()) | self.dispatcher.active_job_shares()
        )
        self.jobs.services = self.services
        self.dispatcher.services = self.services
        self.service_environments = ServiceEnvironmentController(
            kube, self.view, self.services, is_leader=leading, events=self.events
        )
        self.definitions = DefinitionController(kube, self.view, is_leader=leading)
        self.retention = RetentionController(
            kube, self.view, self.metrics, default_ttl=options.finished_job_ttl_seconds, is_leader=leading
        )
        self.compute = ComputeController(kube, self.view, is_leader=leading, events=self.events)
        self.status = StatusWriter(
            kube,
            self.view,
            lambda: {**self.dispatcher.front, **self.services.front},
            lambda: {**self.dispatcher.blocked, **self.services.blocked},
            self.dispatcher.consumables_in_use,
            lambda: self.dispatcher.usage_rows,
            self.dispatcher.consumables_consumed,
            is_leader=leading,
            active_shares=lambda: (
                self.dispatcher.tracker.active_shares(self.dispatcher.now()) | self.dispatcher.active_job_shares()
            ),
            planned=lambda: self.dispatcher.cycles > 0 and self.dispatcher.estimator.refreshed,
            estimate=self.dispatcher.estimator.start_of,
            service_use=self.services.in_use_by_queue,
            quota_status=self.services.quota_status,
        )
        v = self.view
        self.informers = [
            Informer(kube, f"{GROUP_PATH}/batchjobs", v.on_job, name="batchjobs", remembered=v.job_records),
            Informer(kube, "/api/v1/pods", v.on_pod, label_selector=LABEL_JOB_NAME, name="pods"),
            Informer(kube, "/api/v1/nodes", v.on_node, name="nodes"),
            Informer(kube, f"{GROUP_PATH}/jobdefinitions", v.on_definition, name="jobdefinitions"),
            Informer(
                kube,
                "/apis/apps/v1/controllerrevisions",
                v.on_revision,
                label_selector=LABEL_JOB_DEFINITION,
                name="controllerrevisions",
            ),
            Informer(kube, f"{GROUP_PATH}/jobqueues", v.on_queue, name="jobqueues"),
            Informer(
                kube,
                f"{GROUP_PATH}/computeenvironments",
                lambda t, o: v.on_named(v.envs, t, o),
                name="computeenvironments",
            ),
            Informer(
                kube,
                f"{GROUP_PATH}/schedulingpolicies",
                lambda t, o: v.on_named(v.policies, t, o),
                name="schedulingpolicies",
            ),
            Informer(
                kube,
                f"{GROUP_PATH}/consumableresources",
                lambda t, o: v.on_named(v.consumables, t, o),
                name="consumableresources",
            ),
            # Service jobs' workloads: listed before anything is decided (a SCHEDULED job whose
            # workload the view does not hold would look vanished).
            Informer(
                kube,
                "/apis/batch/v1/jobs",
                typed(v.on_workload, KUBERNETES_JOB),
                label_selector=LABEL_SERVICE_JOB,
                name="workloads",
            ),
            # Jobs to adopt as service jobs: labelled with a queue, not yet a service job's.
            Informer(
                kube,
                "/apis/batch/v1/jobs",
                typed(v.on_adoptable, KUBERNETES_JOB),
                label_selector=f"{LABEL_JOB_QUEUE},!{LABEL_SERVICE_JOB}",
                name="adoptable-jobs",
            ),
            Informer(
                kube,
                f"{GROUP_PATH}/serviceenvironments",
                lambda t, o: v.on_named(v.service_envs, t, o),
                name="serviceenvironments",
            ),
            Informer(kube, f"{GROUP_PATH}/jobschedules", v.on_schedule, name="jobschedules"),
        ]
        se_informer, schedule_informer = self.informers[-2], self.informers[-1]
        # Start-up waits for every informer but these: only the schedule loop needs JobSchedules and
        # only the service loops ServiceEnvironments (each waits for their first list itself), so an
        # older CRD set without them runs the rest.
        self.ungated = {"jobschedules", "serviceenvironments"}
        # Workloads of the service types declared by configuration (core.workload_types): not waited
        # for at start (their CRD may come later); their jobs wait until their first list is in.
        for wtype in configured_workload_types():
            path = wtype.cluster_path()
            handler = typed(v.on_workload, wtype)
            workloads = Informer(kube, path, handler, label_selector=LABEL_SERVICE_JOB, name=f"workloads-{wtype.name}")
            self.informers.append(workloads)
            self.informers.append(
                Informer(
                    kube,
                    path,
                    typed(v.on_adoptable, wtype),
                    label_selector=f"{LABEL_JOB_QUEUE},!{LABEL_SERVICE_JOB}",
                    name=f"adoptable-{wtype.name}",
                )
            )
            self.services.type_synced[wtype.name] = workloads.synced
            self.ungated |= {workloads.name, f"adoptable-{wtype.name}"}
        self.services.synced = se_informer.synced
        self.service_environments.synced = se_informer.synced
        self.schedules = ScheduleController(
            kube, self.view, self.events, is_leader=leading, synced=schedule_informer.synced
        )
        register_view_metrics(self.metrics, self.view, self)
        self.metrics.add_collector(lambda: quota_share_metrics(self.services.quota_plans))
        self.tasks: list[asyncio.Task[Any]] = []
        self.synced = asyncio.Event()
        self._warm: asyncio.Task[None] | None = None
        self.warm_started: int | None = None  # pods the warm start started (None: it did not run)
        self._site: web.TCPSite | None = None

    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader if self.options.leader_election else True

    async def start(self) -> None:
        await self._serve_metrics()
        self.tasks.append(asyncio.create_task(self.events.run(), name="events"))
        if self.options.leader_election:
            # From the start, not once synced: a new leader may dispatch before the jobs are in.
            self.tasks.append(asyncio.create_task(self.leader.run(), name="leader"))
        for inf in self.informers:
            self.tasks.append(asyncio.create_task(inf.run(), name=f"informer-{inf.name}"))
        jobs = next(inf for inf in self.informers if inf.name == "batchjobs")
        await asyncio.gather(
            *(inf.synced.wait() for inf in self.informers if inf.name not in self.ungated and inf is not jobs)
        )
        if self.options.warm_start and not jobs.synced.is_set():
            self._warm = asyncio.create_task(self._warm_start(jobs.synced), name="warm-start")
            self.tasks.append(self._warm)
        await jobs.synced.wait()
        log.info(
            "view synced: %d jobs, %d job pods, %d nodes",
            len(self.view.jobs),
            sum(len(p) for p in self.view.pods.values()),
            len(self.view.nodes),
        )
        # The view now holds every object (up to a million jobs): the garbage collector leaves them
        # alone from here on (JSON objects hold no reference cycles; reference counting frees them),
        # so a collection costs what was allocated since, not a pass over the whole view.
        gc.collect()
        gc.freeze()
        self.synced.set()
        # Start-up returns now (a standby serves the webhook too); the loops start once we lead.
        self.tasks.append(asyncio.create_task(self._lead(), name="lead"))

    async def _warm_start(self, listed: asyncio.Event) -> None:
        """Once leading, and unless the job list is in first, the warm start (runtime.warm_start)."""
        if self.options.leader_election:
            lead = asyncio.create_task(self.leader.became_leader.wait())
            done = asyncio.create_task(listed.wait())
            await asyncio.wait({lead, done}, return_when=asyncio.FIRST_COMPLETED)
            lead.cancel()
            done.cancel()
            if not self.leader.is_leader:
                return
        try:
            # Nodes that joined while no operator ran are capacity once in their pools (which
            # depends on nodes and environments alone, both listed).
            self.warm_started = await warm_start(
                self.kube, self.view, self.dispatcher, listed, before_cycle=self.compute.pools.sync
            )
        except Exception:
            log.exception("warm start failed (the full cycles start once the job list is in)")

    async def _lead(self) -> None:
        if self._warm is not None:
            await self._warm  # its cycles end before the full ones begin
        if self.options.leader_election:
            await self.leader.became_leader.wait()
            self.tasks.append(asyncio.create_task(self._watch_leadership(), name="leadership"))
        for loop in (
            self.jobs,
            self.dispatcher,
            self.definitions,
            self.compute,
            self.status,
            self.schedules,
            self.retention,
            self.service_environments,
        ):
            loop.ready.set()
        for name, coro in (
            ("jobs", self.jobs.run()),
            ("dispatcher", self.dispatcher.run()),
            ("definitions", self.definitions.run()),
            ("compute", self.compute.run()),
            ("status", self.status.run()),
            ("schedules", self.schedules.run()),
            ("retention", self.retention.run()),
            ("service-environments", self.service_environments.run()),
        ):
            self.tasks.append(asyncio.create_task(coro, name=name))
        for key in list(self.view.jobs):
            self.view.mark(key)
        log.info("kubatch runtime started (leader: %s)", self.is_leader)

    async def _watch_leadership(self) -> None:
        """A replica that lost the Lease stops at once: its loops may hold decisions made as leader."""
        while True:
            await asyncio.sleep(1.0)
            if not self.leader.is_leader:
                log.error("lost leadership; exiting so that a fresh process rejoins as standby")
                os._exit(3)

    async def stop(self) -> None:
        await self._end_tasks()
        await self._write_decided()
        await self._write_fronts()
        with contextlib.suppress(Exception):
            await self.leader.release()
        if self._site is not None:
            await self._site.stop()
        await self.kube.close()

    async def _end_tasks(self) -> None:
        """Cancel the loops and wait for them to end, up to ``TASKS_END_SECONDS``: a task that does
        not end on cancellation is logged with where it waits, and the stop goes on (the Lease is
        given up and the process exits within its grace period)."""
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        if not tasks:
            return
        done, running = await asyncio.wait(tasks, timeout=TASKS_END_SECONDS)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.debug("task %s ended with %r", t.get_name(), t.exception())
        for t in running:
            log.error("stopping: task %s did not end on cancellation (waits at %s)", t.get_name(), where_waits(t))

    async def _write_decided(self) -> None:
        """A leader that stops writes the job statuses it decided and holds back (coalescing), the
        front jobs' first: the fronts it writes next name jobs whose RUNNABLE status may be waiting
        (up to a minute under a burst), and the next leader's warm start starts a front job only
        when its written status says RUNNABLE."""
        if not (self.jobs.ready.is_set() and self.is_leader) or not self.jobs.pending:
            return
        front = (job_key_of(key) for keys in self.dispatcher.front.values() for key in keys)
        try:
            written = await self.jobs.flush_pending(front, timeout=FINAL_JOB_WRITES_SECONDS)
        except Exception as e:  # decided again by the next leader
            log.warning("job statuses not written at stop: %r", e)
            return
        log.info("stopping: %d job statuses written (%d left)", written, len(self.jobs.pending))

    async def _write_fronts(self) -> None:
        """A leader that stops writes its queues' status once more, still holding the Lease: the
        next leader's warm start dispatches the fronts written there, and one written up to a status
        period ago may name only jobs started since (a rolling update right after a burst of starts
        would leave it nothing to start until the job list is in)."""
        if not (self.status.ready.is_set() and self.is_leader):
            return
        try:
            async with asyncio.timeout(FINAL_STATUS_SECONDS):
                await self.status.sync()
        except Exception as e:  # the next leader rewrites it; the warm start only starts less
            log.warning("the queues' status was not written at stop: %r", e)

    async def _serve_metrics(self) -> None:
        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.metrics.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            return web.Response(
                text="ok" if self.synced.is_set() else "syncing", status=200 if self.synced.is_set() else 503
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._site = web.TCPSite(runner, self.options.metrics_host, self.options.metrics_port)
        await self._site.start()
        log.info("metrics on http://%s:%d/metrics", self.options.metrics_host, self.options.metrics_port)
