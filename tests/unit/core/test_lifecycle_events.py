"""The lifecycle's Events and pod deletions, step by step over plain data.

Proves: a job walked from SUBMITTED to SUCCEEDED yields one event per state; the `notable` level
keeps only how the job ended (and retries and warnings), `all` keeps every one, `none` nothing;
a finished pod is deleted once, and not again while its grace-0 deletion is in progress, but a
pod stuck in a longer grace period is forced.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.core.lifecycle import Context, Definition, JobEvent, reconcile, wanted_event

NOW = 1_800_000_000.0
DEFINITION = Definition(
    "work:1",
    {
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "command": ["sh", "-c", "true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    },
)


def job(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid", "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"jobQueue": "q", "jobDefinition": "work"},
        "status": status or {},
    }


def pod(phase: str, *, deleting: int | None = None) -> dict[str, Any]:
    state: dict[str, Any]
    if phase == "Running":
        state = {"running": {"startedAt": "2027-01-15T08:00:01Z"}}
    else:
        state = {
            "terminated": {
                "exitCode": 0 if phase == "Succeeded" else 1,
                "reason": "Completed" if phase == "Succeeded" else "Error",
                "startedAt": "2027-01-15T08:00:01Z",
                "finishedAt": "2027-01-15T08:00:02Z",
            }
        }
    md: dict[str, Any] = {
        "name": "j-a1",
        "uid": "pod-uid",
        "labels": {"kubatch.dev/job-name": "j", "kubatch.dev/attempt": "1", "kubatch.dev/compute-environment": "ce"},
    }
    if deleting is not None:
        md["deletionTimestamp"] = "2027-01-15T08:00:03Z"
        md["deletionGracePeriodSeconds"] = deleting
    return {
        "metadata": md,
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


def ctx() -> Context:
    return Context(now=NOW, definition=DEFINITION, nodes=frozenset({"n1"}))


def walk() -> tuple[list[JobEvent], dict[str, Any]]:
    """SUBMITTED -> RUNNABLE; dispatched (pod Running) -> RUNNING; pod Succeeded -> SUCCEEDED."""
    events: list[JobEvent] = []
    status: dict[str, Any] = {}
    for pods in ({}, {"j-a1": pod("Running")}, {"j-a1": pod("Succeeded")}):
        d = reconcile(job(status), pods, ctx())
        events += d.events
        status = d.status or status
    return events, status


def test_a_walk_to_succeeded_has_one_event_per_state() -> None:
    events, status = walk()
    assert status["status"] == "SUCCEEDED"
    assert [e.reason for e in events] == ["JobRunnable", "JobStarting", "JobRunning", "JobSucceeded"]


@pytest.mark.parametrize(
    ("level", "posted"),
    [
        ("all", ["JobRunnable", "JobStarting", "JobRunning", "JobSucceeded"]),
        ("notable", ["JobSucceeded"]),
        ("none", []),
    ],
)
def test_event_levels(level: str, posted: list[str]) -> None:
    events, _ = walk()
    assert [e.reason for e in events if wanted_event(e, level)] == posted


def test_notable_keeps_warnings_and_retries() -> None:
    assert wanted_event(JobEvent("Warning", "JobFailed", "x"), "notable")
    assert wanted_event(JobEvent("Normal", "JobRetry", "attempt 1 failed"), "notable")
    assert wanted_event(JobEvent("Warning", "JobRunnable", "odd, but a warning"), "notable")
    assert not wanted_event(JobEvent("Normal", "JobRunning", "j is RUNNING"), "notable")


def finished_status() -> dict[str, Any]:
    _, status = walk()
    return status


@pytest.mark.parametrize("level", ["all", "notable"])
def test_a_busy_operator_sheds_the_events_that_restate_a_status(level: str) -> None:
    """Busy (hundreds of status writes waiting): success and routine steps are not posted at any
    level; failures, retries and warnings still are."""
    for reason in ("JobSucceeded", "JobRunnable", "JobRunning"):
        assert not wanted_event(JobEvent("Normal", reason, "x"), level, busy=True)
    assert wanted_event(JobEvent("Normal", "JobSucceeded", "x"), level)
    assert wanted_event(JobEvent("Warning", "JobFailed", "x"), level, busy=True)
    assert wanted_event(JobEvent("Normal", "JobRetry", "x"), level, busy=True)
    assert not wanted_event(JobEvent("Warning", "JobFailed", "x"), "none", busy=True)


def test_the_reconciler_counts_the_events_it_sheds() -> None:
    from kubatch.cluster.view import View
    from kubatch.observability.metrics import Metrics
    from kubatch.runtime.jobs import BUSY_PENDING_WRITES, JobReconciler, PendingWrite

    class Recorder:
        def __init__(self) -> None:
            self.reasons: list[str] = []

        def record(self, obj: object, reason: str, message: str, *, type_: str = "Normal") -> None:
            self.reasons.append(reason)

    recorder, metrics = Recorder(), Metrics()
    r = JobReconciler(None, View(), recorder, metrics)  # type: ignore[arg-type]
    job = {"metadata": {"name": "j", "namespace": "ns"}}
    done = [JobEvent("Normal", "JobSucceeded", "j is SUCCEEDED"), JobEvent("Warning", "JobFailed", "x")]
    r.post(job, done)
    assert recorder.reasons == ["JobSucceeded", "JobFailed"]
    r.pending = {f"ns/j{i}": PendingWrite(due=0) for i in range(BUSY_PENDING_WRITES)}
    r.post(job, done)
    assert recorder.reasons == ["JobSucceeded", "JobFailed", "JobFailed"]
    assert metrics.registry.get_sample_value("kubatch_events_shed_total", {"reason": "JobSucceeded"}) == 1.0


def test_finished_pod_is_deleted_with_grace_zero() -> None:
    d = reconcile(job(finished_status()), {"j-a1": pod("Succeeded")}, ctx())
    assert [(x.name, x.grace_seconds, x.uid) for x in d.delete] == [("j-a1", 0, "pod-uid")]


def test_pod_already_deleted_with_grace_zero_is_not_deleted_again() -> None:
    d = reconcile(job(finished_status()), {"j-a1": pod("Succeeded", deleting=0)}, ctx())
    assert d.delete == []


def test_pod_stuck_in_a_longer_grace_period_is_forced() -> None:
    d = reconcile(job(finished_status()), {"j-a1": pod("Succeeded", deleting=30)}, ctx())
    assert [(x.name, x.grace_seconds) for x in d.delete] == [("j-a1", 0)]


def test_the_operator_refuses_an_unknown_event_level() -> None:
    from kubatch.runtime.app import job_events_level

    assert job_events_level(" ALL ") == "all"
    with pytest.raises(ValueError, match="KUBATCH_JOB_EVENTS must be one of all, notable, none"):
        job_events_level("loud")


def test_status_coalescing_window_grows_with_pending_writes() -> None:
    from kubatch.cluster.view import View
    from kubatch.runtime.jobs import JobReconciler, PendingWrite

    r = JobReconciler(None, View(), None, None, coalesce_seconds=1.0, coalesce_max_seconds=3.0)  # type: ignore[arg-type]
    assert r.coalesce_window() == r.coalesce_window(progress=True) == 1.0
    r.pending = {f"ns/j{i}": PendingWrite(due=0) for i in range(100)}
    assert r.coalesce_window() == pytest.approx(2.0)
    assert r.coalesce_window(progress=True) == pytest.approx(5.0)
    r.pending = {f"ns/j{i}": PendingWrite(due=0) for i in range(5000)}
    assert r.coalesce_window() == pytest.approx(3.0)
    assert r.coalesce_window(progress=True) == pytest.approx(9.0)


def test_a_plainly_queued_jobs_first_status_waits_longest_under_load() -> None:
    """Under a burst the first status of a job that simply waits (RUNNABLE, no reason) may wait up to
    the queued maximum, so that most jobs get one write when they start or end; a blocked head's
    reason falls back to the base window, a dispatch to the progress window."""
    import asyncio
    import time

    from kubatch.cluster.view import View
    from kubatch.core.lifecycle import Decision
    from kubatch.runtime.jobs import JobReconciler, PendingWrite

    view = View()
    r = JobReconciler(None, view, None, None, coalesce_seconds=1.0, coalesce_max_seconds=3.0, queued_max_seconds=21.0)  # type: ignore[arg-type]
    assert r.coalesce_window(queued=True) == 1.0
    r.pending = {f"other/j{i}": PendingWrite(due=0) for i in range(50)}
    assert r.coalesce_window(queued=True) == 1.0, "a few pending writes are not a burst"
    r.pending = {f"other/j{i}": PendingWrite(due=0) for i in range(125)}
    assert r.coalesce_window(queued=True) == pytest.approx(11.0)
    r.pending = {f"other/j{i}": PendingWrite(due=0) for i in range(400)}
    assert r.coalesce_window(queued=True) == pytest.approx(21.0)

    for name in ("queued", "blocked", "started"):
        view.on_job("ADDED", {"metadata": {"name": name, "namespace": "ns", "uid": name}, "spec": {}})
    written = {"metadata": {"name": "written", "namespace": "ns", "uid": "w"}, "status": {"status": "RUNNABLE"}}
    view.on_job("ADDED", written)
    runnable = {"status": "RUNNABLE", "statusReason": ""}
    now = time.time()

    async def decide(name: str, status: dict[str, str]) -> PendingWrite:
        await r.apply(view.jobs[f"ns/{name}"], Decision(status=dict(status)))
        return r.pending[f"ns/{name}"]

    async def scenario() -> None:
        assert (await decide("queued", runnable)).due == pytest.approx(now + 21.0, abs=1.0)
        # a job that has a status already is not "first": the normal window
        assert (await decide("written", {**runnable, "statusReason": "x"})).due == pytest.approx(now + 3.0, abs=1.0)
        assert (await decide("blocked", runnable)).queued
        blocked = await decide("blocked", {**runnable, "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"})
        assert not blocked.queued and blocked.due == pytest.approx(now + 3.0, abs=1.0)
        await decide("started", runnable)
        started = await decide("started", {"status": "STARTING", "statusReason": ""})
        assert started.progress and started.due == pytest.approx(now + 9.0, abs=1.0)

    asyncio.run(scenario())


def test_messages_name_the_job_by_its_aws_name() -> None:
    """With spec.jobName (an AWS name the object name cannot hold), the Events say that name; the
    pods keep names derived from the object's."""
    status: dict[str, Any] = {}
    messages: list[str] = []
    for pods in ({}, {"j-a1": pod("Running")}, {"j-a1": pod("Succeeded")}):
        aws = job(status)
        aws["spec"]["jobName"] = "My_Job"
        d = reconcile(aws, pods, ctx())
        messages += [e.message for e in d.events]
        status = d.status or status
    assert status["status"] == "SUCCEEDED"
    assert "My_Job is RUNNABLE" in messages and "My_Job is RUNNING" in messages
    assert "My_Job: Essential container in task exited" in messages  # JobSucceeded, with its reason
    assert all(m.startswith("My_Job") for m in messages)
