"""Tolerations of a job's pods and taint matching: kubatch's own toleration of a compute
environment's taint, the environment's ``spec.tolerations``, and whether tolerations cover a
node's NoSchedule/NoExecute taints (the placement checks of the scheduler and the admission). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.core.pods.names import CE_NODE_KEY


def environment_tolerations(environment: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The ``spec.tolerations`` of a ComputeEnvironment object (none when it is unknown)."""
    return list(((environment or {}).get("spec") or {}).get("tolerations") or [])


def environment_toleration(compute_environment: str) -> dict[str, Any]:
    """The toleration of the taint kubatch puts on the nodes of ``compute_environment``."""
    return {"key": CE_NODE_KEY, "operator": "Equal", "value": compute_environment, "effect": "NoSchedule"}


_TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")


def toleration(t: Mapping[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in _TOLERATION_FIELDS if t.get(k) is not None}


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule for one toleration and one taint: an unset effect matches every effect; an
    empty key with ``Exists`` matches every key; ``Exists`` matches any value, ``Equal`` (the
    default) the same value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


#: Taint effects that keep a pod off a node (PreferNoSchedule only discourages).
BLOCKING_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def untolerated_taints(
    taints: Sequence[Mapping[str, Any]] | None, tolerations: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The NoSchedule / NoExecute ``taints`` of a node that none of ``tolerations`` tolerates."""
    return [
        t
        for t in taints or ()
        if t.get("effect") in BLOCKING_TAINT_EFFECTS and not any(tolerates(tol, t) for tol in tolerations)
    ]
