"""Instance types on the real control plane: the Karpenter NodePool (Karpenter's real CRDs) follows
the architecture of an environment's instance types and passes names outside kubatch's catalogue
through; the kwok provisioner, which sizes nodes itself, makes such an environment INVALID and
labels arm64 nodes as such; a job queue's environments must share one architecture (the webhook
refuses a queue that mixes them, the controller marks one INVALID)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubatch.devcluster.operatorproc import WEBHOOK_LABEL
from tests.integration.helpers import Kubectl, delete_cluster_objects
from tests.integration.test_compute import Harness, harness, managed, until
from tests.integration.test_compute_karpenter import get_pool, karpenter_spec, requirement

# Its refusals come from the shared operator's webhook: never while another test restarts it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("webhook_up")]

__all__ = ["harness"]  # the fixture, shared with test_compute

GROUP = "kubatch.dev/v1alpha1"


async def test_nodepool_architecture_and_names_outside_the_catalogue(harness: Harness, karpenter_crds: str) -> None:
    h = harness
    h.controller()
    arm = await h.create_env("arm", karpenter_spec(instanceTypes=["default_arm64"]))
    newer = await h.create_env("m8g", karpenter_spec(instanceTypes=["m8g", "c8g"]))
    x86 = await h.create_env("x86", karpenter_spec(instanceTypes=["c7i.large", "c7a.large"]))
    for ce in (arm, newer, x86):
        await until(lambda ce=ce: h.status(ce).get("status") == "VALID", 90, f"{ce} VALID with its NodePool")
    pool = await get_pool(h, arm)
    assert pool is not None  # the API server (Karpenter's CRD validation) accepted it
    assert requirement(pool, "karpenter.k8s.aws/instance-family") == ["c6g", "c7g", "m6g", "r6g"]
    assert requirement(pool, "kubernetes.io/arch") == ["arm64"]
    pool = await get_pool(h, newer)
    assert pool is not None
    assert requirement(pool, "karpenter.k8s.aws/instance-family") == ["c8g", "m8g"]  # passed through
    assert requirement(pool, "kubernetes.io/arch") == ["arm64"]
    pool = await get_pool(h, x86)
    assert pool is not None
    assert requirement(pool, "node.kubernetes.io/instance-type") == ["c7a.large", "c7i.large"]
    assert requirement(pool, "kubernetes.io/arch") == ["amd64"]

    mixed = await h.create_env("mixed", karpenter_spec(instanceTypes=["m7g", "m7i"]))
    await until(lambda: h.status(mixed).get("status") == "INVALID", 90, "mixed architectures INVALID")
    reason = h.status(mixed)["statusReason"]
    assert reason.startswith("CLIENT_ERROR - instance types of both architectures"), reason
    assert "must share the same architecture" in reason
    assert await get_pool(h, mixed) is None


async def test_kwok_needs_the_catalogue_and_labels_the_architecture(harness: Harness) -> None:
    h = harness
    h.controller()
    unknown = await h.create_env("m8g", managed(["m8g"], max_vcpus=8))
    await until(lambda: h.status(unknown).get("status") == "INVALID", 90, "INVALID with kwok")
    reason = h.status(unknown)["statusReason"]
    assert reason.startswith("CLIENT_ERROR - instance type(s) 'm8g' not in kubatch's catalogue"), reason
    assert "kwok provisioner" in reason

    arm = await h.create_env("arm", managed(["c7g.large"], max_vcpus=4, min_vcpus=2))
    trn = await h.create_env("trn", managed(["trn1.2xlarge"], max_vcpus=8, min_vcpus=8))
    await until(lambda: h.nodes(arm) and h.nodes(trn), 90, "minvCpus nodes")
    (arm_node,) = h.nodes(arm)
    assert arm_node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert arm_node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "c7g.large"
    (trn_node,) = h.nodes(trn)
    assert trn_node["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"
    assert trn_node["status"]["allocatable"]["aws.amazon.com/neuron"] == "1"


class ClusterObjects:
    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.tag = uuid.uuid4().hex[:6]
        self.created: list[tuple[str, str]] = []

    def create(self, kind: str, base: str, spec: dict[str, Any], *, checked: bool, check: bool = True) -> Any:
        name = f"{base}-{self.tag}"
        labels = {WEBHOOK_LABEL: "enabled"} if checked else {}
        obj = {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "labels": labels}, "spec": spec}
        out = self.kubectl("create", "-f", "-", input=json.dumps(obj), check=check)
        if out.returncode == 0:
            self.created.append((kind.lower(), name))
        return name if check else out

    def queue_spec(self, *envs: str) -> dict[str, Any]:
        order = [{"order": i + 1, "computeEnvironment": e} for i, e in enumerate(envs)]
        return {"priority": 1, "computeEnvironmentOrder": order}


@pytest.fixture
def objects(kubectl: Kubectl, opt_in_admission: Callable[[str], None], namespace: str) -> Iterator[ClusterObjects]:
    opt_in_admission(namespace)  # the webhook is up and answers
    o = ClusterObjects(kubectl)
    yield o
    delete_cluster_objects(kubectl, o.created)


def test_queue_environments_share_one_architecture(objects: ClusterObjects, kget: Callable[..., Any]) -> None:
    o = objects
    kwok = {"minvCpus": 0, "maxvCpus": 4, "provisioner": "kwok"}
    x86 = o.create("ComputeEnvironment", "x86", {"type": "MANAGED", "computeResources": kwok}, checked=True)
    arm = o.create(
        "ComputeEnvironment",
        "arm",
        {"type": "MANAGED", "computeResources": {**kwok, "instanceTypes": ["default_arm64"]}},
        checked=True,
    )
    arm_pool = o.create(
        "ComputeEnvironment",
        "armpool",
        {"type": "UNMANAGED", "nodeSelector": {"kubernetes.io/arch": "arm64", "kubatch.dev/test-pool": o.tag}},
        checked=True,
    )
    o.create("JobQueue", "armq", o.queue_spec(arm, arm_pool), checked=True)  # one architecture: accepted
    for envs in ((x86, arm), (x86, arm_pool)):
        out = o.create("JobQueue", "mixed", o.queue_spec(*envs), checked=True, check=False)
        assert out.returncode != 0, "a queue mixing architectures was accepted"
        assert "spec.computeEnvironmentOrder" in out.stderr and "must share the same architecture" in out.stderr
        assert f"{x86} (x86_64)" in out.stderr, out.stderr

    # Not checked by the webhook (an object outside its selector): the controller marks it INVALID.
    queue = o.create("JobQueue", "unchecked", o.queue_spec(x86, arm), checked=False)
    deadline = time.monotonic() + 90
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = kget("jobqueue", queue).get("status") or {}
        if status.get("status") == "INVALID":
            break
        time.sleep(0.25)
    assert status.get("status") == "INVALID", status
    assert status["statusReason"].startswith("CLIENT_ERROR - compute environments of different architectures")
    assert f"{arm} (arm64)" in status["statusReason"]
