"""Karpenter provisioner: one `karpenter.sh/v1` NodePool per MANAGED compute environment.

The NodePool (server-side applied, field manager `kubatch`) carries the environment's label and
taint in its template, its instance types as requirements (exact types as
`node.kubernetes.io/instance-type`, families and the keywords' families as
`karpenter.k8s.aws/instance-family`; names outside kubatch's catalogue go through as they are), the
architecture (`kubernetes.io/arch` amd64 or arm64, from the instance types), the capacity type
(EC2 -> on-demand, SPOT -> spot), `limits.cpu = maxvCpus`, the node class from
`computeResources.nodeClassRef`, and empty-node consolidation after minScaleDownDelayMinutes (or the
operator's idle time). Karpenter then launches and removes the nodes itself.

The template labels the nodes with the environment's infrastructure fingerprint
(`kubatch.dev/infrastructure`, `core.updates`): an infrastructure update changes the template, so
Karpenter sees the nodes made before as drifted and replaces them, and kubatch sees which nodes are
of the earlier spec. Job pods carry `karpenter.sh/do-not-disrupt` (`core.podspec`): Karpenter replaces
a drifted node only once no job runs there, and kubatch terminates the jobs still running on it
when the environment's `updatePolicy` says so.
"""

from __future__ import annotations

import hashlib
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
from kubatch.core.instances import CATALOG, FAMILIES, KUBERNETES_ARCH, InstanceType, select
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT
from kubatch.core.updates import LABEL_INFRASTRUCTURE, infrastructure_hash

API = "/apis/karpenter.sh/v1"
LABEL_INSTANCE_FAMILY = "karpenter.k8s.aws/instance-family"
LABEL_ARCH = "kubernetes.io/arch"
MISSING_CRD = "Karpenter NodePool CRD (karpenter.sh/v1) is not installed"


def nodepool_name(ce_name: str) -> str:
    """`kubatch-<ce>`, shortened with a hash to stay a valid label value (Karpenter labels nodes with it)."""
    name = f"kubatch-{ce_name}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(ce_name.encode()).hexdigest()[:8]
    return f"kubatch-{ce_name[:45].rstrip('-.')}-{digest}"


def instance_requirements(names: Sequence[str] | None) -> list[JSON]:
    """Requirements for the allowed instance types (raises InstanceTypeError): exact types as
    `node.kubernetes.io/instance-type`, families and keywords as `karpenter.k8s.aws/instance-family`,
    names outside kubatch's catalogue passed through as they are (Karpenter knows every EC2 type),
    and the list's architecture as `kubernetes.io/arch`."""
    selection = select(names)
    arch = selection.architecture  # validates the list
    exact, families = list(selection.exact), list(selection.families)
    if exact and families:
        # Requirements are ANDed: a mixed list becomes exact types, which needs every family's sizes.
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ProvisionerError(
                f"instanceTypes mixes instance types with families outside kubatch's catalogue "
                f"({', '.join(unknown)}), which one NodePool cannot express: list only families or only types"
            )
        listed = [t.name for t in selection.known] + [n for n in exact if n not in CATALOG]
        types: list[JSON] = [{"key": LABEL_INSTANCE_TYPE, "operator": "In", "values": sorted(set(listed))}]
    elif exact:
        types = [{"key": LABEL_INSTANCE_TYPE, "operator": "In", "values": sorted(set(exact))}]
    else:
        types = [{"key": LABEL_INSTANCE_FAMILY, "operator": "In", "values": sorted(families)}]
    return [*types, {"key": LABEL_ARCH, "operator": "In", "values": [KUBERNETES_ARCH[arch]]}]


def nodepool_manifest(ce: Mapping[str, Any], *, default_idle_seconds: float = 30.0) -> JSON:
    """The NodePool for a MANAGED environment with provisioner karpenter."""
    md = ce.get("metadata") or {}
    ce_name = str(md.get("name", ""))
    cr = (ce.get("spec") or {}).get("computeResources") or {}
    ref = cr.get("nodeClassRef")
    if not ref:
        raise ProvisionerError("computeResources.nodeClassRef is required with provisioner karpenter")
    requirements = [
        *instance_requirements(cr.get("instanceTypes")),
        {"key": LABEL_CAPACITY_TYPE, "operator": "In", "values": [capacity_type(ce)]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    taints = [ce_taint(ce_name)]
    if select(cr.get("instanceTypes")).gpu_only:
        taints.append(dict(GPU_TAINT))
    delay = cr.get("minScaleDownDelayMinutes")
    consolidate_after = f"{int(delay)}m" if delay is not None else f"{max(0, int(default_idle_seconds))}s"
    metadata: JSON = {
        "name": nodepool_name(ce_name),
        "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPUTE_ENVIRONMENT: ce_name},
    }
    if md.get("uid"):
        metadata["ownerReferences"] = [owner_reference(ce)]
    template_labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPUTE_ENVIRONMENT: ce_name,
        LABEL_INFRASTRUCTURE: infrastructure_hash(ce.get("spec") or {}),
    }
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "nodeClassRef": {"group": ref["group"], "kind": ref["kind"], "name": ref["name"]},
                    "requirements": requirements,
                    "taints": taints,
                },
            },
            "limits": {"cpu": str(int(cr.get("maxvCpus") or 0))},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": consolidate_after},
        },
    }


class KarpenterProvisioner(Provisioner):
    """Applies a NodePool per environment; Karpenter makes and consolidates the nodes."""

    name = "karpenter"
    manages_nodes = False

    def __init__(self, kube: Kube, *, api: str = API, default_idle_seconds: float = 30.0) -> None:
        self.kube = kube
        self.api = api
        self.default_idle_seconds = default_idle_seconds
        self._applied: dict[str, JSON] = {}  # ce name -> last manifest applied

    def path(self, ce_name: str) -> str:
        return f"{self.api}/nodepools/{nodepool_name(ce_name)}"

    async def ensure(self, ce: Mapping[str, Any]) -> None:
        ce_name = str((ce.get("metadata") or {}).get("name", ""))
        manifest = nodepool_manifest(ce, default_idle_seconds=self.default_idle_seconds)
        if self._applied.get(ce_name) == manifest:
            return
        try:
            await self.kube.apply(self.path(ce_name), manifest)
        except ApiError as e:
            self._applied.pop(ce_name, None)
            if e.status == 404:
                raise ProvisionerError(MISSING_CRD) from e
            if e.status in (400, 403, 422):
                raise ProvisionerError(f"NodePool {manifest['metadata']['name']} rejected: {e}") from e
            raise
        self._applied[ce_name] = manifest

    def forget(self, ce_name: str) -> None:
        """Re-apply on the next `ensure` (e.g. after someone else changed the NodePool)."""
        self._applied.pop(ce_name, None)

    async def add_nodes(self, ce: Mapping[str, Any], types: Sequence[InstanceType]) -> list[JSON]:
        return []  # Karpenter launches nodes for the pending pods itself

    async def remove_nodes(self, ce: Mapping[str, Any], names: Sequence[str]) -> None:
        return None  # Karpenter consolidates empty nodes itself

    async def cordon(self, ce: Mapping[str, Any], names: Sequence[str]) -> list[JSON]:
        return []  # Karpenter replaces drifted nodes itself

    async def cleanup(self, ce: Mapping[str, Any]) -> bool:
        ce_name = str((ce.get("metadata") or {}).get("name", ""))
        self._applied.pop(ce_name, None)
        try:
            await self.kube.get(self.path(ce_name))
        except ApiError as e:
            if e.status == 404:
                return True
            raise
        await self.kube.delete(self.path(ce_name))
        return False
