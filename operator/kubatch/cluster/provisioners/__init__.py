"""Provisioners: how a MANAGED compute environment gets its nodes.

`kwok` creates and deletes simulated nodes one by one, as `kubatch.core.scaling` decides (tests and
demos); `karpenter` writes one Karpenter NodePool per environment and lets Karpenter launch and
consolidate the nodes. Both label every node `kubatch.dev/compute-environment=<ce>` and
`kubatch.dev/managed-by=kubatch`, and taint it `kubatch.dev/compute-environment=<ce>:NoSchedule`.
"""

from __future__ import annotations

from kubatch.cluster.provisioners.base import (
    GPU_TAINT,
    LABEL_CAPACITY_TYPE,
    LABEL_INSTANCE_TYPE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    Provisioner,
    ProvisionerError,
    capacity_type,
    ce_taint,
    owner_reference,
)
from kubatch.cluster.provisioners.karpenter import KarpenterProvisioner, nodepool_manifest, nodepool_name
from kubatch.cluster.provisioners.kwok import KwokProvisioner, kwok_node_manifest, node_name

__all__ = [
    "GPU_TAINT",
    "LABEL_CAPACITY_TYPE",
    "LABEL_INSTANCE_TYPE",
    "LABEL_MANAGED_BY",
    "MANAGED_BY",
    "KarpenterProvisioner",
    "KwokProvisioner",
    "Provisioner",
    "ProvisionerError",
    "capacity_type",
    "ce_taint",
    "kwok_node_manifest",
    "node_name",
    "nodepool_manifest",
    "nodepool_name",
    "owner_reference",
]
