"""Jobs on a node that an infrastructure update replaces (`Context.node_deadlines`, from the node's
`kubatch.dev/terminate-jobs-at`): until the deadline the attempt runs on (the step looks again at
the deadline); at it the attempt ends as on a lost host (`Host EC2 (instance <node>) terminated.`,
container reason saying why), its pod is deleted with the grace period, and the job is retried only
when its retry strategy says so. A pod that finished in time keeps its result."""

from __future__ import annotations

from typing import Any

from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.updates import REASON_NODE_REPLACED

NOW = 1_800_000_000.0
DEADLINE = NOW + 600
CE_LABEL = "kubatch.dev/compute-environment"
CONTAINER = {
    "image": "busybox",
    "command": ["sh", "-c", "sleep 3600"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
}
WORK = Definition("work:1", {"type": "container", "containerProperties": CONTAINER})
HOST_LOST = "Host EC2 (instance old-node) terminated."


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid", "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"jobQueue": "q", "jobDefinition": "work", **spec},
        "status": {
            "status": "RUNNING",
            "statusReason": "",
            "jobId": "job-uid",
            "computeEnvironment": "ce",
            "startedAt": "2027-01-15T08:00:01Z",
        },
    }


def pod(phase: str = "Running", node: str = "old-node") -> dict[str, Any]:
    if phase == "Succeeded":
        state: dict[str, Any] = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "2027-01-15T08:00:01Z",
                "finishedAt": "2027-01-15T08:09:00Z",
            }
        }
    else:
        state = {"running": {"startedAt": "2027-01-15T08:00:01Z"}}
    return {
        "metadata": {"name": "j-a1", "uid": "pod-uid", "labels": {"kubatch.dev/job-name": "j", CE_LABEL: "ce"}},
        "spec": {"nodeName": node, "containers": [{"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


def ctx(now: float) -> Context:
    return Context(
        now=now,
        definition=WORK,
        nodes=frozenset({"old-node", "new-node"}),
        node_deadlines={"old-node": DEADLINE},
    )


def test_before_the_deadline_the_job_runs_on_and_is_looked_at_again_at_it() -> None:
    d = reconcile(job(), {"j-a1": pod()}, ctx(NOW))
    assert d.status is None and d.delete == []
    assert d.requeue_at == DEADLINE


def test_at_the_deadline_the_attempt_ends_as_on_a_lost_host_and_the_job_fails() -> None:
    d = reconcile(job(), {"j-a1": pod()}, ctx(DEADLINE))
    assert d.status is not None
    assert d.status["status"] == "FAILED"
    assert d.status["statusReason"] == HOST_LOST
    (attempt,) = d.status["attempts"]
    assert attempt["statusReason"] == HOST_LOST
    assert attempt["container"]["reason"] == REASON_NODE_REPLACED
    assert attempt["container"]["nodeName"] == "old-node"
    # The pod gets its grace period (SIGTERM first), as a terminated job's does.
    [delete] = d.delete
    assert delete.name == "j-a1" and delete.grace_seconds == 30


def test_a_retry_strategy_retries_it_and_evaluate_on_exit_sees_the_host_reason() -> None:
    d = reconcile(job(retryStrategy={"attempts": 2}), {"j-a1": pod()}, ctx(DEADLINE))
    assert d.status is not None and d.status["status"] == "RUNNABLE"
    assert [e.reason for e in d.events if e.reason == "JobRetry"] == ["JobRetry"]
    exit_on_host = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "exit"}]}
    d = reconcile(job(retryStrategy=exit_on_host), {"j-a1": pod()}, ctx(DEADLINE))
    assert d.status is not None and d.status["status"] == "FAILED"


def test_a_job_that_finished_in_time_keeps_its_success() -> None:
    d = reconcile(job(), {"j-a1": pod("Succeeded")}, ctx(DEADLINE + 60))
    assert d.status is not None and d.status["status"] == "SUCCEEDED"


def test_jobs_on_current_nodes_are_not_touched() -> None:
    d = reconcile(job(), {"j-a1": pod(node="new-node")}, ctx(DEADLINE + 60))
    assert d.status is None and d.delete == []
    assert d.requeue_at is None
