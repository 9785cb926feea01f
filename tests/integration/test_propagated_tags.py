"""Propagated tags on the real control plane: a job whose merged tags (job + definition, with
propagateTags) number more than 50 goes to FAILED, as in AWS Batch; 50 run, and their pod carries
them."""

from __future__ import annotations

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration

TOO_MANY = "Too many tags to propagate: more than 50 tags after merging job and job definition tags"


def test_more_than_50_merged_tags_fail_the_job(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=2)])
    batch.container_definition("tagged", propagateTags=True, tags={f"def-{i}": "d" for i in range(30)})
    batch.job("fifty-one", q, "tagged", tags={f"job-{i}": "j" for i in range(21)})
    batch.job("fifty", q, "tagged", duration="20s", tags={f"job-{i}": "j" for i in range(20)})
    failed = batch.wait_done("fifty-one", timeout=60)
    assert (failed["status"], failed["statusReason"]) == ("FAILED", TOO_MANY), failed
    assert failed.get("statusReasonDetail") == "51 tags after merging job and job definition tags", failed
    assert not batch.pods("fifty-one")
    batch.wait_status("fifty", "RUNNING", timeout=90)
    pods = batch.pods("fifty")
    assert pods and pods[0]["metadata"]["labels"].get("job-19") == "j"
    assert pods[0]["metadata"]["labels"].get("def-29") == "d"
    assert batch.wait_done("fifty")["status"] == "SUCCEEDED"
