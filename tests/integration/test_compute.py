"""Managed compute environments on the real control plane: kwok nodes appear for pending pods,
kube-scheduler binds the pods, idle nodes go away; GPU nodes; minvCpus and CREATING; infrastructure
updates (UPDATING); nodes that never join (INVALID); deletion (DELETING, finalizer); UNMANAGED cleanup.

Each test runs its own informers and a ComputeController restricted to its own environments
(`env_filter`, and the `kubatch.dev/compute-controller` annotation that keeps other controllers
away) with pool labelling off, so tests running in parallel never touch each other's environments
or nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import pytest

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.informer import Informer
from kubatch.cluster.provisioners import KwokProvisioner
from kubatch.cluster.view import View
from kubatch.core.capacity import node_ready
from kubatch.core.instances import InstanceType
from kubatch.devcluster.cluster import ClusterInfo
from kubatch.runtime.compute import ANNOTATION_CONTROLLER, FINALIZER, JOIN_FAILURE, ComputeController
from tests.integration.helpers import NodeFactory

pytestmark = pytest.mark.integration

CE_PATH = "/apis/kubatch.dev/v1alpha1/computeenvironments"
CE_LABEL = "kubatch.dev/compute-environment"
JSON = dict[str, Any]


class Harness:
    """Informers + view + controllers for one test; cleans up its environments afterwards."""

    def __init__(self, kube: Kube, view: View, prefix: str) -> None:
        self.kube = kube
        self.view = view
        self.prefix = prefix
        self.tasks: list[asyncio.Task[None]] = []
        self.envs: list[str] = []

    def controller(self, **kw: Any) -> ComputeController:
        ctl = ComputeController(
            self.kube,
            self.view,
            period=0.3,
            env_filter=lambda n: n.startswith(self.prefix),
            manage_pools=False,
            controller_name=self.prefix,
            **kw,
        )
        ctl.ready.set()
        self.tasks.append(asyncio.create_task(ctl.run()))
        return ctl

    async def create_env(self, suffix: str, spec: JSON) -> str:
        name = f"{self.prefix}-{suffix}"
        # The annotation keeps any other compute controller on this cluster (an operator under test
        # elsewhere) away from this environment.
        metadata = {"name": name, "annotations": {ANNOTATION_CONTROLLER: self.prefix}}
        body = {"apiVersion": "kubatch.dev/v1alpha1", "kind": "ComputeEnvironment", "metadata": metadata, "spec": spec}
        await self.kube.create(CE_PATH, body)
        self.envs.append(name)
        return name

    def env(self, name: str) -> JSON:
        return self.view.envs.get(name) or {}

    def status(self, name: str) -> JSON:
        return self.env(name).get("status") or {}

    def nodes(self, ce: str) -> list[JSON]:
        return [n for n in self.view.nodes.values() if (n["metadata"].get("labels") or {}).get(CE_LABEL) == ce]

    def pods(self, job: str, ns: str) -> list[JSON]:
        return list(self.view.pods.get(f"{ns}/{job}", {}).values())

    async def create_pods(
        self, ns: str, ce: str, job: str, n: int, *, cpu: str = "1", gpus: int = 0, duration: str = "4s"
    ) -> None:
        for i in range(n):
            await self.kube.create(
                f"/api/v1/namespaces/{ns}/pods", job_pod(f"{job}-{i}", ce, job, cpu=cpu, gpus=gpus, duration=duration)
            )

    async def delete_env(self, name: str) -> None:
        """Delete an environment the way that lets it go: DISABLED first (an ENABLED one's deletion
        waits, as AWS deletes only a disabled environment)."""
        with contextlib.suppress(ApiError):
            await self.kube.merge_patch(f"{CE_PATH}/{name}", {"spec": {"state": "DISABLED"}})
        await self.kube.delete(f"{CE_PATH}/{name}")

    async def close(self) -> None:
        for name in self.envs:
            await self.delete_env(name)
        deadline = time.monotonic() + 30
        while any(n in self.view.envs for n in self.envs) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for name in self.envs:  # the controller did not finish: do not leave anything behind
            with contextlib.suppress(ApiError):
                await self.kube.merge_patch(f"{CE_PATH}/{name}", {"metadata": {"finalizers": None}})
            nodes, _ = await self.kube.list_all("/api/v1/nodes", label_selector=f"{CE_LABEL}={name}")
            for node in nodes:
                await self.kube.delete(f"/api/v1/nodes/{node['metadata']['name']}")
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.kube.close()


def job_pod(name: str, ce: str, job: str, *, cpu: str, gpus: int, duration: str) -> JSON:
    resources: JSON = {"requests": {"cpu": cpu, "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    tolerations = [{"key": CE_LABEL, "operator": "Equal", "value": ce, "effect": "NoSchedule"}]
    if gpus:
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"kubatch.dev/job-name": job, CE_LABEL: ce},
            "annotations": {"sim.kubatch.dev/duration": duration},
        },
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {CE_LABEL: ce},
            "tolerations": tolerations,
            "containers": [{"name": "main", "image": "busybox:1.36", "resources": resources}],
        },
    }


def managed(instance_types: Sequence[str], *, max_vcpus: int = 8, min_vcpus: int = 0, **extra: Any) -> JSON:
    return {
        "type": "MANAGED",
        "computeResources": {
            "type": "EC2",
            "minvCpus": min_vcpus,
            "maxvCpus": max_vcpus,
            "instanceTypes": list(instance_types),
            "allocationStrategy": "BEST_FIT_PROGRESSIVE",
            "provisioner": "kwok",
            **extra,
        },
    }


async def until(pred: Callable[[], Any], timeout: float, what: str, *, every: Callable[[], None] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if every is not None:
            every()
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def harness(cluster: ClusterInfo, crds: None) -> AsyncIterator[Harness]:
    kube = await Kube.connect(cluster.kubeconfig)
    view = View()
    informers = [
        Informer(kube, "/api/v1/nodes", view.on_node),
        Informer(kube, CE_PATH, lambda t, o: view.on_named(view.envs, t, o)),
        Informer(kube, "/api/v1/pods", view.on_pod, label_selector="kubatch.dev/job-name"),
    ]
    h = Harness(kube, view, f"tc-{uuid.uuid4().hex[:6]}")
    h.tasks += [asyncio.create_task(i.run()) for i in informers]
    await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), 30)
    yield h
    await h.close()


def vcpus(nodes: Sequence[Mapping[str, Any]]) -> float:
    return sum(float(n["status"]["capacity"]["cpu"]) for n in nodes)


# ---- tests ---------------------------------------------------------------------------------------
async def test_scales_out_for_pending_pods_and_back_to_zero(harness: Harness, namespace: str) -> None:
    h = harness
    h.controller(idle_seconds=2)
    ce = await h.create_env("cpu", managed(["m5.large", "m5.xlarge"], max_vcpus=8))
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID with minvCpus 0")
    assert FINALIZER in h.env(ce)["metadata"]["finalizers"]
    assert h.nodes(ce) == []

    peak = [0.0]

    def sample() -> None:
        peak[0] = max(peak[0], vcpus(h.nodes(ce)))

    t0 = time.monotonic()
    await h.create_pods(namespace, ce, "six", 6, duration="6s")
    await until(
        lambda: all(p["spec"].get("nodeName") for p in h.pods("six", namespace)) and len(h.pods("six", namespace)) == 6,
        180,
        "6 pods bound",
        every=sample,
    )
    bound_after = time.monotonic() - t0
    nodes = h.nodes(ce)
    assert {p["spec"]["nodeName"] for p in h.pods("six", namespace)} <= {n["metadata"]["name"] for n in nodes}
    assert peak[0] <= 8 + 4, f"pool reached {peak[0]} vCPUs (max 8 + one m5.xlarge)"
    for n in nodes:
        labels = n["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] in ("m5.large", "m5.xlarge")
        assert labels["kubatch.dev/managed-by"] == "kubatch" and labels["karpenter.sh/capacity-type"] == "on-demand"
        assert {"key": CE_LABEL, "value": ce, "effect": "NoSchedule"} in n["spec"]["taints"]

    def status_matches_pool() -> bool:
        # Against the pool as it is now: the pods run 6 s, then idle nodes go, so the nodes seen at
        # binding may be gone before a slow status write (a loaded CI machine) catches up.
        now = h.nodes(ce)
        st = h.status(ce)
        return (
            bool(now)
            and st.get("nodes") == len(now)
            and st.get("desiredvCpus") == vcpus(now)
            and ((st.get("capacity") or {}).get("vcpus") == vcpus(now))
        )

    await until(status_matches_pool, 30, "status with the pool's nodes, desiredvCpus and capacity")

    t1 = time.monotonic()
    await until(lambda: not h.nodes(ce), 180, "scale-in to 0 nodes", every=sample)
    idle_after = time.monotonic() - t1
    assert all(p["status"]["phase"] == "Succeeded" for p in h.pods("six", namespace))
    await until(lambda: h.status(ce).get("desiredvCpus") == 0 and h.status(ce).get("nodes") == 0, 30, "status 0")
    assert peak[0] <= 12
    print(
        f"\n6 pods bound after {bound_after:.1f}s on {len(nodes)} nodes ({vcpus(nodes):g} vCPUs); "
        f"pool empty {idle_after:.1f}s after binding (pods run 6s, idle time 2s)"
    )


async def test_gpu_pod_lands_on_a_gpu_node(harness: Harness, namespace: str) -> None:
    h = harness
    h.controller(idle_seconds=1)
    ce = await h.create_env("gpu", managed(["p3.2xlarge"], max_vcpus=16))
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID")
    await h.create_pods(namespace, ce, "gpu", 1, cpu="2", gpus=1, duration="3s")
    pod = await until(
        lambda: next((p for p in h.pods("gpu", namespace) if p["spec"].get("nodeName")), None), 180, "GPU pod bound"
    )
    node = h.view.nodes[pod["spec"]["nodeName"]]
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "p3.2xlarge"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    await until(lambda: (h.status(ce).get("capacity") or {}).get("gpus") == 1, 30, "status capacity with 1 GPU")
    assert len(h.nodes(ce)) == 1


async def test_min_vcpus_creating_then_valid_then_deleting(harness: Harness) -> None:
    h = harness
    h.controller(idle_seconds=1)
    ce = await h.create_env("min", managed(["m5.xlarge"], min_vcpus=4))
    seen: set[str] = set()

    def record() -> None:
        if h.status(ce).get("status"):
            seen.add(h.status(ce)["status"])

    await until(lambda: h.status(ce).get("status") == "VALID", 180, "VALID once 4 vCPUs are Ready", every=record)
    assert "CREATING" in seen
    nodes = h.nodes(ce)
    assert len(nodes) == 1 and all(node_ready(n) for n in nodes)
    await asyncio.sleep(2)  # idle longer than the idle time: minvCpus keeps the node
    assert len(h.nodes(ce)) == 1 and h.status(ce)["desiredvCpus"] == 4

    await h.delete_env(ce)
    await until(lambda: ce not in h.view.envs, 90, "CE gone after cleanup", every=record)
    assert "DELETING" in seen
    assert not h.nodes(ce)


async def test_deletion_waits_until_disabled_and_its_jobs_are_done(harness: Harness, namespace: str) -> None:
    """AWS deletes only a DISABLED environment (and no running job is killed by a delete): an ENABLED
    environment being deleted keeps its node and its running pod, and says what it waits for; once
    DISABLED it waits for the pod to finish; then its node is removed and it goes."""
    h = harness
    h.controller(idle_seconds=60)
    ce = await h.create_env("del", managed(["m5.large"], max_vcpus=4))
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID")
    await h.create_pods(namespace, ce, "busy", 1, duration="12s")
    await until(lambda: all(p["spec"].get("nodeName") for p in h.pods("busy", namespace)), 90, "the pod on a node")

    await h.kube.delete(f"{CE_PATH}/{ce}")

    def waiting_for(*parts: str) -> bool:
        reason = str(h.status(ce).get("statusReason") or "")
        return reason.startswith("DELETE_PENDING - ") and all(p in reason for p in parts)

    await until(lambda: waiting_for("it is ENABLED", "1 job pod(s) still run on it"), 30, "the deletion waiting")
    assert h.env(ce)["metadata"].get("deletionTimestamp")
    assert len(h.nodes(ce)) == 1
    assert h.status(ce)["status"] == "VALID"  # still served as before

    await h.kube.merge_patch(f"{CE_PATH}/{ce}", {"spec": {"state": "DISABLED"}})
    await until(
        lambda: waiting_for("1 job pod(s) still run on it") and "ENABLED" not in h.status(ce)["statusReason"],
        30,
        "only the running pod left to wait for",
    )
    # The pod is never killed by the delete: it runs to its end, then the environment goes.
    await until(
        lambda: all(p["status"].get("phase") == "Succeeded" for p in h.pods("busy", namespace)), 60, "the pod done"
    )
    await until(lambda: ce not in h.view.envs, 90, "the environment gone once its pod finished")
    assert not h.nodes(ce)


async def test_disabled_environment_still_serves_pods_placed_before(harness: Harness, namespace: str) -> None:
    """In kubatch a job is STARTING once its pod exists, before any node holds it. A DISABLED
    environment gets no new jobs, but the pods already placed on it (jobs placed just before the
    disable, or the other nodes of a multi-node job started there) still get nodes: AWS lets
    STARTING and RUNNING jobs of a disabled environment finish. With nothing left it shrinks."""
    h = harness
    h.controller(idle_seconds=1)
    ce = await h.create_env("off", {**managed(["m5.large"], max_vcpus=4), "state": "DISABLED"})
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID (minvCpus 0)")
    assert h.nodes(ce) == []
    await h.create_pods(namespace, ce, "placed", 2, duration="3s")

    def bound() -> bool:
        pods = h.pods("placed", namespace)
        return len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods)

    await until(
        bound,
        60,
        "the pods placed before the disable bound to new nodes",
    )
    await until(
        lambda: all(p["status"].get("phase") == "Succeeded" for p in h.pods("placed", namespace)), 90, "pods done"
    )
    await until(lambda: not h.nodes(ce), 180, "scale-in to 0 nodes once idle")


async def test_instance_type_change_drains_old_nodes(harness: Harness, namespace: str) -> None:
    h = harness
    h.controller(idle_seconds=60)
    ce = await h.create_env("upd", managed(["m5.large"], min_vcpus=2))
    await until(lambda: h.status(ce).get("status") == "VALID", 180, "VALID")
    [old] = h.nodes(ce)
    await h.create_pods(namespace, ce, "busy", 1, duration="6s")
    await until(lambda: all(p["spec"].get("nodeName") for p in h.pods("busy", namespace)), 90, "pod on the old node")

    await h.kube.merge_patch(f"{CE_PATH}/{ce}", {"spec": {"computeResources": {"instanceTypes": ["c5.large"]}}})
    await until(lambda: h.status(ce).get("status") == "UPDATING", 60, "UPDATING while the old node drains")
    await until(
        lambda: h.view.nodes.get(old["metadata"]["name"], {}).get("spec", {}).get("unschedulable"),
        30,
        "old node cordoned",
    )
    await until(
        lambda: h.status(ce).get("status") == "VALID" and old["metadata"]["name"] not in h.view.nodes,
        180,
        "VALID after the old node is gone",
    )
    types = {n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in h.nodes(ce)}
    assert types == {"c5.large"}


class NeverReadyKwok(KwokProvisioner):
    """Nodes kwok does not manage: they never become Ready."""

    def manifest(self, ce: Mapping[str, Any], itype: InstanceType) -> JSON:
        node = super().manifest(ce, itype)
        node["metadata"]["annotations"] = {}
        node["status"] = {}
        return node


async def test_nodes_that_never_join_make_the_environment_invalid(harness: Harness) -> None:
    h = harness
    h.controller(idle_seconds=1, node_ready_timeout=3, provisioners={"kwok": NeverReadyKwok(h.kube)})
    ce = await h.create_env("nojoin", managed(["m5.large"], min_vcpus=2))
    created = await until(lambda: [n["metadata"]["name"] for n in h.nodes(ce)], 60, "a node launched")
    await until(lambda: h.status(ce).get("status") == "INVALID", 90, "INVALID")
    assert h.status(ce)["statusReason"].startswith(JOIN_FAILURE)
    await until(lambda: not h.nodes(ce), 30, "the failed node removed")
    await asyncio.sleep(1.5)  # stays INVALID and scaled down: no new node until the spec changes
    assert not h.nodes(ce) and h.status(ce)["status"] == "INVALID"
    assert all(name not in h.view.nodes for name in created)


async def test_unmanaged_delete_removes_label_and_taint(harness: Harness, make_node: NodeFactory) -> None:
    h = harness
    name = f"{h.prefix}-um"
    taint = {"key": CE_LABEL, "value": name, "effect": "NoSchedule"}
    node = make_node(cpu=2, labels={CE_LABEL: name, "pool": h.prefix}, taints=[taint])
    h.controller()
    await h.create_env("um", {"type": "UNMANAGED", "nodeSelector": {"pool": h.prefix}})
    await until(
        lambda: h.status(name).get("status") == "VALID" and h.status(name).get("nodes") == 1, 90, "VALID with its node"
    )
    await h.delete_env(name)
    await until(lambda: name not in h.view.envs, 90, "CE gone")
    labels = h.view.nodes[node]["metadata"]["labels"]
    assert CE_LABEL not in labels and labels["pool"] == h.prefix
    assert taint not in (h.view.nodes[node]["spec"].get("taints") or [])
