"""A job's jobId: status.jobId, else the AWS API's label when it matches the job's name, else the uid."""

from __future__ import annotations

import uuid
from typing import Any

from kubatch.core.job_ids import LABEL_JOB_ID, api_job_id, job_id
from kubatch.core.lifecycle import Context, Definition, reconcile

DEF = Definition("d:1", {"type": "container", "containerProperties": {"image": "busybox"}})


def batch_job(name: str, namespace: str = "team-a", label: str | None = None, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": "0a0b0c0d-0000-4000-8000-000000000001"}
    if label is not None:
        meta["labels"] = {LABEL_JOB_ID: label}
    return {"metadata": meta, "spec": {"jobQueue": "q", "jobDefinition": "d"}, "status": status}


def test_the_api_job_id_is_a_uuid_of_namespace_and_name() -> None:
    one = api_job_id("team-a", "render-x2b4z")
    assert str(uuid.UUID(one)) == one and uuid.UUID(one).version == 5
    assert one == api_job_id("team-a", "render-x2b4z")  # every server derives the same
    assert len({one, api_job_id("team-b", "render-x2b4z"), api_job_id("team-a", "render-x2b4y")}) == 3


def test_which_id_a_job_has() -> None:
    name = "render-x2b4z"
    mine = api_job_id("team-a", name)
    assert job_id(batch_job(name, label=mine)) == mine  # submitted through the API, no status yet
    assert job_id(batch_job(name)) == "0a0b0c0d-0000-4000-8000-000000000001"  # kubectl: the uid
    # A copy under another name or namespace, the label copied along: its own uid, not the original's id.
    assert job_id(batch_job("render-copy", label=mine)).startswith("0a0b0c0d")
    assert job_id(batch_job(name, namespace="team-b", label=mine)).startswith("0a0b0c0d")
    # An API server of the first increment labelled jobs with their uid after creating them.
    assert job_id(batch_job(name, label="0a0b0c0d-0000-4000-8000-000000000001")).startswith("0a0b0c0d")
    assert job_id(batch_job(name, label=mine, jobId="written")) == "written"  # the status decides once written
    assert job_id({"metadata": {}}) == ""


def test_the_first_status_records_the_api_job_id() -> None:
    name = "render-x2b4z"
    job = batch_job(name, label=api_job_id("team-a", name))
    decision = reconcile(job, {}, Context(now=0.0, definition=DEF))
    assert decision.status is not None and decision.status["jobId"] == api_job_id("team-a", name)
    plain = reconcile(batch_job(name), {}, Context(now=0.0, definition=DEF))
    assert plain.status is not None and plain.status["jobId"] == "0a0b0c0d-0000-4000-8000-000000000001"
