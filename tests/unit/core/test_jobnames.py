"""AWS job names beside Kubernetes object names (kubatch.core.jobnames)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.api.batch_job import AWS_JOB_NAME_PATTERN as API_PATTERN
from kubatch.core.jobnames import (
    AWS_JOB_NAME_PATTERN,
    is_aws_job_name,
    is_kubernetes_name,
    job_name,
    kubernetes_name,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_the_crd_and_the_core_agree_on_the_pattern() -> None:
    assert API_PATTERN == AWS_JOB_NAME_PATTERN


def test_aws_names() -> None:
    for ok in ("a", "My_Job", "job-1", "9lives", "x" * 128, "A_"):
        assert is_aws_job_name(ok), ok
    for bad in ("", "_job", "-job", "job.1", "job 1", "x" * 129, "jöb"):
        assert not is_aws_job_name(bad), bad


def test_kubernetes_names_are_kept_as_they_are() -> None:
    assert kubernetes_name("render-1") == "render-1"
    assert is_kubernetes_name("render-1")
    assert not is_kubernetes_name("Render") and not is_kubernetes_name("a" * 64) and not is_kubernetes_name("a-")


def test_derived_names() -> None:
    name = kubernetes_name("My_Job")
    assert re.fullmatch(r"my-job-[0-9a-f]{6}", name)
    assert kubernetes_name("My_Job") == name  # deterministic: --depends-on My_Job finds it
    assert kubernetes_name("my_job") != name  # names AWS tells apart stay apart
    assert kubernetes_name("my-job-").startswith("my-job-")  # a trailing '-' is not a DNS label
    long = kubernetes_name("A" * 128)
    assert len(long) == 63 and DNS_LABEL.match(long)
    with pytest.raises(ValueError, match="1 to 128 letters"):
        kubernetes_name("bad.name")


@given(st.from_regex(AWS_JOB_NAME_PATTERN, fullmatch=True))
def test_property_every_aws_name_gets_a_valid_object_name(aws: str) -> None:
    name = kubernetes_name(aws)
    assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert (name == aws) == is_kubernetes_name(aws)


def test_job_name_prefers_spec_job_name() -> None:
    assert job_name({"metadata": {"name": "my-job-1a2b3c"}, "spec": {"jobName": "My_Job"}}) == "My_Job"
    assert job_name({"metadata": {"name": "plain"}, "spec": {}}) == "plain"
