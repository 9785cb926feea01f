"""A kwok node deleted under running pods: the lost-host semantics of AWS Batch."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def _running_node(batch: Batch, job: str) -> str | None:
    for pod in batch.pods(job):
        if (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName"):
            return str(pod["spec"]["nodeName"])
    return None


def _host_terminated(node: str) -> str:
    return f"Host EC2 (instance {node}) terminated."


def test_node_deleted_under_running_pods(batch: Batch) -> None:
    """Two jobs run on kwok nodes of one compute environment (3 nodes); the nodes their pods run on
    are deleted. Proves: each running attempt fails with statusReason `Host EC2 (instance <node>)
    terminated.`; the job with retryStrategy.attempts=2 goes back to RUNNABLE and SUCCEEDS on
    attempt 2, on a node that still exists; the job without retries ends FAILED with that reason."""
    q = batch.queue([batch.environment(nodes=3, cpu=4)])
    batch.container_definition("retry2", retryStrategy={"attempts": 2})
    batch.container_definition("once")
    batch.job("lost-retry", q, "retry2", duration="1s", annotations={"sim.kubatch.dev/duration-attempt-1": "300s"})
    batch.job("lost-once", q, "once", duration="300s")
    nodes: dict[str, str] = {}
    for job in ("lost-retry", "lost-once"):

        def placed(job: str = job) -> str | None:
            return _running_node(batch, job)

        nodes[job] = str(batch.wait_for(placed, f"{job} running on a node", 60))
        batch.wait_status(job, "RUNNING", timeout=30)
    deleted = sorted(set(nodes.values()))
    batch.kubectl("delete", "node", *deleted, "--wait=false")
    gone = time.monotonic()

    retried = batch.wait_done("lost-retry", timeout=60)
    assert retried["status"] == "SUCCEEDED", retried
    first, second = retried["attempts"]
    assert first["statusReason"] == _host_terminated(nodes["lost-retry"]), first
    assert second["container"].get("nodeName") not in deleted, second
    assert second["container"].get("exitCode") == 0, second

    failed = batch.wait_done("lost-once", timeout=60)
    assert failed["status"] == "FAILED", failed
    assert failed["statusReason"] == _host_terminated(nodes["lost-once"]), failed
    assert len(failed["attempts"]) == 1
    assert failed["attempts"][0]["statusReason"] == _host_terminated(nodes["lost-once"])
    seconds = time.monotonic() - gone
    pods: list[dict[str, Any]] = batch.pods("lost-once")
    assert all(p["spec"].get("nodeName") not in deleted or p["metadata"].get("deletionTimestamp") for p in pods)
    print(f"\n[resilience] node loss: {deleted} deleted, both jobs settled {seconds:.1f}s later", file=sys.stderr)
