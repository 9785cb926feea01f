"""AWS spellings the CRDs accept, end to end on the real control plane: a job naming its definition
by ARN runs that revision, and the deprecated vcpus/memory (definition and containerOverrides)
size the pod."""

from __future__ import annotations

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def test_definition_arn_and_deprecated_vcpus_memory(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    batch.definition(
        "legacy",
        {"type": "container", "containerProperties": {"image": "busybox:1.36", "vcpus": 2, "memory": 512}},
    )
    arn = "arn:aws:batch:us-east-1:123456789012:job-definition/legacy:1"
    batch.job("by-arn", q, arn, duration="20s")
    batch.job("overridden", q, "legacy", duration="20s", containerOverrides={"vcpus": 1, "memory": 256})
    st = batch.wait_status("by-arn", "RUNNING", timeout=90)
    assert st.get("jobDefinition") == "legacy:1", st
    requests = batch.pods("by-arn")[0]["spec"]["containers"][0]["resources"]["requests"]
    assert (requests["cpu"], requests["memory"]) == ("2", "512Mi")
    batch.wait_status("overridden", "RUNNING", timeout=90)
    requests = batch.pods("overridden")[0]["spec"]["containers"][0]["resources"]["requests"]
    assert (requests["cpu"], requests["memory"]) == ("1", "256Mi")
    assert batch.wait_done("by-arn")["status"] == "SUCCEEDED"
