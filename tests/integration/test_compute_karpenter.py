"""The Karpenter provisioner against Karpenter's real CRDs (from the pinned Go module, installed by
`hack/cluster/karpenter.sh`): the API server accepts the NodePool kubatch writes, it follows the
environment's spec, it goes with the environment; without the NodePool API the environment is
INVALID. Karpenter's controller itself does not run here (no cloud), so no nodes appear.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kubatch.cluster.client import ApiError
from kubatch.cluster.provisioners import KarpenterProvisioner, nodepool_name
from kubatch.cluster.provisioners.karpenter import MISSING_CRD
from tests.integration.test_compute import CE_PATH, Harness, harness, until

pytestmark = pytest.mark.integration

__all__ = ["harness"]  # the fixture, shared with test_compute

NODEPOOLS = "/apis/karpenter.sh/v1/nodepools"
NODE_CLASS = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}


def karpenter_spec(**cr: Any) -> dict[str, Any]:
    resources = {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 16,
        "instanceTypes": ["m5.large", "m5.xlarge"],
        "allocationStrategy": "BEST_FIT_PROGRESSIVE",
        "provisioner": "karpenter",
        "nodeClassRef": NODE_CLASS,
        **cr,
    }
    return {"type": "MANAGED", "computeResources": resources}


def requirement(pool: dict[str, Any], key: str) -> list[str] | None:
    for r in pool["spec"]["template"]["spec"]["requirements"]:
        if r["key"] == key:
            return sorted(r["values"])
    return None


async def get_pool(h: Harness, ce: str) -> dict[str, Any] | None:
    try:
        pool: dict[str, Any] = await h.kube.get(f"{NODEPOOLS}/{nodepool_name(ce)}")
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return pool


async def test_nodepool_accepted_and_follows_the_environment(harness: Harness, karpenter_crds: str) -> None:
    h = harness
    h.controller(idle_seconds=45)
    ce = await h.create_env("karp", karpenter_spec())
    await until(lambda: h.status(ce).get("status") == "VALID", 90, "VALID once the NodePool is applied")
    pool = await get_pool(h, ce)
    assert pool is not None
    assert requirement(pool, "node.kubernetes.io/instance-type") == ["m5.large", "m5.xlarge"]
    assert requirement(pool, "karpenter.sh/capacity-type") == ["on-demand"]
    assert pool["spec"]["limits"] == {"cpu": "16"}
    tmpl = pool["spec"]["template"]
    assert tmpl["metadata"]["labels"]["kubatch.dev/compute-environment"] == ce
    assert {"key": "kubatch.dev/compute-environment", "value": ce, "effect": "NoSchedule"} in tmpl["spec"]["taints"]
    assert tmpl["spec"]["nodeClassRef"] == NODE_CLASS
    assert pool["spec"]["disruption"]["consolidateAfter"] == "45s"
    assert pool["metadata"]["ownerReferences"][0]["name"] == ce
    assert not h.nodes(ce)

    await h.kube.merge_patch(
        f"{CE_PATH}/{ce}",
        {
            "spec": {
                "computeResources": {
                    "instanceTypes": ["optimal"],
                    "maxvCpus": 32,
                    "type": "SPOT",
                    "allocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED",
                    "minScaleDownDelayMinutes": 10,
                }
            }
        },
    )

    deadline = time.monotonic() + 30
    new = await get_pool(h, ce)
    while (new is None or new["spec"]["limits"] != {"cpu": "32"}) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        new = await get_pool(h, ce)
    assert new is not None and new["spec"]["limits"] == {"cpu": "32"}, "NodePool never followed the new spec"
    assert requirement(new, "karpenter.k8s.aws/instance-family") == ["c6i", "c7i", "m6i", "r6i"]  # default_x86_64
    assert requirement(new, "node.kubernetes.io/instance-type") is None
    assert requirement(new, "karpenter.sh/capacity-type") == ["spot"]
    assert new["spec"]["disruption"]["consolidateAfter"] == "10m"

    await h.delete_env(ce)
    await until(lambda: ce not in h.view.envs, 90, "CE gone")
    assert await get_pool(h, ce) is None


async def test_missing_nodepool_api_makes_the_environment_invalid(harness: Harness) -> None:
    # A provisioner pointed at an API version no cluster serves: the 404 of a missing CRD, without
    # removing the real CRDs other tests use.
    h = harness
    h.controller(provisioners={"karpenter": KarpenterProvisioner(h.kube, api="/apis/karpenter.sh/v0kubatchmissing")})
    ce = await h.create_env("nokarp", karpenter_spec())
    await until(lambda: h.status(ce).get("status") == "INVALID", 90, "INVALID")
    assert h.status(ce)["statusReason"] == f"CLIENT_ERROR - {MISSING_CRD}"
    assert MISSING_CRD == "Karpenter NodePool CRD (karpenter.sh/v1) is not installed"
