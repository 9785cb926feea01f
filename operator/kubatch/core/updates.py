"""Compute environment updates (AWS §1.4): a scaling update or an infrastructure update, and the drain
of the nodes an infrastructure update replaces. Pure: no I/O, no clock.

- A change of only ``minvCpus``, ``maxvCpus``, ``desiredvCpus``, ``minScaleDownDelayMinutes`` or
  ``state`` (or of nothing that makes nodes: tolerations, the ``allow*`` switches, the tags,
  ``updatePolicy``) is a *scaling update*: the nodes stay.
- A change of any of ``computeResources.type``, ``instanceTypes``, ``allocationStrategy`` or
  ``nodeClassRef`` (kubatch's launch template, image, instance role, subnets and security groups)
  is an *infrastructure update*, also when scaling fields change with it: the nodes made for the
  earlier values are replaced. ``computeResources.tags``, on AWS's list, is not: kubatch passes
  them to no node and no instance, so replacing the nodes would change nothing.
  ``infrastructure_hash`` fingerprints those fields; every node a provisioner makes carries it as
  the label ``kubatch.dev/infrastructure`` (kwok nodes directly, Karpenter's through the NodePool
  template), so a node of an earlier infrastructure is recognised without remembering the earlier
  spec, also after a restart.
- A replaced node that still runs jobs is marked (``drain_mark``): cordoned, tainted
  ``kubatch.dev/infrastructure-update=<ce>:NoSchedule`` and annotated
  ``kubatch.dev/terminate-jobs-at=<RFC 3339>``, the moment its jobs are terminated: at once with
  ``updatePolicy.terminateJobsOnUpdate``, else ``jobExecutionTimeoutMinutes`` (default 30) after
  the update was seen. The annotation is the deadline's only record, so a restarted operator keeps
  it; a later, shorter policy can bring it forward, never push it back (``drain_deadline``).
- At the deadline the job lifecycle ends the attempts still running there as a lost host does
  (``Host EC2 (instance <node>) terminated.``): retried only when the retry strategy says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubatch.core.timestamps import iso, parse_iso

#: Node label: the fingerprint of the infrastructure fields the node was made for.
LABEL_INFRASTRUCTURE = "kubatch.dev/infrastructure"
#: Node annotation: when the jobs still running on a replaced node are terminated (RFC 3339).
ANNOTATION_TERMINATE_JOBS_AT = "kubatch.dev/terminate-jobs-at"
#: Taint key on a replaced node (value: the environment): no new pod lands there.
TAINT_INFRASTRUCTURE_UPDATE = "kubatch.dev/infrastructure-update"

#: The container reason (``attempts[].container.reason``) of an attempt ended at a replaced node's
#: deadline; its statusReason is the lost-host one, ``Host EC2 (instance <node>) terminated.``
REASON_NODE_REPLACED = "Instance replaced by an infrastructure update of the compute environment"

DEFAULT_JOB_EXECUTION_TIMEOUT_MINUTES = 30
MAX_JOB_EXECUTION_TIMEOUT_MINUTES = 7200

#: computeResources fields whose change is an infrastructure update (AWS's list, as far as kubatch has
#: the fields and they reach nodes: nodeClassRef stands for the launch template, image, instance role,
#: subnets and security groups; tags reach no node).
INFRASTRUCTURE_FIELDS = ("type", "instanceTypes", "allocationStrategy", "nodeClassRef")
#: computeResources fields whose change alone is a scaling update (tags: recorded only, no update).
SCALING_FIELDS = ("minvCpus", "maxvCpus", "desiredvCpus", "minScaleDownDelayMinutes")

UpdateKind = Literal["NONE", "SCALING", "INFRASTRUCTURE"]


def infrastructure(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The infrastructure fields of a compute environment spec, with their defaults filled in (unset
    and the default are the same infrastructure; the order of instance types does not matter)."""
    cr = spec.get("computeResources") or {}
    return {
        "type": cr.get("type") or "EC2",
        "instanceTypes": sorted(set(cr.get("instanceTypes") or [])),
        "allocationStrategy": cr.get("allocationStrategy") or "BEST_FIT",
        "nodeClassRef": dict(cr.get("nodeClassRef") or {}),
    }


def infrastructure_hash(spec: Mapping[str, Any]) -> str:
    """A 16-hex-digit fingerprint of ``infrastructure(spec)`` (a label value)."""
    canonical = json.dumps(infrastructure(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(infrastructure fields, scaling fields) that differ between two specs, as
    ``computeResources.<field>`` (scaling: also ``state``)."""
    old_infra, new_infra = infrastructure(old), infrastructure(new)
    infra = [f"computeResources.{f}" for f in INFRASTRUCTURE_FIELDS if old_infra[f] != new_infra[f]]
    old_cr, new_cr = old.get("computeResources") or {}, new.get("computeResources") or {}
    scaling = [f"computeResources.{f}" for f in SCALING_FIELDS if old_cr.get(f) != new_cr.get(f)]
    if (old.get("state") or "ENABLED") != (new.get("state") or "ENABLED"):
        scaling.append("state")
    return infra, scaling


def update_kind(old: Mapping[str, Any], new: Mapping[str, Any]) -> UpdateKind:
    """INFRASTRUCTURE when any infrastructure field changed (whatever else changed with it), SCALING
    when only scaling fields did, NONE otherwise."""
    infra, scaling = changed_fields(old, new)
    if infra:
        return "INFRASTRUCTURE"
    return "SCALING" if scaling else "NONE"


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """``spec.updatePolicy``: what happens to the jobs on nodes an infrastructure update replaces."""

    terminate_jobs_on_update: bool = False
    job_execution_timeout_minutes: int = DEFAULT_JOB_EXECUTION_TIMEOUT_MINUTES

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> UpdatePolicy:
        policy = spec.get("updatePolicy") or {}
        minutes = policy.get("jobExecutionTimeoutMinutes")
        if minutes is None:
            minutes = DEFAULT_JOB_EXECUTION_TIMEOUT_MINUTES
        return cls(
            terminate_jobs_on_update=bool(policy.get("terminateJobsOnUpdate", False)),
            job_execution_timeout_minutes=int(minutes),
        )

    def grace_seconds(self, *, scale: float = 1.0) -> float:
        """How long the jobs of a replaced node may still run (0 with terminateJobsOnUpdate, which
        ignores jobExecutionTimeoutMinutes). ``scale``: the time-limit testing knob (1 in production)."""
        if self.terminate_jobs_on_update:
            return 0.0
        return self.job_execution_timeout_minutes * 60.0 * scale

    def describe(self) -> str:
        if self.terminate_jobs_on_update:
            return "terminateJobsOnUpdate: running jobs there are terminated at once"
        return f"jobExecutionTimeoutMinutes {self.job_execution_timeout_minutes}: running jobs there may run until"


def is_replaced(node: Mapping[str, Any], current: str, *, fallback: bool = False) -> bool:
    """Whether ``node`` was made for another infrastructure than the fingerprint ``current``. A node
    without the label (made before kubatch labelled them) answers ``fallback``."""
    label = ((node.get("metadata") or {}).get("labels") or {}).get(LABEL_INFRASTRUCTURE)
    return label != current if label else fallback


def terminate_jobs_at(node: Mapping[str, Any]) -> float | None:
    """The node's recorded deadline (epoch seconds), or None when it has none."""
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TERMINATE_JOBS_AT)
    return parse_iso(str(value)) if value else None


def drain_deadline(existing: float | None, policy: UpdatePolicy, now: float, *, scale: float = 1.0) -> float:
    """The deadline of a replaced node: ``now`` plus the policy's grace when it has none yet; a
    recorded one stays, unless the policy now allows less from ``now`` (it is brought forward)."""
    proposed = now + policy.grace_seconds(scale=scale)
    return proposed if existing is None else min(existing, proposed)


def drain_taint(ce_name: str) -> dict[str, str]:
    return {"key": TAINT_INFRASTRUCTURE_UPDATE, "value": ce_name, "effect": "NoSchedule"}


def drain_mark(node: Mapping[str, Any], ce_name: str, deadline: float) -> dict[str, Any] | None:
    """The merge patch that cordons, taints and annotates a replaced node with ``deadline``, or None
    when it already carries all three."""
    md = node.get("metadata") or {}
    spec = node.get("spec") or {}
    stamp = iso(deadline)
    taints = list(spec.get("taints") or [])
    has_taint = any(t.get("key") == TAINT_INFRASTRUCTURE_UPDATE for t in taints)
    annotated = (md.get("annotations") or {}).get(ANNOTATION_TERMINATE_JOBS_AT) == stamp
    if spec.get("unschedulable") and has_taint and annotated:
        return None
    patch_spec: dict[str, Any] = {"unschedulable": True}
    if not has_taint:
        patch_spec["taints"] = [*taints, drain_taint(ce_name)]
    return {"metadata": {"annotations": {ANNOTATION_TERMINATE_JOBS_AT: stamp}}, "spec": patch_spec}
