"""Cancelling or terminating single array children (spec.cancelChildren / spec.terminateChildren,
AWS Batch CancelJob / TerminateJob on `<jobId>:<index>`): only that child fails, its N_TO_N
dependents fail with `Dependent Job failed`, and the parent fails once every child ended."""

from __future__ import annotations

from typing import Any

from kubatch.core.arrays import ArrayChildren, IndexSet
from kubatch.core.deps import DependencyStatus
from kubatch.core.lifecycle import Context, Decision, Definition, reconcile
from kubatch.core.states import REASON_DEPENDENT_JOB_FAILED, JobStatus

NOW = 1_800_000_000.0
DEF = Definition(
    "d:1",
    {
        "type": "container",
        "retryStrategy": {"attempts": 3},
        "containerProperties": {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    },
)


def array_job(indexes: dict[str, str], *, name: str = "arr", size: int = 4, **spec: Any) -> dict[str, Any]:
    counts = {k: len(IndexSet.parse(v)) for k, v in indexes.items()}
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "creationTimestamp": "2027-01-15T08:00Z"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": size}, **spec},
        "status": {
            "status": "PENDING",
            "statusReason": "",
            "jobId": f"{name}-uid",
            "jobDefinition": "d:1",
            "arrayProperties": {"size": size, "indexes": indexes, "statusSummary": counts},
        },
    }


def child_pod(index: int, phase: str = "Running", *, job: str = "arr", attempt: int = 1) -> dict[str, Any]:
    name = f"{job}-{index}-a{attempt}"
    labels = {"kubatch.dev/job-name": job, "kubatch.dev/attempt": str(attempt), "kubatch.dev/array-index": str(index)}
    state: dict[str, Any] = {"running": {"startedAt": "2027-01-15T08:00:01Z"}} if phase == "Running" else {}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


def step(job: dict[str, Any], pods: dict[str, dict[str, Any]] | None = None, **ctx: Any) -> Decision:
    return reconcile(job, pods or {}, Context(now=NOW, definition=DEF, nodes=frozenset({"n1"}), **ctx))


def props(d: Decision) -> dict[str, Any]:
    assert d.status is not None
    return dict(d.status["arrayProperties"])


def test_cancelling_a_waiting_child_fails_only_that_child() -> None:
    job = array_job({"RUNNABLE": "0-3"}, cancelChildren={"2": {"reason": "not needed"}})
    d = step(job)
    p = props(d)
    assert p["indexes"] == {"RUNNABLE": "0-1,3", "FAILED": "2"}
    assert p["statusReasons"] == {"not needed": "2"}
    assert p["statusSummary"]["FAILED"] == 1 and p["statusSummary"]["RUNNABLE"] == 3
    assert d.status is not None and d.status["status"] == "PENDING"


def test_cancel_leaves_a_running_child_alone_terminate_stops_it_without_retry() -> None:
    pods = {"arr-1-a1": child_pod(1)}
    job = array_job({"RUNNING": "1", "RUNNABLE": "0,2-3"}, cancelChildren={"1": {"reason": "too late"}})
    d = step(job, pods)
    assert d.status is None or props(d)["indexes"]["RUNNING"] == "1"
    assert d.delete == []

    job = array_job({"RUNNING": "1", "RUNNABLE": "0,2-3"}, terminateChildren={"1": {"reason": "stop it"}})
    d = step(job, pods)
    p = props(d)
    assert p["indexes"] == {"RUNNABLE": "0,2-3", "FAILED": "1"}
    assert p["statusReasons"] == {"stop it": "1"}
    assert p["attempts"] == {"1": "1"}  # the stopped attempt is recorded; no retry despite attempts: 3
    assert [x.name for x in d.delete] == ["arr-1-a1"] and d.delete[0].grace_seconds > 0


def test_terminate_wins_over_cancel_for_a_waiting_child() -> None:
    job = array_job(
        {"RUNNABLE": "0-3"}, cancelChildren={"0": {"reason": "c"}}, terminateChildren={"0": {"reason": "t"}}
    )
    assert props(step(job))["statusReasons"] == {"t": "0"}


def test_a_pod_of_a_child_cancelled_as_it_was_placed_is_deleted() -> None:
    job = array_job({"RUNNABLE": "0-3"}, cancelChildren={"3": {"reason": "no"}})
    d = step(job, {"arr-3-a1": child_pod(3, "Pending")})
    assert props(d)["indexes"]["FAILED"] == "3"
    assert [x.name for x in d.delete] == ["arr-3-a1"]


def test_parent_fails_once_every_child_ended() -> None:
    job = array_job({"SUCCEEDED": "0-2", "RUNNABLE": "3"}, cancelChildren={"3": {"reason": "skip"}})
    d = step(job)
    assert d.status is not None
    assert d.status["status"] == "FAILED"
    assert props(d)["indexes"] == {"SUCCEEDED": "0-2", "FAILED": "3"}


def test_n_to_n_dependent_child_fails_with_dependent_job_failed() -> None:
    dep = DependencyStatus(JobStatus.PENDING, ArrayChildren.from_status(4, {"RUNNABLE": "0-1,3", "FAILED": "2"}))
    job = array_job({"PENDING": "0-3"}, name="down", dependsOn=[{"jobName": "up", "type": "N_TO_N"}])
    p = props(step(job, deps={"up": dep}))
    assert p["indexes"] == {"PENDING": "0-1,3", "FAILED": "2"}
    assert p["statusReasons"] == {REASON_DEPENDENT_JOB_FAILED: "2"}
