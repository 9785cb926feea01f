"""Deleting queues and compute environments (kubatch.core.deletion) and what a deleted queue does to
its jobs (kubatch.core.lifecycle with ``Context.queue_deleted``): the jobs that have not started fail,
the running ones finish."""

from __future__ import annotations

from typing import Any

from kubatch.core.deletion import (
    attached_queues,
    environment_deletion_blockers,
    environment_deletion_wait,
    queue_deletion_refusal,
)
from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.states import queue_deleted_reason

NOW = 1_800_000_000.0
DEF = Definition("d:1", {"type": "container", "containerProperties": {"image": "busybox"}})
GONE = queue_deleted_reason("q")


def queue(name: str, *envs: str, state: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"priority": 1, "computeEnvironmentOrder": [{"computeEnvironment": e} for e in envs]}
    if state:
        spec["state"] = state
    return {"metadata": {"name": name}, "spec": spec}


def test_only_a_disabled_queue_may_be_deleted() -> None:
    assert queue_deletion_refusal(queue("q", "ce", state="DISABLED")) is None
    refusal = queue_deletion_refusal(queue("q", "ce", state="ENABLED"))
    assert refusal is not None and refusal.startswith('job queue "q" is ENABLED: a job queue can be deleted only once')
    assert queue_deletion_refusal(queue("q", "ce")) is not None  # ENABLED by default


def test_an_environment_goes_once_disabled_detached_and_idle() -> None:
    queues = {"b": queue("b", "ce", "other"), "a": queue("a", "ce"), "c": queue("c", "other")}
    assert attached_queues("ce", queues) == ["a", "b"]
    enabled = {"metadata": {"name": "ce"}, "spec": {"state": "ENABLED"}}
    disabled = {"metadata": {"name": "ce"}, "spec": {"state": "DISABLED"}}
    blockers = environment_deletion_blockers("ce", enabled, queues, 2)
    assert blockers == [
        "it is ENABLED (set spec.state: DISABLED)",
        "job queue(s) a, b still use it (remove it from their computeEnvironmentOrder)",
        "2 job pod(s) still run on it",
    ]
    assert environment_deletion_wait(blockers).startswith("DELETE_PENDING - ")
    assert environment_deletion_wait(blockers).endswith("waiting: " + "; ".join(blockers))
    assert environment_deletion_blockers("ce", disabled, {"c": queues["c"]}, 1) == ["1 job pod(s) still run on it"]
    assert environment_deletion_blockers("ce", disabled, {"c": queues["c"]}, 0) == []
    many = {f"q{i:02}": queue(f"q{i:02}", "ce") for i in range(12)}
    assert "q09 and 2 more still use it" in environment_deletion_blockers("ce", disabled, many, 0)[0]


def job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "uid"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
        "status": {"jobId": "uid", "jobDefinition": "d:1", "statusReason": "", **status},
    }


def step(j: dict[str, Any], pods: dict[str, Any] | None = None) -> Any:
    return reconcile(j, pods or {}, Context(now=NOW, definition=DEF, nodes=frozenset({"n1"}), queue_deleted=GONE))


def test_the_waiting_jobs_of_a_deleted_queue_fail() -> None:
    for state in ("RUNNABLE", "PENDING"):
        d = step(job({"status": state}, dependsOn=[{"jobName": "other"}] if state == "PENDING" else None))
        assert d.status is not None
        assert (d.status["status"], d.status["statusReason"]) == ("FAILED", "Job queue q was deleted")
    # a cancel of the user's own keeps its reason
    d = step(job({"status": "RUNNABLE"}, cancel={"reason": "mine"}))
    assert d.status is not None and d.status["statusReason"] == "mine"


def test_the_running_jobs_of_a_deleted_queue_finish() -> None:
    pod = {
        "metadata": {"name": "j-a1", "uid": "p", "labels": {"kubatch.dev/job-name": "j", "kubatch.dev/attempt": "1"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": "2027-01-15T08:00:00Z"}}}],
        },
    }
    d = step(job({"status": "RUNNING", "startedAt": "2027-01-15T08:00:00Z"}), {"j-a1": pod})
    assert d.status is None and d.delete == []


def test_a_deleted_queues_array_fails_its_waiting_children_only() -> None:
    status = {
        "status": "PENDING",
        "arrayProperties": {"size": 4, "indexes": {"RUNNING": "0", "RUNNABLE": "1-3"}},
    }
    pod = {
        "metadata": {
            "name": "j-0-a1",
            "uid": "p",
            "labels": {"kubatch.dev/job-name": "j", "kubatch.dev/attempt": "1", "kubatch.dev/array-index": "0"},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]},
    }
    d = step(job(status, arrayProperties={"size": 4}), {"j-0-a1": pod})
    assert d.status is not None
    props = d.status["arrayProperties"]
    assert props["indexes"] == {"RUNNING": "0", "FAILED": "1-3"}
    assert props["statusReasons"] == {GONE: "1-3"}
    assert d.status["status"] == "PENDING"  # child 0 still runs
    assert d.delete == []
