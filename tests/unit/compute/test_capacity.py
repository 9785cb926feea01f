"""What an UNMANAGED compute environment can hold: its Ready pool nodes whose blocking taints its
jobs' pods tolerate."""

from __future__ import annotations

from typing import Any

from kubatch.core.capacity import env_view
from kubatch.devcluster.nodes import kwok_node
from kubatch.scheduler import Resources

CE = "kubatch.dev/compute-environment"
DEDICATED = {"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"}


def node(name: str, cpu: int, *taints: dict[str, str], pool: str = "pool") -> dict[str, Any]:
    own = {"key": CE, "value": pool, "effect": "NoSchedule"}
    n = kwok_node(name, cpu=cpu, labels={CE: pool}, taints=[own, *taints])
    n["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    return n


def unmanaged(*tolerations: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "UNMANAGED", "nodeSelector": {"x": "y"}}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return {"metadata": {"name": "pool"}, "spec": spec, "status": {"status": "VALID"}}


def capacity(ce: dict[str, Any], nodes: list[dict[str, Any]]) -> float:
    return env_view("pool", ce, {n["metadata"]["name"]: n for n in nodes}, Resources()).capacity.vcpus


def test_tainted_nodes_count_only_when_the_environment_tolerates_them() -> None:
    nodes = [node("plain", 2), node("dedicated", 4, DEDICATED)]
    assert capacity(unmanaged(), nodes) == 2
    assert capacity(unmanaged({**DEDICATED, "operator": "Equal"}), nodes) == 6
    assert capacity(unmanaged({"key": "example.com/dedicated", "operator": "Exists"}), nodes) == 6
    assert capacity(unmanaged({"key": "example.com/dedicated", "operator": "Equal", "value": "other"}), nodes) == 2
    # An effect-specific toleration does not cover the same key with another effect.
    evicting = node("evicting", 8, {"key": "example.com/dedicated", "value": "batch", "effect": "NoExecute"})
    assert capacity(unmanaged({**DEDICATED, "operator": "Equal"}), [evicting]) == 0
    assert capacity(unmanaged({"key": "example.com/dedicated", "operator": "Exists"}), [evicting]) == 8


def test_soft_and_gpu_taints_do_not_take_nodes_away() -> None:
    soft = node("soft", 2, {"key": "soft", "value": "x", "effect": "PreferNoSchedule"})
    gpu = node("gpu", 4, {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
    cordoned = node("cordoned", 8, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    view = env_view("pool", unmanaged(), {n["metadata"]["name"]: n for n in (soft, gpu, cordoned)}, Resources())
    assert view.capacity.vcpus == 6 and view.max_node.vcpus == 4
