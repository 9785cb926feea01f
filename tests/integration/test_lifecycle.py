"""Job lifecycle against the real control plane with kwok pods: states, env, retries, timeouts,
parameters, cancel/terminate, revisions, events. The operator runs as a real process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def seconds_between(start: str, end: str) -> float:
    return (parse_iso(end) or 0.0) - (parse_iso(start) or 0.0)


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


@pytest.mark.in_cluster
def test_hello_world_runs_with_every_aws_batch_variable(batch: Batch) -> None:
    ce = batch.environment()
    q = batch.queue([ce])
    batch.container_definition("hello", command=["echo", "hello Ref::who"], parameters={"who": "world"})
    batch.job("hello-1", q, "hello", duration="10s", parameters={"who": "kubatch"})
    # The pod, while the job runs (a loaded operator may coalesce RUNNING into the final write, so
    # the pod is awaited, not the RUNNING status); it is deleted only after the job's last write.
    pods = batch.wait_for(lambda: batch.pods("hello-1"), "the job's pod")
    st = batch.wait_status("hello-1", "RUNNING", "SUCCEEDED")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["name"] == "hello-1-a1"
    env = env_of(pod)
    assert env["AWS_BATCH_JOB_ID"] == st["jobId"]
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == q
    assert env["AWS_BATCH_CE_NAME"] == ce
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in env
    assert pod["spec"]["containers"][0]["args"] == ["echo", "hello kubatch"]
    labels = pod["metadata"]["labels"]
    assert labels["kubatch.dev/job-name"] == "hello-1"
    assert labels["kubatch.dev/job-queue"] == q
    assert labels["kubatch.dev/compute-environment"] == ce
    assert labels["kubatch.dev/attempt"] == "1"
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("BatchJob", "hello-1", True)
    assert pod["spec"]["nodeSelector"] == {"kubatch.dev/compute-environment": ce}
    assert {"key": "kubatch.dev/compute-environment", "operator": "Equal", "value": ce, "effect": "NoSchedule"} in [
        {k: t.get(k) for k in ("key", "operator", "value", "effect")} for t in pod["spec"]["tolerations"]
    ]
    res = pod["spec"]["containers"][0]["resources"]
    assert res["requests"]["cpu"] in ("1", "1000m")
    assert res["requests"]["memory"] == res["limits"]["memory"] == "256Mi"
    done = batch.wait_done("hello-1")
    assert done["status"] == "SUCCEEDED"
    assert done["jobDefinition"] == "hello:1"
    assert done["computeEnvironment"] == ce
    assert done["startedAt"] and done["stoppedAt"] and done["createdAt"]
    (attempt,) = done["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["podName"] == "hello-1-a1"
    assert attempt["container"]["nodeName"]
    # Events are posted in the background (best-effort, rate-limited). By default only the notable
    # ones: how the job ended, not each routine step (the status and a watch show those).
    batch.wait_for(lambda: "JobSucceeded" in {e["reason"] for e in batch.events("hello-1")}, "JobSucceeded event")
    reasons = {e["reason"] for e in batch.events("hello-1")}
    assert not reasons & {"JobRunnable", "JobStarting", "JobRunning"}, reasons
    # Finished pods are deleted while the job keeps its record.
    batch.wait_for(lambda: not batch.pods("hello-1"), "finished pod deleted")


@pytest.mark.in_cluster
def test_retries_exhausted_records_every_attempt(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("flaky", retryStrategy={"attempts": 3})
    batch.job("fails", q, "flaky", duration="200ms", exit_code=2)
    st = batch.wait_done("fails")
    assert st["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in st["attempts"]] == [2, 2, 2]
    assert [a["container"]["podName"] for a in st["attempts"]] == ["fails-a1", "fails-a2", "fails-a3"]
    assert st["statusReason"] == "Essential container in task exited"


@pytest.mark.in_cluster
def test_retry_then_success(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("flaky", retryStrategy={"attempts": 3})
    batch.job("second-time", q, "flaky", duration="200ms", annotations={"sim.kubatch.dev/exit-code-attempt-1": "1"})
    st = batch.wait_done("second-time")
    assert st["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in st["attempts"]] == [1, 0]
    # The retry may be written together with the success (coalesced), and Events are posted after
    # the status that records them: wait for the last one before counting.
    batch.wait_for(lambda: "JobSucceeded" in {e["reason"] for e in batch.events("second-time")}, "JobSucceeded event")
    batch.wait_for(lambda: "JobRetry" in {e["reason"] for e in batch.events("second-time")}, "JobRetry event")
    retried = [e for e in batch.events("second-time") if e["reason"] == "JobRetry"]
    assert len(retried) == 1, retried


def test_evaluate_on_exit_exit_rule_stops_retries(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition(
        "rules",
        retryStrategy={
            "attempts": 5,
            "evaluateOnExit": [{"onExitCode": "13*", "action": "EXIT"}, {"onExitCode": "1", "action": "RETRY"}],
        },
    )
    batch.job(
        "exit-rule",
        q,
        "rules",
        duration="200ms",
        annotations={"sim.kubatch.dev/exit-code-attempt-1": "1", "sim.kubatch.dev/exit-code": "137"},
    )
    st = batch.wait_done("exit-rule")
    assert st["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in st["attempts"]] == [1, 137]


def test_evaluate_on_exit_actions_in_any_case(batch: Batch) -> None:
    """`Retry` and `exit` (AWS Batch accepts any case) act as RETRY and EXIT."""
    q = batch.queue([batch.environment()])
    batch.container_definition(
        "cased",
        retryStrategy={
            "attempts": 5,
            "evaluateOnExit": [{"onExitCode": "13*", "action": "exit"}, {"onExitCode": "1", "action": "Retry"}],
        },
    )
    batch.job(
        "cased-rules",
        q,
        "cased",
        duration="200ms",
        annotations={"sim.kubatch.dev/exit-code-attempt-1": "1", "sim.kubatch.dev/exit-code": "137"},
    )
    st = batch.wait_done("cased-rules")
    assert st["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in st["attempts"]] == [1, 137]


def test_no_matching_rule_retries_while_attempts_remain(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition(
        "nomatch",
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onExitCode": "99", "action": "EXIT"}]},
    )
    batch.job("no-match", q, "nomatch", duration="200ms", exit_code=3)
    st = batch.wait_done("no-match")
    assert st["status"] == "FAILED"
    assert len(st["attempts"]) == 2


@pytest.mark.in_cluster
def test_cancel_runnable_job(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("one-cpu")
    batch.job("hog", q, "one-cpu", duration="1h")
    batch.wait_status("hog", "RUNNING")
    batch.job("waiter", q, "one-cpu")
    batch.wait_status("waiter", "RUNNABLE")
    batch.kubectl(
        "patch",
        "batchjob",
        "waiter",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cancel": {"reason": "no longer needed"}}}),
    )
    st = batch.wait_done("waiter")
    assert st["status"] == "FAILED"
    assert st["statusReason"] == "no longer needed"
    assert not batch.pods("waiter")
    # Cancel has no effect once a job runs (CancelJob semantics); terminate stops it.
    batch.kubectl(
        "patch",
        "batchjob",
        "hog",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cancel": {"reason": "too late"}}}),
    )
    batch.kubectl(
        "patch",
        "batchjob",
        "hog",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"terminate": {"reason": "stop it"}}}),
    )
    st = batch.wait_done("hog")
    assert st["status"] == "FAILED"
    assert st["statusReason"] == "stop it"
    assert st["attempts"][-1]["statusReason"] == "stop it"
    batch.wait_for(lambda: not batch.pods("hog"), "terminated pod gone")


def test_timeout_fails_the_attempt_without_retry(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("slow", retryStrategy={"attempts": 3}, timeout={"attemptDurationSeconds": 60})
    batch.job("slow-1", q, "slow", duration="1h")
    batch.wait_status("slow-1", "RUNNING")
    st = batch.wait_done("slow-1", timeout=120)
    assert st["status"] == "FAILED"
    assert st["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(st["attempts"]) == 1


def test_a_retried_attempt_gets_a_fresh_timeout(batch: Batch) -> None:
    """AWS: "If a job attempt fails on its own, then it can retry if retries are enabled, and the
    timeout countdown is started over for the new attempt"; a timed-out attempt is not retried.
    (The clock is AWS's minimum, 60 s, which the test operator does not scale.)"""
    q = batch.queue([batch.environment()])
    batch.container_definition("clocked", retryStrategy={"attempts": 3}, timeout={"attemptDurationSeconds": 60})
    # 35 s that fail, then 35 s that succeed: 70 s in all, each attempt within its own 60 s.
    batch.job("again", q, "clocked", duration="35s", annotations={"sim.kubatch.dev/exit-code-attempt-1": "1"})
    # 10 s that fail, then an attempt that runs until its own 60 s are up (not the first one's).
    batch.job(
        "again-slow",
        q,
        "clocked",
        duration="1h",
        annotations={"sim.kubatch.dev/duration-attempt-1": "10s", "sim.kubatch.dev/exit-code-attempt-1": "1"},
    )
    done = batch.wait_done("again", timeout=150)
    assert done["status"] == "SUCCEEDED", done
    first, second = done["attempts"]
    assert (first["container"]["exitCode"], second["container"]["exitCode"]) == (1, 0)
    assert first["statusReason"] == "Essential container in task exited"
    assert seconds_between(first["startedAt"], second["stoppedAt"]) >= 65, done["attempts"]

    slow = batch.wait_done("again-slow", timeout=150)
    assert slow["status"] == "FAILED", slow
    assert slow["statusReason"] == "Job attempt duration exceeded timeout"
    first, second = slow["attempts"]  # the timeout is final: no third attempt
    assert first["container"]["exitCode"] == 1
    assert second["statusReason"] == "Job attempt duration exceeded timeout"
    assert 59 <= seconds_between(second["startedAt"], second["stoppedAt"]) <= 80, slow["attempts"]
    assert seconds_between(first["startedAt"], second["stoppedAt"]) >= 68, slow["attempts"]


def test_an_array_timeout_applies_to_each_child(batch: Batch) -> None:
    """AWS: "The timeout specified in the attemptDurationSeconds parameter applies to each child
    job. The parent array job does not have a timeout." Two vCPUs run two children at a time (in
    index order): child 0 runs for an hour and times out; child 1 (35 s) and then child 2 (35 s)
    succeed, child 2 ending more than 60 s after child 0 started."""
    q = batch.queue([batch.environment(cpu=2)])
    batch.container_definition("clocked", timeout={"attemptDurationSeconds": 60})
    batch.job(
        "frames",
        q,
        "clocked",
        duration="35s",
        arrayProperties={"size": 3},
        annotations={"sim.kubatch.dev/duration-index-0": "1h"},
    )
    started: dict[int, float] = {}

    def record_until_done() -> dict[str, Any] | None:
        for pod in batch.pods("frames"):
            for c in (pod.get("status") or {}).get("containerStatuses") or []:
                at = parse_iso(((c.get("state") or {}).get("running") or {}).get("startedAt"))
                if at is not None:
                    started.setdefault(int(pod["metadata"]["labels"]["kubatch.dev/array-index"]), at)
        st = batch.status("frames")
        return st if st.get("status") in ("SUCCEEDED", "FAILED") else None

    done = batch.wait_for(record_until_done, "the array done", timeout=150, interval=0.5)
    props = done["arrayProperties"]
    assert done["status"] == "FAILED", done
    assert props["statusSummary"]["SUCCEEDED"] == 2 and props["statusSummary"]["FAILED"] == 1, props
    assert props["indexes"] == {"FAILED": "0", "SUCCEEDED": "1-2"}, props
    assert props["statusReasons"] == {"Job attempt duration exceeded timeout": "0"}, props
    assert props["exitCodes"].get("0") == "1-2", props
    assert props["attempts"] == {"1": "0-2"}, props  # each child ran once
    assert sorted(started) == [0, 1, 2], started
    # Child 2 started once child 1 ended and ran past child 0's 60 s: its own clock.
    assert started[2] - started[0] >= 30, started
    assert (parse_iso(done["stoppedAt"]) or 0) - started[0] >= 65, (done["stoppedAt"], started)


def test_revisions_are_pinned_at_submission(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("pinned", command=["echo", "v1"])
    batch.job("hold", q, "pinned", duration="1h")
    batch.wait_status("hold", "RUNNING")
    batch.job("first", q, "pinned", duration="10s")
    batch.wait_status("first", "RUNNABLE")
    assert batch.status("first")["jobDefinition"] == "pinned:1"
    batch.container_definition("pinned", command=["echo", "v2"])
    batch.wait_for(
        lambda: batch.kget("jobdefinition", "pinned", "-n", batch.ns)["status"].get("revision") == 2, "revision 2"
    )
    batch.job("second", q, "pinned")
    batch.wait_for(lambda: batch.status("second").get("jobDefinition") == "pinned:2", "second pinned to :2")
    batch.job("explicit", q, "pinned:1")
    batch.wait_for(lambda: batch.status("explicit").get("jobDefinition") == "pinned:1", "explicit pinned to :1")
    revs = batch.kget("controllerrevisions", "-n", batch.ns, "-l", "kubatch.dev/job-definition=pinned")["items"]
    assert sorted(r["revision"] for r in revs) == [1, 2]
    batch.kubectl(
        "patch",
        "batchjob",
        "hold",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"terminate": {"reason": "done"}}}),
    )
    batch.wait_status("first", "RUNNING")
    pod = next(p for p in batch.pods("first"))
    assert pod["spec"]["containers"][0]["args"] == ["echo", "v1"]
    for name in ("first", "second", "explicit"):
        batch.wait_done(name)
    assert batch.status("second")["jobDefinition"] == "pinned:2"


def test_unknown_definition_fails_the_job_clearly(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("exists")
    batch.job("bad-rev", q, "exists:7")
    st = batch.wait_done("bad-rev")
    assert st["status"] == "FAILED"
    assert "exists:7" in st["statusReason"]
