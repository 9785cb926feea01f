"""Addresses (name, name:7, name#2), range lookups, child and node views, attempt pods."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.cli.children import (
    JobAddress,
    attempt_pod,
    child_view,
    current_attempt,
    node_view,
    parse_address,
    range_lookup,
)
from kubatch.core.podspec import pod_name


def array_job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "render", "namespace": "ns", "uid": "u-1"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 100}},
        "status": {"jobId": "u-1", "status": "PENDING", "jobDefinition": "d:2", **status},
    }


ARRAY_STATUS = {
    "size": 100,
    "statusSummary": {"SUCCEEDED": 41, "RUNNING": 2, "FAILED": 1, "RUNNABLE": 56},
    "indexes": {"SUCCEEDED": "0-40", "RUNNING": "41,52", "FAILED": "42", "RUNNABLE": "43-51,53-99"},
    "attempts": {"1": "0-40,42", "2": "52"},
    "exitCodes": {"0": "0-40", "3": "42,52"},
    "statusReasons": {"Essential container in task exited": "42"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("render", JobAddress("render")),
        ("render:7", JobAddress("render", index=7)),
        ("render#2", JobAddress("render", node=2)),
        (" render:0 ", JobAddress("render", index=0)),
    ],
)
def test_parse_address(text: str, expected: JobAddress) -> None:
    assert parse_address(text) == expected
    assert str(expected) == text.strip()


@pytest.mark.parametrize("text", ["", "render:", "render#", "render:x", "render:-1", "render:1#2", "a b"])
def test_parse_address_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="invalid job address"):
        parse_address(text)


def test_range_lookup() -> None:
    ranges = {"0": "0-40", "3": "42,52", "bad": "x-y"}
    assert range_lookup(ranges, 40) == "0"
    assert range_lookup(ranges, 52) == "3"
    assert range_lookup(ranges, 41) is None
    assert range_lookup(None, 1) is None


def test_child_view_of_a_finished_failed_child() -> None:
    view = child_view(array_job(arrayProperties=ARRAY_STATUS), 42)
    assert view["jobName"] == "render:42"
    assert view["jobId"] == "u-1:42"
    assert view["status"] == "FAILED"
    assert view["statusReason"] == "Essential container in task exited"
    assert view["exitCode"] == 3
    assert view["finishedAttempts"] == 1
    assert view["attempt"] == 1
    assert view["podName"] == pod_name("render", 1, array_index=42)
    assert view["jobDefinition"] == "d:2"


def test_child_view_of_a_running_retry_uses_the_next_attempt() -> None:
    view = child_view(array_job(arrayProperties=ARRAY_STATUS), 52)
    assert view["status"] == "RUNNING"
    assert view["finishedAttempts"] == 2
    assert view["attempt"] == 3
    assert view["podName"] == pod_name("render", 3, array_index=52)
    assert view["exitCode"] == 3  # last finished attempt's


def test_child_view_of_a_first_running_attempt_and_a_waiting_child() -> None:
    running = child_view(array_job(arrayProperties=ARRAY_STATUS), 41)
    assert (running["attempt"], running["podName"]) == (1, pod_name("render", 1, array_index=41))
    waiting = child_view(array_job(arrayProperties=ARRAY_STATUS), 60)
    assert waiting["status"] == "RUNNABLE"
    assert waiting["attempt"] is None and waiting["podName"] is None


def test_child_view_without_per_child_state_takes_the_parent_state() -> None:
    submitted = child_view(array_job(status="SUBMITTED"), 3)
    assert submitted["status"] == "SUBMITTED"
    failed = child_view(array_job(status="FAILED", statusReason="Job definition d not found"), 3)
    assert (failed["status"], failed["statusReason"]) == ("FAILED", "Job definition d not found")


def test_child_view_errors() -> None:
    with pytest.raises(ValueError, match="0-99; 100 is out of range"):
        child_view(array_job(arrayProperties=ARRAY_STATUS), 100)
    single = {"metadata": {"name": "one"}, "spec": {}, "status": {}}
    with pytest.raises(ValueError, match='"one" is not an array job'):
        child_view(single, 0)


def mnp_job() -> dict[str, Any]:
    return {
        "metadata": {"name": "mpi", "namespace": "ns", "uid": "u-2"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "nodeOverrides": {"numNodes": 3}},
        "status": {
            "status": "RUNNING",
            "attemptCount": 1,
            "nodeProperties": {
                "numNodes": 3,
                "mainNode": 0,
                "nodes": [
                    {"nodeIndex": 0, "podName": "mpi-n0-a1", "status": "RUNNING", "nodeName": "kw-0"},
                    {"nodeIndex": 2, "podName": "mpi-n2-a1", "status": "FAILED", "nodeName": "kw-2", "exitCode": 1},
                ],
            },
        },
    }


def test_node_view() -> None:
    view = node_view(mnp_job(), 2)
    assert view["jobName"] == "mpi#2"
    assert view["jobId"] == "u-2#2"
    assert (view["status"], view["exitCode"], view["nodeName"]) == ("FAILED", 1, "kw-2")
    assert view["podName"] == "mpi-n2-a1"
    assert view["nodeProperties"]["isMainNode"] is False
    assert node_view(mnp_job(), 0)["nodeProperties"]["isMainNode"] is True


def test_node_view_without_an_entry_derives_the_pod_name() -> None:
    view = node_view(mnp_job(), 1)
    assert view["status"] is None
    assert view["podName"] == pod_name("mpi", 1, node_index=1)


def test_node_view_errors() -> None:
    with pytest.raises(ValueError, match="0-2; 3 is out of range"):
        node_view(mnp_job(), 3)
    with pytest.raises(ValueError, match="not a multi-node job"):
        node_view({"metadata": {"name": "one"}, "spec": {}, "status": {}}, 0)


def test_current_attempt() -> None:
    assert current_attempt({}) == 0
    assert current_attempt({"attemptCount": 3}) == 3
    assert current_attempt({"status": "RUNNING", "attempts": [{}]}) == 2
    assert current_attempt({"status": "FAILED", "attempts": [{}, {}]}) == 2


def test_attempt_pod_of_a_single_job_prefers_the_recorded_pod_name() -> None:
    job = {
        "metadata": {"name": "one"},
        "status": {"status": "RUNNING", "attemptCount": 2, "attempts": [{"container": {"podName": "one-a1-x"}}]},
    }
    assert attempt_pod(job, JobAddress("one")) == (pod_name("one", 2), 2)
    assert attempt_pod(job, JobAddress("one"), 1) == ("one-a1-x", 1)
    with pytest.raises(ValueError, match="has not started"):
        attempt_pod({"metadata": {"name": "one"}, "status": {"status": "RUNNABLE"}}, JobAddress("one"))


def test_attempt_pod_of_children_and_nodes() -> None:
    job = array_job(arrayProperties=ARRAY_STATUS)
    assert attempt_pod(job, JobAddress("render", index=52)) == (pod_name("render", 3, array_index=52), 3)
    assert attempt_pod(job, JobAddress("render", index=52), 1) == (pod_name("render", 1, array_index=52), 1)
    with pytest.raises(ValueError, match="render:60 has not started"):
        attempt_pod(job, JobAddress("render", index=60))
    assert attempt_pod(mnp_job(), JobAddress("mpi", node=2)) == ("mpi-n2-a1", 1)
