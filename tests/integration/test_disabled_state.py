"""DISABLED job queues and compute environments on the real control plane, as in AWS Batch.

A DISABLED queue refuses new submissions ("new jobs can't be added to the queue, but jobs already in
the queue can finish"): the webhook refuses them, and without the webhook the controller fails a job
created after the disable; jobs queued before it still run. A DISABLED compute environment gets no
new jobs, while the jobs already on it run to the end.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from tests.integration.batch import GROUP, Batch

pytestmark = pytest.mark.integration


def set_state(batch: Batch, kind: str, name: str, state: str) -> None:
    batch.kubectl("patch", kind, name, "--type=merge", "-p", json.dumps({"spec": {"state": state}}))


def disabled_at(batch: Batch, queue: str) -> float:
    """Wait until the operator recorded since when the queue is DISABLED; that time."""

    def recorded() -> float | None:
        return parse_iso((batch.kget("jobqueue", queue).get("status") or {}).get("disabledAt"))

    return float(batch.wait_for(recorded, f"status.disabledAt of {queue}", timeout=30))


def test_disabled_queue_runs_what_was_queued_and_fails_later_submissions(batch: Batch) -> None:
    """The namespace is not checked by the webhook: the controller is the one that refuses."""
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("one-cpu")
    batch.job("hog", q, "one-cpu", duration="6s")
    batch.wait_status("hog", "RUNNING")
    batch.job("queued", q, "one-cpu", duration="1s")
    batch.wait_status("queued", "RUNNABLE")

    set_state(batch, "jobqueue", q, "DISABLED")
    since = disabled_at(batch, q)
    # creationTimestamp has whole seconds: submit in a later second than the disable's.
    batch.wait_for(lambda: time.time() >= math.floor(since) + 1, "the second after the disable", interval=0.05)
    batch.job("late", q, "one-cpu", duration="1s")

    late = batch.wait_done("late")
    assert late["status"] == "FAILED"
    assert late["statusReason"] == f"Job queue {q} is DISABLED: new jobs can't be added to the queue"
    assert not batch.pods("late")
    # The jobs already in the queue go on: the running one ends, the queued one is dispatched.
    assert batch.wait_done("hog")["status"] == "SUCCEEDED"
    assert batch.wait_done("queued")["status"] == "SUCCEEDED"

    # Enabled again: submissions are taken, and the record of the disable is gone.
    set_state(batch, "jobqueue", q, "ENABLED")
    batch.wait_for(lambda: "disabledAt" not in (batch.kget("jobqueue", q).get("status") or {}), "disabledAt removed")
    batch.job("again", q, "one-cpu", duration="1s")
    assert batch.wait_done("again")["status"] == "SUCCEEDED"


def test_webhook_refuses_a_submission_to_a_disabled_queue(batch: Batch, admission_namespace: str) -> None:
    q = batch.queue([batch.environment(cpu=1)], state="DISABLED")
    batch.container_definition("one-cpu")
    manifest: dict[str, Any] = {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": "refused", "namespace": admission_namespace},
        "spec": {"jobQueue": q, "jobDefinition": "one-cpu"},
    }
    out = batch.create(manifest, check=False)
    assert out.returncode != 0
    assert f'spec.jobQueue: job queue "{q}" is DISABLED: new jobs can\'t be added to the queue' in out.stderr
    assert batch.kubectl("get", "batchjob", "refused", "-n", admission_namespace, check=False).returncode != 0


def test_disabled_environment_finishes_its_jobs_and_takes_no_new_ones(batch: Batch) -> None:
    ce = batch.environment(cpu=2)
    q = batch.queue([ce])
    batch.container_definition("one-cpu")
    # Long enough to be seen RUNNING even across a restart of the shared operator by another test
    # (a restarted operator writes a job that ended meanwhile straight to SUCCEEDED).
    batch.job("running", q, "one-cpu", duration="25s")
    batch.wait_status("running", "RUNNING")

    set_state(batch, "computeenvironment", ce, "DISABLED")
    batch.job("waiting", q, "one-cpu", duration="1s")

    def blocked() -> dict[str, Any] | None:
        st = batch.status("waiting")
        held = st.get("status") == "RUNNABLE" and st.get("statusReason", "").startswith("ACTION_REQUIRED")
        return st if held else None

    batch.wait_for(blocked, "the new job held RUNNABLE (no environment accepts jobs)", timeout=30)
    # The job placed before the disable runs to its end on the disabled environment.
    assert batch.wait_done("running")["status"] == "SUCCEEDED"
    # A free vCPU and a finished job later, still nothing is placed on the disabled environment.
    time.sleep(2)
    assert batch.status("waiting")["status"] == "RUNNABLE"
    assert not batch.pods("waiting")

    set_state(batch, "computeenvironment", ce, "ENABLED")
    assert batch.wait_done("waiting")["status"] == "SUCCEEDED"
