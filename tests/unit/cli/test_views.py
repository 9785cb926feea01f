"""Job tables, describe text, queue front and the watch view, from plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubatch.cli.describe import describe_job, describe_part, pod_line
from kubatch.cli.filters import JobFilter
from kubatch.cli.jobs import array_summary, jobs_table
from kubatch.cli.queues import normalize_front, queue_text, runnable_front
from kubatch.cli.watch import WatchView

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def job(name: str, status: str | None = "RUNNING", **extra: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"status": status, "createdAt": "2026-01-01T11:58:00Z", "jobId": f"id-{name}", **extra}
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-01T11:58:00Z"},
        "spec": {"jobQueue": "high-priority", "jobDefinition": "render"},
        "status": st,
    }


def test_jobs_table_fits_80_columns_and_truncates_reasons() -> None:
    long = job("a-rather-long-job-name-for-rendering-frames-0001", "RUNNABLE",
               statusReason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no compute environment has room")
    out = jobs_table([long, job("short", attemptCount=2)], now=NOW)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "QUEUE", "STATUS", "REASON", "ATTEMPTS", "AGE"]
    assert all(len(line) <= 80 for line in lines)
    assert "…" in lines[1]
    assert lines[2].split() == ["short", "high-priority", "RUNNING", "2", "2m"]


def test_wide_table_adds_definition_ce_jobid_array_and_does_not_truncate() -> None:
    arr = job("arr", "PENDING", jobDefinition="render:4", computeEnvironment="cpu",
              arrayProperties={"size": 10, "statusSummary": {"RUNNING": 2, "SUCCEEDED": 8}})
    out = jobs_table([arr], wide=True, now=NOW)
    header, row = out.splitlines()
    assert header.split()[-4:] == ["DEFINITION", "CE", "JOBID", "ARRAY"]
    assert row.split()[3:] == ["2m", "render:4", "cpu", "id-arr", "10", "RUNNING=2", "SUCCEEDED=8"]


def test_all_namespaces_table_has_a_namespace_column() -> None:
    out = jobs_table([job("x")], namespaced=False, now=NOW)
    assert out.splitlines()[0].startswith("NAMESPACE")
    assert out.splitlines()[1].startswith("ns")


def test_array_summary() -> None:
    assert array_summary(job("one")) == ""
    j = job("arr")
    j["spec"]["arrayProperties"] = {"size": 5}
    assert array_summary(j) == "5"


def test_describe_job_shows_attempts_dependencies_and_array() -> None:
    j = job(
        "render-all", "FAILED",
        statusReason="Essential container in task exited",
        jobDefinition="render:3",
        computeEnvironment="cpu-ondemand",
        startedAt="2026-01-01T11:58:10Z",
        stoppedAt="2026-01-01T11:59:40Z",
        attempts=[
            {"container": {"exitCode": 137, "reason": "OOMKilled", "podName": "render-all-a1", "nodeName": "kw-1"},
             "startedAt": "2026-01-01T11:58:10Z", "stoppedAt": "2026-01-01T11:58:40Z", "statusReason": "retry"},
            {"container": {"exitCode": 1, "podName": "render-all-a2", "nodeName": "kw-2"},
             "startedAt": "2026-01-01T11:59:00Z", "stoppedAt": "2026-01-01T11:59:40Z"},
        ],
        dependsOn=[{"jobName": "prep", "jobId": "id-prep", "status": "SUCCEEDED"}],
        arrayProperties={"size": 4, "statusSummary": {"SUCCEEDED": 3, "FAILED": 1},
                         "indexes": {"SUCCEEDED": "0-2", "FAILED": "3"}},
    )
    j["spec"]["dependsOn"] = [{"jobName": "prep"}, {"type": "SEQUENTIAL"}]
    text = describe_job(j, now=NOW)
    lines = text.splitlines()
    squeezed = [" ".join(line.split()) for line in lines]
    assert "Definition: render:3 (submitted as render)" in squeezed
    assert "Reason: Essential container in task exited" in squeezed
    a1 = next(line for line in lines if "render-all-a1" in line)
    assert a1.split()[:4] == ["1", "137", "render-all-a1", "kw-1"]
    assert "30s" in a1 and "retry; OOMKilled" in a1
    assert any(line.split()[:3] == ["prep", "SUCCEEDED", "id-prep"] for line in lines)
    assert any("(own children)" in line and "SEQUENTIAL" in line for line in lines)
    assert "  FAILED:    3" in lines
    assert all(len(line) <= 80 for line in lines)


def test_describe_multi_node_job_lists_nodes() -> None:
    j = job("mpi", nodeProperties={"numNodes": 2, "mainNode": 0, "nodes": [
        {"nodeIndex": 0, "status": "RUNNING", "podName": "mpi-n0-a1", "nodeName": "kw-0"},
        {"nodeIndex": 1, "status": "RUNNING", "podName": "mpi-n1-a1", "nodeName": "kw-1"},
    ]})
    text = describe_job(j, now=NOW)
    assert "Nodes: 2 (main node 0)" in text
    assert any(line.split()[:3] == ["0", "(main)", "RUNNING"] for line in text.splitlines())


def test_describe_part_and_pod_line() -> None:
    view = {"jobName": "r:7", "status": "FAILED", "exitCode": 0, "attempt": 2, "podName": "r-7-a2",
            "arrayProperties": {"index": 7, "size": 10}}
    text = describe_part(view, None)
    assert "Array index:  7 of 0-9" in text
    assert "Exit code:    0" in text
    assert "Pod:          r-7-a2 (not found: deleted, or not created yet)" in text
    pod = {"status": {"phase": "Running"}, "spec": {"nodeName": "kw-3"}}
    assert pod_line("r-7-a2", pod) == "r-7-a2 (Running on kw-3)"
    assert "Host:         kw-3" in describe_part(view, pod)


QUEUE: dict[str, Any] = {
    "metadata": {"name": "high"},
    "spec": {"priority": 10, "computeEnvironmentOrder": [{"order": 2, "computeEnvironment": "spot"},
                                                         {"order": 1, "computeEnvironment": "cpu"}]},
    "status": {"status": "VALID", "jobCounts": {"RUNNABLE": 3, "RUNNING": 1}},
}


def test_normalize_front_accepts_both_spellings() -> None:
    front = normalize_front([
        {"jobName": "a", "namespace": "ns", "arrayIndex": 3, "runnableAt": "t", "position": 1,
         "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"},
        {"name": "b:4", "namespace": "ns", "queuedAt": "u", "earliestTimeAtPosition": "v", "shareIdentifier": "s"},
    ])
    assert front[0] == {"position": 1, "namespace": "ns", "job": "a:3", "shareIdentifier": "", "status": "RUNNABLE",
                        "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "since": "t",
                        "earliestTimeAtPosition": None, "estimatedStartAt": None}
    assert (front[1]["job"], front[1]["since"], front[1]["position"]) == ("b:4", "u", 1)
    assert (front[1]["earliestTimeAtPosition"], front[1]["shareIdentifier"]) == ("v", "s")


def cap(vcpu: float, mib: int, gpu: int = 0) -> list[dict[str, Any]]:
    return [{"capacityUnit": "vCPU", "quantity": vcpu}, {"capacityUnit": "MiB", "quantity": mib},
            {"capacityUnit": "GPU", "quantity": gpu}]


def test_queue_text_shows_the_snapshot_fields() -> None:
    status = {
        **QUEUE["status"],
        "lastUpdatedAt": "2026-01-01T11:59:30Z",
        "queueUtilization": {
            "totalCapacityUsage": cap(3.5, 1536, 1),
            "computeEnvironmentUsage": [{"computeEnvironment": "cpu", "capacityUsage": cap(3, 1024)},
                                        {"computeEnvironment": "spot", "capacityUsage": cap(0.5, 512, 1)}],
            "fairshareUtilization": {"activeShareCount": 2, "topCapacityUtilization": [
                {"shareIdentifier": "teamA", "capacityUsage": cap(3, 1024)},
                {"shareIdentifier": "teamB", "capacityUsage": cap(0.5, 512, 1)}]},
        },
        "shareUsage": [{"shareIdentifier": "teamA", "usage": 12.5, "runningvCpus": 3, "weightFactor": 1.0,
                        "activeJobs": 4},
                       {"shareIdentifier": "teamB", "usage": 1.0, "runningvCpus": 0.5, "weightFactor": 1.0,
                        "activeJobs": 1}],
    }
    front = normalize_front([{"name": "a", "namespace": "ns", "position": 1, "shareIdentifier": "teamA",
                              "queuedAt": "2026-01-01T11:50:00Z", "earliestTimeAtPosition": "2026-01-01T11:59:00Z"}])
    text = queue_text({**QUEUE, "spec": {**QUEUE["spec"], "schedulingPolicy": "fs"}, "status": status}, front,
                      width=None, now=NOW)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "In use: 3.5 vCPU, 1536 MiB, 1 GPU (cpu: 3 vCPU, 1024 MiB, 0 GPU; spot: 0.5 vCPU, 512 MiB, 1 GPU)" in lines
    assert "Updated: 30s ago" in lines
    assert "POS JOB STATUS WAITING AT-POSITION SHARE REASON" in lines
    assert "1 ns/a RUNNABLE 10m 60s teamA" in lines
    assert "Share usage (2 active shares):" in lines
    assert "SHARE USAGE WEIGHT RUNNING-VCPUS MEMORY-MIB GPUS ACTIVE-JOBS" in lines
    assert "teamA 12.5 1 3 1024 0 4" in lines
    assert "teamB 1 1 0.5 512 1 1" in lines
    # One environment: no breakdown.
    status["queueUtilization"]["computeEnvironmentUsage"] = status["queueUtilization"]["computeEnvironmentUsage"][:1]
    assert "In use:        3.5 vCPU, 1536 MiB, 1 GPU" in queue_text({**QUEUE, "status": status}, [], now=NOW)


def test_queue_text_explains_why_the_head_waits() -> None:
    front = normalize_front([{"jobName": "a", "namespace": "ns", "runnableAt": "2026-01-01T11:50:00Z",
                              "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}])
    text = queue_text({**QUEUE, "status": {**QUEUE["status"], "shareUsage": [
        {"shareIdentifier": "teamA", "usage": 12.5, "runningvCpus": 4}]}}, front, now=NOW)
    assert "Compute envs:  cpu, spot" in text
    assert "Jobs:          RUNNABLE=3 RUNNING=1" in text
    assert "Head: ns/a waits: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in text
    assert any(line.split()[:4] == ["0", "ns/a", "RUNNABLE", "10m"] for line in text.splitlines())
    assert any(line.split()[:2] == ["teamA", "12.5"] for line in text.splitlines())
    assert "Scheduling:    FIFO" in text


def test_queue_text_uses_the_head_jobs_reason_and_handles_an_empty_queue() -> None:
    front = normalize_front([{"jobName": "a", "namespace": "ns"}])
    assert "Head: ns/a waits: blocked" in queue_text(QUEUE, front, head_reason="blocked", now=NOW)
    assert "No RUNNABLE jobs." in queue_text(QUEUE, [], now=NOW)


def test_runnable_front_orders_jobs_and_array_children_by_runnable_time() -> None:
    late = job("late", "RUNNABLE", runnableAt="2026-01-01T11:59:00Z")
    early = job("early", "RUNNABLE", runnableAt="2026-01-01T11:00:00Z", statusReason="waiting")
    arr = job("arr", "PENDING", runnableAt="2026-01-01T11:30:00Z",
              arrayProperties={"size": 9, "indexes": {"RUNNABLE": "5-8", "RUNNING": "0-4"}})
    other = job("other", "RUNNABLE")
    other["spec"]["jobQueue"] = "elsewhere"
    front = runnable_front([late, early, arr, other], "high-priority", limit=4)
    assert [f["job"] for f in front] == ["early", "arr:5", "arr:6", "arr:7"]
    assert [f["position"] for f in front] == [0, 1, 2, 3]
    assert front[0]["statusReason"] == "waiting"


def test_watch_view_tracks_events_and_reports_the_outcome() -> None:
    view = WatchView(JobFilter(names=("a*",)))
    view.load([job("a1", "RUNNING"), job("a2", "SUCCEEDED"), job("b", "RUNNING")])
    assert [j["metadata"]["name"] for j in view.visible()] == ["a1", "a2"]
    assert view.outcome() is None
    assert view.apply("MODIFIED", job("b", "FAILED")) is False  # not shown
    assert view.apply("BOOKMARK", {"metadata": {"resourceVersion": "9"}}) is False
    assert view.apply("MODIFIED", job("a1", "SUCCEEDED")) is True
    assert view.outcome() is True
    view.apply("ADDED", job("a3", "FAILED"))
    assert view.outcome() is False
    assert view.apply("DELETED", job("a3", "FAILED")) is True
    assert view.outcome() is True


def test_watch_view_without_jobs_is_not_done() -> None:
    view = WatchView(JobFilter())
    assert view.outcome() is None


def test_job_name_column_and_describe_show_the_aws_name() -> None:
    aws = job("render-frames-1a2b3c")
    aws["spec"]["jobName"] = "Render_Frames"
    plain = job("plain")
    assert "JOB-NAME" not in jobs_table([plain], now=NOW)  # no job has one: the table is as before
    header, first, second = jobs_table([aws, plain], now=NOW, width=200).splitlines()
    assert header.split()[:3] == ["NAME", "JOB-NAME", "QUEUE"]
    assert first.split()[:3] == ["render-frames-1a2b3c", "Render_Frames", "high-priority"]
    assert second.split()[:2] == ["plain", "high-priority"]
    assert "JOB-NAME" in jobs_table([plain], wide=True, now=NOW)
    assert "JOB-NAME" not in jobs_table([aws], now=NOW, job_names=False)
    text = describe_job(aws, now=NOW)
    assert "Job name:" in text and "Render_Frames" in text
    assert "Job name:" not in describe_job(plain, now=NOW)


def test_queue_front_shows_when_each_job_is_expected_to_start() -> None:
    front = normalize_front([
        {"name": "a", "namespace": "ns", "position": 1, "queuedAt": "2026-01-01T11:50:00Z",
         "estimatedStartAt": "2026-01-01T12:02:05Z"},
        {"name": "b", "namespace": "ns", "position": 2, "queuedAt": "2026-01-01T11:50:00Z"},
    ])
    lines = [" ".join(line.split()) for line in queue_text(QUEUE, front, width=None, now=NOW).splitlines()]
    assert "POS JOB STATUS WAITING AT-POSITION STARTS REASON" in lines
    assert any(line.startswith("1 ns/a RUNNABLE 10m") and line.endswith("in 2m") for line in lines)
    assert any(line.startswith("2 ns/b RUNNABLE 10m") and line.endswith("?") for line in lines)


def test_describe_shows_the_queue_position_and_the_expected_start() -> None:
    j = job("a", "RUNNABLE")
    text = describe_job(j, now=NOW, front={"position": 3, "estimatedStartAt": "2026-01-01T12:00:40Z"})
    assert "Queue position:  3" in text
    assert "2026-01-01 12:00:40Z (in 40s)" in text
    assert "Expected start" not in describe_job(j, now=NOW)
