"""The start-time estimator of the operator: run times learned from the view, live pods as the work
that holds capacity, and an estimate of the queue front from a cycle's snapshot and plan."""

from __future__ import annotations

import asyncio
from typing import Any

from kubatch.cluster.view import View
from kubatch.runtime.dispatcher import pod_requests
from kubatch.runtime.estimates import StartEstimator, definition_of, head_waits
from kubatch.scheduler import ComputeEnv, Job, Queue, Resources, Snapshot, plan

NOW = 1_800_000_000.0


def iso(ts: float) -> str:
    from kubatch.core.timestamps import iso as fmt

    return fmt(ts)


def batch_job(name: str, status: dict[str, Any], definition: str = "sleep:1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"},
        "spec": {"jobQueue": "q", "jobDefinition": definition, **spec},
        "status": status,
    }


def pod(job: str, phase: str, started: float, finished: float | None = None, rv: str = "1") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {"startedAt": iso(started)}}
    if finished is not None:
        state = {"terminated": {"startedAt": iso(started), "finishedAt": iso(finished), "exitCode": 0}}
    return {
        "metadata": {
            "name": f"{job}-a1",
            "namespace": "ns",
            "uid": f"pod-{job}",
            "resourceVersion": rv,
            "labels": {"kubatch.dev/job-name": job, "kubatch.dev/compute-environment": "ce"},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": phase, "startTime": iso(started), "containerStatuses": [{"name": "main", "state": state}]},
    }


def estimator(view: View, definitions: dict[str, dict[str, Any]] | None = None) -> StartEstimator:
    defs = definitions or {}
    return StartEstimator(
        view,
        requests=pod_requests,
        definition_spec=lambda job: defs.get(str((job.get("spec") or {}).get("jobDefinition"))),
        now=lambda: NOW,
    )


def test_the_definition_is_the_learning_key_whatever_the_revision_or_spelling() -> None:
    assert definition_of(batch_job("a", {}, "sleep:3")) == "ns/sleep"
    assert definition_of(batch_job("a", {}, "sleep")) == "ns/sleep"
    arn = "arn:aws:batch:us-east-1:000000000000:job-definition/sleep:2"
    assert definition_of(batch_job("a", {}, arn)) == "ns/sleep"


def test_runs_are_learned_from_pods_seen_finishing_and_from_finished_jobs_attempts() -> None:
    view = View()
    done = {"status": "SUCCEEDED", "attempts": [{"startedAt": iso(NOW - 100), "stoppedAt": iso(NOW - 60)}]}
    view.on_job("ADDED", batch_job("old", done))
    view.on_job("ADDED", batch_job("a", {"status": "RUNNING"}))
    # First seen finished: its container's timestamps tell how long it ran.
    view.on_pod("ADDED", pod("a", "Succeeded", NOW - 30, NOW - 10, rv="2"))
    view.on_pod("MODIFIED", pod("a", "Succeeded", NOW - 30, NOW - 10, rv="3"))  # counted once
    est = estimator(view)
    est.learn()
    # 40 s from the finished job's attempt, then 20 s from the pod: 40 + 0.3 * (20 - 40).
    assert est.run_times.expected("ns/sleep") == 34.0
    assert not view.finished_runs


def test_a_pod_seen_running_is_timed_by_the_view_not_by_whole_second_timestamps() -> None:
    view = View()
    view.on_job("ADDED", batch_job("a", {"status": "RUNNING"}, "fast:1"))
    view.on_pod("ADDED", pod("a", "Running", NOW - 30))
    view.on_pod("MODIFIED", pod("a", "Running", NOW - 30, rv="2"))
    view.on_pod("MODIFIED", pod("a", "Succeeded", NOW - 30, NOW - 10, rv="3"))
    [(key, ran)] = list(view.finished_runs)
    assert key == "ns/a"
    assert 0 <= ran < 5  # the view saw it run for an instant, not the 20 s its timestamps claim


def test_live_pods_hold_capacity_until_their_expected_end_bounded_by_the_timeout() -> None:
    view = View()
    view.on_job("ADDED", batch_job("a", {"status": "RUNNING"}))
    view.on_pod("ADDED", pod("a", "Running", NOW - 30))
    est = estimator(view, {"sleep:1": {"timeout": {"attemptDurationSeconds": 100}}})
    [running] = est.running()
    assert running.env == "ce"
    assert running.resources.vcpus == 1
    assert running.ends_at == NOW - 30 + 100  # nothing learned yet: the timeout


def test_refresh_estimates_the_front_and_the_head_wait() -> None:
    view = View()
    view.on_job("ADDED", batch_job("a", {"status": "RUNNING"}))
    view.on_pod("ADDED", pod("a", "Running", NOW - 30))
    for name in ("b", "c"):
        view.on_job("ADDED", batch_job(name, {"status": "RUNNABLE"}))
    est = estimator(view, {"sleep:1": {"timeout": {"attemptDurationSeconds": 100}}})
    snap = Snapshot(
        now=NOW,
        envs=(ComputeEnv("ce", Resources(1.0, 1 << 20, 0), used=Resources(1.0, 0, 0)),),
        queues=(Queue("q", 1, ("ce",)),),
        jobs=tuple(Job(f"ns/{n}", "q", Resources(1.0, 0, 0), order=(i,)) for i, n in enumerate("bc")),
    )
    current = plan(snap)
    result = asyncio.run(est.refresh(snap, current))
    assert result is not None
    assert result.starts == {"ns/b": NOW + 70, "ns/c": NOW + 170}
    assert est.start_of("ns/c") == NOW + 170
    assert head_waits(result, current.queue_front, NOW) == {"q": 70.0}
    assert not est.due()


def test_a_run_holds_its_capacity_from_the_pods_creation_and_its_start_latency_is_learned(monkeypatch: Any) -> None:
    import kubatch.cluster.view as view_module

    clock = [100.0]
    monkeypatch.setattr(view_module.time, "monotonic", lambda: clock[0])
    view = View()
    view.on_job("ADDED", batch_job("a", {"status": "STARTING"}, "fast:1"))
    view.on_pod("ADDED", pod("a", "Pending", NOW))  # the create's answer: capacity held from here
    clock[0] = 101.5
    view.on_pod("MODIFIED", pod("a", "Running", NOW, rv="2"))
    clock[0] = 102.0
    view.on_pod("MODIFIED", pod("a", "Succeeded", NOW, NOW + 1, rv="3"))
    assert list(view.finished_runs) == [("ns/a", 2.0)]  # 0.5 s of running, and the 1.5 s before
    assert list(view.start_latencies) == [1.5]
    est = estimator(view)
    est.learn()
    assert est.run_times.expected("ns/fast") == 2.0
    assert est.run_times.start_latency == 1.5
    assert not view.start_latencies


def test_no_estimates_until_a_run_time_has_a_basis_then_starts_include_the_start_latency() -> None:
    view = View()
    for name in ("b", "c"):
        view.on_job("ADDED", batch_job(name, {"status": "RUNNABLE"}))
    snap = Snapshot(
        now=NOW,
        envs=(ComputeEnv("ce", Resources(1.0, 1 << 20, 0), used=Resources(0.0, 0, 0)),),
        queues=(Queue("q", 1, ("ce",)),),
        jobs=tuple(Job(f"ns/{n}", "q", Resources(1.0, 0, 0), order=(i,)) for i, n in enumerate("bc")),
    )
    current = plan(snap)
    est = estimator(view)
    assert not est.refreshed  # the queues' status waits for a first refresh (see StartEstimator)
    # Nothing ran, no timeout: the 600 s default would be a guess, so nothing is estimated.
    result = asyncio.run(est.refresh(snap, current))
    assert result is not None and result.starts == {}
    assert est.refreshed  # none to make is known too: the status need not wait
    # One run of any definition seen (10 s held, 2 s to start): b is placed now, c follows b's end.
    view.finished_runs.append(("ns/b", 10.0))
    view.start_latencies.append(2.0)
    est.at = 0.0
    result = asyncio.run(est.refresh(snap, current))
    assert result is not None
    assert result.starts == {"ns/b": NOW + 2, "ns/c": NOW + 12}


def test_pods_of_a_burst_give_the_placement_interval_and_a_burst_queues_in_the_estimate(monkeypatch: Any) -> None:
    import kubatch.cluster.view as view_module

    clock = [100.0]
    monkeypatch.setattr(view_module.time, "monotonic", lambda: clock[0])
    view = View()
    for i, at in enumerate((100.0, 100.1, 100.3, 105.0)):  # a burst of three, then one alone
        clock[0] = at
        view.on_job("ADDED", batch_job(f"p{i}", {"status": "STARTING"}))
        view.on_pod("ADDED", pod(f"p{i}", "Pending", NOW))
    assert [round(g, 3) for g in view.creation_gaps] == [0.1, 0.2]
    snap = Snapshot(
        now=NOW,
        envs=(ComputeEnv("ce", Resources(4.0, 1 << 20, 0)),),
        queues=(Queue("q", 1, ("ce",)),),
        jobs=tuple(Job(f"ns/{n}", "q", Resources(1.0, 0, 0), order=(i,)) for i, n in enumerate("abc")),
    )
    from kubatch.scheduler.estimate import estimate_starts

    result = estimate_starts(snap, (), lambda j: 10.0, start_latency=1.0, placement_interval=0.5)
    # All three fit at once; they become pods one every 0.5 s, each running a second after.
    assert result.starts == {"ns/a": NOW + 1.0, "ns/b": NOW + 1.5, "ns/c": NOW + 2.0}
