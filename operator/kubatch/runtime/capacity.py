"""What a compute environment can hold, as the scheduler sees it.

MANAGED: up to maxvCpus, each node at most the largest allowed instance type, GPUs only when a GPU
instance type is allowed. UNMANAGED: the allocatable of the nodes in its pool (labelled
`kubatch.dev/compute-environment=<name>`), capped by unmanagedvCpus when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from kubatch.core.instances import UnknownInstanceType, expand_or_default
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT, parse_quantity
from kubatch.scheduler import ComputeEnv, Resources

GPU = "nvidia.com/gpu"


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    cpu = float(parse_quantity(alloc.get("cpu", "0")))
    mem = int(parse_quantity(alloc.get("memory", "0")) / (1024 * 1024))
    gpus = int(parse_quantity(alloc.get(GPU, "0")))
    return Resources(cpu, mem, gpus)


def node_ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def pool_nodes(name: str, nodes: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        n
        for n in nodes.values()
        if ((n.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPUTE_ENVIRONMENT) == name
        and not (n.get("metadata") or {}).get("deletionTimestamp")
    ]


def env_view(name: str, ce: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]], used: Resources) -> ComputeEnv:
    spec = ce.get("spec") or {}
    status = (ce.get("status") or {}).get("status") or "VALID"
    state: Literal["ENABLED", "DISABLED"] = "DISABLED" if spec.get("state") == "DISABLED" else "ENABLED"
    if spec.get("type") == "UNMANAGED":
        members = [n for n in pool_nodes(name, nodes) if node_ready(n)]
        total = Resources()
        largest = Resources()
        for n in members:
            a = node_allocatable(n)
            total = total + a
            largest = Resources(
                max(largest.vcpus, a.vcpus), max(largest.memory_mib, a.memory_mib), max(largest.gpus, a.gpus)
            )
        cap = float(spec.get("unmanagedvCpus") or 0)
        if cap > 0:
            total = Resources(min(total.vcpus, cap), total.memory_mib, total.gpus)
        return ComputeEnv(
            name=name,
            capacity=total,
            used=used,
            max_node=largest,
            state=state,
            status=status,  # type: ignore[arg-type]
            type="UNMANAGED",
            has_gpu_instance_types=largest.gpus > 0,
        )
    cr = spec.get("computeResources") or {}
    try:
        types = expand_or_default(cr.get("instanceTypes"))
    except UnknownInstanceType:
        types = []
    max_vcpus = float(cr.get("maxvCpus") or 0)
    if not types:
        return ComputeEnv(name=name, capacity=Resources(), used=used, state=state, status="INVALID", type="MANAGED")
    largest = Resources(max(t.vcpus for t in types), max(t.memory_mib for t in types), max(t.gpus for t in types))
    # Memory and GPUs scale with the vCPUs bought: the richest type per vCPU bounds them.
    mem_per_vcpu = max(t.memory_mib / t.vcpus for t in types)
    gpu_per_vcpu = max(t.gpus / t.vcpus for t in types)
    capacity = Resources(max_vcpus, int(max_vcpus * mem_per_vcpu), int(max_vcpus * gpu_per_vcpu))
    return ComputeEnv(
        name=name,
        capacity=capacity,
        used=used,
        max_node=largest,
        state=state,
        status=status,  # type: ignore[arg-type]
        type="MANAGED",
        has_gpu_instance_types=largest.gpus > 0,
        spot=(cr.get("type") == "SPOT"),
    )
