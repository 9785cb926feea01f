"""The provisioner interface and the labels, taints and owner references all provisioners share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.api.constants import API_VERSION
from kubatch.core.instances import InstanceType
from kubatch.core.podspec import GPU_RESOURCE, LABEL_COMPUTE_ENVIRONMENT

JSON = dict[str, Any]

LABEL_MANAGED_BY = "kubatch.dev/managed-by"
MANAGED_BY = "kubatch"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_CAPACITY_TYPE = "karpenter.sh/capacity-type"
GPU_TAINT: JSON = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}


class ProvisionerError(Exception):
    """The environment's infrastructure cannot be made; the message becomes `CLIENT_ERROR - <message>`."""


def ce_taint(ce_name: str) -> JSON:
    return {"key": LABEL_COMPUTE_ENVIRONMENT, "value": ce_name, "effect": "NoSchedule"}


def capacity_type(ce: Mapping[str, Any]) -> str:
    """`spot` or `on-demand`, from spec.computeResources.type."""
    cr = (ce.get("spec") or {}).get("computeResources") or {}
    return "spot" if cr.get("type") == "SPOT" else "on-demand"


def owner_reference(ce: Mapping[str, Any]) -> JSON:
    """A (non-controller) owner reference to the environment: the garbage collector removes what is
    left of its infrastructure if the environment ever vanishes without kubatch's cleanup."""
    md = ce.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeEnvironment",
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
        "blockOwnerDeletion": False,
    }


class Provisioner(ABC):
    """Makes and removes the nodes of MANAGED compute environments."""

    name: str = ""
    manages_nodes: bool = True
    """True: kubatch decides every node (add/remove). False: the provisioner scales by itself."""

    @abstractmethod
    async def ensure(self, ce: Mapping[str, Any]) -> None:
        """Create or update the environment's infrastructure (raises ProvisionerError)."""

    @abstractmethod
    async def add_nodes(self, ce: Mapping[str, Any], types: Sequence[InstanceType]) -> list[JSON]:
        """Launch one node per instance type; returns the created Node objects."""

    @abstractmethod
    async def remove_nodes(self, ce: Mapping[str, Any], names: Sequence[str]) -> None:
        """Remove these nodes (already gone is fine)."""

    @abstractmethod
    async def cordon(self, ce: Mapping[str, Any], names: Sequence[str]) -> list[JSON]:
        """Stop new pods from landing on these nodes; returns the updated Node objects."""

    @abstractmethod
    async def cleanup(self, ce: Mapping[str, Any]) -> bool:
        """Delete everything of a deleted environment; True once nothing is left."""
