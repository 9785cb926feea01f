"""The controller's pure helpers: pod requests, demand per environment, outdated nodes, pool stats."""

from __future__ import annotations

from typing import Any

from kubatch.core.scaling import Request
from kubatch.devcluster.nodes import kwok_node
from kubatch.runtime.compute import demand, is_outdated, pod_request, pool_stats

CE = "kubatch.dev/compute-environment"


def pod(ce: str, *, node: str | None = None, phase: str = "Pending", cpu: str = "1", gpus: int = 0,
        limits_only: bool = False) -> dict[str, Any]:
    res: dict[str, Any] = {"cpu": cpu, "memory": "512Mi"}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    resources = {"limits": res} if limits_only else {"requests": res, "limits": res}
    return {
        "metadata": {"name": "p", "labels": {CE: ce}},
        "spec": {"nodeName": node, "containers": [{"name": "a", "resources": resources},
                                                  {"name": "b", "resources": {"requests": {"cpu": "250m"}}}]},
        "status": {"phase": phase},
    }


def test_pod_request_sums_containers_and_falls_back_to_limits() -> None:
    assert pod_request(pod("x")) == Request(vcpus=1.25, memory_mib=512)
    assert pod_request(pod("x", limits_only=True, gpus=1)) == Request(gpus=1, vcpus=1.25, memory_mib=512)


def test_demand_splits_pending_and_bound_and_skips_finished() -> None:
    pods = [pod("a"), pod("a", cpu="2"), pod("b"), pod("a", node="n1"), pod("a", node="n1"),
            pod("a", node="n2", phase="Succeeded"), pod("a", phase="Failed")]
    pending, used = demand(pods)
    assert sorted(r.vcpus for r in pending["a"]) == [1.25, 2.25] and len(pending["b"]) == 1
    assert used == {"n1": (Request(vcpus=2.5, memory_mib=1024), 2)}


def test_outdated_by_instance_type_or_capacity_type() -> None:
    node = kwok_node("n", labels={"node.kubernetes.io/instance-type": "m5.large",
                                  "karpenter.sh/capacity-type": "on-demand"})
    assert not is_outdated(node, {"m5.large"}, "on-demand")
    assert is_outdated(node, {"m5.xlarge"}, "on-demand")
    assert is_outdated(node, {"m5.large"}, "spot")


def test_pool_stats_count_ready_nodes_only() -> None:
    ready = kwok_node("a", cpu=4, memory="16Gi", gpus=1)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    booting = kwok_node("b", cpu=2)
    assert pool_stats([ready, booting]) == {"nodes": 1, "capacity": {"vcpus": 4, "memory": 16384, "gpus": 1}}
