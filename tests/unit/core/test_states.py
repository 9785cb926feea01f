"""Job state machine, cancel/terminate, and pod -> attempt outcome."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core import states
from kubatch.core.retry import glob_match
from kubatch.core.states import (
    ALL_STATUSES,
    TERMINAL,
    Effect,
    InvalidTransition,
    JobStatus,
    attempt_outcome,
    cancel,
    forward_path,
    observe_pod,
    observed_status,
    start_block,
    terminate,
    transition,
)

S = JobStatus


@pytest.mark.parametrize(
    ("cur", "tgt"),
    [
        (S.SUBMITTED, S.PENDING),
        (S.SUBMITTED, S.RUNNABLE),
        (S.PENDING, S.RUNNABLE),
        (S.PENDING, S.FAILED),
        (S.RUNNABLE, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.STARTING, S.RUNNABLE),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.RUNNABLE),
    ],
)
def test_documented_transitions_are_allowed(cur: JobStatus, tgt: JobStatus) -> None:
    t = transition(cur, tgt, "why")
    assert t.status == tgt and t.status_reason == "why" and t.changed


@pytest.mark.parametrize(
    ("cur", "tgt"),
    [
        (S.SUBMITTED, S.RUNNING),
        (S.PENDING, S.STARTING),
        (S.RUNNABLE, S.SUCCEEDED),
        (S.RUNNABLE, S.PENDING),
        (S.SUCCEEDED, S.FAILED),
        (S.FAILED, S.RUNNABLE),
        (S.FAILED, S.FAILED),
    ],
)
def test_undocumented_transitions_raise(cur: JobStatus, tgt: JobStatus) -> None:
    with pytest.raises(InvalidTransition):
        transition(cur, tgt)


@given(st.sampled_from(ALL_STATUSES), st.sampled_from(ALL_STATUSES))
def test_terminal_states_are_final(cur: JobStatus, tgt: JobStatus) -> None:
    if cur in TERMINAL:
        with pytest.raises(InvalidTransition):
            transition(cur, tgt)


def test_same_state_updates_reason_without_change() -> None:
    t = transition(S.RUNNABLE, S.RUNNABLE, states.REASON_ACTION_REQUIRED_CE_INVALID)
    assert t.status == S.RUNNABLE and not t.changed
    assert t.status_reason.startswith("ACTION_REQUIRED")


def test_array_parent_transitions() -> None:
    assert transition(S.PENDING, S.SUCCEEDED, array_parent=True).status == S.SUCCEEDED
    with pytest.raises(InvalidTransition):
        transition(S.PENDING, S.RUNNABLE, array_parent=True)
    with pytest.raises(InvalidTransition):
        transition(S.PENDING, S.SUCCEEDED)


def test_forward_path_fills_missed_states() -> None:
    assert forward_path(S.RUNNABLE, S.SUCCEEDED) == [S.STARTING, S.RUNNING, S.SUCCEEDED]
    assert forward_path(S.STARTING, S.SUCCEEDED) == [S.RUNNING, S.SUCCEEDED]
    assert forward_path(S.STARTING, S.FAILED) == [S.FAILED]
    assert forward_path(S.RUNNABLE, S.FAILED) == [S.FAILED]
    assert forward_path(S.SUBMITTED, S.RUNNING) == [S.RUNNABLE, S.STARTING, S.RUNNING]
    assert forward_path(S.RUNNING, S.RUNNING) == []
    with pytest.raises(InvalidTransition):
        forward_path(S.SUCCEEDED, S.RUNNING)


@given(st.sampled_from(ALL_STATUSES), st.sampled_from(ALL_STATUSES))
def test_forward_path_only_uses_allowed_steps(cur: JobStatus, tgt: JobStatus) -> None:
    try:
        path = forward_path(cur, tgt)
    except InvalidTransition:
        return
    prev = cur
    for step in path:
        transition(prev, step)
        prev = step
    assert prev == tgt


def test_initial_status() -> None:
    assert states.initial_status(False) == S.RUNNABLE
    assert states.initial_status(True) == S.PENDING
    assert states.initial_status(False, array_parent=True) == S.PENDING


# cancel / terminate ---------------------------------------------------------------------------
@pytest.mark.parametrize("cur", [S.SUBMITTED, S.PENDING, S.RUNNABLE])
def test_cancel_before_starting_fails_with_reason(cur: JobStatus) -> None:
    r = cancel(cur, "no longer needed")
    assert (r.effect, r.status, r.status_reason) == (Effect.APPLIED, S.FAILED, "no longer needed")


@pytest.mark.parametrize("cur", [S.STARTING, S.RUNNING, S.SUCCEEDED, S.FAILED])
def test_cancel_after_starting_has_no_effect(cur: JobStatus) -> None:
    r = cancel(cur, "x", "old reason")
    assert (r.effect, r.status, r.status_reason) == (Effect.IGNORED, cur, "old reason")


def test_cancel_pending_waits_for_dependencies_when_asked() -> None:
    r = cancel(S.PENDING, "x", dependencies_complete=False)
    assert r.effect == Effect.DEFERRED and r.status == S.PENDING
    assert cancel(S.RUNNABLE, "x", dependencies_complete=False).effect == Effect.APPLIED


def test_cancel_default_reason() -> None:
    assert cancel(S.RUNNABLE, None).status_reason == states.DEFAULT_CANCEL_REASON


@pytest.mark.parametrize("cur", [S.STARTING, S.RUNNING])
def test_terminate_running_stops_pods(cur: JobStatus) -> None:
    r = terminate(cur, "stop it")
    assert (r.effect, r.status, r.status_reason) == (Effect.STOP_PODS, S.FAILED, "stop it")


@pytest.mark.parametrize("cur", [S.SUBMITTED, S.PENDING, S.RUNNABLE])
def test_terminate_before_starting_cancels(cur: JobStatus) -> None:
    r = terminate(cur, None)
    assert (r.effect, r.status, r.status_reason) == (
        Effect.APPLIED,
        S.FAILED,
        states.DEFAULT_TERMINATE_REASON,
    )


@given(st.sampled_from(ALL_STATUSES), st.text(max_size=20))
def test_cancel_terminate_never_touch_terminal_jobs(cur: JobStatus, reason: str) -> None:
    for fn in (cancel, terminate):
        r = fn(cur, reason or None, "kept")
        if cur in TERMINAL:
            assert r.effect == Effect.IGNORED and r.status == cur and r.status_reason == "kept"
        else:
            assert r.status in (S.FAILED, cur)


# reasons --------------------------------------------------------------------------------------
def test_reason_strings() -> None:
    assert states.REASON_DEPENDENT_JOB_FAILED == "Dependent Job failed"
    assert states.REASON_TIMEOUT == "Job attempt duration exceeded timeout"
    assert states.REASON_ESSENTIAL_CONTAINER_EXITED == "Essential container in task exited"
    host = states.host_terminated_reason("node-7")
    assert host == "Host EC2 (instance node-7) terminated."
    assert glob_match("Host EC2*", host)  # the guide's Spot retry pattern still matches
    assert states.state_time_limit_reason("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY") == (
        "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    )
    assert states.capacity_insufficient_reason("m5.large").endswith("instance type [m5.large]")


# pods -> attempts -----------------------------------------------------------------------------
def _pod(
    phase: str,
    *,
    exit_code: int | None = None,
    reason: str | None = None,
    waiting: str | None = None,
    deleting: bool = False,
    pod_reason: str | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "main"}
    if exit_code is not None:
        cs["state"] = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": "2025-01-01T00:00:05Z",
                "finishedAt": "2025-01-01T00:01:00Z",
            }
        }
    elif waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": "pull access denied"}}
    else:
        cs["state"] = {"running": {"startedAt": "2025-01-01T00:00:05Z"}}
    meta: dict[str, Any] = {"name": "job-a1"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:02:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "startTime": "2025-01-01T00:00:00Z",
        "containerStatuses": [cs, *(extra or [])],
    }
    if pod_reason:
        status["reason"] = pod_reason
    containers = [{"name": "main"}, *({"name": e["name"]} for e in extra or [])]
    return {"metadata": meta, "spec": {"nodeName": "node-1", "containers": containers}, "status": status}


def test_success() -> None:
    obs = observe_pod(_pod("Succeeded", exit_code=0, reason="Completed"))
    out = attempt_outcome(obs)
    assert out is not None and out.succeeded
    assert out.record() == {
        "container": {"exitCode": 0, "reason": "", "podName": "job-a1", "nodeName": "node-1"},
        "startedAt": "2025-01-01T00:00:05Z",
        "stoppedAt": "2025-01-01T00:01:00Z",
        "statusReason": "Essential container in task exited",
    }


def test_running_pod_has_no_outcome() -> None:
    obs = observe_pod(_pod("Running"))
    assert attempt_outcome(obs) is None
    assert observed_status(obs) == S.RUNNING
    assert observed_status(observe_pod(_pod("Pending"))) == S.STARTING


def test_nonzero_exit() -> None:
    out = attempt_outcome(observe_pod(_pod("Failed", exit_code=3, reason="Error")))
    assert out is not None and not out.succeeded
    assert (out.exit_code, out.reason, out.status_reason) == (3, "", "Essential container in task exited")


def test_oom_maps_to_ecs_reason() -> None:
    out = attempt_outcome(observe_pod(_pod("Failed", exit_code=137, reason="OOMKilled")))
    assert out is not None and not out.succeeded
    assert out.reason == out.status_reason == "OutOfMemoryError: Container killed due to memory usage"


def test_oom_of_a_child_process_succeeds_and_records_the_kill() -> None:
    """PID 1 survived its child's OOM kill and exited 0 (the pod Succeeded, reason OOMKilled)."""
    out = attempt_outcome(observe_pod(_pod("Succeeded", exit_code=0, reason="OOMKilled")))
    assert out is not None and out.succeeded and out.exit_code == 0
    assert out.reason == "OutOfMemoryError: Container killed due to memory usage"


def test_first_failing_container_in_spec_order_decides() -> None:
    side = {"name": "side", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    pod = _pod("Failed", exit_code=2, reason="Error", extra=[side])
    pod["status"]["containerStatuses"].reverse()
    out = attempt_outcome(observe_pod(pod))
    assert out is not None and out.exit_code == 2


def test_timeout_and_terminate_take_precedence_over_exit() -> None:
    obs = observe_pod(_pod("Failed", exit_code=143, reason="Error"))
    t = attempt_outcome(obs, timed_out=True)
    assert t is not None and t.timed_out and t.status_reason == states.REASON_TIMEOUT
    k = attempt_outcome(obs, timed_out=True, terminate_reason="user said so")
    assert k is not None and k.terminated and k.status_reason == "user said so"
    # a pod that already succeeded stays a success
    ok = attempt_outcome(observe_pod(_pod("Succeeded", exit_code=0)), timed_out=True)
    assert ok is not None and ok.succeeded


def test_node_vanished_and_external_deletion_are_host_losses() -> None:
    gone = attempt_outcome(observe_pod(_pod("Running"), node_exists=False), now="2025-01-01T00:03:00Z")
    assert gone is not None and gone.host_lost
    assert gone.status_reason == "Host EC2 (instance node-1) terminated."
    assert gone.stopped_at == "2025-01-01T00:03:00Z" and gone.exit_code is None
    deleted = attempt_outcome(observe_pod(_pod("Running", deleting=True)))
    assert deleted is not None and deleted.host_lost
    shutdown = attempt_outcome(observe_pod(_pod("Failed", pod_reason="Terminated")))
    assert shutdown is not None and shutdown.host_lost


def test_image_pull_failure_fails_to_start() -> None:
    # an image that can never be had fails the attempt at once
    out = attempt_outcome(observe_pod(_pod("Pending", waiting="ErrImageNeverPull")))
    assert out is not None and out.start_failure
    assert out.status_reason == "Task failed to start"
    assert out.reason == "CannotPullContainerError: pull access denied"
    assert "startedAt" not in out.record()
    # a pull backing off may still succeed: it fails only once it outlasts the start bound, which
    # the lifecycle passes in (tests/unit/core/test_lifecycle_start.py)
    backing_off = observe_pod(_pod("Pending", waiting="ImagePullBackOff"))
    assert attempt_outcome(backing_off) is None
    out = attempt_outcome(backing_off, start_failure=start_block(backing_off))
    assert out is not None and out.start_failure
    assert out.reason == "CannotPullContainerError: pull access denied"
    assert attempt_outcome(observe_pod(_pod("Pending", waiting="ContainerCreating"))) is None


def test_evicted_pod_reports_pod_reason() -> None:
    pod = _pod("Failed", pod_reason="Evicted")
    pod["status"]["containerStatuses"] = []
    out = attempt_outcome(observe_pod(pod))
    assert out is not None and out.reason == "Evicted" and out.exit_code is None


def test_failed_pod_being_cleaned_up_keeps_its_exit_code() -> None:
    out = attempt_outcome(observe_pod(_pod("Failed", exit_code=4, reason="Error", deleting=True), node_exists=False))
    assert out is not None and not out.host_lost and out.exit_code == 4
    assert out.status_reason == "Essential container in task exited"
