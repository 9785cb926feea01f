"""Scheduling on the real control plane: queue priority, FIFO, capacity, fair share, compute
reservation, consumable resources, blocked queues and jobStateTimeLimitActions.

A "wave" is made by submitting jobs while the compute environment is DISABLED (they wait RUNNABLE)
and then enabling it, so one scheduling cycle sees all of them at once."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tests.integration.batch import GROUP, Batch
from tests.integration.test_multinode_gpu import mnp_definition

pytestmark = pytest.mark.integration


def ts(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def set_ce_state(batch: Batch, ce: str, state: str) -> None:
    batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", json.dumps({"spec": {"state": state}}))


def running_jobs(batch: Batch, names: list[str]) -> list[str]:
    """Jobs among ``names`` that hold a pod that has not finished."""
    pods = batch.kget("pods", "-n", batch.ns)["items"]
    busy = {
        p["metadata"]["labels"].get("kubatch.dev/job-name")
        for p in pods
        if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    }
    return [n for n in names if n in busy]


def peak_concurrency(batch: Batch, names: list[str], *, limit: int, timeout: float = 120) -> int:
    """Sample the jobs until all succeeded, asserting that never more than ``limit`` run at once;
    return the most that ran together."""
    peak = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = running_jobs(batch, names)
        peak = max(peak, len(running))
        assert len(running) <= limit, f"more than {limit} at once: {running}"
        if all(batch.status(n).get("status") == "SUCCEEDED" for n in names):
            break
        time.sleep(0.2)
    return peak


def wait_runnable(batch: Batch, names: list[str]) -> None:
    for n in names:
        batch.wait_status(n, "RUNNABLE")


def test_higher_priority_queue_wins_a_shared_environment(batch: Batch) -> None:
    ce = batch.environment(cpu=2, state="DISABLED")
    low = batch.queue([ce], priority=1, name=batch.name("low"))
    high = batch.queue([ce], priority=10, name=batch.name("high"))
    batch.container_definition("work")
    lows = [batch.job(f"low-{i}", low, "work", duration="3s") for i in range(3)]
    highs = [batch.job(f"high-{i}", high, "work", duration="3s") for i in range(3)]
    wait_runnable(batch, lows + highs)
    set_ce_state(batch, ce, "ENABLED")
    for name in lows + highs:
        batch.wait_done(name)
    started = {n: ts(batch.status(n)["startedAt"]) for n in lows + highs}
    assert max(started[h] for h in highs) <= min(started[low] for low in lows), started


def test_fifo_order_within_a_queue(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("work")
    names = []
    for i in range(5):
        names.append(batch.job(f"fifo-{i}", q, "work", duration="1s"))
        time.sleep(1.1)  # distinct creation seconds: submission order is the FIFO key
    for n in names:
        batch.wait_done(n)
    order = sorted(names, key=lambda n: (ts(batch.status(n)["startedAt"]), n))
    assert order == names


def test_capacity_is_never_over_committed(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=3)])
    batch.container_definition("work")
    names = [batch.job(f"c-{i}", q, "work", duration="2s") for i in range(9)]
    assert peak_concurrency(batch, names, limit=3) == 3
    assert all(batch.status(n)["status"] == "SUCCEEDED" for n in names)


def fair_share_wave(
    batch: Batch, weights: dict[str, float], capacity: int, per_share: int, reservation: int = 0
) -> Counter[str]:
    ce = batch.environment(cpu=capacity, state="DISABLED")
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {
            "fairsharePolicy": {
                "shareDecaySeconds": 0,
                "computeReservation": reservation,
                "shareDistribution": [{"shareIdentifier": s, "weightFactor": w} for s, w in weights.items()],
            }
        },
    )
    q = batch.queue([ce], policy=policy)
    batch.container_definition("work")
    names: dict[str, str] = {}
    for share in weights:
        for i in range(per_share):
            names[batch.job(f"{share.lower()}-{i}", q, "work", duration="1h", shareIdentifier=share)] = share
    wait_runnable(batch, list(names))
    set_ce_state(batch, ce, "ENABLED")
    expected = capacity if not reservation else None

    def settled() -> Counter[str] | None:
        running = running_jobs(batch, list(names))
        if expected is not None and len(running) < expected:
            return None
        return Counter(names[n] for n in running) or None

    first = batch.wait_for(settled, "the wave to start")
    time.sleep(2)  # nothing more should start
    again = Counter(names[n] for n in running_jobs(batch, list(names)))
    assert again == first
    return Counter(first)


@pytest.mark.in_cluster
def test_equal_weights_split_a_wave_evenly(batch: Batch) -> None:
    counts = fair_share_wave(batch, {"teamA": 1.0, "teamB": 1.0}, capacity=4, per_share=6)
    assert counts == Counter({"teamA": 2, "teamB": 2})


@pytest.mark.in_cluster
def test_lower_weight_factor_takes_about_four_fifths(batch: Batch) -> None:
    counts = fair_share_wave(batch, {"teamA": 0.25, "teamB": 1.0}, capacity=5, per_share=6)
    assert counts == Counter({"teamA": 4, "teamB": 1})


def test_compute_reservation_leaves_room_for_inactive_shares(batch: Batch) -> None:
    # One active share, computeReservation 50: (50/100)^1 of the capacity stays free.
    counts = fair_share_wave(batch, {"teamA": 1.0}, capacity=4, per_share=4, reservation=50)
    assert counts == Counter({"teamA": 2})


def test_fair_share_weighs_every_node_of_multi_node_jobs(batch: Batch) -> None:
    """Two shares of equal weight submit multi-node jobs: teamA's of four 1-vCPU nodes, teamB's of
    two. Counting every node, an 8-vCPU wave gives each share 4 vCPUs: one teamA job and two teamB
    jobs (counting main nodes only would have given one each). The queue's share usage counts
    every node's vCPUs too. Six 2-vCPU nodes capped at 8 vCPUs: room for any placement of the
    nodes (one node of a job per Kubernetes node)."""
    ce = batch.environment(nodes=6, cpu=2, unmanaged_vcpus=8, state="DISABLED")
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {
            "fairsharePolicy": {
                "shareDecaySeconds": 3600,
                "shareDistribution": [
                    {"shareIdentifier": "teamA", "weightFactor": 1.0},
                    {"shareIdentifier": "teamB", "weightFactor": 1.0},
                ],
            }
        },
    )
    q = batch.queue([ce], policy=policy)
    mnp_definition(batch, "wide", 4)
    mnp_definition(batch, "narrow", 2)
    names: dict[str, str] = {}
    for i in range(3):
        names[batch.job(f"a-{i}", q, "wide", duration="1h", shareIdentifier="teamA")] = "teamA"
    for i in range(4):
        names[batch.job(f"b-{i}", q, "narrow", duration="1h", shareIdentifier="teamB")] = "teamB"
    wait_runnable(batch, list(names))
    set_ce_state(batch, ce, "ENABLED")

    def every_node_running() -> Counter[str] | None:
        pods = batch.kget("pods", "-n", batch.ns)["items"]
        running = Counter(
            p["metadata"]["labels"]["kubatch.dev/job-name"] for p in pods if p["status"].get("phase") == "Running"
        )
        if sum(running.values()) < 8:
            return None
        by_share: Counter[str] = Counter()
        for job, n in running.items():
            by_share[names[job]] += n
        return by_share

    nodes = batch.wait_for(every_node_running, "8 nodes running", timeout=90)
    assert nodes == Counter({"teamA": 4, "teamB": 4}), nodes
    time.sleep(2)  # nothing more starts
    jobs = Counter(names[n] for n in running_jobs(batch, list(names)))
    assert jobs == Counter({"teamA": 1, "teamB": 2}), jobs

    def share_rows() -> dict[str, dict[str, Any]] | None:
        rows = (batch.kget("jobqueue", q).get("status") or {}).get("shareUsage") or []
        by_share = {r["shareIdentifier"]: r for r in rows}
        ok = all(by_share.get(s, {}).get("usage", 0) >= 20 for s in ("teamA", "teamB"))
        return by_share if ok else None

    rows = batch.wait_for(share_rows, "both shares' usage recorded", timeout=60)
    assert rows["teamA"]["runningvCpus"] == rows["teamB"]["runningvCpus"] == 4, rows
    ratio = rows["teamA"]["usage"] / rows["teamB"]["usage"]
    assert 0.75 <= ratio <= 1.33, rows  # 4 vCPUs each since the wave (main nodes only: 1 and 2)


def test_consumable_resource_limits_concurrency_and_is_returned(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    licenses = batch.cluster_object(
        "ConsumableResource", batch.name("lic"), {"resourceType": "REPLENISHABLE", "totalQuantity": 2}
    )
    batch.container_definition(
        "licensed",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": licenses, "quantity": 1}]},
    )
    names = [batch.job(f"lic-{i}", q, "licensed", duration="2s") for i in range(6)]
    assert peak_concurrency(batch, names, limit=2) == 2

    def returned() -> bool:
        st = batch.kget("consumableresource", licenses).get("status") or {}
        return st.get("availableQuantity") == 2 and st.get("inUseQuantity") == 0

    batch.wait_for(returned, "licenses returned")


def test_oversized_job_blocks_fifo_queue_until_time_limit_cancels_it(batch: Batch) -> None:
    ce = batch.environment(cpu=4)
    q = batch.queue(
        [ce],
        time_limits=[
            {
                "reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                "state": "RUNNABLE",
                "maxTimeSeconds": 600,
                "action": "CANCEL",
            }
        ],
    )
    batch.container_definition("big", vcpus="8")
    batch.container_definition("small")
    batch.job("huge", q, "big")
    time.sleep(1.1)
    batch.job("behind", q, "small")

    def blocked() -> dict[str, Any] | None:
        st = batch.status("huge")
        return (
            st if st.get("statusReason", "").startswith("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE") else None
        )

    held = batch.wait_for(blocked, "huge blocked with MISCONFIGURATION reason", timeout=30)
    # AWS's exact sentence; kubatch's figures are in statusReasonDetail.
    assert held["statusReason"] == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
        "the CPU requirement of the job."
    ), held
    assert "maxvCpus" in held.get("statusReasonDetail", ""), held
    batch.wait_status("behind", "RUNNABLE")
    time.sleep(2)
    assert batch.status("behind")["status"] == "RUNNABLE", "the FIFO queue is blocked behind its head"
    queue = batch.kget("jobqueue", q)
    front = (queue.get("status") or {}).get("front") or []
    assert front and front[0]["name"] == "huge"
    # The shared test operator runs time limits 100x faster (600 s -> 6 s).
    st = batch.wait_done("huge", timeout=60)
    assert st["status"] == "FAILED"
    assert st["statusReason"] == (
        "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    )
    assert batch.wait_done("behind")["status"] == "SUCCEEDED"
    warnings = batch.kget("events", "--field-selector", f"involvedObject.name={q},reason=QueueBlocked", "-A")["items"]
    assert warnings, "a QueueBlocked event is posted on the queue"


def test_queue_status_counts_jobs(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("work")
    batch.job("runner", q, "work", duration="1h")
    batch.wait_status("runner", "RUNNING")
    batch.job("waiter", q, "work")
    batch.wait_status("waiter", "RUNNABLE")

    def counted() -> bool:
        st = batch.kget("jobqueue", q).get("status") or {}
        counts = st.get("jobCounts") or {}
        return st.get("status") == "VALID" and counts.get("RUNNING") == 1 and counts.get("RUNNABLE") == 1

    batch.wait_for(counted, "queue status counts")
    obj = batch.kget("jobqueue", q)
    assert obj["apiVersion"] == GROUP


def test_non_replenishable_units_are_used_up(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    tokens = batch.cluster_object(
        "ConsumableResource", batch.name("tok"), {"resourceType": "NON_REPLENISHABLE", "totalQuantity": 3}
    )
    batch.container_definition(
        "spender",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": tokens, "quantity": 1}]},
    )
    names = [batch.job(f"spend-{i}", q, "spender", duration="1s") for i in range(5)]
    done = [batch.wait_done(n) for n in names[:3]]
    assert all(d["status"] == "SUCCEEDED" for d in done)
    time.sleep(3)
    # Three units, used up for good: the other two jobs wait; the head says the total is too low.
    waiting = [batch.status(n) for n in names[3:]]
    assert [w["status"] for w in waiting] == ["RUNNABLE", "RUNNABLE"]
    assert waiting[0]["statusReason"].startswith("ACTION_REQUIRED"), waiting[0]["statusReason"]
    assert "whose total is 0" in waiting[0].get("statusReasonDetail", ""), waiting[0]

    def used_up() -> bool:
        st = batch.kget("consumableresource", tokens).get("status") or {}
        return st.get("totalQuantity") == 0 and st.get("availableQuantity") == 0 and st.get("inUseQuantity") == 0

    batch.wait_for(used_up, "total and available down to 0")
    # More units (a new total) let the waiting jobs run.
    batch.kubectl("patch", "consumableresource", tokens, "--type=merge", "-p", '{"spec": {"totalQuantity": 5}}')
    assert all(batch.wait_done(n)["status"] == "SUCCEEDED" for n in names[3:])


def test_lowering_total_while_in_use_reduces_available_at_once(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    seats = batch.cluster_object(
        "ConsumableResource", batch.name("seat"), {"resourceType": "REPLENISHABLE", "totalQuantity": 2}
    )
    batch.container_definition(
        "seated",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": seats, "quantity": 1}]},
    )
    first = [batch.job(f"s-{i}", q, "seated", duration="15s") for i in range(2)]
    for n in first:
        batch.wait_status(n, "RUNNING")
    batch.kubectl("patch", "consumableresource", seats, "--type=merge", "-p", '{"spec": {"totalQuantity": 1}}')
    late = batch.job("s-late", q, "seated", duration="1s")

    def lowered() -> bool:
        st = batch.kget("consumableresource", seats).get("status") or {}
        return st.get("totalQuantity") == 1 and st.get("availableQuantity") == 0 and st.get("inUseQuantity") == 2

    batch.wait_for(lowered, "available 0 while 2 units are in use and the total is 1")
    assert batch.wait_status(late, "RUNNABLE")["status"] == "RUNNABLE"
    for n in first:
        batch.wait_done(n)
    assert batch.wait_done(late)["status"] == "SUCCEEDED"
    assert ts(batch.status(late)["startedAt"]) >= max(ts(batch.status(n)["stoppedAt"]) for n in first) - 1
