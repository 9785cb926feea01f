"""Compute environment updates (AWS §1.4; `kubatch.core.updates`): which changes are infrastructure
updates and which scaling ones, the fingerprint nodes carry, the updatePolicy's deadline (kept across
restarts, brought forward never back), the mark a replaced node gets, and the scaler's backstop that
removes a replaced node some time after its deadline."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.cluster.provisioners import kwok_node_manifest, nodepool_manifest
from kubatch.core.instances import CATALOG
from kubatch.core.podspec import ANNOTATION_DO_NOT_DISRUPT, build_pod
from kubatch.core.scaling import NodeInfo, Request, ScalingSpec, decide
from kubatch.core.timestamps import iso
from kubatch.core.updates import (
    ANNOTATION_TERMINATE_JOBS_AT,
    LABEL_INFRASTRUCTURE,
    TAINT_INFRASTRUCTURE_UPDATE,
    UpdatePolicy,
    changed_fields,
    drain_deadline,
    drain_mark,
    infrastructure_hash,
    is_replaced,
    terminate_jobs_at,
    update_kind,
)

NOW = 1_800_000_000.0


def spec(**cr: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["m5.large"], "provisioner": "kwok"}
    return {"type": "MANAGED", "computeResources": {**base, **cr}}


def karpenter(**cr: Any) -> dict[str, Any]:
    ref = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
    return spec(**{"provisioner": "karpenter", "nodeClassRef": ref, **cr})


# ---- classification -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"minvCpus": 4},
        {"maxvCpus": 64},
        {"desiredvCpus": 8},
        {"minScaleDownDelayMinutes": 10},
    ],
)
def test_scaling_fields_alone_are_a_scaling_update(change: dict[str, Any]) -> None:
    new = spec(**change)
    assert update_kind(spec(), new) == "SCALING"
    assert infrastructure_hash(new) == infrastructure_hash(spec())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"instanceTypes": ["c5.large"]}, "computeResources.instanceTypes"),
        ({"type": "SPOT"}, "computeResources.type"),
        ({"allocationStrategy": "BEST_FIT_PROGRESSIVE"}, "computeResources.allocationStrategy"),
    ],
)
def test_infrastructure_fields_are_an_infrastructure_update(change: dict[str, Any], field: str) -> None:
    new = spec(**change)
    assert update_kind(spec(), new) == "INFRASTRUCTURE"
    assert changed_fields(spec(), new)[0] == [field]
    assert infrastructure_hash(new) != infrastructure_hash(spec())


def test_a_new_node_class_is_an_infrastructure_update() -> None:
    other = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "patched-ami"}
    assert update_kind(karpenter(), karpenter(nodeClassRef=other)) == "INFRASTRUCTURE"


def test_scaling_fields_changed_with_an_infrastructure_field_make_an_infrastructure_update() -> None:
    new = spec(instanceTypes=["c5.large"], maxvCpus=64, minvCpus=2)
    assert update_kind(spec(), new) == "INFRASTRUCTURE"
    infra, scaling = changed_fields(spec(), new)
    assert infra == ["computeResources.instanceTypes"]
    assert scaling == ["computeResources.minvCpus", "computeResources.maxvCpus"]


def test_state_is_a_scaling_field_and_the_rest_no_update() -> None:
    assert update_kind(spec(), {**spec(), "state": "DISABLED"}) == "SCALING"
    # Nothing that makes nodes: the tags (recorded only), tolerations, the policy itself.
    quiet = {
        **spec(tags={"team": "render"}),
        "tolerations": [{"operator": "Exists"}],
        "updatePolicy": {"terminateJobsOnUpdate": True},
        "tags": {"owner": "me"},
    }
    assert update_kind(spec(), quiet) == "NONE"
    assert infrastructure_hash(quiet) == infrastructure_hash(spec())


def test_defaults_and_order_are_the_same_infrastructure() -> None:
    assert infrastructure_hash(spec(instanceTypes=None)) == infrastructure_hash(spec(instanceTypes=[]))
    assert infrastructure_hash(spec(type="EC2", allocationStrategy="BEST_FIT")) == infrastructure_hash(
        {"type": "MANAGED", "computeResources": {"maxvCpus": 16, "instanceTypes": ["m5.large"]}}
    )
    assert infrastructure_hash(spec(instanceTypes=["c5", "m5"])) == infrastructure_hash(
        spec(instanceTypes=["m5", "c5", "m5"])
    )
    assert len(infrastructure_hash(spec())) == 16


# ---- the fingerprint on nodes -------------------------------------------------------------------
def ce(s: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "ce", "uid": "u"}, "spec": s}


def test_kwok_nodes_and_the_nodepool_template_carry_the_fingerprint() -> None:
    node = kwok_node_manifest(ce(spec()), CATALOG["m5.large"], "n")
    assert node["metadata"]["labels"][LABEL_INFRASTRUCTURE] == infrastructure_hash(spec())
    pool = nodepool_manifest(ce(karpenter()))
    assert pool["spec"]["template"]["metadata"]["labels"][LABEL_INFRASTRUCTURE] == infrastructure_hash(karpenter())


def test_the_nodepool_template_changes_with_an_infrastructure_update_only() -> None:
    """Karpenter replaces the nodes of a changed template (drift): an infrastructure update changes
    it, a scaling update only the NodePool's limits and disruption settings (not drift)."""
    before = nodepool_manifest(ce(karpenter()))["spec"]["template"]
    scaled = nodepool_manifest(ce(karpenter(maxvCpus=64, minScaleDownDelayMinutes=5)))
    assert scaled["spec"]["template"] == before
    assert scaled["spec"]["limits"] == {"cpu": "64"}
    spot = nodepool_manifest(ce(karpenter(allocationStrategy="BEST_FIT_PROGRESSIVE")))["spec"]["template"]
    assert spot["metadata"] != before["metadata"]


def test_a_node_of_another_fingerprint_is_replaced_an_unlabelled_one_by_the_fallback() -> None:
    current = infrastructure_hash(spec())
    node = kwok_node_manifest(ce(spec()), CATALOG["m5.large"], "n")
    assert not is_replaced(node, current)
    assert is_replaced(node, infrastructure_hash(spec(instanceTypes=["c5.large"])))
    del node["metadata"]["labels"][LABEL_INFRASTRUCTURE]
    assert not is_replaced(node, current)
    assert is_replaced(node, current, fallback=True)


# ---- the policy and the deadline ----------------------------------------------------------------
def test_policy_defaults_as_aws() -> None:
    policy = UpdatePolicy.from_spec({})
    assert policy == UpdatePolicy(terminate_jobs_on_update=False, job_execution_timeout_minutes=30)
    assert policy.grace_seconds() == 1800
    assert policy.grace_seconds(scale=0.01) == pytest.approx(18)
    # terminateJobsOnUpdate ignores jobExecutionTimeoutMinutes.
    now = UpdatePolicy.from_spec({"updatePolicy": {"terminateJobsOnUpdate": True, "jobExecutionTimeoutMinutes": 90}})
    assert now.grace_seconds() == 0
    later = UpdatePolicy.from_spec({"updatePolicy": {"jobExecutionTimeoutMinutes": 90}})
    assert later.grace_seconds() == 5400


def test_a_recorded_deadline_stays_and_a_shorter_policy_brings_it_forward() -> None:
    policy = UpdatePolicy(job_execution_timeout_minutes=30)
    first = drain_deadline(None, policy, NOW)
    assert first == NOW + 1800
    # Later syncs, and a restarted operator reading the annotation, keep it.
    assert drain_deadline(first, policy, NOW + 600) == first
    assert drain_deadline(first, UpdatePolicy(job_execution_timeout_minutes=120), NOW + 600) == first
    # A shorter policy set during the update: from now, if that is sooner.
    assert drain_deadline(first, UpdatePolicy(job_execution_timeout_minutes=5), NOW + 600) == NOW + 900
    assert drain_deadline(first, UpdatePolicy(terminate_jobs_on_update=True), NOW + 600) == NOW + 600


def test_the_mark_cordons_taints_and_records_the_deadline_once() -> None:
    node = kwok_node_manifest(ce(spec()), CATALOG["m5.large"], "n")
    patch = drain_mark(node, "ce", NOW + 60)
    assert patch is not None
    assert patch["spec"]["unschedulable"] is True
    assert patch["spec"]["taints"] == [
        *node["spec"]["taints"],
        {"key": TAINT_INFRASTRUCTURE_UPDATE, "value": "ce", "effect": "NoSchedule"},
    ]
    assert patch["metadata"]["annotations"] == {ANNOTATION_TERMINATE_JOBS_AT: iso(NOW + 60)}
    marked = {
        **node,
        "metadata": {
            **node["metadata"],
            "annotations": {**node["metadata"]["annotations"], **patch["metadata"]["annotations"]},
        },
        "spec": {**node["spec"], **patch["spec"]},
    }
    assert terminate_jobs_at(marked) == NOW + 60
    assert drain_mark(marked, "ce", NOW + 60) is None
    # A deadline brought forward rewrites only the annotation.
    forward = drain_mark(marked, "ce", NOW + 30)
    assert forward == {
        "metadata": {"annotations": {ANNOTATION_TERMINATE_JOBS_AT: iso(NOW + 30)}},
        "spec": {"unschedulable": True},
    }


# ---- the scaler ---------------------------------------------------------------------------------
def info(name: str, *, pods: int = 0, outdated: bool = False, terminate_at: float | None = None) -> NodeInfo:
    used = Request(vcpus=1.0, memory_mib=512) if pods else Request()
    return NodeInfo(
        name=name,
        instance_type="m5.large",
        vcpus=2,
        memory_mib=8192,
        used=used,
        pods=pods,
        outdated=outdated,
        terminate_at=terminate_at,
    )


def test_a_busy_replaced_node_is_cordoned_then_removed_after_its_deadline_and_the_grace() -> None:
    sizing = ScalingSpec(min_vcpus=0, max_vcpus=8, instance_types=(CATALOG["c5.large"],), drain_grace=120)
    old = info("old", pods=1, outdated=True, terminate_at=NOW)
    d = decide(sizing, [old], [], NOW + 119)
    assert d.cordon == ("old",) and d.remove == ()
    d = decide(sizing, [old], [], NOW + 120)
    assert d.cordon == () and d.remove == ("old",)
    # Without a deadline (no policy applied yet) a busy node is never removed.
    assert decide(sizing, [info("old", pods=1, outdated=True)], [], NOW + 10**6).remove == ()
    # A current node with a stale deadline annotation is no replaced node.
    assert decide(sizing, [info("cur", pods=1, terminate_at=NOW)], [], NOW + 10**6).remove == ()


def test_job_pods_keep_karpenter_from_moving_them_unless_their_metadata_says_otherwise() -> None:
    """Karpenter replaces a drifted node only once no job runs there; kubatch applies the policy."""
    job = {"metadata": {"name": "j", "uid": "u"}, "spec": {"jobQueue": "q", "jobDefinition": "d"}}
    definition = {
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
        },
    }
    pod = build_pod(job, definition, "d:1", job_id="u", queue="q", compute_environment="ce", attempt=1)
    assert pod["metadata"]["annotations"][ANNOTATION_DO_NOT_DISRUPT] == "true"
    opted_out = {**job, "spec": {**job["spec"], "podMetadata": {"annotations": {ANNOTATION_DO_NOT_DISRUPT: "false"}}}}
    pod = build_pod(opted_out, definition, "d:1", job_id="u", queue="q", compute_environment="ce", attempt=1)
    assert pod["metadata"]["annotations"][ANNOTATION_DO_NOT_DISRUPT] == "false"
