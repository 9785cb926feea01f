"""Consumable resources on the real control plane. NON_REPLENISHABLE: the units a job used never come
back, also when the finished jobs are deleted and after the operator is killed and started again
(the count lives in the ConsumableResource's status, not in the operator). REPLENISHABLE: a resource
deleted while jobs wait for it and created again (the waiting jobs then run, and the units of a job
that kept running meanwhile are counted), and array children, each taking its own units."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.integration.batch import Batch
from tests.integration.helpers import operator_down

# One test kills the shared operator: the module runs with the other restart tests (same xdist worker).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]


def restart_operator(cluster: Any) -> None:
    """Kill the shared operator (a crash) and start it again."""
    with operator_down(cluster, signal.SIGKILL):
        pass


def test_non_replenishable_units_never_come_back(batch: Batch, cluster: Any, operator: Any) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    tokens = batch.cluster_object(
        "ConsumableResource", batch.name("tok"), {"resourceType": "NON_REPLENISHABLE", "totalQuantity": 4}
    )
    batch.container_definition(
        "spender",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": tokens, "quantity": 1}]},
    )

    def status() -> dict[str, Any]:
        return dict(batch.kget("consumableresource", tokens).get("status") or {})

    def amounts(available: int, consumed: int) -> dict[str, Any] | None:
        st = status()
        ok = st.get("availableQuantity") == available and st.get("consumedQuantity") == consumed
        return st if ok and st.get("inUseQuantity") == 0 else None

    # One job and an array of two use three of the four units.
    batch.job("single", q, "spender", duration="1s")
    batch.job("arr", q, "spender", duration="1s", arrayProperties={"size": 2})
    assert batch.wait_done("single")["status"] == "SUCCEEDED"
    assert batch.wait_done("arr")["status"] == "SUCCEEDED"
    st = batch.wait_for(lambda: amounts(available=1, consumed=3), "3 units used up")
    assert st["totalQuantity"] == 1

    # Deleting the finished jobs gives nothing back.
    batch.kubectl("delete", "batchjob", "single", "arr", "-n", batch.ns)
    batch.wait_for(lambda: not status().get("consumers"), "the deleted jobs' ledger entries pruned", timeout=60)
    assert amounts(available=1, consumed=3) is not None, status()

    # Nor does an operator restart: the count is read back from the resource's status.
    restart_operator(cluster)
    batch.job("last", q, "spender", duration="1s")
    batch.job("too-many", q, "spender", duration="1s")
    first = batch.wait_done("last")
    assert first["status"] == "SUCCEEDED"
    batch.wait_for(lambda: amounts(available=0, consumed=4), "the last unit used up")

    def waits_for_units() -> dict[str, Any] | None:
        st = batch.status("too-many")
        reason = st.get("statusReason") or ""
        return st if st.get("status") == "RUNNABLE" and reason.startswith("ACTION_REQUIRED") else None

    st = batch.wait_for(waits_for_units, "the fifth job held: no unit left", timeout=30)
    assert f"consumable resource {tokens}, whose total is 0" in st.get("statusReasonDetail", ""), st
    assert not batch.pods("too-many")


def consumable_status(batch: Batch, name: str) -> dict[str, Any]:
    return dict(batch.kget("consumableresource", name).get("status") or {})


def live_pods(batch: Batch, job: str) -> list[dict[str, Any]]:
    """The job's pods that have not finished (they hold the job's units)."""
    return [p for p in batch.pods(job) if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def live_jobs(batch: Batch, jobs: list[str]) -> list[str]:
    """Which of the jobs have a pod that has not finished (it holds the job's units), from one snapshot."""
    selector = f"kubatch.dev/job-name in ({','.join(jobs)})"
    pods = batch.kget("pods", "-n", batch.ns, "-l", selector)["items"]
    live = {
        p["metadata"]["labels"]["kubatch.dev/job-name"]
        for p in pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    }
    return sorted(live)


def test_a_deleted_resource_holds_its_jobs_until_it_is_created_again(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    lic = batch.name("lic")
    spec = {"resourceType": "REPLENISHABLE", "totalQuantity": 1}
    batch.cluster_object("ConsumableResource", lic, spec)
    batch.container_definition(
        "licensed",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": lic, "quantity": 1}]},
    )
    batch.job("holder", q, "licensed", duration="40s")
    batch.wait_status("holder", "RUNNING")
    waiters = [batch.job(f"w-{i}", q, "licensed", duration="3s") for i in range(2)]
    for w in waiters:
        batch.wait_status(w, "RUNNABLE")

    batch.kubectl("delete", "consumableresource", lic)

    def missing() -> dict[str, Any] | None:
        st = batch.status("w-0")
        return st if "does not exist" in (st.get("statusReasonDetail") or "") else None

    held = batch.wait_for(missing, "the head waits for the missing resource", timeout=30)
    assert held["status"] == "RUNNABLE", held
    assert held["statusReason"] == (
        "ACTION_REQUIRED - A consumable resource the job requires does not exist or is smaller than the request."
    ), held
    assert held["statusReasonDetail"] == f"consumable resource {lic} does not exist", held
    # The job already running keeps running; nothing else starts.
    assert batch.status("holder")["status"] == "RUNNING"
    assert not batch.pods("w-0") and not batch.pods("w-1")

    # Created again (two units): the holder's unit is counted, so one waiter runs at a time beside it.
    batch.cluster_object("ConsumableResource", lic, {**spec, "totalQuantity": 2})
    saw_full = False
    beside: set[str] = set()
    deadline = time.monotonic() + 90
    while batch.status("holder").get("status") == "RUNNING" and time.monotonic() < deadline:
        # One list call for both waiters: two calls could see w-0 still running and, a moment later,
        # w-1 started in the unit w-0 just gave back.
        running = live_jobs(batch, waiters)
        assert len(running) <= 1, f"more units handed out than exist: {running}"
        beside.update(running)
        st = consumable_status(batch, lic)
        saw_full = saw_full or (st.get("inUseQuantity") == 2 and st.get("availableQuantity") == 0)
        time.sleep(0.3)
    assert beside, "no waiter ran beside the holder once the resource was back"
    assert saw_full, "the status never counted the holder's unit and a waiter's"
    assert batch.wait_done("holder")["status"] == "SUCCEEDED"
    assert all(batch.wait_done(w)["status"] == "SUCCEEDED" for w in waiters)

    def returned() -> dict[str, Any] | None:
        st = consumable_status(batch, lic)
        ok = (st.get("totalQuantity"), st.get("inUseQuantity"), st.get("availableQuantity")) == (2, 0, 2)
        return st if ok else None

    batch.wait_for(returned, "all units back")


def test_array_children_each_take_their_units(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    seats = batch.cluster_object(
        "ConsumableResource", batch.name("seat"), {"resourceType": "REPLENISHABLE", "totalQuantity": 5}
    )
    # Two units a child: two children at a time (four units), the fifth unit stays free.
    batch.container_definition(
        "seated",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": seats, "quantity": 2}]},
    )
    batch.job("render", q, "seated", duration="3s", arrayProperties={"size": 5})
    peak = 0
    saw_four = False
    deadline = time.monotonic() + 120
    while batch.status("render").get("status") not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, batch.status("render")
        running = live_pods(batch, "render")
        assert len(running) <= 2, [p["metadata"]["name"] for p in running]
        peak = max(peak, len(running))
        st = consumable_status(batch, seats)
        assert (st.get("inUseQuantity") or 0) <= 4, st
        saw_four = saw_four or (st.get("inUseQuantity") == 4 and st.get("availableQuantity") == 1)
        time.sleep(0.3)
    done = batch.status("render")
    assert done["status"] == "SUCCEEDED", done
    assert done["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 5
    assert peak == 2
    assert saw_four, "the status never showed two children's units in use"

    def returned() -> dict[str, Any] | None:
        st = consumable_status(batch, seats)
        ok = (st.get("totalQuantity"), st.get("inUseQuantity"), st.get("availableQuantity")) == (5, 0, 5)
        return st if ok else None

    batch.wait_for(returned, "the children's units back")
