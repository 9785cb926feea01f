"""computeResources.desiredvCpus and computeResources.tags are recorded only (docs/differences.md):
the scaler sizes an environment from demand and minvCpus, and the NodePool carries no tags."""

from __future__ import annotations

import json
from typing import Any

from kubatch.cluster.provisioners.karpenter import nodepool_manifest
from kubatch.core.scaling import ScalingSpec, decide


def _ce(**cr: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "minvCpus": 0,
        "maxvCpus": 64,
        "instanceTypes": ["m5.large"],
        "provisioner": "karpenter",
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
    }
    base.update(cr)
    return {"metadata": {"name": "ce"}, "spec": {"type": "MANAGED", "computeResources": base}}


def test_desired_vcpus_in_the_spec_changes_no_scaling_decision() -> None:
    plain = ScalingSpec.from_resources(_ce()["spec"]["computeResources"])
    desired = ScalingSpec.from_resources(_ce(desiredvCpus=32)["spec"]["computeResources"])
    assert plain == desired
    decision = decide(desired, [], [], now=0.0)
    assert decision.add == () and decision.desired_vcpus == 0


def test_tags_reach_no_node_pool() -> None:
    tags = {"team": "render", "cost-center": "42"}
    pool = nodepool_manifest(_ce(tags=tags))
    assert pool == nodepool_manifest(_ce())
    assert "cost-center" not in json.dumps(pool)
