"""service_jobs: N one-pod batch/v1 Jobs (1 vCPU, 1 s) on kwok nodes with room for C such pods at once,
run three ways in one run (issue 14's benchmark):

- **A, baseline**: the Jobs created unsuspended directly: the job controller alone, the
  kube-scheduler keeps the pods that do not fit Pending until vCPUs free up;
- **B, kubatch's service job path**: a ServiceEnvironment `KUBERNETES_JOB` with `NUM_INSTANCES`
  maxCapacity C, a service queue, and N BatchJobs (`serviceJobType: KUBERNETES_JOB`) whose
  `serviceRequestPayload` is the same Job: kubatch creates each Job when an instance is free;
- **C, kubatch's adoption path** (what Kueue users do): the same Jobs created suspended with the
  label `kubatch.dev/job-queue=<queue>`: kubatch makes their BatchJobs and unsuspends each Job when
  an instance is free.

Every phase runs the same Job (the template below; no `ttlSecondsAfterFinished`, since kubatch keeps
a service job's finished Jobs until its BatchJob goes: finished Jobs and pods stay in all three),
in a namespace of its own, created with the same 64 parallel creates, after the API server has
fallen quiet from the phase before. Makespan: first create to the last Job `Complete` (the same
end in all three; B and C also record the last BatchJob SUCCEEDED). Sizes: quick 200 Jobs on 50
vCPUs (ideal makespan 4 s), full 2,000 on 200 (10 s). Pure pieces (manifests, sizes, step names)
are unit-tested in tests/unit/bench/test_service_jobs.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import peers
from bench.baseline import KEY_LABEL, RUN_LABEL
from bench.harness import CONCURRENCY, GROUP, POOL_LABEL, Harness
from bench.probes import counts_delta, request_counts
from bench.report import Result, Row, cumulative, plot_lines, quantile, summary
from bench.scenarios.common import cpu_window
from bench.trackers import GROUP_PATH, JobTracker, PodTracker, Sampler, until

ADOPT_LABEL = "kubatch.dev/job-queue"
NODE_CPU = 10  # vCPUs per kwok node
#: The phases, in the order they run: key -> label.
PHASES = {
    "jobs": "A: batch/v1 Jobs, unsuspended",
    "service": "B: kubatch service jobs",
    "adopted": "C: kubatch, adopted suspended Jobs",
}
#: The steps of one job, in order, as `PhaseRun.stamps` names them.
STEPS = (
    "submitted",
    "job unsuspended",
    "pod created",
    "pod running",
    "pod finished",
    "job complete",
    "batchjob succeeded",
)


# ---- pure pieces ---------------------------------------------------------------------------------
def sizes(quick: bool) -> tuple[int, int]:
    """(N Jobs, C one-vCPU pods at once): quick 200 on 50, full 2,000 on 200 (10 jobs per slot)."""
    return (200, 50) if quick else (2000, 200)


def job_template(run: str, key: str, pool: str, duration: str = "1s") -> dict[str, Any]:
    """The Job every phase runs (without name): one pod of 1 vCPU / 64 MiB on the pool's kwok nodes,
    running `duration` (kwok's sim annotation), never retried; labelled with the run and key (on the
    Job and its pods) so that the watches find it whoever created it."""
    labels = {RUN_LABEL: run, KEY_LABEL: key}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": dict(labels)},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {"sim.kubatch.dev/duration": duration}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {POOL_LABEL: pool},
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["true"],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "64Mi"},
                                "limits": {"cpu": "1", "memory": "64Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


def plain_job(run: str, key: str, pool: str, *, queue: str | None = None) -> dict[str, Any]:
    """Phase A's Job (named `key`), or with `queue` phase C's: created suspended with the label that
    has kubatch adopt it into that service queue."""
    job = job_template(run, key, pool)
    job["metadata"]["name"] = key
    if queue is not None:
        job["metadata"]["labels"][ADOPT_LABEL] = queue
        job["spec"]["suspend"] = True
    return job


def service_job(ns: str, run: str, key: str, pool: str, queue: str) -> dict[str, Any]:
    """Phase B's BatchJob `key`: the same Job as its serviceRequestPayload (JSON text)."""
    return {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": key, "namespace": ns},
        "spec": {
            "jobQueue": queue,
            "serviceJobType": "KUBERNETES_JOB",
            "serviceRequestPayload": json.dumps(job_template(run, key, pool), separators=(",", ":")),
        },
    }


def service_environment(name: str, capacity: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ServiceEnvironment",
        "metadata": {"name": name},
        "spec": {
            "serviceEnvironmentType": "KUBERNETES_JOB",
            "state": "ENABLED",
            "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": capacity}],
        },
    }


def service_queue(name: str, env: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {
            "jobQueueType": "KUBERNETES_JOB",
            "priority": 1,
            "state": "ENABLED",
            "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": env}],
        },
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded to 3 places; None when either is missing or b is 0."""
    if a is None or not b:
        return None
    return round(a / b, 3)


# ---- one phase -----------------------------------------------------------------------------------
@dataclass
class PhaseRun:
    t0: float
    submit_end: float
    end: float  # the last Job Complete (or Failed)
    submitted: dict[str, float]
    jobs: peers.JobsTracker
    pods: PodTracker
    batchjobs: JobTracker | None
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def makespan(self) -> float:
        return self.end - self.t0

    def to_running(self) -> list[float]:
        return [self.pods.running[k] - s for k, s in self.submitted.items() if k in self.pods.running]

    def stamps(self) -> dict[str, dict[str, float]]:
        named: Mapping[str, Mapping[str, float]] = {
            "submitted": self.submitted,
            "job unsuspended": self.jobs.unsuspended,
            "pod created": self.pods.created,
            "pod running": self.pods.running,
            "pod finished": self.pods.finished,
            "job complete": self.jobs.finished,
            "batchjob succeeded": self.batchjobs.times("SUCCEEDED") if self.batchjobs else {},
        }
        return {k: {step: t[k] for step, t in named.items() if k in t} for k in self.submitted}


async def run_phase(
    h: Harness,
    ns: str,
    run: str,
    keys: list[str],
    create: Callable[[str], Awaitable[None]],
    *,
    batchjobs: bool,
    timeout: float,
) -> PhaseRun:
    """Create every key (64 at once), then wait until every Job finished (and, with `batchjobs`, every
    BatchJob of the namespace ended)."""
    jobs = peers.JobsTracker(h.k, ns, run)
    pods = PodTracker(h.k, ns, selector=f"{RUN_LABEL}={run}", key_label=KEY_LABEL)
    bj = JobTracker(h.k, ns) if batchjobs else None
    watched = [jobs, pods, *([bj] if bj else [])]
    for t in watched:
        await t.start()
    sampler = Sampler(pods, bj)
    sampler.start()
    sem = asyncio.Semaphore(CONCURRENCY)
    submitted: dict[str, float] = {}

    async def one(key: str) -> None:
        async with sem:
            submitted[key] = time.time()
            await create(key)

    t0 = time.time()
    try:
        await asyncio.gather(*(one(k) for k in keys))
        submit_end = time.time()
        end = await until(lambda: len(jobs.finished) >= len(keys), timeout, f"{len(keys)} Jobs finished ({run})")
        if bj is not None:
            await until(lambda: bj.done() >= len(keys), timeout, f"{len(keys)} BatchJobs ended ({run})")
    finally:
        samples = await sampler.stop()
        for t in watched:
            await t.stop()
    return PhaseRun(t0, submit_end, end, submitted, jobs, pods, bj, samples)


def phase_figures(
    n: int, r: PhaseRun, requests: dict[str, int], settled: dict[str, int], cpu: dict[str, float]
) -> dict[str, Any]:
    fig = peers.peer_figures(n, r.makespan, [], requests, cpu, ["operator"])
    to_running = r.to_running()
    fig.pop("p50_submit_to_pod_s")
    fig.pop("p99_submit_to_pod_s")
    fig.update(
        p50_create_to_running_s=quantile(to_running, 0.5),
        p99_create_to_running_s=quantile(to_running, 0.99),
        create_to_running_s=summary(to_running),
        submit_s=round(r.submit_end - r.t0, 3),
        failed_jobs=r.jobs.failed,
        api_requests_per_job_settled=round(sum(settled.values()) / n, 2),
        operator_cpu_pct=cpu.get("operator"),
        kube_controller_manager_cpu_pct=cpu.get("kube-controller-manager"),
        kube_apiserver_cpu_pct=cpu.get("kube-apiserver"),
        steps=peers.step_latencies(r.stamps(), STEPS),
        timeline=r.samples,
    )
    if r.batchjobs is not None:
        succeeded = list(r.batchjobs.times("SUCCEEDED").values())
        fig.update(
            batchjobs_succeeded=len(succeeded),
            batchjobs_failed=r.batchjobs.counts["FAILED"],
            makespan_to_last_succeeded_s=round(max(succeeded) - r.t0, 3) if succeeded else None,
            batchjob_writes_per_job=round(sum(r.batchjobs.modified.values()) / n, 2),
        )
    return fig


# ---- the scenario --------------------------------------------------------------------------------
async def wait_nodes(h: Harness, pool: str, count: int, timeout: float = 120) -> None:
    async def ready() -> bool:
        nodes = await h.k.get("/api/v1/nodes", labelSelector=f"{POOL_LABEL}={pool}")
        ok = 0
        for node in nodes["items"]:
            conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
            ok += conds.get("Ready") == "True"
        return ok >= count

    deadline = time.monotonic() + timeout
    while not await ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} nodes of pool {pool} not Ready after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def cluster_object(h: Harness, plural: str, body: dict[str, Any], timeout: float = 60) -> str:
    """Create a cluster-scoped kubatch object and wait until its status is VALID."""
    path = f"{GROUP_PATH}/{plural}"
    await h.k.create(path, body)
    name = f"{path}/{body['metadata']['name']}"
    h.cluster_objects.append(name)
    deadline = time.monotonic() + timeout
    while ((await h.k.get(name)).get("status") or {}).get("status") != "VALID":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not VALID after {timeout:.0f}s")
        await asyncio.sleep(0.2)
    return name


async def run(h: Harness, quick: bool) -> Result:
    n, cap = sizes(quick)
    tag = uuid.uuid4().hex[:4]
    pool = f"svc-{tag}"
    await h.add_nodes(pool, cap // NODE_CPU, NODE_CPU)
    await wait_nodes(h, pool, cap // NODE_CPU)
    se = f"svc-{tag}"
    queue = f"svc-{tag}"
    await cluster_object(h, "serviceenvironments", service_environment(se, cap))
    await cluster_object(h, "jobqueues", service_queue(queue, se))
    keys = [f"j{i:05d}" for i in range(n)]
    timeout = 120 + n * 0.6
    await peers.settle(h.k)

    figures: dict[str, Any] = {
        "jobs": n,
        "capacity": cap,
        "nodes": cap // NODE_CPU,
        "ideal_makespan_s": n / cap * 1.0,
        "job": "one pod of 1 vCPU / 64 MiB running 1 s (kwok), backoffLimit 0, no ttlSecondsAfterFinished",
    }
    systems: dict[str, dict[str, Any]] = {}
    curves: dict[str, tuple[float, list[float]]] = {}
    for key in PHASES:
        ns = await h.namespace(f"svc{key}")
        runname = f"{key}-{tag}"
        jobs_path = f"/apis/batch/v1/namespaces/{ns}/jobs"
        bj_path = f"{GROUP_PATH}/namespaces/{ns}/batchjobs"

        def creator(phase: str, ns: str, runname: str, jobs_path: str, bj_path: str) -> Callable[[str], Awaitable[Any]]:
            if phase == "jobs":
                return lambda k: h.k.create(jobs_path, plain_job(runname, k, pool))
            if phase == "adopted":
                return lambda k: h.k.create(jobs_path, plain_job(runname, k, pool, queue=queue))
            return lambda k: h.k.create(bj_path, service_job(ns, runname, k, pool, queue))

        print(f"  phase {PHASES[key]} ...", file=sys.stderr, flush=True)
        w = cpu_window(h)
        r0 = request_counts(await h.k.text("/metrics"))
        r = await run_phase(
            h,
            ns,
            runname,
            keys,
            creator(key, ns, runname, jobs_path, bj_path),
            batchjobs=key != "jobs",
            timeout=timeout,
        )
        cpu = w.stop()
        r1 = request_counts(await h.k.text("/metrics"))
        settled_s = await peers.settle(h.k)
        r2 = request_counts(await h.k.text("/metrics"))
        fig = phase_figures(n, r, counts_delta(r1, r0), counts_delta(r2, r0), cpu)
        fig["settled_s"] = round(settled_s, 1)
        systems[key] = fig
        curves[key] = (r.t0, list(r.jobs.finished.values()))
    figures["systems"] = systems
    a, b, c = systems["jobs"], systems["service"], systems["adopted"]
    for key, label in (("service", "B"), ("adopted", "C")):
        s = systems[key]
        figures[f"ratio_{label}_over_A_makespan"] = ratio(s["makespan_s"], a["makespan_s"])
        figures[f"ratio_{label}_over_A_api_requests_per_job"] = ratio(
            s["api_requests_per_job"], a["api_requests_per_job"]
        )
        figures[f"ratio_{label}_over_A_p50_create_to_running"] = ratio(
            s["p50_create_to_running_s"], a["p50_create_to_running_s"]
        )
    figures["plot"] = plot_lines(
        "service_jobs",
        f"{n} one-pod Jobs (1 vCPU x 1 s) on {cap} vCPUs",
        "seconds since first create",
        "Jobs Complete",
        {PHASES[k]: cumulative(v, t0) for k, (t0, v) in curves.items()},
    )
    rows: list[Row] = []
    for s, label in ((b, "B service"), (c, "C adopted")):
        rows += [
            Row(f"{label}: makespan (base: A)", s["makespan_s"], a["makespan_s"], "s"),
            Row(f"{label}: jobs per second", s["jobs_per_s"], a["jobs_per_s"], "jobs/s"),
            Row(f"{label}: p50 create->pod Running", s["p50_create_to_running_s"], a["p50_create_to_running_s"], "s"),
            Row(f"{label}: p99 create->pod Running", s["p99_create_to_running_s"], a["p99_create_to_running_s"], "s"),
            Row(f"{label}: API requests per job", s["api_requests_per_job"], a["api_requests_per_job"], "req"),
            Row(f"{label}: operator CPU", s["operator_cpu_pct"], a["operator_cpu_pct"], "% core"),
            Row(
                f"{label}: kube-controller-manager CPU",
                s["kube_controller_manager_cpu_pct"],
                a["kube_controller_manager_cpu_pct"],
                "% core",
            ),
            Row(f"{label}: last BatchJob SUCCEEDED", s["makespan_to_last_succeeded_s"], None, "s"),
        ]

    def step(s: Mapping[str, Any], name: str) -> str:
        v = s["steps"][name]
        return f"{v['p50']}/{v['p90']}"

    notes = [
        f"{n} one-pod Jobs (1 vCPU, 1 s) on {cap // NODE_CPU} kwok nodes of {NODE_CPU} vCPUs "
        f"(ideal makespan {n / cap:.0f} s); ratio = kubatch path / A (plain Jobs, unsuspended)",
        "makespan: first create -> last Job Complete; create->pod Running: per job, from its create request",
        "operator CPU in A: the idle operator watching the Jobs it does not queue",
        *[
            f"{PHASES[k]}: failed Jobs {s['failed_jobs']}; p50/p90 s: unsuspended->pod created "
            f"{step(s, 'job unsuspended -> pod created')}, pod finished->Job Complete "
            f"{step(s, 'pod finished -> job complete')}"
            + (
                f", Job Complete->BatchJob SUCCEEDED {step(s, 'job complete -> batchjob succeeded')}"
                if k != "jobs"
                else ""
            )
            for k, s in systems.items()
        ],
    ]
    return Result("service_jobs", rows, figures, notes)
