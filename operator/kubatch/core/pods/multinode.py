"""Multi-node parallel jobs: node ranges and node discovery. ``targetNodes`` is ``n``, ``n:``,
``:m``, ``n:m`` (inclusive) or ``:``; the narrowest range covering a node wins (first in list
order on a tie), for ``nodeRangeProperties`` and ``nodeOverrides.nodePropertyOverrides`` alike;
``nodeOverrides.numNodes`` replaces ``numNodes``. The headless Service gives every node a stable
hostname (the pod's ``hostname`` + ``subdomain``). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.core.pods.names import (
    LABEL_JOB_ID,
    LABEL_JOB_NAME,
    PodSpecError,
    headless_service_name,
    label_value,
    owner_reference,
)


def parse_target_nodes(target: str, num_nodes: int) -> tuple[int, int]:
    """``targetNodes`` -> inclusive (lo, hi): "n", "n:", ":m", "n:m", ":" (all)."""
    text = (target or ":").strip()
    lo_s, sep, hi_s = text.partition(":")
    try:
        if not sep:
            lo = hi = int(lo_s)
        else:
            lo = int(lo_s) if lo_s else 0
            hi = int(hi_s) if hi_s else num_nodes - 1
    except ValueError as exc:
        raise PodSpecError(f"invalid targetNodes {target!r}") from exc
    if lo < 0 or hi < lo:
        raise PodSpecError(f"invalid targetNodes {target!r}")
    return lo, hi


def select_node_range(
    ranges: Sequence[Mapping[str, Any]] | None, node_index: int, num_nodes: int
) -> Mapping[str, Any] | None:
    """The entry whose targetNodes covers ``node_index``; the narrowest wins, first on a tie."""
    best: tuple[int, int] | None = None
    chosen: Mapping[str, Any] | None = None
    for i, entry in enumerate(ranges or []):
        lo, hi = parse_target_nodes(str(entry.get("targetNodes", ":")), num_nodes)
        if lo <= node_index <= hi and (best is None or (hi - lo, i) < best):
            best, chosen = (hi - lo, i), entry
    return chosen


def num_nodes_of(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> int:
    """numNodes: ``nodeOverrides.numNodes`` over the definition's; 1 for single-node jobs."""
    node_props = definition_spec.get("nodeProperties")
    if not node_props:
        return 1
    override = (job_spec.get("nodeOverrides") or {}).get("numNodes")
    return int(override if override is not None else node_props.get("numNodes", 1))


def main_node_of(definition_spec: Mapping[str, Any]) -> int:
    return int((definition_spec.get("nodeProperties") or {}).get("mainNode", 0))


def build_headless_service(job: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """Headless Service giving multi-node pods DNS names ``<pod>.<service>``; selects the job's pods
    (by job-id) including not-ready ones, owned by the BatchJob."""
    meta = job.get("metadata") or {}
    job_name = str(meta.get("name", ""))
    metadata: dict[str, Any] = {
        "name": headless_service_name(job_name),
        "labels": {LABEL_JOB_NAME: label_value(job_name), LABEL_JOB_ID: label_value(job_id)},
        "ownerReferences": [owner_reference(job)],
    }
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB_ID: label_value(job_id)},
        },
    }
