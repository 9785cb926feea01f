"""aws_api: kubatch's AWS Batch API (``kubatch api serve``) under load, beside direct BatchJob creates.

- **SubmitJob**: calls per second with boto3 from ``THREADS`` parallel threads (one client per
  thread, no retries) through ``kubatch api serve``, run as a subprocess on a loopback port with
  ``--insecure-http`` and signing with an access key of a ServiceAccount; beside the same number of
  BatchJobs created directly (``THREADS`` in flight, the same manifest SubmitJob makes, as the same
  ServiceAccount through impersonation, ``fieldValidation=Strict``): what the API adds over a create.
  Rounds alternate (direct, API, API, direct, ...) so that both see the same load on a shared machine.
- **DescribeJobs**: latency (p50/p99) of calls of 100 jobIds each, one after another; beside the
  label-selector list of the same 100 ids (``kubatch.dev/job-id in (...)``) made directly: what
  DescribeJobs reads.

The jobs never run (their queue's only environment is DISABLED: they wait RUNNABLE), so the
operator's share of the machine is the same for both kinds of submission. CPU per process (the API
server, kube-apiserver, the operator, the benchmark's own process with the boto3 threads) is taken
per phase. AWS throttles SubmitJob at 50 calls per second per account.

Run it in the benchmark (``python -m bench.run --only aws_api [--quick] [--profile]``: py-spy on the
API server) or against a running cluster::

    python -m bench.scenarios.aws_api --kubeconfig .kubatch/kubeconfig [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import POOL_LABEL, Harness
from bench.probes import counts_delta, cpu_seconds, request_counts
from bench.profiler import PySpy
from bench.report import Result, Row, quantile
from bench.trackers import GROUP_PATH
from kubatch.awsapi.impersonation import ImpersonatingKube
from kubatch.awsapi.jobs import name_suffix, submit_manifest
from kubatch.awsapi.keys import Identity
from kubatch.awsapi.keystore import KeyStore
from kubatch.cluster.client import ApiError, Kube

THREADS = 16
IDS_PER_DESCRIBE = 100
LABEL_JOB_ID = "kubatch.dev/job-id"
METHODS = ("direct", "api")
SERVICE_ACCOUNT = "submitter"


@dataclass(frozen=True)
class Sizes:
    rounds: int  # of each method
    jobs_per_round: int
    describe_calls: int


def sizes(quick: bool) -> Sizes:
    return Sizes(2, 150, 20) if quick else Sizes(3, 500, 100)


# ---- pure helpers ------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float | None:
    """Calls per second (None for no time)."""
    return count / seconds if seconds > 0 else None


def order(rounds: int) -> list[str]:
    """The phases in the order they run: pairs alternate which method goes first (direct, api, api,
    direct, ...), so that a load that drifts during the run weighs on both alike."""
    out: list[str] = []
    for i in range(rounds):
        out += list(METHODS) if i % 2 == 0 else list(reversed(METHODS))
    return out


def chunks(values: Sequence[str], size: int) -> list[list[str]]:
    """``values`` in consecutive lists of ``size`` (the last one shorter)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


def label_selector(ids: Sequence[str]) -> str:
    """The selector DescribeJobs uses for these jobIds."""
    return f"{LABEL_JOB_ID} in ({','.join(ids)})" if len(ids) > 1 else f"{LABEL_JOB_ID}={ids[0]}"


def submission_requests(counts: dict[str, int]) -> dict[str, int]:
    """The requests a submission path makes, of those the API server counted in a phase: not the
    operator's status writes and events (the same for both paths, and written when its coalescing
    says, not when the job was submitted)."""
    return {k: n for k, n in counts.items() if not k.split(" (")[0].endswith("/status") and " events" not in k}


@dataclass
class Phase:
    """One round of one method: how many submissions, in how long, each one's latency."""

    method: str
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per process, trailing writes included
    requests: dict[str, int] = field(default_factory=dict)  # API server requests by 'VERB resource'

    @property
    def rate(self) -> float | None:
        return rate(self.count - len(self.errors), self.seconds)


def combine(phases: Sequence[Phase], method: str) -> dict[str, Any]:
    """A method's figures over its rounds: submissions per second over all its time, the rate of
    each round, latency quantiles, errors, CPU milliseconds and Kubernetes API requests per job."""
    mine = [p for p in phases if p.method == method]
    done = sum(p.count - len(p.errors) for p in mine)
    seconds = sum(p.seconds for p in mine)
    latencies = [x for p in mine for x in p.latencies]
    cpu: dict[str, float] = {}
    requests: dict[str, int] = {}
    for p in mine:
        for name, used in p.cpu_s.items():
            cpu[name] = cpu.get(name, 0.0) + used
        for key, n in p.requests.items():
            requests[key] = requests.get(key, 0) + n
    per_job = {n: round(1000 * v / done, 2) for n, v in cpu.items() if v > 0} if done else {}
    return {
        "submitted": done,
        "seconds": round(seconds, 3),
        "per_s": rate(done, seconds),
        "per_s_by_round": [p.rate for p in mine],
        "p50_s": quantile(latencies, 0.5),
        "p99_s": quantile(latencies, 0.99),
        "errors": [e for p in mine for e in p.errors][:10],
        "error_count": sum(len(p.errors) for p in mine),
        "cpu_ms_per_job": per_job,
        "cpu_ms_per_job_total": round(sum(per_job.values()), 2),
        "requests_per_job": {k: round(n / done, 2) for k, n in requests.items()} if done else {},
        "requests_per_job_total": round(sum(requests.values()) / done, 2) if done else None,
    }


_SERVED = re.compile(r"kubatch\.awsapi\.server: (\w+) key=\S+ status=(\d+) ([0-9.]+)ms")


def server_times(log: str, operation: str) -> list[float]:
    """Seconds the API server took for each successful ``operation`` in its ``--verbose`` log (from
    the request read to the answer ready: the client's latency less the HTTP hop and boto3)."""
    return [float(m[3]) / 1000 for m in _SERVED.finditer(log) if m[1] == operation and m[2] == "200"]


def load_line() -> str:
    """The load averages (1, 5, 15 min), as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


# ---- the API server as a process ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubatch_command() -> list[str]:
    exe = Path(sys.executable).parent / "kubatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kubatch.cli.main"]


@contextlib.contextmanager
def api_server(kubeconfig: str, keys_namespace: str, log: Path, timeout: float = 60) -> Iterator[tuple[str, int]]:
    """``kubatch api serve`` on a free loopback port (plain HTTP); yields (URL, pid) once /healthz
    answers, stops it (SIGINT) at the end."""
    port = free_port()
    cmd = [
        *kubatch_command(), "--kubeconfig", kubeconfig, "api", "serve", "--listen", f"127.0.0.1:{port}",
        "--insecure-http", "--keys-namespace", keys_namespace, "--verbose",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kubatch api serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"kubatch api serve did not answer /healthz within {timeout:.0f}s")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- the phases ----------------------------------------------------------------------------------


def boto3_clients(url: str, key_id: str, secret: str, count: int) -> list[Any]:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return [
        boto3.client(
            "batch",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2),
        )
        for _ in range(count)
    ]


def submit_api(clients: Sequence[Any], bodies: Sequence[dict[str, Any]]) -> tuple[Phase, list[str]]:
    """SubmitJob for each body from ``len(clients)`` threads (client i on thread i); the jobIds."""
    threads = len(clients)
    lanes = [bodies[i::threads] for i in range(threads)]
    latencies: list[float] = []
    errors: list[str] = []
    ids: list[str] = []

    def lane(i: int) -> None:
        for body in lanes[i]:
            t = time.monotonic()
            try:
                ids.append(clients[i].submit_job(**body)["jobId"])
                latencies.append(time.monotonic() - t)
            except Exception as e:  # counted and shown, the run goes on
                errors.append(f"{type(e).__name__}: {e}"[:300])

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lane, range(threads)))
    return Phase("api", len(bodies), time.monotonic() - t0, latencies, errors), ids


async def submit_direct(kube: Kube, ns: str, bodies: Sequence[dict[str, Any]], threads: int) -> Phase:
    """The BatchJob SubmitJob would make for each body, created directly, ``threads`` in flight."""
    path = f"{GROUP_PATH}/namespaces/{ns}/batchjobs"
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def lane() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            manifest = submit_manifest(body, ns, {}, int(time.time() * 1000), name_suffix())
            t = time.monotonic()
            try:
                await kube.request("POST", path, params={"fieldValidation": "Strict"}, body=manifest, retries=0)
                latencies.append(time.monotonic() - t)
            except ApiError as e:
                errors.append(str(e)[:300])

    t0 = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(threads)))
    return Phase("direct", len(bodies), time.monotonic() - t0, latencies, errors)


def describe_api(client: Any, groups: Sequence[Sequence[str]], calls: int) -> tuple[list[float], int]:
    """``calls`` DescribeJobs, one after another, cycling through ``groups`` of ids; the latencies
    and the number of jobs the last call returned."""
    latencies: list[float] = []
    returned = 0
    for i in range(calls):
        ids = list(groups[i % len(groups)])
        t = time.monotonic()
        returned = len(client.describe_jobs(jobs=ids)["jobs"])
        latencies.append(time.monotonic() - t)
    return latencies, returned


async def list_direct(kube: Kube, ns: str, groups: Sequence[Sequence[str]], calls: int) -> list[float]:
    """The label-selector list DescribeJobs makes, directly, for the same groups."""
    path = f"{GROUP_PATH}/namespaces/{ns}/batchjobs"
    latencies = []
    for i in range(calls):
        t = time.monotonic()
        await kube.get(path, labelSelector=label_selector(groups[i % len(groups)]))
        latencies.append(time.monotonic() - t)
    return latencies


# ---- the scenario --------------------------------------------------------------------------------


async def prepare(h: Harness) -> tuple[str, str, str, str]:
    """A namespace with a ServiceAccount allowed to submit, a DISABLED environment and a queue on it,
    a job definition; the keys namespace. (namespace, queue, definition, keys namespace)"""
    tag = uuid.uuid4().hex[:4]
    ce = q = f"awsapi-{tag}"
    await h.apply_cluster(
        "computeenvironments", {"type": "UNMANAGED", "state": "DISABLED", "nodeSelector": {POOL_LABEL: ce}}, ce
    )
    await h.apply_cluster(
        "jobqueues",
        {"priority": 1, "state": "ENABLED", "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": ce}]},
        q,
    )
    ns = await h.namespace("awsapi")
    keys = await h.namespace("awsapi-keys")
    await h.k.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": SERVICE_ACCOUNT}})
    rules = [
        {
            "apiGroups": ["kubatch.dev"],
            "resources": ["batchjobs"],
            "verbs": ["create", "get", "list", "watch", "patch"],
        },
        {"apiGroups": ["kubatch.dev"], "resources": ["jobdefinitions"], "verbs": ["get", "list"]},
    ]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    await h.k.create(f"{rbac}/namespaces/{ns}/roles", {"metadata": {"name": SERVICE_ACCOUNT}, "rules": rules})
    await h.k.create(
        f"{rbac}/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": SERVICE_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}],
        },
    )
    definition = await h.definition(ns, "work")
    return ns, q, definition, keys


async def run(h: Harness, quick: bool) -> Result:
    assert h.info is not None
    size = sizes(quick)
    ns, queue, definition, keys_ns = await prepare(h)
    identity = Identity(service_account=(ns, SERVICE_ACCOUNT))
    key = await KeyStore(h.k, namespace=keys_ns).create(ns, identity)
    as_sa = ImpersonatingKube(h.k, identity)
    load_before = load_line()
    phases: list[Phase] = []
    api_ids: list[str] = []
    log = Path(tempfile.mkdtemp(prefix="kubatch-bench-awsapi-")) / "api-serve.log"
    try:
        with api_server(h.info.kubeconfig, keys_ns, log) as (url, pid):
            pids = {**h.pids(), "api-server": pid}
            clients = await asyncio.to_thread(boto3_clients, url, key.access_key_id, key.secret_access_key, THREADS)
            # Warm up both paths (connections, the key, the queue and definition checks).
            warm = [{"jobName": f"warm-{i}", "jobQueue": queue, "jobDefinition": definition} for i in range(THREADS)]
            await asyncio.to_thread(submit_api, clients, warm)
            await submit_direct(as_sa, ns, warm, THREADS)
            spy = PySpy(pid, "aws_api-server", rate=50) if h.profile else None
            logged = log.stat().st_size
            for i, method in enumerate(order(size.rounds)):
                bodies = [
                    {"jobName": f"{method}-{i}-{j}", "jobQueue": queue, "jobDefinition": definition}
                    for j in range(size.jobs_per_round)
                ]
                cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
                requests0 = request_counts(await h.k.text("/metrics"))
                if method == "api":
                    phase, ids = await asyncio.to_thread(submit_api, clients, bodies)
                    api_ids += ids
                else:
                    phase = await submit_direct(as_sa, ns, bodies, THREADS)
                phase.cpu_s = {n: cpu_seconds(p) - cpu0[n] for n, p in pids.items()}
                requests1 = request_counts(await h.k.text("/metrics"))
                phase.requests = submission_requests(counts_delta(requests1, requests0))
                phases.append(phase)
                print(f"  {method:6} round {i // 2 + 1}: {phase.rate or 0:.0f}/s", file=sys.stderr, flush=True)
            profile = spy.stop() if spy else {}
            with log.open() as f:
                f.seek(logged)
                served_submit = server_times(f.read(), "SubmitJob")
                logged = f.tell()
            groups = chunks(api_ids, IDS_PER_DESCRIBE)
            describe, returned = await asyncio.to_thread(describe_api, clients[0], groups, size.describe_calls)
            listed = await list_direct(as_sa, ns, groups, size.describe_calls)
            with log.open() as f:
                f.seek(logged)
                served_describe = server_times(f.read(), "DescribeJobs")
    finally:
        await as_sa.close()
    shutil.rmtree(log.parent, ignore_errors=True)
    api, direct = combine(phases, "api"), combine(phases, "direct")
    figures: dict[str, Any] = {
        "threads": THREADS,
        "rounds": size.rounds,
        "jobs_per_round": size.jobs_per_round,
        "load_before": load_before,
        "load_after": load_line(),
        "submit_api": api,
        "submit_direct": direct,
        "api_vs_direct": (api["per_s"] / direct["per_s"]) if api["per_s"] and direct["per_s"] else None,
        "describe_ids_per_call": IDS_PER_DESCRIBE,
        "describe_calls": size.describe_calls,
        "describe_jobs_returned": returned,
        "describe_p50_s": quantile(describe, 0.5),
        "describe_p99_s": quantile(describe, 0.99),
        "label_list_p50_s": quantile(listed, 0.5),
        "label_list_p99_s": quantile(listed, 0.99),
        "server_submit_p50_s": quantile(served_submit, 0.5),
        "server_submit_p99_s": quantile(served_submit, 0.99),
        "server_describe_p50_s": quantile(served_describe, 0.5),
        "server_describe_p99_s": quantile(served_describe, 0.99),
        "api_server_profile": profile,
    }
    rows = [
        Row(f"SubmitJob/s, boto3, {THREADS} threads", api["per_s"], direct["per_s"], "jobs/s"),
        Row("p50 SubmitJob latency", api["p50_s"], direct["p50_s"], "s"),
        Row("p99 SubmitJob latency", api["p99_s"], direct["p99_s"], "s"),
        Row("p50 SubmitJob inside the API server", figures["server_submit_p50_s"], direct["p50_s"], "s"),
        Row(f"p50 DescribeJobs ({IDS_PER_DESCRIBE} ids)", figures["describe_p50_s"], figures["label_list_p50_s"], "s"),
        Row(f"p99 DescribeJobs ({IDS_PER_DESCRIBE} ids)", figures["describe_p99_s"], figures["label_list_p99_s"], "s"),
        Row("API server CPU per job", api["cpu_ms_per_job"].get("api-server"), None, "ms"),
        Row(
            "client CPU per job (boto3 / aiohttp)",
            api["cpu_ms_per_job"].get("bench-client"),
            direct["cpu_ms_per_job"].get("bench-client"),
            "ms",
        ),
        Row(
            "kube-apiserver CPU per job",
            api["cpu_ms_per_job"].get("kube-apiserver"),
            direct["cpu_ms_per_job"].get("kube-apiserver"),
            "ms",
        ),
        Row("CPU per job, all processes", api["cpu_ms_per_job_total"], direct["cpu_ms_per_job_total"], "ms"),
        Row("Kubernetes API requests per job", api["requests_per_job_total"], direct["requests_per_job_total"], ""),
    ]
    notes = [
        f"baseline: the same BatchJobs created directly, {THREADS} in flight, as the same ServiceAccount; "
        f"DescribeJobs beside the label-selector list it makes; AWS throttles SubmitJob at 50/s",
        "inside the API server: from the request read to the answer ready (its --verbose log)",
        f"{size.rounds} rounds of {size.jobs_per_round} per method, alternating; {load_before} before, "
        f"{figures['load_after']} after",
    ]
    if api["error_count"] or direct["error_count"]:
        first = (api["errors"] + direct["errors"])[:2]
        notes.append(f"errors: api {api['error_count']}, direct {direct['error_count']}: {first}")
    return Result("aws_api", rows, figures, notes)


# ---- against a running cluster -----------------------------------------------------------------


async def standalone(repo: Path, kubeconfig: str, quick: bool, profile: bool) -> Result:
    """The scenario against an existing cluster (the shared test cluster, say): the objects it makes
    are deleted at the end."""
    from kubatch.devcluster.cluster import LocalCluster

    state = Path(kubeconfig).parent
    h = Harness(repo)
    h.info = LocalCluster(repo, state_dir=state).read_info()
    if h.info is None:
        raise SystemExit(f"no cluster.json beside {kubeconfig}")
    h.kube = await Kube.connect(kubeconfig, max_connections=THREADS + 16)
    h.profile = profile
    with contextlib.suppress(OSError, ValueError, KeyError):
        h.info.pids["operator"] = int(json.loads((state / "operator.json").read_text())["pid"])
    try:
        return await run(h, quick)
    finally:
        await h.cleanup_cluster_objects(settle_timeout=0)
        await h.close()


def main() -> None:
    from bench.report import table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the API server")
    args = parser.parse_args()
    result = asyncio.run(
        standalone(Path(__file__).resolve().parents[2], os.path.abspath(args.kubeconfig), args.quick, args.profile)
    )
    print(table(result))
    print(json.dumps(result.figures, indent=1, default=str))


if __name__ == "__main__":
    main()
