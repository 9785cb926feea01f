"""kwok provisioner: simulated nodes (annotated `kwok.x-k8s.io/node: fake`) sized from the EC2
instance table, created and deleted one by one as the scaler decides.

Nodes are named `<ce>-<type-with-dashes>-<5 random chars>`, labelled with the instance type, its
architecture (`kubernetes.io/arch`), the capacity type, `kubatch.dev/compute-environment=<ce>`,
`kubatch.dev/managed-by=kubatch` and the environment's infrastructure fingerprint
(`kubatch.dev/infrastructure`, see `core.updates`), tainted for the environment (and `nvidia.com/gpu=present:NoSchedule`
on GPU types), carry the type's Neuron devices as `aws.amazon.com/neuron` (trn1, inf2) and an owner
reference to the environment. The kwok provisioner sizes every node itself, so an environment
whose instance types are not all in kubatch's catalogue is INVALID with it.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.provisioners.base import (
    GPU_TAINT,
    JSON,
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
from kubatch.cluster.provisioners.kwok_nodes import kwok_node
from kubatch.core.instances import KUBERNETES_ARCH, NEURON_RESOURCE, InstanceType
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT
from kubatch.core.updates import LABEL_INFRASTRUCTURE, infrastructure_hash

_ALPHABET = string.ascii_lowercase + string.digits


def node_name(ce_name: str, instance_type: str, suffix: str | None = None) -> str:
    """`<ce>-<type-with-dashes>-<suffix>` (suffix: 5 random lowercase characters by default)."""
    suffix = suffix if suffix is not None else "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{ce_name}-{instance_type.replace('.', '-')}-{suffix}"


def kwok_node_manifest(ce: Mapping[str, Any], itype: InstanceType, name: str) -> JSON:
    """The Node for one instance of `itype` in the environment `ce`."""
    ce_name = str((ce.get("metadata") or {}).get("name", ""))
    taints = [ce_taint(ce_name)] + ([dict(GPU_TAINT)] if itype.gpus else [])
    labels = {
        LABEL_INSTANCE_TYPE: itype.name,
        LABEL_CAPACITY_TYPE: capacity_type(ce),
        LABEL_COMPUTE_ENVIRONMENT: ce_name,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INFRASTRUCTURE: infrastructure_hash(ce.get("spec") or {}),
        "kubernetes.io/arch": KUBERNETES_ARCH[itype.arch],
    }
    node = kwok_node(
        name, cpu=itype.vcpus, memory=f"{itype.memory_mib}Mi", gpus=itype.gpus, labels=labels, taints=taints
    )
    if itype.neuron:  # Trainium / Inferentia devices, as the Neuron device plugin reports them
        for field in ("capacity", "allocatable"):
            node["status"][field][NEURON_RESOURCE] = str(itype.neuron)
    if (ce.get("metadata") or {}).get("uid"):
        node["metadata"]["ownerReferences"] = [owner_reference(ce)]
    return node


def selector(ce_name: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPUTE_ENVIRONMENT}={ce_name}"


class KwokProvisioner(Provisioner):
    """Creates and deletes kwok Nodes directly."""

    name = "kwok"
    manages_nodes = True

    def __init__(self, kube: Kube, *, max_parallel: int = 16) -> None:
        self.kube = kube
        self._limit = asyncio.Semaphore(max_parallel)

    def manifest(self, ce: Mapping[str, Any], itype: InstanceType) -> JSON:
        ce_name = str((ce.get("metadata") or {}).get("name", ""))
        return kwok_node_manifest(ce, itype, node_name(ce_name, itype.name))

    async def ensure(self, ce: Mapping[str, Any]) -> None:
        return None

    async def _create(self, ce: Mapping[str, Any], itype: InstanceType) -> JSON:
        async with self._limit:
            for _ in range(3):
                try:
                    return await self.kube.create("/api/v1/nodes", self.manifest(ce, itype))
                except ApiError as e:
                    if e.status == 409:  # name collision: draw another suffix
                        continue
                    if 400 <= e.status < 500:
                        raise ProvisionerError(f"cannot create a {itype.name} node: {e}") from e
                    raise
            raise ProvisionerError(f"cannot create a {itype.name} node: name collisions")

    async def add_nodes(self, ce: Mapping[str, Any], types: Sequence[InstanceType]) -> list[JSON]:
        return list(await asyncio.gather(*(self._create(ce, t) for t in types)))

    async def remove_nodes(self, ce: Mapping[str, Any], names: Sequence[str]) -> None:
        async def one(name: str) -> None:
            async with self._limit:
                await self.kube.delete(f"/api/v1/nodes/{name}")

        await asyncio.gather(*(one(n) for n in names))

    async def cordon(self, ce: Mapping[str, Any], names: Sequence[str]) -> list[JSON]:
        out: list[JSON] = []
        for name in names:
            try:
                out.append(await self.kube.merge_patch(f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}}))
            except ApiError as e:
                if e.status != 404:
                    raise
        return out

    async def cleanup(self, ce: Mapping[str, Any]) -> bool:
        ce_name = str((ce.get("metadata") or {}).get("name", ""))
        nodes, _ = await self.kube.list_all("/api/v1/nodes", label_selector=selector(ce_name))
        live = [n["metadata"]["name"] for n in nodes if not n["metadata"].get("deletionTimestamp")]
        await self.remove_nodes(ce, live)
        return not nodes
