"""A fair-share queue's snapshot fields (AWS GetJobQueueSnapshot) on the real control plane: the
front's earliestTimeAtPosition and the status's lastUpdatedAt, queueUtilization (capacity in use in
total, per compute environment and per share, the active share count), a status that is not
rewritten while nothing changes, times that move only with the jobs, and `kubatch queue` showing it
all (text and -o json)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.batch import Batch
from tests.integration.test_cli import Run

pytestmark = pytest.mark.integration

#: The operator recomputes a queue's status every 2 s (runtime.queues.StatusWriter's period).
STATUS_PERIOD = 2.0


def cap(vcpu: float, mib: int, gpu: int = 0) -> list[dict[str, Any]]:
    return [
        {"capacityUnit": "vCPU", "quantity": vcpu},
        {"capacityUnit": "MiB", "quantity": mib},
        {"capacityUnit": "GPU", "quantity": gpu},
    ]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_fair_share_queue_snapshot_fields_and_cli(batch: Batch, cluster: ClusterInfo) -> None:
    # One node of 2 vCPUs: two 1-vCPU jobs run, the other four wait. The environment starts DISABLED so
    # that all six are RUNNABLE before any is placed, and the first placement splits by fair share.
    ce = batch.environment(cpu=2, state="DISABLED")
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {"fairsharePolicy": {"shareDecaySeconds": 0, "shareDistribution": [
            {"shareIdentifier": "teamA", "weightFactor": 1.0},
            {"shareIdentifier": "teamB", "weightFactor": 1.0},
        ]}},
    )
    q = batch.queue([ce], policy=policy)
    # A timeout gives the start estimates a basis even when this test runs first (no run learned yet).
    batch.container_definition("work", vcpus="1", memory="256", timeout={"attemptDurationSeconds": 1000})
    jobs = {f"{share[-1].lower()}{i}": share for share in ("teamA", "teamB") for i in (1, 2, 3)}
    for name, share in jobs.items():
        batch.job(name, q, "work", duration="900s", shareIdentifier=share)
    for name in jobs:
        batch.wait_status(name, "RUNNABLE", timeout=120)
    batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", json.dumps({"spec": {"state": "ENABLED"}}))

    def settled() -> dict[str, Any] | None:
        st = batch.kget("jobqueue", q).get("status") or {}
        counts = st.get("jobCounts") or {}
        util = st.get("queueUtilization") or {}
        front = st.get("front") or []
        if (counts.get("RUNNING"), counts.get("RUNNABLE"), len(front)) != (2, 4, 4):
            return None
        if not all(e.get("estimatedStartAt") for e in front):
            return None  # start estimates come with the front (each published at once)
        if not str(front[0].get("statusReason") or "").startswith("CAPACITY:"):
            return None  # a head is reported blocked only after 1 s: a change the quiet period must not see
        return st if util.get("totalCapacityUsage") == cap(2, 512) else None

    # Two placements, their pods Running and the jobs' RUNNING status written (coalesced up to 15 s).
    st = batch.wait_for(settled, "2 jobs RUNNING, 4 RUNNABLE in the queue's status", timeout=120)
    running = {n for n in jobs if batch.status(n).get("status") == "RUNNING"}
    assert {jobs[n] for n in running} == {"teamA", "teamB"}, running  # one per share: fair share

    util = st["queueUtilization"]
    assert util["computeEnvironmentUsage"] == [{"computeEnvironment": ce, "capacityUsage": cap(2, 512)}], util
    fs = util["fairshareUtilization"]
    assert fs["activeShareCount"] == 2, fs
    assert sorted(fs["topCapacityUtilization"], key=lambda s: s["shareIdentifier"]) == [
        {"shareIdentifier": "teamA", "capacityUsage": cap(1, 256)},
        {"shareIdentifier": "teamB", "capacityUsage": cap(1, 256)},
    ], fs

    front = st["front"]
    assert [e["position"] for e in front] == [1, 2, 3, 4], front
    assert {e["name"] for e in front} == set(jobs) - running, front
    assert all(e["shareIdentifier"] == jobs[e["name"]] for e in front), front
    updated = ts(st["lastUpdatedAt"])
    assert all(ts(e["earliestTimeAtPosition"]) <= updated for e in front), st
    assert all(ts(e["earliestTimeAtPosition"]) >= ts(e["queuedAt"]) for e in front), front

    # Nothing changes: the status is not rewritten (a write would change the resourceVersion), so
    # earliestTimeAtPosition and lastUpdatedAt stay. Watched over three status periods, starting at
    # most 10 s after the last write: drift alone (decayed usage, start estimates sliding with the
    # clock) may be written every 30 s, and a read on this loaded machine can take seconds.
    def fresh() -> dict[str, Any] | None:
        obj = batch.kget("jobqueue", q)
        written = ts(obj["status"]["lastUpdatedAt"]).timestamp()
        return obj if time.time() - written < 10 else None

    before = batch.wait_for(fresh, "a queue status written less than 10 s ago", timeout=90)
    deadline = time.monotonic() + 3 * STATUS_PERIOD + 1
    while time.monotonic() < deadline:
        now = batch.kget("jobqueue", q)
        if now["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]:
            was, became = before.get("status") or {}, now.get("status") or {}
            changed = {k: (was.get(k), became.get(k)) for k in set(was) | set(became) if was.get(k) != became.get(k)}
            pytest.fail(f"the queue was rewritten {time.time() - ts(was['lastUpdatedAt']).timestamp():.1f} s "
                        f"after its last write; changed (before, after): {changed}")
        time.sleep(0.5)

    # `kubatch queue` shows the fields; -o json carries them.
    run = Run(cluster.kubeconfig, batch.ns)
    code, out, err = run("queue", q, "-o", "wide")
    assert code == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "In use: 2 vCPU, 512 MiB, 0 GPU" in lines, out
    assert "Share usage (2 active shares):" in lines, out
    assert "POS JOB STATUS WAITING AT-POSITION STARTS SHARE REASON" in lines, out
    assert "SHARE USAGE WEIGHT RUNNING-VCPUS MEMORY-MIB GPUS ACTIVE-JOBS" in lines, out
    assert {"teamA 0 1 1 256 0 3", "teamB 0 1 1 256 0 3"} <= set(lines), out
    head = front[0]
    assert any(line.startswith(f"1 {batch.ns}/{head['name']} RUNNABLE ") and head["shareIdentifier"] in line
               for line in lines), out
    code, out, err = run("queue", q, "-o", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"]["queueUtilization"] == util, shown
    assert shown["status"]["lastUpdatedAt"] == st["lastUpdatedAt"], shown
    assert [(f["job"], f["earliestTimeAtPosition"], f["shareIdentifier"]) for f in shown["front"]] == [
        (e["name"], e["earliestTimeAtPosition"], e["shareIdentifier"]) for e in front
    ], shown

    # The head is cancelled: the jobs that move get a new earliestTimeAtPosition (later than the
    # old one: the quiet period above lasted seconds), one that keeps its position keeps its time.
    batch.kubectl(
        "patch", "batchjob", head["name"], "-n", batch.ns, "--type=merge",
        "-p", json.dumps({"spec": {"cancel": {"reason": "test"}}}),
    )

    def moved() -> dict[str, Any] | None:
        status = batch.kget("jobqueue", q).get("status") or {}
        return status if len(status.get("front") or []) == 3 else None

    after = batch.wait_for(moved, "the front without the cancelled head", timeout=60)
    old = {e["name"]: e for e in front}
    assert ts(after["lastUpdatedAt"]) > updated, after
    assert [e["position"] for e in after["front"]] == [1, 2, 3], after
    changed = 0
    for e in after["front"]:
        was = old[e["name"]]
        if e["position"] == was["position"]:
            assert e["earliestTimeAtPosition"] == was["earliestTimeAtPosition"], (was, e)
        else:
            changed += 1
            assert ts(e["earliestTimeAtPosition"]) > ts(was["earliestTimeAtPosition"]), (was, e)
            assert ts(e["earliestTimeAtPosition"]) <= ts(after["lastUpdatedAt"]), (e, after)
    assert changed >= 2, after  # a share keeps its own order, so here at most one job keeps its place
    # Still 2 vCPUs in use and two active shares (the cancelled job's share has two more jobs).
    assert after["queueUtilization"]["totalCapacityUsage"] == cap(2, 512), after
    assert after["queueUtilization"]["fairshareUtilization"]["activeShareCount"] == 2, after
