"""A job whose pod never starts does not stay STARTING forever (real control plane, kwok nodes).

kwok runs every pod it is given (it ignores images, Secrets and volumes), so of the ways a pod can
fail to start only the one the real kube-scheduler decides shows here: a pod that no node takes. A
PersistentVolumeClaim that does not exist keeps the pod unscheduled ("persistentvolumeclaim ... not
found"), Pending forever; the attempt fails with `Task failed to start` once it outlasts the start
bound (the shared test operator's: 1000 s scaled by KUBATCH_TIME_LIMIT_SCALE=0.01, 10 s), and
`evaluateOnExit` on that statusReason retries it. The kubelet's cases (a pull backing off, a missing
Secret or ConfigMap, a volume that cannot be mounted) are covered on the pure core
(tests/unit/core/test_lifecycle_start.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubatch.devcluster.operatorproc import TEST_START_TIMEOUT_SECONDS
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration

BOUND = TEST_START_TIMEOUT_SECONDS * 0.01


def claim_definition(batch: Batch, name: str, claim: str, **extra: Any) -> str:
    spec = {
        "type": "container",
        "containerProperties": {
            "image": "busybox:1.36",
            "command": ["sh", "-c", "ls /data"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
        },
        **extra,
    }
    return batch.definition(name, spec)


def test_a_pod_no_node_takes_fails_to_start_and_is_retried(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=2)])
    retry = {
        "attempts": 2,
        "evaluateOnExit": [
            {"onStatusReason": "Task failed to start", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    claim_definition(batch, "needs-claim", "absent-claim", retryStrategy=retry)
    batch.job("stuck", q, "needs-claim")

    batch.wait_status("stuck", "STARTING", timeout=60)
    pod = batch.wait_for(lambda: batch.pods("stuck"), "the first attempt's pod")[0]
    assert pod["metadata"]["name"] == "stuck-a1"
    started = time.monotonic()

    def unschedulable() -> str | None:
        pods = batch.pods("stuck")
        for cond in (pods[0]["status"].get("conditions") or []) if pods else []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return str(cond.get("message"))
        return None

    message = batch.wait_for(unschedulable, "the scheduler's verdict on the pod", timeout=30)
    assert "absent-claim" in message and "not found" in message

    st = batch.wait_done("stuck", timeout=4 * BOUND + 60)
    elapsed = time.monotonic() - started
    assert st["status"] == "FAILED", st
    assert st["statusReason"] == "Task failed to start"
    assert [a["container"]["podName"] for a in st["attempts"]] == ["stuck-a1", "stuck-a2"]
    for attempt in st["attempts"]:
        assert attempt["statusReason"] == "Task failed to start"
        reason = attempt["container"]["reason"]
        assert reason.startswith("Unschedulable: ") and "absent-claim" in reason, reason
        assert "exitCode" not in attempt["container"] and "startedAt" not in attempt
    # Two attempts, each held for the bound (from its pod's creation), not at once and not forever.
    assert elapsed >= 2 * (BOUND - 1) - 1, elapsed
    assert not st.get("startedAt")
    batch.wait_for(lambda: not batch.pods("stuck"), "the pods of the failed attempts deleted")
    reasons = [e["reason"] for e in batch.events("stuck")]
    assert "JobRetry" in reasons and "JobFailed" in reasons, reasons


def test_a_pod_that_can_be_placed_in_time_runs(batch: Batch) -> None:
    """The bound is no deadline for a healthy start: the same definition with a claim that exists
    (bound to a static volume) runs as usual."""
    q = batch.queue([batch.environment(cpu=2)])
    pv = f"pv-{batch.tag}"
    batch.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/{pv}"},
                "claimRef": {"namespace": batch.ns, "name": "data"},
            },
        }
    )
    batch.cluster_objects.append(("persistentvolume", pv))
    batch.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": batch.ns},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    batch.wait_for(
        lambda: batch.kget("pvc", "data", "-n", batch.ns).get("status", {}).get("phase") == "Bound",
        "the claim bound to its volume",
        timeout=60,
    )
    claim_definition(batch, "with-claim", "data")
    batch.job("fine", q, "with-claim", duration="1s")
    st = batch.wait_done("fine", timeout=60)
    assert st["status"] == "SUCCEEDED", st
    assert len(st["attempts"]) == 1
