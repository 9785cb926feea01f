"""What a compute environment can hold, as the scheduler sees it.

MANAGED: up to maxvCpus, each node at most the largest allowed instance type, GPUs only when a GPU
instance type is allowed (instance types outside kubatch's catalogue, which Karpenter launches,
set no per-node limit). UNMANAGED: the allocatable of the Ready nodes in its pool (labelled
`kubatch.dev/compute-environment=<name>`) that its jobs' pods can be scheduled on, capped by
unmanagedvCpus when set. A node with a NoSchedule or NoExecute taint that the pods do not tolerate
(kubatch's own taint, the environment's `spec.tolerations`, and `nvidia.com/gpu`, which GPU pods
tolerate) is not capacity: counting it would start pods that stay Pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kubatch.core.instances import InstanceTypeError, may_have_gpus, select
from kubatch.core.podspec import (
    GPU_RESOURCE,
    LABEL_COMPUTE_ENVIRONMENT,
    environment_toleration,
    environment_tolerations,
    parse_quantity,
    untolerated_taints,
)
from kubatch.scheduler import ComputeEnv, Resources

GPU = GPU_RESOURCE
#: Memory per vCPU assumed for instance types outside the catalogue (the largest EC2 ratios are 32 GiB).
UNKNOWN_GIB_PER_VCPU = 32
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


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


def pod_tolerations(name: str, ce: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The tolerations the pods of environment ``name`` (may) carry."""
    return [environment_toleration(name), GPU_TOLERATION, *environment_tolerations(ce)]


def schedulable(node: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``tolerations`` cover every NoSchedule/NoExecute taint of ``node``."""
    return not untolerated_taints((node.get("spec") or {}).get("taints"), tolerations)


def env_view(name: str, ce: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]], used: Resources) -> ComputeEnv:
    spec = ce.get("spec") or {}
    status = (ce.get("status") or {}).get("status") or "VALID"
    state: Literal["ENABLED", "DISABLED"] = "DISABLED" if spec.get("state") == "DISABLED" else "ENABLED"
    if spec.get("type") == "UNMANAGED":
        tolerations = pod_tolerations(name, ce)
        members = [n for n in pool_nodes(name, nodes) if node_ready(n) and schedulable(n, tolerations)]
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
        selection = select(cr.get("instanceTypes"))
    except InstanceTypeError:
        selection = None
    max_vcpus = float(cr.get("maxvCpus") or 0)
    if selection is None or not (selection.known or selection.unknown):
        return ComputeEnv(name=name, capacity=Resources(), used=used, state=state, status="INVALID", type="MANAGED")
    types = selection.known
    # Memory and GPUs scale with the vCPUs bought: the richest type per vCPU bounds them. A type
    # outside the catalogue (Karpenter launches it) bounds nothing kubatch knows: no per-node limit,
    # memory at UNKNOWN_GIB_PER_VCPU, and GPUs where it is of a GPU family.
    mem_per_vcpu = max((t.memory_mib / t.vcpus for t in types), default=0.0)
    gpu_per_vcpu = max((t.gpus / t.vcpus for t in types), default=0.0)
    max_node: Resources | None = None
    if selection.unknown:
        mem_per_vcpu = max(mem_per_vcpu, UNKNOWN_GIB_PER_VCPU * 1024.0)
        if any(may_have_gpus(n) for n in selection.unknown):
            gpu_per_vcpu = max(gpu_per_vcpu, 1.0)
    else:
        max_node = Resources(max(t.vcpus for t in types), max(t.memory_mib for t in types), max(t.gpus for t in types))
    capacity = Resources(max_vcpus, int(max_vcpus * mem_per_vcpu), int(max_vcpus * gpu_per_vcpu))
    return ComputeEnv(
        name=name,
        capacity=capacity,
        used=used,
        max_node=max_node,
        state=state,
        status=status,  # type: ignore[arg-type]
        type="MANAGED",
        has_gpu_instance_types=any(t.gpus for t in types) or any(may_have_gpus(n) for n in selection.unknown),
        spot=(cr.get("type") == "SPOT"),
    )
