"""UNMANAGED node pools with the operator: the nodes a compute environment's nodeSelector picks get
the pool label and NoSchedule taint (and lose them when they leave the selection); kube-scheduler
keeps pods without the toleration off the pool and puts the environment's jobs on it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.batch import GROUP, Batch

pytestmark = pytest.mark.integration

LABEL = "kubatch.dev/compute-environment"


def pool_state(batch: Batch, node: str) -> tuple[str | None, list[dict[str, str]]]:
    obj = batch.kget("node", node)
    taints = [t for t in obj["spec"].get("taints") or [] if t["key"] == LABEL]
    return obj["metadata"]["labels"].get(LABEL), taints


def test_unmanaged_pool_membership_follows_the_node_selector(batch: Batch) -> None:
    ce = batch.name("pool")
    sel = {"kubatch.dev/test-pool": ce}
    member = batch.make_node(cpu=2, labels=sel)
    outsider = batch.make_node(cpu=2, labels={"kubatch.dev/test-pool": "elsewhere"})
    batch.apply(
        {
            "apiVersion": GROUP,
            "kind": "ComputeEnvironment",
            "metadata": {"name": ce},
            "spec": {"type": "UNMANAGED", "nodeSelector": sel},
        }
    )
    batch.cluster_objects.append(("computeenvironment", ce))
    batch.wait_for(lambda: pool_state(batch, member)[0] == ce, "member labelled")
    _, taints = pool_state(batch, member)
    assert taints == [{"key": LABEL, "value": ce, "effect": "NoSchedule"}]
    assert pool_state(batch, outsider) == (None, [])

    # A pod without the toleration never lands on the pool, even when it selects it.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"intruder-{uuid.uuid4().hex[:4]}"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {LABEL: ce},
            "containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "100m"}}}],
        },
    }
    batch.kubectl("apply", "-n", batch.ns, "-f", "-", input=json.dumps(pod))

    def unschedulable() -> bool:
        p = batch.kget("pod", pod["metadata"]["name"], "-n", batch.ns)
        return any(c.get("reason") == "Unschedulable" for c in p.get("status", {}).get("conditions", []))

    batch.wait_for(unschedulable, "intruder unschedulable")
    assert not batch.kget("pod", pod["metadata"]["name"], "-n", batch.ns)["spec"].get("nodeName")

    # The environment's own jobs run there.
    q = batch.queue([ce])
    batch.container_definition("work")
    batch.job("on-pool", q, "work", duration="10s")
    batch.wait_status("on-pool", "RUNNING")
    (job_pod,) = batch.pods("on-pool")
    assert job_pod["spec"]["nodeName"] == member

    # A node that leaves the selection leaves the pool.
    batch.kubectl("label", "node", member, "kubatch.dev/test-pool=moved", "--overwrite")
    batch.wait_for(lambda: pool_state(batch, member) == (None, []), "member released")
