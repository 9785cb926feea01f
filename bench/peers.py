"""kubatch's peers, run on the same workload in the same benchmark run (issue 16, part 1).

- **batch/v1 Jobs**, one per job, no queueing: every Job is created at once and the Kubernetes job
  controller (in the bench cluster's kube-controller-manager) creates its pod; the scheduler binds
  the pods as vCPUs free up. What this adds to the raw pods is the job controller's cost.
- **Kueue**: the same Jobs, created suspended with the `kueue.x-k8s.io/queue-name` label, on a
  LocalQueue of a ClusterQueue whose quota is the environment's vCPUs; Kueue admits (unsuspends) a
  Job when its quota is free, the job controller creates its pod. Kueue's controller manager is
  built from its Go module at the release pinned in `hack/cluster/kueue/` (`hack/cluster/kueue.sh`,
  into the binary cache outside the repository) and runs as a host process against the bench
  cluster, with the CRDs of that release read from the Go module cache. No webhooks are
  registered with the API server (the Jobs are created suspended and labelled by the client, as
  Kueue's webhook would make them); Kueue still serves its webhook and metrics endpoints, on
  free loopback ports with certificates of the bench cluster's CA. The Kueue binary reads its
  metrics certificate from the fixed path `/etc/kueue/metrics/certs`: the process runs in a
  private mount namespace (`unshare`) whose `/etc` is an overlay holding that certificate, so
  the host's `/etc` is never written.

Every Job's pod is the pod kubatch builds for the same job (`baseline.pod_manifest`), and every
Job has `ttlSecondsAfterFinished: 0`, so its pod is deleted once it finished, as kubatch and the
raw-pod baseline delete theirs. Pure pieces (manifests, Kueue's configuration, figures) are
separate from the processes and the API calls, and unit-tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baseline import KEY_LABEL, RUN_LABEL, Work, pod_manifest
from bench.harness import CONCURRENCY, Harness
from bench.probes import request_counts
from bench.report import quantile
from bench.trackers import PodTracker, Sampler, _Watched, until
from kubatch.cluster.client import ApiError, Kube
from kubatch.devcluster import procs
from kubatch.devcluster.certs import serving_cert_dir

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_API = "/apis/kueue.x-k8s.io/v1beta2"
KUEUE_GROUP = "kueue.x-k8s.io/v1beta2"
KUEUE_NAMESPACE = "kueue-system"
#: Kueue's client rate limit here: the bench cluster's controller-manager and scheduler run at the
#: same 1000 QPS / 2000 burst (Kueue's own default is 20/30, its release manifests ship 50/100).
KUEUE_QPS = 1000
KUEUE_BURST = 2000
#: Kueue's log verbosity: its release manifests' `--zap-log-level=2`.
KUEUE_LOG_LEVEL = "2"
#: Read-only verbs, left out when waiting for the API server to fall quiet.
READ_VERBS = ("GET", "LIST", "WATCH", "WATCHLIST")


class PeerUnavailable(Exception):
    """A peer cannot run here (its binary does not build, its process does not start): the phase is
    skipped with this message, the rest of the benchmark goes on."""


# ---- pure pieces ---------------------------------------------------------------------------------
def batch_job(run: str, work: Work, ce: str, *, queue: str | None = None) -> dict[str, Any]:
    """A batch/v1 Job of one pod, the pod kubatch would create for `work` (its template); with `queue`,
    created suspended and labelled for Kueue's LocalQueue `queue`."""
    pod = pod_manifest(run, work, ce)
    md = pod["metadata"]
    labels = {RUN_LABEL: run, KEY_LABEL: work.key}
    if queue is not None:
        labels[QUEUE_LABEL] = queue
    spec: dict[str, Any] = {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,  # one attempt, as a kubatch job without retryStrategy
        "ttlSecondsAfterFinished": 0,  # its pod goes once it finished, as kubatch's and the baseline's
        "template": {
            "metadata": {"labels": dict(md["labels"]), "annotations": dict(md["annotations"])},
            "spec": pod["spec"],
        },
    }
    if queue is not None:
        spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": md["name"], "labels": labels}, "spec": spec}


def job_finished(job: Mapping[str, Any]) -> str | None:
    """'Complete' or 'Failed' once a batch/v1 Job has that condition True, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def kueue_config(
    *,
    health_port: int,
    metrics_port: int,
    webhook_port: int,
    cert_dir: str,
    qps: int = KUEUE_QPS,
    burst: int = KUEUE_BURST,
    concurrency: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for the bench: the controller settings of
    its release manifests (config/components/manager), with what running one out-of-cluster instance
    needs (no leader election, no internal certificate management, loopback ports, the visibility
    API server off) and the fair user's choices stated in bench/README.md: only the batch/job
    integration, `manageJobsWithoutQueueName: false`, no `waitForPodsReady`, client QPS as the bench
    cluster's controllers."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"port": webhook_port, "host": "127.0.0.1", "certDir": cert_dir},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "controller": {
            "groupKindConcurrency": {
                "Job.batch": 5,
                "Pod": 5,
                "Workload.kueue.x-k8s.io": 5,
                "LocalQueue.kueue.x-k8s.io": 1,
                "Cohort.kueue.x-k8s.io": 1,
                "ClusterQueue.kueue.x-k8s.io": 1,
                "ResourceFlavor.kueue.x-k8s.io": 1,
                **(concurrency or {}),
            }
        },
        "clientConnection": {"qps": qps, "burst": burst},
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def kueue_queues(name: str, ns: str, vcpus: int, memory_gib: int) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, body) of the ResourceFlavor `default`-like flavor, the ClusterQueue with
    `vcpus` of cpu quota (memory quota `memory_gib`, the nodes' memory: never the limit) and the
    LocalQueue in `ns`, all named `name`; in the order they are created."""
    flavor = {"apiVersion": KUEUE_GROUP, "kind": "ResourceFlavor", "metadata": {"name": name}, "spec": {}}
    cq = {
        "apiVersion": KUEUE_GROUP,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory"],
                    "flavors": [
                        {
                            "name": name,
                            "resources": [
                                {"name": "cpu", "nominalQuota": str(vcpus)},
                                {"name": "memory", "nominalQuota": f"{memory_gib}Gi"},
                            ],
                        }
                    ],
                }
            ],
        },
    }
    lq = {
        "apiVersion": KUEUE_GROUP,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterQueue": name},
    }
    return [
        (f"{KUEUE_API}/resourceflavors", flavor),
        (f"{KUEUE_API}/clusterqueues", cq),
        (f"{KUEUE_API}/namespaces/{ns}/localqueues", lq),
    ]


def kueue_settings() -> dict[str, Any]:
    """The Kueue settings of the bench, as recorded in throughput.json (bench/README.md says why)."""
    return {
        "queueingStrategy": "BestEffortFIFO (Kueue's default)",
        "manageJobsWithoutQueueName": False,
        "waitForPodsReady": "off (Kueue's default)",
        "integrations": ["batch/job"],
        "groupKindConcurrency": "the release manifests' (Job.batch 5, Workload 5)",
        "clientConnection": {"qps": KUEUE_QPS, "burst": KUEUE_BURST},
        "zap_log_level": KUEUE_LOG_LEVEL,
        "preemption": "none (one ClusterQueue, no cohort)",
        "fairSharing": "off",
        "VisibilityOnDemand": False,
        "leaderElection": False,
        "webhooks": "served, not registered with the API server (Jobs created suspended and labelled)",
    }


def comparison(systems: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One aligned line per system (and a header): makespan, jobs/s, p50/p99 submit→pod, API requests
    per job, controller CPU; a figure that is missing shows as '-'."""

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        f"{'system':<30} {'makespan s':>10} {'jobs/s':>7} {'p50/p99 submit->pod s':>22} {'req/job':>8} "
        f"{'ctrl CPU %':>10}"
    ]
    for name, f in systems.items():
        pods = f"{num(f.get('p50_submit_to_pod_s'), '.2f')} / {num(f.get('p99_submit_to_pod_s'), '.2f')}"
        lines.append(
            f"{name:<30} {num(f.get('makespan_s'), '.1f'):>10} {num(f.get('jobs_per_s'), '.1f'):>7} {pods:>22} "
            f"{num(f.get('api_requests_per_job'), '.2f'):>8} {num(f.get('controller_cpu_pct'), '.1f'):>10}"
        )
    return lines


def writes(delta: Mapping[str, int]) -> int:
    """Mutating requests in a `counts_delta` (its keys are 'VERB resource...')."""
    return sum(v for k, v in delta.items() if k.split(" ", 1)[0] not in READ_VERBS)


def peer_figures(
    n: int,
    makespan: float,
    submit_to_pod: Sequence[float],
    requests: Mapping[str, int],
    cpu: Mapping[str, float],
    controllers: Sequence[str],
) -> dict[str, Any]:
    """A phase's figures, named as kubatch's in throughput.json: makespan, jobs/s, p50/p99 submit→pod,
    API requests per job, and the CPU of its controllers (% of a core, summed over `controllers`)."""
    return {
        "makespan_s": round(makespan, 3),
        "jobs_per_s": round(n / makespan, 1) if makespan > 0 else None,
        "p50_submit_to_pod_s": quantile(submit_to_pod, 0.5),
        "p99_submit_to_pod_s": quantile(submit_to_pod, 0.99),
        "api_requests_per_job": round(sum(requests.values()) / n, 2) if n else None,
        "api_requests": dict(requests),
        "controller_cpu_pct": round(sum(cpu.get(c, 0.0) for c in controllers), 1),
        "controllers": list(controllers),
        "cpu_pct": dict(cpu),
    }


# ---- watching Jobs -------------------------------------------------------------------------------
class JobsTracker(_Watched):
    """batch/v1 Jobs of one run: when each was first seen running (not suspended) and finished
    ('Complete' or 'Failed')."""

    def __init__(self, kube: Kube, ns: str, run: str) -> None:
        super().__init__(kube, f"/apis/batch/v1/namespaces/{ns}/jobs", f"{RUN_LABEL}={run}")
        self.unsuspended: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.failed = 0
        self.deleted_unseen = 0  # deleted before the watch showed it finished (a relist lost it)

    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        key = str(((obj.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL, ""))
        if key in self.finished:
            return
        now = time.time()
        if typ == "DELETED":
            # ttlSecondsAfterFinished deletes only finished Jobs.
            self.finished[key] = now
            self.deleted_unseen += 1
            return
        if not (obj.get("spec") or {}).get("suspend"):
            self.unsuspended.setdefault(key, now)
        state = job_finished(obj)
        if state is not None:
            self.finished[key] = now
            self.failed += state == "Failed"


def workload_key(wl: Mapping[str, Any], run: str) -> str | None:
    """The bench key of the Job that owns a Kueue Workload (its ownerReference names `<run>-<key>`)."""
    for ref in (wl.get("metadata") or {}).get("ownerReferences") or []:
        name = str(ref.get("name", ""))
        if ref.get("kind") == "Job" and name.startswith(f"{run}-"):
            return name.removeprefix(f"{run}-")
    return None


def condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or []
    )


class WorkloadTracker(_Watched):
    """Kueue's Workloads of one run: when each was first seen with its quota reserved and finished."""

    def __init__(self, kube: Kube, ns: str, run: str) -> None:
        super().__init__(kube, f"{KUEUE_API}/namespaces/{ns}/workloads", None)
        self.run = run
        self.reserved: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        key = workload_key(obj, self.run)
        if key is None or typ == "DELETED":
            return
        now = time.time()
        if condition_true(obj, "QuotaReserved"):
            self.reserved.setdefault(key, now)
        if condition_true(obj, "Finished"):
            self.finished.setdefault(key, now)


#: The steps of a job through a peer, in order, as `PeerRun.stamps` names them.
JOB_STEPS = ("submitted", "pod created", "pod running", "pod finished", "job finished")
KUEUE_STEPS = (
    "submitted",
    "quota reserved",
    "unsuspended",
    "pod created",
    "pod running",
    "pod finished",
    "job finished",
    "workload finished",
)


def step_latencies(stamps: Mapping[str, Mapping[str, float]], steps: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each consecutive pair of `steps`: n, p50 and p90 of the seconds between them over the
    jobs that have both stamps (keyed 'a -> b', in the steps' order)."""
    out: dict[str, dict[str, Any]] = {}
    for a, b in itertools.pairwise(steps):
        gaps = [t[b] - t[a] for t in stamps.values() if a in t and b in t]
        out[f"{a} -> {b}"] = {"n": len(gaps), "p50": _round(quantile(gaps, 0.5)), "p90": _round(quantile(gaps, 0.9))}
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


@dataclass
class PeerRun:
    """One peer phase: submit times, first sight of each job's pod, finish times, and each job's
    time at each step (`stamps`, see JOB_STEPS / KUEUE_STEPS)."""

    t0: float
    submitted: dict[str, float]
    submit_end: float
    finished: dict[str, float]
    pods: dict[str, float]
    end: float
    failed: int
    deleted_unseen: int
    samples: list[dict[str, float]] = field(default_factory=list)
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        return self.end - self.t0

    def submit_to_pod(self) -> list[float]:
        return [self.pods[k] - s for k, s in self.submitted.items() if k in self.pods]


async def run_jobs(
    kube: Kube,
    ns: str,
    work: list[Work],
    ce: str,
    *,
    run: str,
    queue: str | None = None,
    timeout: float = 600,
    alive: Callable[[], None] | None = None,
) -> PeerRun:
    """Create `work` as batch/v1 Jobs (bounded concurrency, as kubatch's submissions) and wait until
    every Job finished. `alive` raises when a process the run depends on died. With `queue`, the Jobs
    go to that Kueue LocalQueue and their Workloads are watched too."""
    jobs = JobsTracker(kube, ns, run)
    pods = PodTracker(kube, ns, selector=f"{RUN_LABEL}={run}", key_label=KEY_LABEL)
    workloads = WorkloadTracker(kube, ns, run) if queue is not None else None
    watched: list[_Watched] = [jobs, pods, *([workloads] if workloads else [])]
    for t in watched:
        await t.start()
    sampler = Sampler(pods)
    sampler.start()
    sem = asyncio.Semaphore(CONCURRENCY)
    submitted: dict[str, float] = {}
    path = f"/apis/batch/v1/namespaces/{ns}/jobs"

    async def one(w: Work) -> None:
        body = batch_job(run, w, ce, queue=queue)
        async with sem:
            submitted[w.key] = time.time()
            await kube.create(path, body)

    def done() -> bool:
        if alive is not None:
            alive()
        return len(jobs.finished) >= len(work)

    t0 = time.time()
    try:
        await asyncio.gather(*(one(w) for w in work))
        submit_end = time.time()
        end = await until(done, timeout, f"{len(work)} batch/v1 Jobs finished ({run})")
        if workloads is not None:  # the last Workloads' Finished, for the step figures only
            with contextlib.suppress(TimeoutError):
                await until(lambda: len(workloads.finished) >= len(work), 10, "Workloads finished")
    finally:
        samples = await sampler.stop()
        for t in watched:
            await t.stop()
    named = {
        "submitted": submitted,
        "quota reserved": workloads.reserved if workloads else {},
        "unsuspended": jobs.unsuspended,
        "pod created": pods.created,
        "pod running": pods.running,
        "pod finished": pods.finished,
        "job finished": jobs.finished,
        "workload finished": workloads.finished if workloads else {},
    }
    stamps = {w.key: {step: times[w.key] for step, times in named.items() if w.key in times} for w in work}
    return PeerRun(
        t0, submitted, submit_end, jobs.finished, pods.created, end, jobs.failed, jobs.deleted_unseen, samples, stamps
    )


async def settle(kube: Kube, *, quiet_writes: int = 30, window: float = 2.0, limit: float = 120.0) -> float:
    """Wait (at most `limit` s) until the API server takes fewer than `quiet_writes` mutating requests
    in `window` s: the tail of the phase before (status writes, TTL deletions, garbage collection)
    stays out of the next one's figures. Returns the seconds waited."""
    started = time.monotonic()
    before = request_counts(await kube.text("/metrics"))
    while time.monotonic() - started < limit:
        await asyncio.sleep(window)
        after = request_counts(await kube.text("/metrics"))
        moved = {k: int(v - before.get(k, 0.0)) for k, v in after.items()}
        if writes(moved) < quiet_writes:
            break
        before = after
    return time.monotonic() - started


# ---- Kueue ----------------------------------------------------------------------------------------
def _script(repo: Path, *args: str, timeout: float) -> str:
    out = subprocess.run(
        ["bash", str(repo / "hack" / "cluster" / "kueue.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-6:])
        raise PeerUnavailable(f"hack/cluster/kueue.sh {' '.join(args) or 'build'} failed: {tail}")
    return out.stdout.strip().splitlines()[-1]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _namespace_wrapper(upper: Path, work: Path) -> list[str]:
    """The command prefix that runs the binary with /etc/kueue/metrics/certs from `upper` (an
    overlay over /etc in a private mount namespace), or [] when the host already has that file."""
    if Path("/etc/kueue/metrics/certs/tls.crt").exists():
        return []
    if shutil.which("unshare") is None:
        raise PeerUnavailable("Kueue reads its metrics certificate from /etc/kueue/metrics/certs: no `unshare` here")
    ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]
    script = 'u=$1; w=$2; shift 2; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$u,workdir=$w" /etc && exec "$@"'
    return [*ns, "sh", "-c", script, "kueue-etc", str(upper), str(work)]


@dataclass
class Kueue:
    """A running Kueue controller manager (a host process of the bench)."""

    pid: int
    binary: str
    version: str
    health_port: int
    metrics_port: int
    log: Path
    started_s: float  # process start → ready

    def alive(self) -> None:
        if not procs.pid_alive(self.pid):
            raise RuntimeError(f"Kueue (pid {self.pid}) exited: {_log_tail(self.log)}")

    def stop(self) -> None:
        procs.stop_pid(self.pid)


async def start_kueue(
    h: Harness, *, timeout: float = 120, log_level: str = KUEUE_LOG_LEVEL, concurrency: Mapping[str, int] | None = None
) -> Kueue:
    """Build (when not cached) and start Kueue against the bench cluster, with its CRDs installed.
    Raises PeerUnavailable when it cannot build or start."""
    assert h.info is not None
    binary = await asyncio.to_thread(_script, h.repo, "build", timeout=3600)
    crds = await asyncio.to_thread(_script, h.repo, "crds", timeout=600)
    version = Path(binary).parent.parent.name.removeprefix("kueue-").rsplit("-", 1)[0]
    env = h.info.env()
    for args in (
        ["apply", "--server-side", "--force-conflicts", "-f", crds],
        ["wait", "--for=condition=Established", "--timeout=60s", "-f", crds],
    ):
        out = await asyncio.to_thread(subprocess.run, [h.info.kubectl, *args], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise PeerUnavailable(f"Kueue's CRDs: kubectl {args[0]} failed: {out.stderr.strip()[-400:]}")
    with contextlib.suppress(ApiError):  # Kueue's own namespace (events, its configuration's default)
        await h.k.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}}
        )
    state = h.state / "kueue"
    state.mkdir(parents=True, exist_ok=True)
    pki = Path(h.info.state_dir) / "pki"
    hosts = ["127.0.0.1", "localhost"]
    webhook_certs = serving_cert_dir(pki, "kueue", hosts, state / "webhook-certs")
    upper, work = state / "etc-upper", state / "etc-work"
    work.mkdir(parents=True, exist_ok=True)
    serving_cert_dir(pki, "kueue", hosts, upper / "kueue" / "metrics" / "certs")
    wrapper = _namespace_wrapper(upper, work)
    for attempt in range(3):
        try:
            return await _launch(
                h, state, wrapper, binary, version, str(webhook_certs), log_level, concurrency, timeout
            )
        except _PortTaken:  # a free port picked was taken before Kueue bound it: pick others
            if attempt == 2:
                raise PeerUnavailable("Kueue could not bind its ports three times") from None
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    pass


async def _launch(
    h: Harness,
    state: Path,
    wrapper: list[str],
    binary: str,
    version: str,
    cert_dir: str,
    log_level: str,
    concurrency: Mapping[str, int] | None,
    timeout: float,
) -> Kueue:
    assert h.info is not None
    ports: list[int] = []
    while len(ports) < 3:
        port = procs.free_port()
        if port not in ports:
            ports.append(port)
    config = kueue_config(
        health_port=ports[0],
        metrics_port=ports[1],
        webhook_port=ports[2],
        cert_dir=cert_dir,
        concurrency=concurrency,
    )
    (state / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    argv = [
        *wrapper,
        binary,
        f"--config={state / 'config.yaml'}",
        f"--kubeconfig={h.info.kubeconfig}",
        f"--zap-log-level={log_level}",
    ]
    log = state / "kueue.log"
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.monotonic()
    pid = procs.spawn(argv, log, env=h.info.env(), cwd=state)
    h.peer_pids["kueue"] = pid
    kueue = Kueue(pid, binary, version, ports[0], ports[1], log, 0.0)
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(_http_ok, f"http://127.0.0.1:{ports[0]}/readyz"):
        if not procs.pid_alive(pid):
            h.peer_pids.pop("kueue", None)
            if b"address already in use" in log.read_bytes()[offset:]:
                raise _PortTaken()
            raise PeerUnavailable(f"Kueue exited at start ({log}): {_log_tail(log)}")
        if time.monotonic() > deadline:
            await asyncio.to_thread(kueue.stop)
            h.peer_pids.pop("kueue", None)
            raise PeerUnavailable(f"Kueue not ready after {timeout:.0f}s ({log}): {_log_tail(log)}")
        await asyncio.sleep(0.2)
    kueue.started_s = round(time.monotonic() - t0, 2)
    return kueue


async def stop_kueue(h: Harness, kueue: Kueue) -> None:
    await asyncio.to_thread(kueue.stop)
    h.peer_pids.pop("kueue", None)


async def kueue_queues_up(
    kube: Kube, objects: list[tuple[str, dict[str, Any]]], kueue: Kueue, timeout: float = 60
) -> None:
    """Create the flavor and queues; wait until Kueue reports the ClusterQueue Active."""
    for path, body in objects:
        await kube.create(path, body)
    cq = next(f"{p}/{b['metadata']['name']}" for p, b in objects if b["kind"] == "ClusterQueue")

    async def active() -> bool:
        kueue.alive()
        conds = ((await kube.get(cq)).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Active" and c.get("status") == "True" for c in conds)

    deadline = time.monotonic() + timeout
    while not await active():
        if time.monotonic() > deadline:
            raise PeerUnavailable(f"Kueue never reported ClusterQueue {cq} Active ({kueue.log})")
        await asyncio.sleep(0.2)


async def kueue_queues_down(
    kube: Kube, ns: str, objects: list[tuple[str, dict[str, Any]]], timeout: float = 120
) -> int:
    """While Kueue runs: wait (bounded) for the namespace's Workloads to go (their Jobs were deleted
    after they finished), then delete the queues and the flavor (Kueue lifts its finalizers).
    Whatever is left at the deadline loses its finalizers, so that the namespace can be deleted
    once Kueue is stopped. Returns the Workloads still there at the deadline."""
    wl_path = f"{KUEUE_API}/namespaces/{ns}/workloads"
    deadline = time.monotonic() + timeout
    left: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        left, _ = await kube.list_all(wl_path)
        if not left:
            break
        await asyncio.sleep(1.0)
    paths = [f"{p}/{b['metadata']['name']}" for p, b in reversed(objects)]
    for path in paths:
        await kube.delete(path)
    while time.monotonic() < deadline:
        present = 0
        for path in paths:
            try:
                await kube.get(path)
                present += 1
            except ApiError as e:
                if e.status != 404:
                    raise
        if not present:
            break
        await asyncio.sleep(0.5)
    stuck = [f"{wl_path}/{w['metadata']['name']}" for w in left] + paths
    for path in stuck:
        with contextlib.suppress(ApiError):
            await kube.merge_patch(path, {"metadata": {"finalizers": None}})
    return len(left)
