"""`ComputeEnvironment.spec.tolerations` on the real control plane: an UNMANAGED pool of nodes with
a taint of the admin's own runs jobs once the environment tolerates that taint. Without the
toleration kube-scheduler refuses the job's pod, so the environment does not count the node and the
job waits RUNNABLE with a reason instead of being started onto nothing; the CRD checks the entries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.batch import GROUP, Batch

pytestmark = pytest.mark.integration

TAINT = {"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"}
TOLERATION = {**TAINT, "operator": "Equal"}


def environment(batch: Batch, name: str, selector: dict[str, str], tolerations: list[dict[str, Any]]) -> None:
    spec: dict[str, Any] = {"type": "UNMANAGED", "nodeSelector": selector}
    if tolerations:
        spec["tolerations"] = tolerations
    batch.apply({"apiVersion": GROUP, "kind": "ComputeEnvironment", "metadata": {"name": name}, "spec": spec})
    batch.cluster_objects.append(("computeenvironment", name))


def unschedulable(batch: Batch, pod: str) -> bool:
    p = batch.kget("pod", pod, "-n", batch.ns)
    return any(c.get("reason") == "Unschedulable" for c in p.get("status", {}).get("conditions", []))


def test_a_tainted_unmanaged_pool_runs_jobs_only_with_the_toleration(batch: Batch) -> None:
    ce = batch.name("dedicated")
    selector = {"kubatch.dev/test-pool": ce}
    node = batch.make_node(cpu=2, labels=selector, taints=[TAINT])
    environment(batch, ce, selector, [])
    batch.wait_for(
        lambda: batch.kget("node", node)["metadata"]["labels"].get("kubatch.dev/compute-environment") == ce,
        "the tainted node joined the pool",
    )
    q = batch.queue([ce])
    batch.container_definition("work", vcpus="1")

    # Without the toleration the node is not capacity: the job waits RUNNABLE, no pod is created.
    batch.job("waits", q, "work")
    st = batch.wait_for(
        lambda: (s := batch.status("waits")).get("statusReason", "").startswith("MISCONFIGURATION:") and s,
        "the job blocked with a reason",
    )
    assert st["status"] == "RUNNABLE", st
    assert batch.pods("waits") == []

    # The environment tolerates the taint: the node counts, the waiting job runs there and succeeds.
    batch.kubectl(
        "patch", "computeenvironment", ce, "--type=merge", "-p", json.dumps({"spec": {"tolerations": [TOLERATION]}})
    )
    assert batch.wait_done("waits")["status"] == "SUCCEEDED"
    batch.job("runs", q, "work", duration="30s")
    batch.wait_status("runs", "RUNNING")
    (pod,) = batch.pods("runs")
    assert pod["spec"]["nodeName"] == node
    assert TOLERATION in pod["spec"]["tolerations"]
    assert {"key": "kubatch.dev/compute-environment", "operator": "Equal", "value": ce, "effect": "NoSchedule"} in pod[
        "spec"
    ]["tolerations"]

    # The same pod without that toleration is kept off the node by kube-scheduler: it stays Pending.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{pod['metadata']['name']}-bare", "namespace": batch.ns},
        "spec": {
            # (priority and preemptionPolicy are the admission plugin's to fill in again)
            **{
                k: v
                for k, v in pod["spec"].items()
                if k not in ("nodeName", "tolerations", "priority", "preemptionPolicy")
            },
            "tolerations": [t for t in pod["spec"]["tolerations"] if t.get("key") != TAINT["key"]],
        },
    }
    batch.kubectl("create", "-f", "-", input=json.dumps(bare))
    batch.wait_for(lambda: unschedulable(batch, bare["metadata"]["name"]), "the pod without the toleration refused")
    assert not batch.kget("pod", bare["metadata"]["name"], "-n", batch.ns)["spec"].get("nodeName")
    assert batch.wait_done("runs", timeout=120)["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("toleration", "message"),
    [
        ({"key": "k", "operator": "Exists", "value": "v"}, "must not be set with operator Exists"),
        ({"key": "k", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 5}, "only to effect NoExecute"),
        ({"value": "v"}, "key is required with operator Equal"),
        ({"key": "k", "operator": "In"}, "Unsupported value"),
        ({"key": "k", "effect": "Never"}, "Unsupported value"),
    ],
)
def test_invalid_tolerations_are_rejected(batch: Batch, toleration: dict[str, Any], message: str) -> None:
    obj = {
        "apiVersion": GROUP,
        "kind": "ComputeEnvironment",
        "metadata": {"name": batch.name("bad-tol")},
        "spec": {"type": "UNMANAGED", "nodeSelector": {"x": "y"}, "tolerations": [toleration]},
    }
    out = batch.create(obj, check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_at_most_20_tolerations(batch: Batch) -> None:
    many = [{"key": f"k{i}", "operator": "Exists"} for i in range(21)]
    obj = {
        "apiVersion": GROUP,
        "kind": "ComputeEnvironment",
        "metadata": {"name": batch.name("many-tol")},
        "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 4, "provisioner": "kwok"}, "tolerations": many},
    }
    out = batch.create(obj, check=False)
    assert out.returncode != 0 and "must have at most 20 items" in out.stderr, out.stderr
    obj["spec"]["tolerations"] = many[:20]
    out = batch.create(obj, check=False)
    assert out.returncode == 0, out.stderr
    batch.cluster_objects.append(("computeenvironment", obj["metadata"]["name"]))
