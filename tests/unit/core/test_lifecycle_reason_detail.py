"""statusReason keeps AWS's exact text; kubatch's detail goes to statusReasonDetail (and the Event)."""

from __future__ import annotations

from typing import Any

from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.states import REASON_TOO_MANY_TAGS

NOW = 1_800_000_000.0
DEF = Definition("d:1", {"type": "container", "containerProperties": {"image": "busybox"}})
CE_MAX = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
    "the CPU requirement of the job."
)


def runnable(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "j-uid"},
        "spec": {"jobQueue": "q", "jobDefinition": "d"},
        "status": {"status": "RUNNABLE", "statusReason": "", "jobId": "j-uid", "jobDefinition": "d:1", **status},
    }


def test_blocked_head_gets_aws_reason_and_kubatch_detail() -> None:
    ctx = Context(now=NOW, definition=DEF, blocked_reason=CE_MAX, blocked_detail="ce: needs 64 vCPU, maxvCpus 16")
    d = reconcile(runnable(), {}, ctx)
    assert d.status is not None
    assert d.status["statusReason"] == CE_MAX
    assert d.status["statusReasonDetail"] == "ce: needs 64 vCPU, maxvCpus 16"
    # The same reason with another detail is written; no reason at all clears both.
    d = reconcile(runnable(statusReason=CE_MAX, statusReasonDetail="ce: needs 64 vCPU, maxvCpus 16"), {}, ctx)
    assert d.status is None
    other = Context(now=NOW, definition=DEF, blocked_reason=CE_MAX, blocked_detail="ce: needs 64 vCPU, maxvCpus 32")
    d = reconcile(runnable(statusReason=CE_MAX, statusReasonDetail="ce: needs 64 vCPU, maxvCpus 16"), {}, other)
    assert d.status is not None and d.status["statusReasonDetail"] == "ce: needs 64 vCPU, maxvCpus 32"
    d = reconcile(runnable(statusReason=CE_MAX, statusReasonDetail="x"), {}, Context(now=NOW, definition=DEF))
    assert d.status is not None and d.status["statusReason"] == "" and "statusReasonDetail" not in d.status


def test_detail_does_not_outlive_its_reason() -> None:
    job = runnable(statusReason=CE_MAX, statusReasonDetail="ce: needs 64 vCPU, maxvCpus 16")
    job["spec"]["cancel"] = {"reason": "no longer needed"}
    d = reconcile(job, {}, Context(now=NOW, definition=DEF))
    assert d.status is not None
    assert (d.status["status"], d.status["statusReason"]) == ("FAILED", "no longer needed")
    assert "statusReasonDetail" not in d.status


def test_more_than_50_propagated_tags_fail_the_job_at_submission() -> None:
    definition = Definition(
        "d:1",
        {
            "type": "container",
            "containerProperties": {"image": "busybox"},
            "propagateTags": True,
            "tags": {f"d{i}": "v" for i in range(30)},
        },
    )
    job: dict[str, Any] = {
        "metadata": {"name": "j", "namespace": "ns", "uid": "j-uid"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "tags": {f"j{i}": "v" for i in range(21)}},
    }
    d = reconcile(job, {}, Context(now=NOW, definition=definition))
    assert d.status is not None and d.create == []
    assert (d.status["status"], d.status["statusReason"]) == ("FAILED", REASON_TOO_MANY_TAGS)
    assert d.status["statusReasonDetail"] == "51 tags after merging job and job definition tags"
    # 50 are fine; so are 51 that are not propagated (the job's propagateTags: false wins).
    job["spec"]["tags"] = {f"j{i}": "v" for i in range(20)}
    d = reconcile(job, {}, Context(now=NOW, definition=definition))
    assert d.status is not None and d.status["status"] != "FAILED"
    job["spec"] = {**job["spec"], "tags": {f"j{i}": "v" for i in range(21)}, "propagateTags": False}
    d = reconcile(job, {}, Context(now=NOW, definition=definition))
    assert d.status is not None and d.status["status"] != "FAILED"
