"""The warm start of a restarted leader: which jobs the queues' written fronts name, and one
dispatcher cycle over those jobs alone, on the capacity the live pods leave, while the view holds
only part of the jobs (the rest of the list not in yet)."""

from __future__ import annotations

import asyncio
from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.observability.metrics import Metrics
from kubatch.runtime.dispatcher import Dispatcher
from kubatch.runtime.warm_start import front_jobs, warm_start

NS = "t"


def queue(name: str, priority: int, front: list[tuple[str, str]], state: str = "ENABLED") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "priority": priority,
            "state": state,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
        },
        "status": {
            "front": [
                {"position": i, "namespace": NS, "name": n, "jobId": job_id} for i, (n, job_id) in enumerate(front, 1)
            ]
        },
    }


def test_front_jobs_by_queue_priority_in_front_order_array_children_as_their_job() -> None:
    low = queue("low", 1, [("x", "id-x"), ("a", "id-a")])
    high = queue("high", 9, [("arr:3", "id-arr:3"), ("arr:4", "id-arr:4"), ("b", "id-b")])
    off = queue("off", 99, [("c", "id-c")], state="DISABLED")
    assert front_jobs([low, high, off]) == [
        ("t/arr", "id-arr"), ("t/b", "id-b"), ("t/x", "id-x"), ("t/a", "id-a")
    ]
    assert front_jobs([low, high], limit=2) == [("t/arr", "id-arr"), ("t/b", "id-b")]
    assert front_jobs([{"metadata": {"name": "new"}, "spec": {"priority": 1}}]) == []  # no status yet


def world(vcpus: int) -> View:
    """A view with a MANAGED environment of ``vcpus`` and the definition "work" (1 vCPU)."""
    view = View()
    view.on_named(
        view.envs,
        "ADDED",
        {
            "metadata": {"name": "ce"},
            "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": vcpus, "instanceTypes": ["c5.large"]}},
            "status": {"status": "VALID"},
        },
    )
    definition(view, "work")
    return view


def definition(view: View, name: str, **extra: Any) -> None:
    spec = {
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
        },
        **extra,
    }
    view.on_definition("MODIFIED", {"metadata": {"namespace": NS, "name": name, "uid": f"jd-{name}"}, "spec": spec})
    view.on_revision(
        "ADDED",
        {
            "metadata": {"namespace": NS, "name": f"{name}-1", "labels": {"kubatch.dev/job-definition": name}},
            "revision": 1,
            "data": {"spec": spec},
        },
    )


def job(name: str, second: int, state: str = "RUNNABLE", definition: str = "work") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"u-{name}",
            "resourceVersion": "5",
            "creationTimestamp": f"2026-12-04T09:00:{second:02d}Z",
        },
        "spec": {"jobQueue": "q", "jobDefinition": definition},
        "status": {"status": state, "jobId": f"id-{name}", "jobDefinition": f"{definition}:1"},
    }


def live_pod(job_name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": f"{job_name}-a1",
            "uid": f"p-{job_name}",
            "resourceVersion": "3",
            "labels": {"kubatch.dev/job-name": job_name, "kubatch.dev/compute-environment": "ce"},
        },
        "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1", "memory": "256Mi"}}}]},
        "status": {"phase": "Running"},
    }


class FakeKube:
    """The API server's current jobs (GET) and the pods created."""

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs = jobs
        self.gets: list[str] = []
        self.created: list[str] = []

    async def get(self, path: str, **_: Any) -> dict[str, Any]:
        self.gets.append(path)
        name = path.rsplit("/", 1)[-1]
        if name not in self.jobs:
            raise ApiError(404, {"reason": "NotFound"}, "GET", path)
        return {**self.jobs[name], "metadata": {**self.jobs[name]["metadata"], "managedFields": [{}]}}

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body["metadata"]["name"])
        name = body["metadata"]["name"]
        return {**body, "metadata": {**body["metadata"], "uid": f"p-{name}", "resourceVersion": "9"}}


async def until_listed(kube: Any, view: View, dispatcher: Dispatcher, listed: asyncio.Event, cycles: int = 3) -> int:
    """Run the warm start until ``cycles`` of its cycles have ended, then let the list be in (counted,
    not timed: a loaded machine may take longer than a fixed sleep for the first one)."""
    ended = 0
    plain = dispatcher.warm_cycle

    async def counted(keys: Any) -> int:
        nonlocal ended
        try:
            return await plain(keys)
        finally:
            ended += 1

    dispatcher.warm_cycle = counted  # type: ignore[method-assign]
    task = asyncio.create_task(warm_start(kube, view, dispatcher, listed, every=0.01))
    while ended < cycles and not task.done():
        await asyncio.sleep(0.005)
    listed.set()
    return await asyncio.wait_for(task, timeout=10)


def test_cycles_over_the_front_jobs_alone_on_the_capacity_live_pods_leave() -> None:
    view = world(vcpus=4)
    definition(view, "spender", consumableResourceProperties={
        "consumableResourceList": [{"consumableResource": "tokens", "quantity": 1}]})
    # The front as the last leader wrote it: "gone" was deleted since, "renamed" re-created under its
    # name (another jobId), "spender" needs a consumable resource: the front is cut there ("late"
    # must not pass it).
    view.on_queue("ADDED", queue("q", 1, [
        ("gone", "id-gone"), ("renamed", "id-old"), ("first", "id-first"), ("second", "id-second"),
        ("spender", "id-spender"), ("late", "id-late"),
    ]))
    # What the API holds now. "early" is older than every front job, and already listed into the
    # view: not in the front, so not started here (the list may hold jobs ahead of it not in yet).
    current = {
        "spender": job("spender", 1, definition="spender"),
        "renamed": job("renamed", 2),
        "late": job("late", 30),
        "first": job("first", 10),
        "second": job("second", 11),
        "busy": job("busy", 0, state="RUNNING"),
    }
    view.on_job("ADDED", job("early", 0))
    # "busy" runs (1 of the 4 vCPUs): its pod is in, its job not yet.
    view.on_pod("ADDED", live_pod("busy"))
    kube = FakeKube(current)
    dispatcher = Dispatcher(kube, view, None, Metrics())  # type: ignore[arg-type]
    listed = asyncio.Event()

    started = asyncio.run(until_listed(kube, view, dispatcher, listed))

    # Three vCPUs free: the front jobs before the cut, not "early" (not in the front), "renamed" (not
    # the job the front named), "spender", "late" or the gone one.
    assert sorted(kube.created) == ["first-a1", "second-a1"], kube.created
    assert started == 2
    fetched = {p.rsplit("/", 1)[-1] for p in kube.gets}
    assert fetched == {"gone", "spender", "renamed", "late", "first", "second", "busy"}
    assert "t/busy" in view.jobs  # fetched: what holds capacity is sized from its job
    assert set(view.pods["t/first"]) == {"first-a1"}  # the pods started are in the view
    assert dispatcher.scope is None  # the next cycle is a full one

    # The full cycles, once the list is in, start nothing twice: the one vCPU left goes to "early",
    # the oldest job (then "spender" waits for its consumable, and "late" behind it).
    asyncio.run(dispatcher.cycle())
    assert sorted(kube.created) == ["early-a1", "first-a1", "second-a1"], kube.created


def test_nothing_is_fetched_once_the_list_is_in() -> None:
    view = View()
    view.on_queue("ADDED", queue("q", 1, [("a", "id-a")]))
    kube = FakeKube({"a": job("a", 1)})
    dispatcher = Dispatcher(kube, view, None, Metrics())  # type: ignore[arg-type]
    listed = asyncio.Event()
    listed.set()
    assert asyncio.run(warm_start(kube, view, dispatcher, listed)) == 0
    assert kube.gets == [] and kube.created == []


def test_capacity_freed_while_the_list_runs_goes_to_the_next_front_job() -> None:
    view = world(vcpus=2)
    view.on_queue("ADDED", queue("q", 1, [("first", "id-first"), ("second", "id-second"), ("third", "id-third")]))
    current = {n: job(n, i) for i, n in enumerate(("first", "second", "third"), start=10)}
    current["busy"] = job("busy", 0, state="RUNNING")
    view.on_pod("ADDED", live_pod("busy"))
    kube = FakeKube(current)
    dispatcher = Dispatcher(kube, view, None, Metrics())  # type: ignore[arg-type]
    listed = asyncio.Event()

    async def scenario() -> int:
        warm = asyncio.create_task(warm_start(kube, view, dispatcher, listed, every=0.01))
        while not kube.created:
            await asyncio.sleep(0.005)
        assert kube.created == ["first-a1"]  # one vCPU free
        await asyncio.sleep(0.05)
        assert kube.created == ["first-a1"]  # nothing twice, nothing more
        done = live_pod("busy")
        done["metadata"]["resourceVersion"] = "4"
        view.on_pod("MODIFIED", {**done, "status": {"phase": "Succeeded"}})
        while len(kube.created) < 2:
            await asyncio.sleep(0.005)
        listed.set()
        return await warm

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == 2
    assert kube.created == ["first-a1", "second-a1"]


def test_a_failing_preparation_or_cycle_does_not_end_the_warm_start() -> None:
    view = world(vcpus=2)
    view.on_queue("ADDED", queue("q", 1, [("first", "id-first"), ("second", "id-second")]))
    kube = FakeKube({n: job(n, i) for i, n in enumerate(("first", "second"), start=10)})
    dispatcher = Dispatcher(kube, view, None, Metrics())  # type: ignore[arg-type]
    listed = asyncio.Event()
    calls: list[str] = []
    plain = dispatcher.warm_cycle

    async def prepare() -> None:
        calls.append("prepare")
        if len(calls) == 1:
            raise ApiError(500, {"reason": "InternalError"}, "PATCH", "/api/v1/nodes/other")

    async def flaky(keys: Any) -> int:
        calls.append("cycle")
        if calls.count("cycle") == 1:
            raise RuntimeError("a cycle failed")
        return await plain(keys)

    dispatcher.warm_cycle = flaky  # type: ignore[method-assign]

    async def scenario() -> int:
        warm = asyncio.create_task(warm_start(kube, view, dispatcher, listed, every=0.01, before_cycle=prepare))
        while len(kube.created) < 2:
            await asyncio.sleep(0.005)
        listed.set()
        return await warm

    # The first preparation fails, its cycle runs anyway and fails; the next cycles start both jobs.
    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == 2
    assert calls[:4] == ["prepare", "cycle", "prepare", "cycle"]
    assert sorted(kube.created) == ["first-a1", "second-a1"]


def test_a_front_job_not_written_runnable_waits_for_the_list(caplog: Any) -> None:
    # "fresh": its first status was never written (the front named it by its uid, as the front's
    # jobId falls back to); "ready": written RUNNABLE. Only "ready" starts before the list is in.
    view = world(vcpus=2)
    view.on_queue("ADDED", queue("q", 1, [("fresh", "u-fresh"), ("ready", "id-ready")]))
    fresh = job("fresh", 10)
    del fresh["status"]
    kube = FakeKube({"fresh": fresh, "ready": job("ready", 11)})
    dispatcher = Dispatcher(kube, view, None, Metrics())  # type: ignore[arg-type]
    listed = asyncio.Event()

    with caplog.at_level("INFO", logger="kubatch.runtime.warm_start"):
        started = asyncio.run(until_listed(kube, view, dispatcher, listed))

    assert started == 1 and kube.created == ["ready-a1"]
    assert "1 pods started for 2 front jobs before the job list is in (1 not written RUNNABLE)" in caplog.text
