"""Which properties a job (or one node of a multi-node job) runs, by job kind: a multi-node
job's node range (``container`` or ``podProperties`` of the narrowest covering range, with its
node overrides), ``containerProperties`` with ``containerOverrides``, or ``podProperties`` with
``podOverrides``; the job's ``parameters`` merged over the definition's. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.core.pods.multinode import num_nodes_of, select_node_range
from kubatch.core.pods.names import PodSpecError
from kubatch.core.pods.overrides import apply_container_overrides, apply_pod_overrides


def _pod_template(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template: Mapping[str, Any] | None = props.get("podProperties")
    return template


def _pod_overrides(overrides_holder: Mapping[str, Any]) -> Mapping[str, Any] | None:
    over: Mapping[str, Any] | None = overrides_holder.get("podOverrides")
    return over


@dataclass(frozen=True)
class Resolved:
    kind: str  # "container" | "pod"
    props: dict[str, Any]  # merged containerProperties, or pod template


def resolve(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any], node_index: int | None) -> Resolved:
    node_props = definition_spec.get("nodeProperties")
    if node_props:
        if node_index is None:
            raise PodSpecError("a multinode job definition needs a node index")
        n = num_nodes_of(definition_spec, job_spec)
        if not 0 <= node_index < n:
            raise PodSpecError(f"node index {node_index} outside 0..{n - 1}")
        rng = select_node_range(node_props.get("nodeRangeProperties"), node_index, n)
        if rng is None:
            raise PodSpecError(f"no nodeRangeProperties entry covers node {node_index}")
        over = (
            select_node_range((job_spec.get("nodeOverrides") or {}).get("nodePropertyOverrides"), node_index, n) or {}
        )
        template = _pod_template(rng)
        if rng.get("container") is not None:
            return Resolved("container", apply_container_overrides(rng["container"], over.get("containerOverrides")))
        if template is not None:
            return Resolved("pod", apply_pod_overrides(template, _pod_overrides(over)))
        raise PodSpecError(f"nodeRangeProperties entry for node {node_index} has no container")
    if definition_spec.get("containerProperties") is not None:
        return Resolved(
            "container",
            apply_container_overrides(definition_spec["containerProperties"], job_spec.get("containerOverrides")),
        )
    template = _pod_template(definition_spec)
    if template is not None:
        return Resolved("pod", apply_pod_overrides(template, _pod_overrides(job_spec)))
    raise PodSpecError("job definition has no containerProperties, podProperties or nodeProperties")
