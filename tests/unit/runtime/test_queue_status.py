"""The JobQueue status writer (kubatch.runtime.queues.StatusWriter) against a fake API: the snapshot
fields are written (earliestTimeAtPosition, lastUpdatedAt, queueUtilization with the active share
count), an unchanged status is not written again, a restarted writer keeps the recorded times, and
nothing is written before the dispatcher's first plan."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubatch.cluster.view import View
from kubatch.core.timestamps import iso
from kubatch.runtime.queues import StatusWriter

T0 = 1767268800.0


class FakeKube:
    """Applies status merge patches to the objects it is given and records them."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, copy.deepcopy(body)))
        name = path.split("/")[-2]
        obj = copy.deepcopy(self.view.queues[name])
        status = obj.setdefault("status", {})
        for k, v in body["status"].items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = _without_none(v)
        return obj


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def job(name: str, share: str, status: str = "RUNNABLE") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", "shareIdentifier": share},
        "status": {"status": status, "jobId": f"uid-{name}", "queuedAt": iso(T0 - 60)},
    }


def pod(name: str, cpu: str, memory: str, env: str = "ce") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubatch.dev/compute-environment": env}},
        "spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": "Running"},
    }


def setup() -> tuple[View, FakeKube, dict[str, tuple[str, ...]], list[float]]:
    view = View()
    view.queues["q"] = {
        "metadata": {"name": "q"},
        "spec": {"priority": 1, "schedulingPolicy": "fs", "computeEnvironmentOrder": [
            {"order": 1, "computeEnvironment": "ce"}]},
    }
    view.envs["ce"] = {"metadata": {"name": "ce"}, "spec": {"type": "UNMANAGED"}, "status": {"status": "VALID"}}
    view.policies["fs"] = {"metadata": {"name": "fs"}, "spec": {"fairsharePolicy": {"shareDecaySeconds": 0}}}
    for name, share, state in (("r1", "a", "RUNNING"), ("r2", "b", "RUNNING"), ("w1", "a", "RUNNABLE"),
                               ("w2", "b", "RUNNABLE"), ("w3", "a", "RUNNABLE")):
        view.jobs[f"ns/{name}"] = job(name, share, state)
        view.active.add(f"ns/{name}")
    view.pods["ns/r1"]["r1-a1"] = pod("r1-a1", "1", "512Mi")
    view.pods["ns/r2"]["r2-a1"] = pod("r2-a1", "500m", "256Mi")
    view.pods["ns/r2"]["r2-a0"] = {**pod("r2-a0", "4", "1Gi"), "status": {"phase": "Failed"}}  # holds nothing
    front = {"q": ("ns/w1", "ns/w2", "ns/w3")}
    clock = [T0]
    return view, FakeKube(view), front, clock


def writer(view: View, kube: FakeKube, front: dict[str, tuple[str, ...]], clock: list[float],
           planned: bool = True) -> StatusWriter:
    return StatusWriter(
        kube,  # type: ignore[arg-type]
        view,
        lambda: front,
        dict,
        dict,
        active_shares=lambda: {("q", "a"), ("q", "b"), ("other", "c")},
        planned=lambda: planned,
        now=lambda: clock[0],
    )


def test_snapshot_fields_are_written_once_and_kept_across_cycles_and_a_restart() -> None:
    view, kube, front, clock = setup()
    asyncio.run(writer(view, kube, front, clock, planned=False).sync())
    assert kube.patches == []  # no plan yet: the front is unknown, nothing is written

    w = writer(view, kube, front, clock)
    asyncio.run(w.sync())
    assert len(kube.patches) == 1
    st = view.queues["q"]["status"]
    assert st["lastUpdatedAt"] == iso(T0)
    assert [(e["name"], e["position"], e["earliestTimeAtPosition"]) for e in st["front"]] == [
        ("w1", 1, iso(T0)), ("w2", 2, iso(T0)), ("w3", 3, iso(T0))
    ]
    util = st["queueUtilization"]
    assert util["totalCapacityUsage"] == [
        {"capacityUnit": "vCPU", "quantity": 1.5},
        {"capacityUnit": "MiB", "quantity": 768},
        {"capacityUnit": "GPU", "quantity": 0},
    ]
    assert [e["computeEnvironment"] for e in util["computeEnvironmentUsage"]] == ["ce"]
    fs = util["fairshareUtilization"]
    assert fs["activeShareCount"] == 2  # the other queue's share does not count
    assert [(s["shareIdentifier"], s["capacityUsage"][0]["quantity"]) for s in fs["topCapacityUtilization"]] == [
        ("a", 1.0), ("b", 0.5)
    ]

    # Later cycles with nothing changed write nothing; neither does a new writer (a restarted operator
    # reading the status back).
    clock[0] = T0 + 10
    asyncio.run(w.sync())
    asyncio.run(writer(view, kube, front, clock).sync())
    assert len(kube.patches) == 1

    # w1 starts: w2 and w3 move up and get the new time; lastUpdatedAt follows the change.
    clock[0] = T0 + 20
    front["q"] = ("ns/w2", "ns/w3")
    view.pods["ns/w1"]["w1-a1"] = pod("w1-a1", "1", "512Mi")
    asyncio.run(w.sync())
    assert len(kube.patches) == 2
    st = view.queues["q"]["status"]
    assert [(e["name"], e["position"], e["earliestTimeAtPosition"]) for e in st["front"]] == [
        ("w2", 1, iso(T0 + 20)), ("w3", 2, iso(T0 + 20))
    ]
    assert st["lastUpdatedAt"] == iso(T0 + 20)
    assert st["queueUtilization"]["totalCapacityUsage"][0] == {"capacityUnit": "vCPU", "quantity": 2.5}


def test_a_fifo_queue_has_no_fairshare_utilization() -> None:
    view, kube, front, clock = setup()
    view.queues["q"]["spec"].pop("schedulingPolicy")
    asyncio.run(writer(view, kube, front, clock).sync())
    st = view.queues["q"]["status"]
    assert "fairshareUtilization" not in st["queueUtilization"] and "shareUsage" not in st
    assert st["queueUtilization"]["totalCapacityUsage"][0]["quantity"] == 1.5
    asyncio.run(writer(view, kube, front, clock).sync())
    assert len(kube.patches) == 1
