"""A queue's snapshot fields (kubatch.core.queue_snapshot): earliestTimeAtPosition carried while a
job keeps its position, capacity usage per queue / environment / share, and when a recomputed
status counts as changed (share usage drift at most every 30 s)."""

from __future__ import annotations

from typing import Any

from kubatch.core.queue_snapshot import (
    capacity_usage,
    queue_utilization,
    status_changed,
    tally,
    with_estimates,
    with_times_at_position,
)
from kubatch.core.timestamps import iso
from kubatch.scheduler.snapshot import Resources

T0, T1 = "2026-01-01T12:00:00Z", "2026-01-01T12:00:30Z"


def entry(name: str, position: int, job_id: str | None = None) -> dict[str, Any]:
    return {"namespace": "ns", "name": name, "jobId": job_id or f"id-{name}", "position": position}


def test_a_job_keeps_its_time_while_at_the_same_position_and_gets_a_new_one_when_it_moves() -> None:
    first = with_times_at_position(None, [entry("a", 1), entry("b", 2)], T0)
    assert [e["earliestTimeAtPosition"] for e in first] == [T0, T0]
    # Nothing moved: the written times stay (also what a restarted operator reads back from the status).
    again = with_times_at_position(first, [entry("a", 1), entry("b", 2)], T1)
    assert [e["earliestTimeAtPosition"] for e in again] == [T0, T0]
    # a started: b moves up to 1, c arrives at 2.
    moved = with_times_at_position(again, [entry("b", 1), entry("c", 2)], T1)
    assert [(e["name"], e["earliestTimeAtPosition"]) for e in moved] == [("b", T1), ("c", T1)]


def test_a_recreated_job_of_the_same_name_is_a_new_job() -> None:
    first = with_times_at_position(None, [entry("a", 1, "uid-1")], T0)
    assert with_times_at_position(first, [entry("a", 1, "uid-2")], T1)[0]["earliestTimeAtPosition"] == T1


def test_capacity_usage_is_tallied_per_queue_environment_and_share() -> None:
    use = tally(
        [
            ("q", "teamA", "ce1", Resources(1.0, 512, 0)),
            ("q", "teamA", "ce2", Resources(0.5, 256, 1)),
            ("q", "teamB", "ce1", Resources(2.0, 1024, 0)),
            ("q", "teamC", "ce1", Resources(0.0, 0, 0)),
            ("fifo", None, "ce1", Resources(0.1, 100, 0)),
            ("fifo", None, "ce1", Resources(0.2, 100, 0)),
        ]
    )
    util = queue_utilization(use["q"], fair_share=True, active_shares=3)
    assert util["totalCapacityUsage"] == capacity_usage(Resources(3.5, 1792, 1))
    assert util["totalCapacityUsage"][0] == {"capacityUnit": "vCPU", "quantity": 3.5}
    assert util["computeEnvironmentUsage"] == [
        {"computeEnvironment": "ce1", "capacityUsage": capacity_usage(Resources(3.0, 1536, 0))},
        {"computeEnvironment": "ce2", "capacityUsage": capacity_usage(Resources(0.5, 256, 1))},
    ]
    fs = util["fairshareUtilization"]
    assert fs["activeShareCount"] == 3
    # Most vCPUs first; a share holding nothing is not listed.
    assert [s["shareIdentifier"] for s in fs["topCapacityUtilization"]] == ["teamB", "teamA"]
    assert fs["topCapacityUtilization"][1]["capacityUsage"] == [
        {"capacityUnit": "vCPU", "quantity": 1.5},
        {"capacityUnit": "MiB", "quantity": 768},
        {"capacityUnit": "GPU", "quantity": 1},
    ]
    fifo = queue_utilization(use["fifo"], fair_share=False, active_shares=0)
    assert fifo["totalCapacityUsage"][0] == {"capacityUnit": "vCPU", "quantity": 0.3}  # rounded, no float drift
    assert fifo["fairshareUtilization"] is None
    idle = queue_utilization(None, fair_share=True, active_shares=0)
    assert idle["computeEnvironmentUsage"] == [] and idle["fairshareUtilization"]["topCapacityUtilization"] == []
    assert [c["quantity"] for c in idle["totalCapacityUsage"]] == [0, 0, 0]


def test_top_shares_are_the_twenty_largest() -> None:
    use = tally([("q", f"s{i:02d}", "ce", Resources(float(i + 1), 0, 0)) for i in range(25)])
    top = queue_utilization(use["q"], fair_share=True, active_shares=25)["fairshareUtilization"]
    assert [s["shareIdentifier"] for s in top["topCapacityUtilization"]] == [f"s{i:02d}" for i in range(24, 4, -1)]


def status(**extra: Any) -> dict[str, Any]:
    rows = [
        {"shareIdentifier": "a", "usage": 100.0, "runningvCpus": 1, "weightFactor": 1.0, "activeJobs": 1},
        {"shareIdentifier": "b", "usage": 50.0, "runningvCpus": 0, "weightFactor": 1.0, "activeJobs": 2},
    ]
    return {
        "status": "VALID",
        "front": [{**entry("x", 1), "earliestTimeAtPosition": T0}],
        "queueUtilization": {"totalCapacityUsage": capacity_usage(Resources(1, 256, 0)), "fairshareUtilization": None},
        "shareUsage": rows,
        "disabledAt": None,
        **extra,
    }


def test_an_unchanged_status_is_not_rewritten() -> None:
    written = {**status(), "lastUpdatedAt": T0}
    # As read back: None-valued keys are absent (a merge patch's None deletes), numbers may be ints.
    written.pop("disabledAt")
    written["queueUtilization"] = {"totalCapacityUsage": capacity_usage(Resources(1, 256, 0))}
    assert not status_changed(written, status(), now=1e12)
    assert status_changed(written, status(status="INVALID"), now=0)
    assert status_changed(written, status(front=[]), now=0)
    assert status_changed(written, status(disabledAt=T1), now=0)


def test_share_usage_drift_alone_is_written_at_most_every_30_seconds() -> None:
    written = {**status(), "lastUpdatedAt": T0}
    t0 = 1767268800.0  # T0 in epoch seconds
    drifted = status()
    drifted["shareUsage"] = [
        {**drifted["shareUsage"][1], "usage": 49.0},
        {**drifted["shareUsage"][0], "usage": 99.0},  # order changes too: rows are matched by share
    ]
    assert not status_changed(written, drifted, now=t0 + 29)
    assert status_changed(written, drifted, now=t0 + 30)
    # Anything else about the shares is a change at once.
    joined = status()
    joined["shareUsage"] = [*joined["shareUsage"], {"shareIdentifier": "c", "usage": 0.0}]
    assert status_changed(written, joined, now=t0 + 1)
    running = status()
    running["shareUsage"] = [{**running["shareUsage"][0], "runningvCpus": 2}, running["shareUsage"][1]]
    assert status_changed(written, running, now=t0 + 1)
    # Drift together with another change: written at once.
    assert status_changed(written, {**drifted, "status": "INVALID"}, now=t0 + 1)
    # A status never stamped: written.
    assert status_changed({k: v for k, v in written.items() if k != "lastUpdatedAt"}, drifted, now=t0)


def test_start_estimates_are_written_as_timestamps_and_small_wobbles_keep_the_written_one() -> None:
    now = 1_800_000_000.0
    written = [
        {"namespace": "ns", "name": "a", "jobId": "1", "estimatedStartAt": iso(now + 100)},
        {"namespace": "ns", "name": "b", "jobId": "2", "estimatedStartAt": iso(now + 1000)},
        {"namespace": "ns", "name": "c", "jobId": "3", "estimatedStartAt": iso(now + 10)},
    ]
    entries = [
        {"namespace": "ns", "name": "a", "jobId": "1", "estimatedStartAt": now + 104},  # within 5 s: kept
        {"namespace": "ns", "name": "b", "jobId": "2", "estimatedStartAt": now + 1090},  # within 10 % of 1000 s
        {"namespace": "ns", "name": "c", "jobId": "3", "estimatedStartAt": now + 30.25},  # moved: new
        {"namespace": "ns", "name": "d", "jobId": "4", "estimatedStartAt": now + 50.9996},  # new entry
        {"namespace": "ns", "name": "e", "jobId": "5"},  # no estimate
    ]
    out = with_estimates(written, entries, now)
    # A new estimate to the millisecond (waits of a few seconds: a truncated second would be early).
    assert [e.get("estimatedStartAt") for e in out] == [
        iso(now + 100),
        iso(now + 1000),
        "2027-01-15T08:00:30.250Z",
        "2027-01-15T08:00:51.000Z",
        None,
    ]


def test_start_estimates_drifting_alone_are_written_at_most_every_30_seconds() -> None:
    t0 = 1767268800.0  # T0 in epoch seconds
    written = {**status(), "lastUpdatedAt": T0}
    written["front"] = [{**written["front"][0], "estimatedStartAt": iso(t0 + 60)}]
    drifted = status()
    drifted["front"] = [{**drifted["front"][0], "estimatedStartAt": iso(t0 + 90)}]
    assert not status_changed(written, drifted, now=t0 + 29)
    assert status_changed(written, drifted, now=t0 + 30)
    # An estimate for a job that had none, or a job that moved, is a change at once.
    unestimated = {**status(), "lastUpdatedAt": T0}
    assert status_changed(unestimated, written, now=t0 + 1)
    assert status_changed(written, unestimated, now=t0 + 1)
    moved = status()
    moved["front"] = [{**moved["front"][0], "position": 2, "estimatedStartAt": iso(t0 + 60)}]
    assert status_changed(written, moved, now=t0 + 1)
