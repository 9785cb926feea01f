"""Cancelling a PENDING job on the real control plane: kubatch fails it at once, while the job it
depends on is still RUNNING, and its dependents fail with `Dependent Job failed`. (AWS Batch's
CancelJob waits until the dependencies complete; docs/differences.md says why kubatch does not.)"""

from __future__ import annotations

import json

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def test_cancel_of_a_pending_job_is_immediate(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("one-cpu")
    batch.job("first", q, "one-cpu", duration="1h")
    batch.job("second", q, "one-cpu", dependsOn=[{"jobName": "first"}])
    batch.job("third", q, "one-cpu", dependsOn=[{"jobName": "second"}])
    batch.wait_status("first", "RUNNING")
    batch.wait_status("second", "PENDING")
    batch.wait_status("third", "PENDING")

    patch = {"spec": {"cancel": {"reason": "not needed"}}}
    batch.kubectl("patch", "batchjob", "second", "-n", batch.ns, "--type=merge", "-p", json.dumps(patch))
    second = batch.wait_done("second", timeout=30)
    assert (second["status"], second["statusReason"]) == ("FAILED", "not needed")
    third = batch.wait_done("third", timeout=30)
    assert (third["status"], third["statusReason"]) == ("FAILED", "Dependent Job failed")
    assert third.get("statusReasonDetail") == "dependency second failed", third
    # The dependency is still running: the cancel did not wait for it.
    assert batch.status("first")["status"] == "RUNNING"
    assert not batch.pods("second") and not batch.pods("third")

    patch = {"spec": {"terminate": {"reason": "done with the test"}}}
    batch.kubectl("patch", "batchjob", "first", "-n", batch.ns, "--type=merge", "-p", json.dumps(patch))
    assert batch.wait_done("first")["status"] == "FAILED"
