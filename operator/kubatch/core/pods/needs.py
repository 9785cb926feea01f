"""What a job needs, for the scheduler: vCPUs, memory and GPUs per pod and in total (a multi-node
job: the sum over nodes), its consumable resources, and its schedulingPriority. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubatch.core.pods.kinds import resolve
from kubatch.core.pods.multinode import num_nodes_of
from kubatch.core.pods.names import GPU_RESOURCE
from kubatch.core.pods.overrides import merge_by_key
from kubatch.core.pods.quantities import decimal_of, parse_quantity


@dataclass(frozen=True)
class Needs:
    """What one job (one array child) needs. ``vcpus``/``memory_mib``/``gpus`` are totals over all
    its pods (for a multi-node job: the sum over nodes); ``per_node`` lists each pod's share
    (one entry for a single-node job). ``consumables`` maps resource name -> quantity."""

    vcpus: float
    memory_mib: int
    gpus: int
    num_nodes: int = 1
    consumables: Mapping[str, int] = field(default_factory=dict)
    per_node: tuple[PodNeeds, ...] = ()


@dataclass(frozen=True)
class PodNeeds:
    vcpus: float
    memory_mib: int
    gpus: int


def _pod_needs_from_requirements(reqs: Sequence[Mapping[str, Any]]) -> PodNeeds:
    vcpus = Decimal(0)
    memory = Decimal(0)
    gpus = 0
    for r in reqs:
        if r.get("value") is None:
            continue
        if r.get("type") == "VCPU":
            vcpus = decimal_of(r["value"], "VCPU")
        elif r.get("type") == "MEMORY":
            memory = decimal_of(r["value"], "MEMORY")
        elif r.get("type") == "GPU":
            gpus = int(decimal_of(r["value"], "GPU"))
    return PodNeeds(float(vcpus), math.ceil(memory), gpus)


def _container_request(container: Mapping[str, Any], resource: str) -> Decimal:
    res = container.get("resources") or {}
    value = (res.get("requests") or {}).get(resource)
    if value is None:
        value = (res.get("limits") or {}).get(resource)
    return parse_quantity(value) if value is not None else Decimal(0)


def _pod_needs_from_template(template: Mapping[str, Any]) -> PodNeeds:
    def total(resource: str) -> Decimal:
        main = sum((_container_request(c, resource) for c in template.get("containers") or []), Decimal(0))
        init = max(
            (_container_request(c, resource) for c in template.get("initContainers") or []),
            default=Decimal(0),
        )
        return max(main, init)

    return PodNeeds(
        vcpus=float(total("cpu")),
        memory_mib=math.ceil(total("memory") / Decimal(2**20)),
        gpus=int(total(GPU_RESOURCE)),
    )


def consumables_of(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> dict[str, int]:
    """consumableResourceList of the definition, quantities overridden by the job's
    ``consumableResourcePropertiesOverride`` (merged by resource name)."""
    base = (definition_spec.get("consumableResourceProperties") or {}).get("consumableResourceList") or []
    over = (job_spec.get("consumableResourcePropertiesOverride") or {}).get("consumableResourceList") or []
    merged = merge_by_key(base, over, "consumableResource")
    return {str(c["consumableResource"]): int(c.get("quantity", 0)) for c in merged if c.get("consumableResource")}


def scheduling_priority(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> int:
    """``schedulingPriorityOverride`` of the job, else the definition's ``schedulingPriority``, else 0."""
    value = job_spec.get("schedulingPriorityOverride")
    if value is None:
        value = definition_spec.get("schedulingPriority")
    return int(value or 0)


def resource_needs(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> Needs:
    """What one job (or one array child) needs, after overrides (see ``Needs``)."""
    n = num_nodes_of(definition_spec, job_spec)
    per_node: list[PodNeeds] = []
    for idx in range(n) if definition_spec.get("nodeProperties") else [None]:
        resolved = resolve(definition_spec, job_spec, idx)
        if resolved.kind == "container":
            per_node.append(_pod_needs_from_requirements(resolved.props["resourceRequirements"]))
        else:
            per_node.append(_pod_needs_from_template(resolved.props))
    return Needs(
        vcpus=sum(p.vcpus for p in per_node),
        memory_mib=sum(p.memory_mib for p in per_node),
        gpus=sum(p.gpus for p in per_node),
        num_nodes=n,
        consumables=consumables_of(definition_spec, job_spec),
        per_node=tuple(per_node),
    )
