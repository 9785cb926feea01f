"""Manifest builders of the kwok and Karpenter provisioners."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubatch.cluster.provisioners import (
    GPU_TAINT,
    ProvisionerError,
    kwok_node_manifest,
    node_name,
    nodepool_manifest,
    nodepool_name,
)
from kubatch.core.instances import CATALOG, MixedArchitectures, UnknownInstanceType

CE_LABEL = "kubatch.dev/compute-environment"


def ce(name: str = "cpu", **cr: Any) -> dict[str, Any]:
    resources = {"minvCpus": 0, "maxvCpus": 16, "provisioner": "kwok", **cr}
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "ComputeEnvironment",
        "metadata": {"name": name, "uid": "u-1", "generation": 1},
        "spec": {"type": "MANAGED", "computeResources": resources},
    }


def karpenter_ce(**cr: Any) -> dict[str, Any]:
    ref = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
    return ce(provisioner="karpenter", nodeClassRef=ref, **cr)


# ---- kwok ----------------------------------------------------------------------------------------
def test_node_names() -> None:
    assert node_name("cpu", "m5.large", "abcde") == "cpu-m5-large-abcde"
    assert re.fullmatch(r"cpu-m5-large-[a-z0-9]{5}", node_name("cpu", "m5.large"))


def test_kwok_node_sized_labelled_and_tainted() -> None:
    node = kwok_node_manifest(ce(type="SPOT"), CATALOG["m5.xlarge"], "cpu-m5-xlarge-x")
    md = node["metadata"]
    assert md["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert md["labels"]["node.kubernetes.io/instance-type"] == "m5.xlarge"
    assert md["labels"][CE_LABEL] == "cpu"
    assert md["labels"]["kubernetes.io/hostname"] == "cpu-m5-xlarge-x"
    assert md["labels"]["karpenter.sh/capacity-type"] == "spot"
    assert md["labels"]["kubatch.dev/managed-by"] == "kubatch"
    assert md["ownerReferences"][0]["kind"] == "ComputeEnvironment" and md["ownerReferences"][0]["uid"] == "u-1"
    assert node["status"]["allocatable"]["cpu"] == "4"
    assert node["status"]["allocatable"]["memory"] == "16384Mi"
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
    assert node["spec"]["taints"] == [{"key": CE_LABEL, "value": "cpu", "effect": "NoSchedule"}]


def test_kwok_node_architecture_and_neuron_devices() -> None:
    assert kwok_node_manifest(ce(), CATALOG["m5.xlarge"], "n")["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"
    arm = kwok_node_manifest(ce(), CATALOG["c7g.2xlarge"], "n")
    assert arm["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert arm["status"]["allocatable"]["cpu"] == "8" and arm["status"]["allocatable"]["memory"] == "16384Mi"
    trn = kwok_node_manifest(ce(), CATALOG["trn1.32xlarge"], "n")
    assert trn["status"]["capacity"]["aws.amazon.com/neuron"] == "16"
    assert trn["status"]["allocatable"]["aws.amazon.com/neuron"] == "16"
    assert "nvidia.com/gpu" not in trn["status"]["capacity"] and GPU_TAINT not in trn["spec"]["taints"]


def test_kwok_gpu_node() -> None:
    node = kwok_node_manifest(ce(), CATALOG["p3.8xlarge"], "n")
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert GPU_TAINT in node["spec"]["taints"]
    assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "on-demand"


# ---- Karpenter -----------------------------------------------------------------------------------
def requirement(pool: dict[str, Any], key: str) -> list[str] | None:
    for r in pool["spec"]["template"]["spec"]["requirements"]:
        if r["key"] == key:
            assert r["operator"] == "In"
            return list(r["values"])
    return None


def test_nodepool_exact_types() -> None:
    pool = nodepool_manifest(karpenter_ce(instanceTypes=["m5.large", "m5.xlarge"], maxvCpus=8))
    assert pool["apiVersion"] == "karpenter.sh/v1" and pool["kind"] == "NodePool"
    assert pool["metadata"]["name"] == "kubatch-cpu"
    assert requirement(pool, "node.kubernetes.io/instance-type") == ["m5.large", "m5.xlarge"]
    assert requirement(pool, "karpenter.k8s.aws/instance-family") is None
    assert requirement(pool, "karpenter.sh/capacity-type") == ["on-demand"]
    assert pool["spec"]["limits"] == {"cpu": "8"}
    tmpl = pool["spec"]["template"]
    assert tmpl["metadata"]["labels"][CE_LABEL] == "cpu"
    assert tmpl["spec"]["taints"] == [{"key": CE_LABEL, "value": "cpu", "effect": "NoSchedule"}]
    assert tmpl["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
    assert pool["spec"]["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"}


X86_DEFAULT = ["c6i", "c7i", "m6i", "r6i"]


def test_nodepool_families_optimal_spot_and_delay() -> None:
    pool = nodepool_manifest(karpenter_ce(instanceTypes=["optimal"], type="SPOT", minScaleDownDelayMinutes=5))
    assert sorted(requirement(pool, "karpenter.k8s.aws/instance-family") or []) == X86_DEFAULT
    assert requirement(pool, "node.kubernetes.io/instance-type") is None
    assert requirement(pool, "karpenter.sh/capacity-type") == ["spot"]
    assert requirement(pool, "kubernetes.io/arch") == ["amd64"]
    assert pool["spec"]["disruption"]["consolidateAfter"] == "5m"
    default = nodepool_manifest(karpenter_ce())  # unset: default_x86_64
    assert sorted(requirement(default, "karpenter.k8s.aws/instance-family") or []) == X86_DEFAULT
    keyword = nodepool_manifest(karpenter_ce(instanceTypes=["default_x86_64"]))
    assert sorted(requirement(keyword, "karpenter.k8s.aws/instance-family") or []) == X86_DEFAULT


@pytest.mark.parametrize(
    ("types", "arch"),
    [
        (["default_arm64"], "arm64"),
        (["m7g", "c7g.large"], "arm64"),
        (["r6g.medium"], "arm64"),
        (["m8g"], "arm64"),  # outside the catalogue: read from AWS's naming
        (["c7i", "m7i"], "amd64"),
        (["g6e.xlarge"], "amd64"),
        (["trn1"], "amd64"),
    ],
)
def test_nodepool_architecture_follows_the_instance_types(types: list[str], arch: str) -> None:
    pool = nodepool_manifest(karpenter_ce(instanceTypes=types))
    assert requirement(pool, "kubernetes.io/arch") == [arch]
    assert requirement(pool, "kubernetes.io/os") == ["linux"]


def test_nodepool_passes_unknown_names_to_karpenter() -> None:
    families = nodepool_manifest(karpenter_ce(instanceTypes=["m8g", "c8g"]))
    assert requirement(families, "karpenter.k8s.aws/instance-family") == ["c8g", "m8g"]
    assert requirement(families, "node.kubernetes.io/instance-type") is None
    exact = nodepool_manifest(karpenter_ce(instanceTypes=["c7a.large", "m5.large"]))
    assert requirement(exact, "node.kubernetes.io/instance-type") == ["c7a.large", "m5.large"]
    # Known families with an unknown exact type: the families' sizes plus the type.
    mixed = nodepool_manifest(karpenter_ce(instanceTypes=["c5", "c7a.large"]))
    values = requirement(mixed, "node.kubernetes.io/instance-type") or []
    assert "c7a.large" in values and "c5.xlarge" in values
    # An unknown family beside an exact type cannot be one NodePool.
    with pytest.raises(ProvisionerError, match="m8a"):
        nodepool_manifest(karpenter_ce(instanceTypes=["m8a", "m5.large"]))
    gpu = nodepool_manifest(karpenter_ce(instanceTypes=["p6-b200"]))
    assert GPU_TAINT in gpu["spec"]["template"]["spec"]["taints"]


def test_nodepool_mixed_types_become_exact() -> None:
    pool = nodepool_manifest(karpenter_ce(instanceTypes=["c5", "m5.large"]))
    values = requirement(pool, "node.kubernetes.io/instance-type")
    assert values is not None and "m5.large" in values and "c5.xlarge" in values and "m5.xlarge" not in values
    assert requirement(pool, "karpenter.k8s.aws/instance-family") is None


def test_nodepool_gpu_only_gets_the_gpu_taint() -> None:
    pool = nodepool_manifest(karpenter_ce(instanceTypes=["p3.2xlarge"]))
    assert GPU_TAINT in pool["spec"]["template"]["spec"]["taints"]
    mixed = nodepool_manifest(karpenter_ce(instanceTypes=["p3.2xlarge", "m5.large"]))
    assert GPU_TAINT not in mixed["spec"]["template"]["spec"]["taints"]


def test_nodepool_errors() -> None:
    with pytest.raises(ProvisionerError):
        nodepool_manifest(ce(provisioner="karpenter"))
    with pytest.raises(UnknownInstanceType):
        nodepool_manifest(karpenter_ce(instanceTypes=["big machine"]))
    with pytest.raises(MixedArchitectures, match="same architecture"):
        nodepool_manifest(karpenter_ce(instanceTypes=["m7g", "m7i"]))


def test_nodepool_name_stays_a_label_value() -> None:
    long = "x" * 63
    name = nodepool_name(long)
    assert len(name) <= 63 and name.startswith("kubatch-")
    assert nodepool_name(long) == name and nodepool_name("y" * 63) != name
