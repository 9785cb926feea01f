"""core.service_jobs: workloads from payloads, batch/v1 Job status as job states, the state machine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.job_ids import api_job_id
from kubatch.core.service_jobs import (
    FAILED,
    KUBERNETES_JOB,
    PATH,
    RUNNABLE,
    RUNNING,
    SCHEDULED,
    STARTING,
    SUCCEEDED,
    PayloadError,
    ServiceContext,
    adoption_job,
    adoption_labels,
    build_workload,
    environment_validity,
    job_instances,
    observe_job,
    payload_instances,
    payload_problem,
    reconcile_service,
    unsuspend_patch,
    workload_name,
)

NOW = 1_700_000_000.0
PAYLOAD = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "ignored", "labels": {"team": "a"}},
    "spec": {
        "parallelism": 2,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
    },
}


def service_job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "sj", "namespace": "ns", "uid": "uid-1", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "jobQueue": "q",
            "serviceJobType": "KUBERNETES_JOB",
            "serviceRequestPayload": json.dumps(PAYLOAD),
            **spec,
        },
        "status": status or {},
    }


def workload(
    attempt: int = 1,
    *,
    active: int = 0,
    ready: int = 0,
    condition: str | None = None,
    reason: str = "",
    message: str = "",
    uid: str = "w-uid",
    parallelism: int = 2,
) -> dict[str, Any]:
    status: dict[str, Any] = {"active": active, "ready": ready, "startTime": "2024-01-01T00:01:00Z"}
    if condition:
        status["conditions"] = [
            {
                "type": condition,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2024-01-01T00:02:00Z",
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": workload_name("sj", attempt),
            "uid": uid,
            "labels": {"kubatch.dev/service-environment": "se"},
        },
        "spec": {"parallelism": parallelism},
        "status": status,
    }


def step(job: dict[str, Any], workloads: dict[str, Any] | None = None, **ctx: Any) -> dict[str, Any]:
    decision = reconcile_service(job, workloads or {}, KUBERNETES_JOB, ServiceContext(now=NOW, **ctx))
    return decision.status if decision.status is not None else dict(job["status"])


# ---- workload types ----------------------------------------------------------------------------------
def test_job_status_reads_as_job_states() -> None:
    assert observe_job(workload()).state == SCHEDULED
    assert observe_job(workload(active=1)).state == STARTING
    assert observe_job(workload(active=1, ready=1)).state == RUNNING
    done = observe_job(workload(condition="Complete", reason="CompletionsReached", message="Reached expected"))
    assert (done.state, done.reason) == (SUCCEEDED, "CompletionsReached: Reached expected")
    failed = observe_job(workload(condition="Failed", reason="BackoffLimitExceeded", message="Job has reached"))
    assert (failed.state, failed.reason, failed.stopped_at) == (
        FAILED,
        "BackoffLimitExceeded: Job has reached",
        "2024-01-01T00:02:00Z",
    )


@pytest.mark.parametrize(
    ("spec", "instances"),
    [({}, 1), ({"parallelism": 4}, 4), ({"parallelism": 4, "completions": 2}, 2), ({"parallelism": 0}, 0)],
)
def test_instances_are_parallel_pods(spec: dict[str, Any], instances: int) -> None:
    assert job_instances({"spec": spec}) == instances


def test_the_workload_is_the_payload_with_kubatchs_name_labels_owner_and_time_limit() -> None:
    job = service_job(timeoutConfig={"attemptDurationSeconds": 120})
    w = build_workload(job, KUBERNETES_JOB, 3, service_environment="se")
    assert w["metadata"]["name"] == "sj-a3" and w["metadata"]["namespace"] == "ns"
    assert w["metadata"]["labels"] == {
        "team": "a",
        "kubatch.dev/service-job": "sj",
        "kubatch.dev/job-id": "uid-1",
        "kubatch.dev/job-queue": "q",
        "kubatch.dev/service-environment": "se",
        "kubatch.dev/attempt": "3",
    }
    assert w["spec"]["template"]["metadata"]["labels"]["kubatch.dev/attempt"] == "3"
    assert w["metadata"]["ownerReferences"][0]["kind"] == "BatchJob"
    assert w["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert w["spec"]["suspend"] is False and w["spec"]["activeDeadlineSeconds"] == 120
    shorter = dict(PAYLOAD, spec={**PAYLOAD["spec"], "activeDeadlineSeconds": 30, "suspend": True})  # type: ignore[dict-item]
    w = build_workload(
        service_job(serviceRequestPayload=json.dumps(shorter), timeoutConfig={"attemptDurationSeconds": 120}),
        KUBERNETES_JOB,
        1,
        service_environment="se",
    )
    assert w["spec"]["activeDeadlineSeconds"] == 30 and w["spec"]["suspend"] is False


def test_payloads_may_be_yaml_and_must_be_jobs() -> None:
    yaml_payload = "kind: Job\nspec:\n  parallelism: 3\n  template: {}\n"
    w = build_workload(service_job(serviceRequestPayload=yaml_payload), KUBERNETES_JOB, 1, service_environment="se")
    assert w["apiVersion"] == "batch/v1" and job_instances(w) == 3
    assert payload_instances(service_job(serviceRequestPayload=yaml_payload), KUBERNETES_JOB) == 3
    with pytest.raises(PayloadError, match="not kind 'Pod'"):
        build_workload(
            service_job(serviceRequestPayload='{"kind": "Pod"}'), KUBERNETES_JOB, 1, service_environment="se"
        )


def test_payload_limits() -> None:
    assert payload_problem(json.dumps(PAYLOAD)) is None
    assert payload_problem("[1, 2]") == "must be an object (a workload manifest)"
    assert "neither JSON nor YAML" in (payload_problem("{a: [") or "")
    # 10 KiB of UTF-8 bytes: 4000 three-byte characters are 12000 bytes in fewer than 10240 characters.
    big = json.dumps({"kind": "Job", "metadata": {"annotations": {"x": "€" * 4000}}}, ensure_ascii=False)
    assert len(big) < 10240
    assert "bytes; a service request payload is at most 10240 bytes" in (payload_problem(big) or "")


def test_unknown_environment_types_are_invalid() -> None:
    assert environment_validity({"spec": {"serviceEnvironmentType": "KUBERNETES_JOB"}}) == ("VALID", "")
    status, reason = environment_validity({"spec": {"serviceEnvironmentType": "RAY_JOB"}})
    assert status == "INVALID" and "RAY_JOB is not known" in reason


# ---- the state machine ----------------------------------------------------------------------------------
def test_a_new_job_is_runnable_or_refused() -> None:
    st1 = step(service_job())
    assert st1["status"] == RUNNABLE and st1["jobId"] == "uid-1" and st1["queuedAt"]
    refused = step(service_job(), queue_missing="Job queue q not found")
    assert (refused["status"], refused["statusReason"]) == (FAILED, "Job queue q not found")


def test_a_job_submitted_through_the_aws_api_keeps_the_jobid_of_its_label() -> None:
    """SubmitServiceJob answers with the jobId it put in the label kubatch.dev/job-id (a UUID of the
    namespace and name): the first status and the workload's label take it, not the uid."""
    job = service_job()
    job["metadata"]["labels"] = {"kubatch.dev/job-id": api_job_id("ns", "sj")}
    assert step(job)["jobId"] == api_job_id("ns", "sj")
    w = build_workload(job, KUBERNETES_JOB, 1, service_environment="se")
    assert w["metadata"]["labels"]["kubatch.dev/job-id"] == api_job_id("ns", "sj")
    job["metadata"]["labels"] = {"kubatch.dev/job-id": api_job_id("ns", "other")}  # a copied label: not its own
    assert step(job)["jobId"] == "uid-1"


def test_a_blocked_head_shows_the_schedulers_reason() -> None:
    job = service_job({"status": RUNNABLE})
    st1 = step(job, blocked_reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - x", blocked_detail="d")
    assert (st1["statusReason"], st1["statusReasonDetail"]) == ("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - x", "d")


def test_scheduled_starting_running_succeeded() -> None:
    job = service_job({"status": RUNNABLE, "statusReason": "CAPACITY:x"})
    st1 = step(job, {"sj-a1": workload()})
    assert st1["status"] == SCHEDULED and st1["serviceEnvironment"] == "se" and st1["scheduledAt"]
    assert st1["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 2}]
    assert st1["statusReason"] == ""
    st2 = step(service_job(st1), {"sj-a1": workload(active=2)})
    assert st2["status"] == STARTING
    st3 = step(service_job(st2), {"sj-a1": workload(active=2, ready=1)})
    assert st3["status"] == RUNNING and st3["startedAt"]
    done = workload(
        condition="Complete", reason="CompletionsReached", message="Reached expected number of succeeded pods"
    )
    st4 = step(service_job(st3), {"sj-a1": done})
    assert st4["status"] == SUCCEEDED
    assert st4["statusReason"] == (
        "Received status from Kubernetes: CompletionsReached: Reached expected number of succeeded pods"
    )
    (attempt,) = st4["attempts"]
    assert attempt["serviceResourceId"] == {"name": "JobUid", "value": "w-uid"}
    assert attempt["startedAt"] == "2024-01-01T00:01:00Z" and attempt["stoppedAt"] == "2024-01-01T00:02:00Z"
    assert "capacityUsage" not in st4


def test_a_job_finished_unseen_walks_the_states_with_one_event_each() -> None:
    job = service_job({"status": RUNNABLE})
    decision = reconcile_service(
        job,
        {"sj-a1": workload(condition="Complete", reason="CompletionsReached")},
        KUBERNETES_JOB,
        ServiceContext(now=NOW),
    )
    assert decision.status is not None and decision.status["status"] == SUCCEEDED
    assert [e.reason for e in decision.events] == ["JobScheduled", "JobStarting", "JobRunning", "JobSucceeded"]


def test_retries_follow_on_status_reason_and_count_every_attempt() -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Received status from Kubernetes: BackoffLimitExceeded*", "action": "RETRY"},
            {"onStatusReason": "*", "action": "EXIT"},
        ],
    }
    failed = workload(
        condition="Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"
    )
    st1 = step(service_job({"status": RUNNING, "attemptCount": 1}, retryStrategy=strategy), {"sj-a1": failed})
    assert st1["status"] == RUNNABLE and len(st1["attempts"]) == 1
    assert st1["attempts"][0]["statusReason"].startswith("Received status from Kubernetes: BackoffLimitExceeded")
    # Attempt 2's workload is sj-a2; the failed sj-a1 stays.
    st2 = step(service_job(st1, retryStrategy=strategy), {"sj-a1": failed, "sj-a2": workload(2, uid="w2")})
    assert st2["status"] == SCHEDULED and st2["attemptCount"] == 2
    deadline = workload(2, condition="Failed", reason="DeadlineExceeded", message="Job was active longer")
    st3 = step(service_job(st2, retryStrategy=strategy), {"sj-a1": failed, "sj-a2": deadline})
    assert st3["status"] == FAILED and len(st3["attempts"]) == 2  # EXIT: the catch-all
    assert st3["statusReason"] == "Received status from Kubernetes: DeadlineExceeded: Job was active longer"


def test_without_retry_strategy_one_attempt() -> None:
    failed = workload(condition="Failed", reason="BackoffLimitExceeded")
    st1 = step(service_job({"status": SCHEDULED}), {"sj-a1": failed})
    assert st1["status"] == FAILED and len(st1["attempts"]) == 1


def test_create_failure_ends_the_attempt_and_may_retry() -> None:
    reason = "Received status from Kubernetes: Invalid: Job.batch is invalid"
    st1 = step(service_job({"status": RUNNABLE}, retryStrategy={"attempts": 2}), create_failure=reason)
    assert st1["status"] == RUNNABLE and st1["attempts"] == [{"statusReason": reason, "stoppedAt": st1["queuedAt"]}]
    st2 = step(service_job({"status": RUNNABLE}), create_failure=reason)
    assert (st2["status"], st2["statusReason"]) == (FAILED, reason)


def test_a_vanished_workload_ends_its_attempt() -> None:
    st1 = step(service_job({"status": RUNNING}))
    assert st1["status"] == FAILED and st1["statusReason"] == "Received status from Kubernetes: Job sj-a1 was deleted"


def test_terminate_deletes_the_workload_and_fails_without_retry() -> None:
    job = service_job({"status": RUNNING}, terminate={"reason": "stop it"}, retryStrategy={"attempts": 5})
    decision = reconcile_service(job, {"sj-a1": workload(active=1, ready=1)}, KUBERNETES_JOB, ServiceContext(now=NOW))
    assert decision.status is not None
    assert (decision.status["status"], decision.status["statusReason"]) == (FAILED, "stop it")
    assert [(d.name, d.uid) for d in decision.delete] == [("sj-a1", "w-uid")]
    assert decision.status["attempts"][0]["serviceResourceId"]["value"] == "w-uid"
    # Written FAILED, but the workload is still there (the delete did not get through): again.
    again = reconcile_service(
        service_job(decision.status, terminate={"reason": "stop it"}),
        {"sj-a1": workload(active=1, ready=1)},
        KUBERNETES_JOB,
        ServiceContext(now=NOW),
    )
    assert [d.name for d in again.delete] == ["sj-a1"] and again.status is None


def test_cancel_stops_a_runnable_job_only() -> None:
    st1 = step(service_job({"status": RUNNABLE}, cancel={"reason": "no"}))
    assert (st1["status"], st1["statusReason"]) == (FAILED, "no")
    st2 = step(service_job({"status": SCHEDULED}, cancel={"reason": "no"}), {"sj-a1": workload(active=1)})
    assert st2["status"] == STARTING


def test_a_time_limit_cancellation_fails_the_head() -> None:
    st1 = step(service_job({"status": RUNNABLE}), forced_cancel="Canceled by JobStateTimeLimit action due to reason: X")
    assert st1["status"] == FAILED


# A workload's life as a sequence of observations: the job never goes back, and ends once.
observation = st.sampled_from(["none", "scheduled", "active", "ready", "complete", "failed"])


@given(st.lists(observation, min_size=1, max_size=12), st.integers(1, 4))
def test_states_only_move_forward_and_attempts_stay_within_the_strategy(seq: list[str], attempts: int) -> None:
    job = service_job({}, retryStrategy={"attempts": attempts})
    for obs in seq:
        status = job["status"]
        n = len(status.get("attempts") or []) + 1
        w = {
            "none": None,
            "scheduled": workload(n),
            "active": workload(n, active=1),
            "ready": workload(n, active=1, ready=1),
            "complete": workload(n, condition="Complete", reason="CompletionsReached"),
            "failed": workload(n, condition="Failed", reason="BackoffLimitExceeded"),
        }[obs]
        before = status.get("status")
        new = step(job, {} if w is None else {w["metadata"]["name"]: w})
        after = new["status"]
        if before in (SUCCEEDED, FAILED):
            assert after == before  # terminal is final
        elif before and after not in (FAILED, RUNNABLE):
            assert PATH.index(after) >= PATH.index(before)
        assert len(new.get("attempts") or []) <= attempts
        job = service_job(new, retryStrategy={"attempts": attempts})


# ---- adoption of suspended Jobs -------------------------------------------------------------------------
def suspended_job(name: str = "train", *, suspend: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "uid": "job-uid", "labels": {"kubatch.dev/job-queue": "q"}},
        "spec": {"suspend": suspend, "parallelism": 3},
        "status": {},
    }


def test_an_adopted_job_is_a_batchjob_owned_by_the_workload() -> None:
    bj = adoption_job(suspended_job(), KUBERNETES_JOB)
    assert bj["metadata"]["name"] == "train" and bj["metadata"]["namespace"] == "ns"
    assert bj["metadata"]["annotations"] == {"kubatch.dev/workload": "train"}
    owner = bj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", "train", "job-uid")
    assert bj["spec"]["jobQueue"] == "q" and bj["spec"]["serviceJobType"] == "KUBERNETES_JOB"
    assert json.loads(bj["spec"]["serviceRequestPayload"])["metadata"] == {"name": "train"}
    assert payload_problem(bj["spec"]["serviceRequestPayload"]) is None
    adopted = {**bj, "metadata": {**bj["metadata"], "uid": "bj-uid"}}
    assert workload_name("train", 1, adopted) == "train"
    assert adoption_labels(adopted) == {"kubatch.dev/service-job": "train", "kubatch.dev/job-id": "bj-uid"}
    assert unsuspend_patch("se", 1) == {
        "metadata": {"labels": {"kubatch.dev/service-environment": "se", "kubatch.dev/attempt": "1"}},
        "spec": {"suspend": False},
    }


def test_an_adopted_job_waits_while_suspended_and_is_not_retried() -> None:
    bj = adoption_job(suspended_job(), KUBERNETES_JOB)
    bj["metadata"]["uid"] = "bj-uid"
    bj["spec"]["retryStrategy"] = {"attempts": 3}  # even so: the workload is the only attempt
    job = {**bj, "status": {"status": RUNNABLE}}
    held = suspended_job()
    st1 = step(job, {"train": held}, blocked_reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - x")
    assert st1["status"] == RUNNABLE and st1["statusReason"].startswith("CAPACITY:")
    started = {**held, "metadata": {**held["metadata"], "labels": {"kubatch.dev/service-environment": "se"}}}
    started["spec"] = {"suspend": False, "parallelism": 3}
    st2 = step({**bj, "status": st1}, {"train": started})
    assert st2["status"] == SCHEDULED and st2["capacityUsage"][0]["quantity"] == 3
    failed = {
        **started,
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }
    st3 = step({**bj, "status": st2}, {"train": failed})
    assert st3["status"] == FAILED and len(st3["attempts"]) == 1
