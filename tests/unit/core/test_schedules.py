"""JobSchedule decisions on a fake clock: due and missed runs, concurrency, history, the job manifest,
and a simulation of an operator that acts on the plans (with outages) checked for invariants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.cron import parse
from kubatch.core.schedules import (
    ANNOTATION_SCHEDULED_AT,
    LABEL_SCHEDULE,
    Run,
    as_run,
    format_time,
    job_manifest,
    owned_by,
    plan,
    prune,
    run_name,
    runs_of,
    status_patch,
    validate_job_schedule,
)

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)


def schedule(
    cron: str = "* * * * *",
    *,
    created: datetime = T0 - timedelta(days=1),
    last: datetime | None = None,
    name: str = "nightly",
    **spec: Any,
) -> dict[str, Any]:
    status = {"lastScheduleTime": format_time(last)} if last else {}
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "JobSchedule",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "creationTimestamp": format_time(created)},
        "spec": {"schedule": cron, "jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}}, **spec},
        "status": status,
    }


def running(name: str, **kw: Any) -> Run:
    return Run(name, "RUNNING", created=T0 - 10 * MIN, **kw)


def done(name: str, state: str, stopped: datetime) -> Run:
    return Run(name, state, created=stopped - MIN, stopped=stopped)


# ---- due and missed runs ------------------------------------------------------------------------------
def test_new_schedule_waits_for_its_first_run() -> None:
    p = plan(schedule("0 * * * *", created=T0 + 5 * MIN), [], T0 + 10 * MIN)
    assert p.create is None and p.next_run == T0 + timedelta(hours=1)
    assert p.last_schedule_time is None and p.problem is None


def test_due_run_is_created_once_with_a_deterministic_name() -> None:
    now = T0 + timedelta(seconds=20)
    p = plan(schedule(last=T0 - 10 * MIN), [], now)
    assert p.create == T0 and p.job_name == f"nightly-{int(T0.timestamp()) // 60}"
    assert p.last_schedule_time == T0 and p.active == [p.job_name]
    assert p.next_run == T0 + MIN
    # The job exists (created before the status was written): the run counts as done.
    again = plan(schedule(last=T0 - 10 * MIN), [Run(p.job_name, None)], now)
    assert again.create is None and again.last_schedule_time == T0
    # Status written: nothing is due until the next minute.
    after = plan(schedule(last=T0), [Run(p.job_name, "RUNNING")], now)
    assert after.create is None and after.next_run == T0 + MIN


def test_after_an_outage_only_the_latest_missed_run_starts() -> None:
    now = T0 + timedelta(hours=5, seconds=30)
    p = plan(schedule("*/10 * * * *", last=T0), [], now)
    assert p.create == T0 + timedelta(hours=5)
    assert p.notes == []


def test_starting_deadline_skips_runs_that_are_too_late() -> None:
    s = schedule("0 * * * *", last=T0 - timedelta(hours=1), startingDeadlineSeconds=60)
    late = plan(s, [], T0 + 2 * MIN)
    assert late.create is None and late.last_schedule_time == T0 - timedelta(hours=1)
    assert [n.reason for n in late.notes] == ["MissedSchedule"] and late.notes[0].warning
    assert "startingDeadlineSeconds (60s)" in late.notes[0].message
    in_time = plan(s, [], T0 + timedelta(seconds=59))
    assert in_time.create == T0 and in_time.notes == []
    # Without a deadline the late run still starts.
    s["spec"].pop("startingDeadlineSeconds")
    assert plan(s, [], T0 + timedelta(minutes=30)).create == T0


def test_time_zone_and_macro() -> None:
    s = schedule("@daily", timeZone="Asia/Tokyo", last=T0 - timedelta(days=2))
    p = plan(s, [], T0)
    assert p.create == datetime(2025, 6, 1, 15, 0, tzinfo=UTC)  # midnight in Tokyo
    assert p.next_run == datetime(2025, 6, 2, 15, 0, tzinfo=UTC)


def test_invalid_spec_is_a_problem_not_a_crash() -> None:
    p = plan(schedule("61 * * * *"), [running("a")], T0)
    assert p.problem == "spec.schedule: minute: 61 is out of range 0-59"
    assert p.create is None and p.next_run is None and p.active == ["a"]
    p = plan(schedule(timeZone="Mars/Base"), [], T0)
    assert p.problem is not None and p.problem.startswith("spec.timeZone: unknown time zone 'Mars/Base'")


def test_suspend_starts_nothing_but_keeps_history_in_bounds() -> None:
    runs = [done(f"r{i}", "SUCCEEDED", T0 - i * MIN) for i in range(5)]
    p = plan(schedule(last=T0 - 10 * MIN, suspend=True), runs, T0)
    assert p.create is None and p.next_run is None
    assert p.delete == ["r4", "r3"]


# ---- concurrency ------------------------------------------------------------------------------------------
def test_allow_starts_beside_running_jobs() -> None:
    p = plan(schedule(last=T0 - MIN, concurrencyPolicy="Allow"), [running("old")], T0)
    assert p.create == T0 and p.terminate == [] and p.active == sorted(["old", p.job_name or ""])


def test_forbid_leaves_the_run_pending_until_the_job_finishes() -> None:
    s = schedule(last=T0 - MIN, concurrencyPolicy="Forbid")
    p = plan(s, [running("old")], T0 + timedelta(seconds=5))
    assert p.create is None and p.last_schedule_time == T0 - MIN and p.active == ["old"]
    assert [n.reason for n in p.notes] == ["JobAlreadyActive"] and "old is still running" in p.notes[0].message
    finished = plan(s, [done("old", "SUCCEEDED", T0 + timedelta(seconds=30))], T0 + timedelta(seconds=40))
    assert finished.create == T0
    # ... unless it is too late by then.
    s["spec"]["startingDeadlineSeconds"] = 10
    assert plan(s, [done("old", "FAILED", T0 + timedelta(seconds=30))], T0 + timedelta(seconds=40)).create is None


def test_replace_terminates_running_jobs_and_starts_the_run() -> None:
    runs = [running("a"), running("b", terminating=True), done("c", "SUCCEEDED", T0 - MIN)]
    p = plan(schedule(last=T0 - MIN, concurrencyPolicy="Replace"), runs, T0)
    assert p.terminate == ["a"] and p.create == T0


# ---- history and status -------------------------------------------------------------------------------------
def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    runs = [
        *(done(f"s{i}", "SUCCEEDED", T0 - i * MIN) for i in range(5)),
        *(done(f"f{i}", "FAILED", T0 - i * MIN) for i in range(3)),
        running("r"),
    ]
    assert prune(runs, 3, 1) == ["s4", "s3", "f2", "f1"]
    assert prune(runs, 0, 0) == ["s4", "s3", "s2", "s1", "s0", "f2", "f1", "f0"]
    assert prune(runs, 10, 10) == []
    p = plan(schedule("0 0 1 1 *", last=T0 - MIN, successfulJobsHistoryLimit=1, failedJobsHistoryLimit=2), runs, T0)
    assert p.delete == ["s4", "s3", "s2", "s1", "f2"]
    defaults = plan(schedule("0 0 1 1 *", last=T0 - MIN), runs, T0)
    assert defaults.delete == ["s4", "s3", "f2", "f1"]


def test_last_successful_time_only_moves_forward() -> None:
    runs = [done("a", "SUCCEEDED", T0 - 5 * MIN), done("b", "FAILED", T0 - MIN)]
    s = schedule(last=T0)
    assert plan(s, runs, T0).last_successful_time == T0 - 5 * MIN
    s["status"]["lastSuccessfulTime"] = format_time(T0 - 2 * MIN)  # a pruned job's
    assert plan(s, runs, T0).last_successful_time == T0 - 2 * MIN


def test_status_patch_only_carries_changes() -> None:
    p = plan(schedule(last=T0 - MIN), [], T0)
    patch = status_patch({}, p, reason=None, generation=1)
    assert patch == {"lastScheduleTime": format_time(T0), "active": [p.job_name], "observedGeneration": 1}
    written = {"lastScheduleTime": format_time(T0), "active": [p.job_name], "observedGeneration": 1}
    assert status_patch(written, p, reason=None, generation=1) is None
    assert status_patch(written, p, reason="bad", generation=1) == {"statusReason": "bad"}
    p.active = []
    assert status_patch(written, p, reason=None, generation=1) == {"active": None}


# ---- jobs of a schedule ------------------------------------------------------------------------------------
def test_job_manifest() -> None:
    s = schedule()
    s["spec"]["jobTemplate"]["metadata"] = {"labels": {"team": "a"}, "annotations": {"note": "x"}}
    s["spec"]["jobTemplate"]["spec"]["parameters"] = {"day": "mon"}
    job = job_manifest(s, T0)
    assert job["metadata"] == {
        "name": run_name("nightly", T0),
        "namespace": "ns",
        "labels": {"team": "a", LABEL_SCHEDULE: "nightly"},
        "annotations": {"note": "x", ANNOTATION_SCHEDULED_AT: "2025-06-02T12:00:00Z"},
        "ownerReferences": [
            {
                "apiVersion": "kubatch.dev/v1alpha1",
                "kind": "JobSchedule",
                "name": "nightly",
                "uid": "uid-1",
                "controller": True,
            }
        ],
    }
    assert job["spec"] == {"jobQueue": "q", "jobDefinition": "d", "parameters": {"day": "mon"}}
    job["spec"]["parameters"]["day"] = "tue"
    assert s["spec"]["jobTemplate"]["spec"]["parameters"] == {"day": "mon"}  # a copy
    assert run_name("nightly", T0) == "nightly-29147760" and len(run_name("x" * 52, T0)) <= 63
    assert owned_by(job, s) and not owned_by(job, {**s, "metadata": {"uid": "other"}})


def test_runs_of_reads_owned_jobs_only() -> None:
    s = schedule()
    mine = job_manifest(s, T0)
    mine["metadata"]["creationTimestamp"] = "2025-06-02T12:00:01Z"
    mine["spec"]["terminate"] = {"reason": "x"}
    mine["status"] = {"status": "FAILED", "stoppedAt": "2025-06-02T12:03:00Z"}
    stranger = {"metadata": {"name": "other", "labels": {LABEL_SCHEDULE: "nightly"}}}
    (run,) = runs_of(s, [mine, stranger])
    assert (
        run
        == as_run(mine)
        == Run(mine["metadata"]["name"], "FAILED", T0 + timedelta(seconds=1), T0 + 3 * MIN, terminating=True)
    )


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({"schedule": "0 3 * * *"}, []),
        ({"schedule": "0 3 * * *", "timeZone": "Europe/Paris"}, []),
        ({"schedule": "0 25 * * *"}, ["spec.schedule"]),
        ({"schedule": "@daily", "timeZone": "Paris"}, ["spec.timeZone"]),
        ({"schedule": "nope", "timeZone": "Nowhere/Else"}, ["spec.schedule", "spec.timeZone"]),
        ({}, ["spec.schedule"]),
    ],
)
def test_admission_rule(spec: dict[str, Any], fields: list[str]) -> None:
    assert [v.field for v in validate_job_schedule({"spec": spec})] == fields


# ---- a simulated operator ----------------------------------------------------------------------------------
@given(
    st.sampled_from(["* * * * *", "*/7 * * * *", "0,30 * * * *", "15 */2 * * *"]),
    st.sampled_from(["Allow", "Forbid", "Replace"]),
    st.one_of(st.none(), st.integers(0, 900)),
    st.lists(st.tuples(st.integers(1, 600), st.integers(0, 3)), min_size=1, max_size=60),
)
def test_simulated_operator_never_duplicates_and_respects_the_policies(
    cron: str, policy: str, deadline: int | None, steps: list[tuple[int, int]]
) -> None:
    """Time advances in random steps (some long: outages); jobs finish at random; the operator acts
    on each plan, and sometimes 'crashes' after creating a job, before writing the status."""
    spec: dict[str, Any] = {"concurrencyPolicy": policy}
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    s = schedule(cron, created=T0, **spec)
    c = parse(cron)
    jobs: dict[str, Run] = {}
    scheduled: dict[str, datetime] = {}
    now = T0
    for seconds, event in steps:
        previous = now
        now += timedelta(seconds=seconds * (30 if event == 3 else 1))
        if event == 1:  # the oldest running job finishes
            for name in sorted(n for n, r in jobs.items() if not r.finished)[:1]:
                jobs[name] = replace(jobs[name], status="SUCCEEDED", stopped=now)
        p = plan(s, jobs.values(), now)
        assert p.next_run is not None and p.next_run > now
        if p.create is None:
            continue
        last = s["status"].get("lastScheduleTime")
        # The run is a scheduled time, the latest one due, after the last recorded run.
        assert c.matches(p.create) and p.create <= now and c.next_after(p.create) > now
        assert last is None or p.create > datetime.fromisoformat(last.replace("Z", "+00:00"))
        if deadline is not None:
            assert now - p.create <= timedelta(seconds=deadline)
        assert p.job_name not in jobs, "a run is started twice"
        if policy == "Forbid":
            assert all(r.finished for r in jobs.values())
        for name in p.terminate:
            jobs[name] = replace(jobs[name], status="FAILED", stopped=now, terminating=True)
        if policy == "Replace":
            assert all(r.finished or r.terminating for r in jobs.values())
        assert p.job_name is not None
        jobs[p.job_name] = Run(p.job_name, "RUNNABLE", created=now)
        scheduled[p.job_name] = p.create
        if event != 2:  # event 2: the status write is lost
            s["status"]["lastScheduleTime"] = format_time(p.create)
        assert previous <= now
    assert len(set(scheduled.values())) == len(scheduled)
