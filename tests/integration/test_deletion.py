"""Deleting job queues and compute environments as AWS Batch allows it (real control plane, the shared
operator and its validating webhook).

A JobQueue can be deleted only once it is DISABLED: the webhook refuses the DELETE of an ENABLED one.
When a queue is deleted, its jobs that have not started fail with `Job queue <q> was deleted`
(RUNNABLE and PENDING jobs, array children not started); the running ones finish. A
ComputeEnvironment's deletion waits, still serving it, until it is DISABLED, no queue uses it and
no job runs on it; its statusReason and a `DeletionWaiting` Event say what it waits for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubatch.devcluster.operatorproc import WEBHOOK_LABEL
from tests.integration.batch import GROUP, Batch

# Its refusals come from the shared operator's webhook: never while another test restarts it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("webhook_up")]


def set_state(batch: Batch, kind: str, name: str, state: str) -> None:
    batch.kubectl("patch", kind, name, "--type=merge", "-p", json.dumps({"spec": {"state": state}}))


def checked_queue(batch: Batch, env: str) -> str:
    """A queue the shared operator's webhook checks (cluster-scoped objects opt in by label)."""
    q = batch.name("q")
    batch.apply(
        {
            "apiVersion": GROUP,
            "kind": "JobQueue",
            "metadata": {"name": q, "labels": {WEBHOOK_LABEL: "enabled"}},
            "spec": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": env}]},
        }
    )
    batch.cluster_objects.append(("jobqueue", q))
    return q


def exists(batch: Batch, kind: str, name: str) -> bool:
    return batch.kubectl("get", kind, name, check=False).returncode == 0


def test_a_queue_is_deleted_only_once_disabled_and_its_waiting_jobs_fail(batch: Batch) -> None:
    ce = batch.environment(cpu=1)
    q = checked_queue(batch, ce)
    batch.container_definition("one-cpu")
    batch.job("running", q, "one-cpu", duration="10s")
    batch.wait_status("running", "RUNNING")
    batch.job("waiting", q, "one-cpu", duration="1s")
    batch.job("array", q, "one-cpu", duration="1s", arrayProperties={"size": 3})
    batch.job("after", q, "one-cpu", duration="1s", dependsOn=[{"jobName": "running"}])
    batch.wait_status("waiting", "RUNNABLE")
    batch.wait_status("after", "PENDING")

    # ENABLED: the webhook refuses the delete, and the queue and its jobs are untouched. Asked as a
    # server-side dry run (admission runs in full) until the webhook answers: while another test
    # restarts the shared operator the local webhook fails open, and a real delete would go through.
    def refusal() -> str | None:
        out = batch.kubectl("delete", "jobqueue", q, "--dry-run=server", check=False)
        return out.stderr if out.returncode != 0 else None

    refused = batch.wait_for(refusal, "the webhook to refuse the delete of an ENABLED queue", timeout=60)
    assert f'job queue "{q}" is ENABLED: a job queue can be deleted only once it is DISABLED' in refused
    assert exists(batch, "jobqueue", q)
    assert batch.status("waiting")["status"] == "RUNNABLE"

    set_state(batch, "jobqueue", q, "DISABLED")
    batch.kubectl("delete", "jobqueue", q, "--wait=true", timeout=60)
    reason = f"Job queue {q} was deleted"
    for name in ("waiting", "after"):
        st = batch.wait_done(name, timeout=60)
        assert (st["status"], st["statusReason"]) == ("FAILED", reason), (name, st)
    # Each child of the array failed with the reason, and the parent with them (as for a cancel).
    st = batch.wait_done("array", timeout=60)
    assert (st["status"], st["statusReason"]) == ("FAILED", "Array Child Job failed"), st
    array = batch.status("array")["arrayProperties"]
    assert array["statusSummary"]["FAILED"] == 3 and array["statusReasons"] == {reason: "0-2"}
    assert not batch.pods("waiting") and not batch.pods("array")
    # The job that was running finishes: a deleted queue kills nothing.
    assert batch.wait_done("running", timeout=60)["status"] == "SUCCEEDED"


def test_a_compute_environment_is_deleted_once_disabled_detached_and_idle(batch: Batch) -> None:
    ce = batch.environment(cpu=2)
    q = batch.queue([ce])
    batch.container_definition("one-cpu")
    batch.job("long", q, "one-cpu", duration="12s")
    batch.wait_status("long", "RUNNING")

    batch.kubectl("delete", "computeenvironment", ce, "--wait=false")

    def reason() -> str:
        return str((batch.kget("computeenvironment", ce).get("status") or {}).get("statusReason") or "")

    def waiting_for(*parts: str) -> bool:
        text = reason()
        return text.startswith("DELETE_PENDING - ") and all(p in text for p in parts)

    batch.wait_for(
        lambda: waiting_for("it is ENABLED", f"job queue(s) {q} still use it", "1 job pod(s) still run on it"),
        "the deletion waiting, saying why",
        timeout=30,
    )

    def announced() -> list[dict[str, Any]]:
        events = batch.kget("events", "-n", "default", "--field-selector", f"involvedObject.name={ce}")["items"]
        return [e for e in events if e.get("reason") == "DeletionWaiting"]

    events = batch.wait_for(announced, "a DeletionWaiting event", timeout=30)
    assert events[0]["type"] == "Warning" and "it is ENABLED" in events[0]["message"]
    # Still served: another job is placed and runs there.
    batch.job("meanwhile", q, "one-cpu", duration="1s")
    assert batch.wait_done("meanwhile", timeout=60)["status"] == "SUCCEEDED"

    set_state(batch, "computeenvironment", ce, "DISABLED")
    batch.wait_for(lambda: waiting_for(f"job queue(s) {q}") and "ENABLED" not in reason(), "disabled", timeout=30)
    set_state(batch, "jobqueue", q, "DISABLED")
    batch.kubectl("delete", "jobqueue", q, "--wait=true", timeout=60)
    batch.wait_for(lambda: waiting_for("1 job pod(s) still run on it") and q not in reason(), "detached", timeout=30)
    assert exists(batch, "computeenvironment", ce)
    # The running job is never killed by the delete; once it is done the environment goes.
    assert batch.wait_done("long", timeout=60)["status"] == "SUCCEEDED"
    batch.wait_for(lambda: not exists(batch, "computeenvironment", ce), "the environment gone", timeout=60)
