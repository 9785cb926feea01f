"""core.service_jobs: a preempted service job (quota shares) — its status first, then its workload
stopped (Foreground), then RUNNABLE again with the attempt in preemptionSummary, or FAILED past
preemptionRetriesBeforeTermination; a restart in between loses nothing."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubatch.core.service_jobs import (
    FAILED,
    KUBERNETES_JOB,
    PREEMPTION_PREFIX,
    RUNNABLE,
    RUNNING,
    ServiceContext,
    ServiceDecision,
    reconcile_service,
    unit_of,
    workload_name,
    workload_number,
)
from tests.unit.core.test_service_jobs import NOW, PAYLOAD, service_job, workload

CROSS = PREEMPTION_PREFIX + "Cross-share preemption triggered to reclaim borrowed capacity"


def decide(job: dict[str, Any], workloads: dict[str, Any], **ctx: Any) -> ServiceDecision:
    return reconcile_service(job, workloads, KUBERNETES_JOB, ServiceContext(now=NOW, **ctx))


def running_job(**spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A RUNNING service job on a quota share, and its workload."""
    job = service_job(quotaShareName="a", **spec)
    w = workload(active=2, ready=2)
    job["status"] = decide(job, {w["metadata"]["name"]: w}).status or {}
    assert job["status"]["status"] == RUNNING
    return job, w


def test_a_preemption_writes_its_status_first_then_deletes_foreground() -> None:
    job, w = running_job()
    d = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS)
    assert d.flush
    assert d.status is not None and d.status["status"] == RUNNING and d.status["statusReason"] == CROSS
    assert [(x.name, x.propagation) for x in d.delete] == [(w["metadata"]["name"], "Foreground")]
    assert [e.reason for e in d.events] == ["PreemptionStarted"]
    assert d.status["latestAttempt"]["serviceResourceId"] == {"name": "JobUid", "value": "w-uid"}


def test_the_job_waits_while_its_workload_is_being_deleted_and_is_runnable_once_gone() -> None:
    job, w = running_job()
    job["status"] = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS).status or {}
    deleting = copy.deepcopy(w)
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:05:00Z"
    d = decide(job, {w["metadata"]["name"]: deleting})
    assert d.status is None and d.delete == [] and d.events == []
    # After a restart the written status still says so: the workload is deleted (again).
    d = decide(job, {w["metadata"]["name"]: w})
    assert [x.propagation for x in d.delete] == ["Foreground"]
    # Gone: RUNNABLE again, the attempt in preemptionSummary, none of the retry attempts used.
    d = decide(job, {})
    st = d.status
    assert st is not None and st["status"] == RUNNABLE and not st.get("statusReason")
    summary = st["preemptionSummary"]
    assert summary["preemptedAttemptCount"] == 1
    (record,) = summary["recentPreemptedAttempts"]
    assert record["statusReason"] == CROSS and record["serviceResourceId"]["value"] == "w-uid"
    assert not st.get("attempts")
    assert [e.reason for e in d.events] == ["PreemptionCompleted", "JobRunnable"]
    # The next attempt's workload is a new one.
    assert workload_number(st) == 2
    assert workload_name("sj", workload_number(st)) != w["metadata"]["name"]


def test_preemption_retries_before_termination_zero_fails_at_the_first() -> None:
    job, w = running_job(preemptionConfiguration={"preemptionRetriesBeforeTermination": 0})
    job["status"] = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS).status or {}
    st = decide(job, {}).status
    assert st is not None and st["status"] == FAILED
    assert st["statusReason"].startswith("Preempted: Cross-share preemption")
    assert "preemptionRetriesBeforeTermination 0" in st["statusReason"]


def test_preemptions_are_unlimited_by_default_and_the_window_keeps_five() -> None:
    job, _ = running_job()
    for i in range(7):
        name = workload_name("sj", workload_number(job["status"]))
        w = workload(active=1, ready=1, uid=f"u{i}")
        w["metadata"]["name"] = name
        job["status"] = decide(job, {name: w}).status or job["status"]  # SCHEDULED ... RUNNING
        job["status"] = decide(job, {name: w}, preempt=CROSS).status or {}
        job["status"] = decide(job, {}).status or {}
        assert job["status"]["status"] == RUNNABLE
    summary = job["status"]["preemptionSummary"]
    assert summary["preemptedAttemptCount"] == 7
    assert [r["serviceResourceId"]["value"] for r in summary["recentPreemptedAttempts"]] == [
        "u2",
        "u3",
        "u4",
        "u5",
        "u6",
    ]


def test_a_workload_that_completed_meanwhile_wins() -> None:
    job, w = running_job()
    job["status"] = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS).status or {}
    done = workload(condition="Complete", reason="CompletionsReached", message="ok")
    st = decide(job, {w["metadata"]["name"]: done}).status
    assert st is not None and st["status"] == "SUCCEEDED"


def test_terminate_during_a_preemption_fails_the_job() -> None:
    job, w = running_job()
    job["status"] = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS).status or {}
    job["spec"]["terminate"] = {"reason": "stop"}
    st = decide(job, {}).status
    assert st is not None and st["status"] == FAILED and st["statusReason"] == "stop"


def test_no_preemption_of_a_job_not_holding_capacity() -> None:
    job = service_job(quotaShareName="a")
    job["status"] = {"status": RUNNABLE, "jobId": "uid-1"}
    d = decide(job, {}, preempt=CROSS)
    assert not d.flush and d.delete == []


def test_an_adopted_workload_is_suspended_not_deleted() -> None:
    job, w = running_job()
    job["metadata"]["annotations"] = {"kubatch.dev/workload": w["metadata"]["name"]}
    d = decide(job, {w["metadata"]["name"]: w}, preempt=CROSS)
    assert d.delete == [] and d.suspend == [w["metadata"]["name"]]
    job["status"] = d.status or {}
    suspended = copy.deepcopy(w)
    suspended["spec"]["suspend"] = True
    assert decide(job, {w["metadata"]["name"]: suspended}).status is None  # pods still active
    suspended["status"] = {"active": 0, "ready": 0}
    st = decide(job, {w["metadata"]["name"]: suspended}).status
    assert st is not None and st["status"] == RUNNABLE


def test_the_capacity_unit_is_the_selected_instance_type() -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["spec"]["template"]["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "m5.large"}
    assert unit_of(service_job(quotaShareName="a", serviceRequestPayload=json.dumps(payload))) == "m5.large"
    assert unit_of(service_job(serviceRequestPayload=json.dumps(payload))) == "NUM_INSTANCES"
    assert unit_of(service_job(quotaShareName="a")) == "NUM_INSTANCES"


def test_scheduling_priority_follows_the_spec() -> None:
    job, w = running_job(schedulingPriority=3)
    assert job["status"]["schedulingPriority"] == 3
    job["spec"]["schedulingPriority"] = 8
    st = decide(job, {w["metadata"]["name"]: w}).status
    assert st is not None and st["schedulingPriority"] == 8


def test_an_adopted_job_names_its_quota_share_by_label() -> None:
    from kubatch.core.service_jobs import adoption_job

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "train",
            "namespace": "ns",
            "uid": "u",
            "labels": {"kubatch.dev/job-queue": "ml", "kubatch.dev/quota-share": "prod"},
        },
        "spec": {"suspend": True},
    }
    assert adoption_job(job, KUBERNETES_JOB)["spec"]["quotaShareName"] == "prod"
    del job["metadata"]["labels"]["kubatch.dev/quota-share"]
    assert "quotaShareName" not in adoption_job(job, KUBERNETES_JOB)["spec"]
