"""Cancelling a PENDING job: kubatch fails it at once with the cancel's reason, while its
dependencies still run (AWS Batch's API reference waits until they complete; docs/differences.md
says why kubatch does not), and its own dependents then fail with `Dependent Job failed`."""

from __future__ import annotations

from typing import Any

from kubatch.core.deps import DependencyStatus
from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.states import REASON_DEPENDENT_JOB_FAILED, JobStatus

NOW = 1_800_000_000.0
DEF = Definition("d:1", {"type": "container", "containerProperties": {"image": "busybox"}})


def pending(name: str, depends_on: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "dependsOn": [{"jobName": depends_on}], **spec},
        "status": {"status": "PENDING", "statusReason": "", "jobId": f"{name}-uid", "jobDefinition": "d:1"},
    }


def test_cancel_of_a_pending_job_applies_while_its_dependency_runs() -> None:
    running = {"first": DependencyStatus(JobStatus.RUNNING)}
    d = reconcile(pending("second", "first"), {}, Context(now=NOW, definition=DEF, deps=running))
    assert d.status is None  # not cancelled: it waits

    job = pending("second", "first", cancel={"reason": "not needed"})
    d = reconcile(job, {}, Context(now=NOW, definition=DEF, deps=running))
    assert d.status is not None
    assert (d.status["status"], d.status["statusReason"]) == ("FAILED", "not needed")
    assert d.create == [] and d.delete == []

    failed = {"second": DependencyStatus(JobStatus.FAILED)}
    d = reconcile(pending("third", "second"), {}, Context(now=NOW, definition=DEF, deps=failed))
    assert d.status is not None
    assert (d.status["status"], d.status["statusReason"]) == ("FAILED", REASON_DEPENDENT_JOB_FAILED)
    assert d.status["statusReasonDetail"] == "dependency second failed"
    assert any(e.message == f"{REASON_DEPENDENT_JOB_FAILED} (dependency second failed)" for e in d.events)
