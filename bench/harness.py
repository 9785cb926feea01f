"""The benchmark's own world: a private local cluster (load profile), CRDs, one operator process,
an API client, and helpers to make namespaces, kwok node pools, queues, definitions and jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import trackers
from bench.trackers import GROUP_PATH
from kubatch.cluster.client import ApiError, Kube
from kubatch.devcluster import operatorproc, procs
from kubatch.devcluster.cluster import ClusterInfo, LocalCluster, pid_alive
from kubatch.devcluster.nodes import kwok_node

GROUP = "kubatch.dev/v1alpha1"
CE_LABEL = "kubatch.dev/compute-environment"
POOL_LABEL = "bench.kubatch.dev/pool"
CONCURRENCY = 64  # parallel create calls, for kubatch submissions and baseline pods alike


class Harness:
    """Owns the bench cluster and operator for one `bench.run` invocation."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.state = repo / ".kubatch" / "bench"
        self.cluster = LocalCluster(repo, state_dir=self.state)
        self.info: ClusterInfo | None = None
        self.op: operatorproc.OperatorProcess | None = None
        self.kube: Kube | None = None
        self.nodes: list[str] = []
        self.cluster_objects: list[str] = []  # API paths to delete at the end
        self.namespaces: list[str] = []
        self.profile = False  # py-spy the operator where a scenario supports it
        self.profile_apiserver = False  # pprof the API server where a scenario supports it
        self.operator_env: dict[str, str] = {}  # settings of the operator under test (--operator-env)
        self.peer_pids: dict[str, int] = {}  # peers' processes (bench/peers.py): CPU accounted, stopped at down

    # ---- lifecycle ----------------------------------------------------------------------------
    async def up(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        operatorproc.stop(self.state)  # an operator left by an earlier `--keep` run
        self.info = await asyncio.to_thread(self.cluster.up, load_profile=True)
        crds = self.repo / "crds"
        env = self.info.env()
        for args in (
            ["apply", "--server-side", "--force-conflicts", "-f", str(crds)],
            ["wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds)],
        ):
            await asyncio.to_thread(
                subprocess.run, [self.info.kubectl, *args], env=env, check=True, capture_output=True
            )
        self.kube = await Kube.connect(self.info.kubeconfig, max_connections=CONCURRENCY + 16)
        await self.start_operator()

    async def start_operator(self, timeout: float = 300) -> operatorproc.OperatorProcess:
        """Start the operator under test; ``timeout`` bounds its start-up (every informer listed)."""
        assert self.info is not None
        self.op = await asyncio.to_thread(
            operatorproc.start,
            self.info,
            self.state,
            name="bench-operator",
            extra_env={"KUBATCH_LEADER_IDENTITY": "kubatch-bench", **self.operator_env},
            timeout=timeout,
        )
        # Recorded where `operatorproc.stop` (and so `LocalCluster.down`) finds it.
        (self.state / "operator.json").write_text(json.dumps(asdict(self.op)))
        trackers.WATCHED_PID = self.op.pid
        return self.op

    async def ensure_operator(self) -> bool:
        """Start the operator again if it exited (a Deployment would restart its container); True
        when it had to. A scenario must never run against a dead operator."""
        if self.op is not None and pid_alive(self.op.pid):
            return False
        await self.start_operator()
        return True

    async def stop_operator(self, *, kill: bool = False) -> None:
        trackers.WATCHED_PID = None
        if self.op is not None:
            import signal

            await asyncio.to_thread(procs.stop_pid, self.op.pid, signal.SIGKILL if kill else signal.SIGTERM)
            self.op = None

    async def down(self) -> None:
        for pid in self.peer_pids.values():
            await asyncio.to_thread(procs.stop_pid, pid)
        self.peer_pids.clear()
        await self.stop_operator()
        await self.close()
        await asyncio.to_thread(self.cluster.down)

    async def close(self) -> None:
        if self.kube is not None:
            await self.kube.close()

    @property
    def k(self) -> Kube:
        assert self.kube is not None
        return self.kube

    def pids(self) -> dict[str, int]:
        """Every process of the system under test, for CPU accounting."""
        assert self.info is not None
        pids = dict(self.info.pids)
        if self.op is not None:
            pids["operator"] = self.op.pid
        pids.update(self.peer_pids)
        import os

        pids["bench-client"] = os.getpid()
        return pids

    # ---- objects ------------------------------------------------------------------------------
    async def namespace(self, base: str) -> str:
        ns = f"{base}-{uuid.uuid4().hex[:5]}"
        await self.k.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

        async def sa() -> bool:
            try:
                await self.k.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
                return True
            except ApiError:
                return False

        deadline = time.monotonic() + 60
        while not await sa():
            if time.monotonic() > deadline:
                raise TimeoutError(f"namespace {ns}: no default ServiceAccount")
            await asyncio.sleep(0.1)
        self.namespaces.append(ns)
        return ns

    async def drop_namespace(self, ns: str) -> None:
        await self.k.delete(f"/api/v1/namespaces/{ns}", propagation="Background")

    async def add_nodes(self, pool: str, count: int, cpu: int, *, memory: str = "256Gi", pods: int = 250) -> list[str]:
        """kwok nodes labelled for `pool` (an UNMANAGED environment's nodeSelector); waits for Ready."""
        names = [f"{pool}-{uuid.uuid4().hex[:5]}" for _ in range(count)]
        sem = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with sem:
                await self.k.create(
                    "/api/v1/nodes", kwok_node(name, cpu=cpu, memory=memory, pods=pods, labels={POOL_LABEL: pool})
                )

        await asyncio.gather(*(one(n) for n in names))
        self.nodes += names
        return names

    async def wait_pool(self, ce: str, count: int, timeout: float = 120) -> None:
        """Until `count` nodes carry the environment's label and taint and are Ready."""

        async def ready() -> int:
            nodes = await self.k.get("/api/v1/nodes", labelSelector=f"{CE_LABEL}={ce}")
            n = 0
            for node in nodes["items"]:
                conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
                taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") == CE_LABEL]
                n += int(conds.get("Ready") == "True" and bool(taints))
            return n

        deadline = time.monotonic() + timeout
        while await ready() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pool {ce}: {count} nodes not ready")
            await asyncio.sleep(0.2)

    async def delete_nodes(self, names: Iterable[str]) -> None:
        sem = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with sem:
                await self.k.delete(f"/api/v1/nodes/{name}")

        await asyncio.gather(*(one(n) for n in names))

    async def environment(self, name: str, *, nodes: int, cpu: int, pods: int = 250, wait: bool = True) -> str:
        """An UNMANAGED compute environment over `nodes` fresh kwok nodes of `cpu` vCPUs."""
        if nodes:
            await self.add_nodes(name, nodes, cpu, pods=pods)
        await self.apply_cluster(
            "computeenvironments",
            {"type": "UNMANAGED", "state": "ENABLED", "nodeSelector": {POOL_LABEL: name}},
            name,
        )
        if wait and nodes:
            await self.wait_pool(name, nodes)
        return name

    async def apply_cluster(self, plural: str, spec: dict[str, Any], name: str) -> None:
        kind = {"computeenvironments": "ComputeEnvironment", "jobqueues": "JobQueue"}[plural]
        path = f"{GROUP_PATH}/{plural}"
        await self.k.create(path, {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name}, "spec": spec})
        self.cluster_objects.append(f"{path}/{name}")

    async def queue(self, name: str, envs: list[str], priority: int = 1) -> str:
        order = [{"order": i + 1, "computeEnvironment": e} for i, e in enumerate(envs)]
        await self.apply_cluster(
            "jobqueues", {"priority": priority, "state": "ENABLED", "computeEnvironmentOrder": order}, name
        )
        return name

    async def definition(
        self, ns: str, name: str, *, vcpus: int = 1, memory_mib: int = 64, spec: dict[str, Any] | None = None
    ) -> str:
        """A container JobDefinition of `vcpus` (or `spec` as given); waits for its first revision."""
        spec = spec or {
            "type": "container",
            "containerProperties": {
                "image": "busybox:1.36",
                "command": ["sh", "-c", "true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": str(vcpus)},
                    {"type": "MEMORY", "value": str(memory_mib)},
                ],
            },
        }
        path = f"{GROUP_PATH}/namespaces/{ns}/jobdefinitions"
        body = {"apiVersion": GROUP, "kind": "JobDefinition", "metadata": {"name": name, "namespace": ns}, "spec": spec}
        await self.k.create(path, body)
        deadline = time.monotonic() + 60
        while not ((await self.k.get(f"{path}/{name}")).get("status") or {}).get("revision"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job definition {name} never got a revision")
            await asyncio.sleep(0.1)
        return name

    async def cleanup_cluster_objects(self, *, settle_timeout: float = 900) -> float:
        """Drop what a scenario made: namespaces (their jobs and pods), environments, queues, nodes;
        then wait (bounded) until the namespaces are gone, so that the next scenario does not share
        the API server with the deletion of this one's objects. Returns the seconds waited."""
        dropped = list(self.namespaces)
        for ns in dropped:
            await self.drop_namespace(ns)
        self.namespaces.clear()
        started = time.monotonic()
        for ns in dropped:
            while time.monotonic() - started < settle_timeout:
                try:
                    await self.k.get(f"/api/v1/namespaces/{ns}")
                except ApiError as e:
                    if e.status == 404:
                        break
                    raise
                await asyncio.sleep(1)
        for path in reversed(self.cluster_objects):
            # Queues and environments go only once DISABLED (AWS Batch's rule, which kubatch keeps).
            with contextlib.suppress(ApiError):
                await self.k.merge_patch(path, {"spec": {"state": "DISABLED"}})
            await self.k.delete(path)
        self.cluster_objects.clear()
        if self.nodes:
            await self.delete_nodes(self.nodes)
            self.nodes.clear()
        return time.monotonic() - started


def job_manifest(ns: str, name: str, queue: str, definition: str, duration: str, **spec: Any) -> dict[str, Any]:
    body = {
        "jobQueue": queue,
        "jobDefinition": definition,
        "podMetadata": {"annotations": {"sim.kubatch.dev/duration": duration}},
        **spec,
    }
    return {"apiVersion": GROUP, "kind": "BatchJob", "metadata": {"name": name, "namespace": ns}, "spec": body}


async def submit(
    kube: Kube, ns: str, manifests: list[dict[str, Any]], concurrency: int = CONCURRENCY
) -> dict[str, float]:
    """Create BatchJobs with bounded concurrency; returns each job's submit time (request start)."""
    sem = asyncio.Semaphore(concurrency)
    times: dict[str, float] = {}
    path = f"{GROUP_PATH}/namespaces/{ns}/batchjobs"

    async def one(m: dict[str, Any]) -> None:
        async with sem:
            times[m["metadata"]["name"]] = time.time()
            await kube.create(path, m)

    await asyncio.gather(*(one(m) for m in manifests))
    return times
