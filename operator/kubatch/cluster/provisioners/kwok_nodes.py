"""Manifests of simulated kwok nodes: any cpu, memory, GPU capacity, labels and taints.

kwok manages every Node annotated `kwok.x-k8s.io/node: fake`; the node stays Ready through kwok's
heartbeat stage and runs its pods through its configured stages. The kwok provisioner sizes them
from instance types; the local cluster's tooling and the tests make them by hand.
"""

from __future__ import annotations

from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"


def kwok_node(
    name: str,
    *,
    cpu: str | int = 4,
    memory: str = "16Gi",
    gpus: int = 0,
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node manifest that kwok will manage, with the given allocatable capacity."""
    capacity: dict[str, str] = {"cpu": str(cpu), "memory": memory, "pods": str(pods)}
    if gpus:
        capacity[GPU_RESOURCE] = str(gpus)
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        **(labels or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {KWOK_ANNOTATION: "fake", **(annotations or {})},
        },
        "spec": {"taints": list(taints or [])},
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }
