"""The dispatcher keeps its dispatchable units, the queues' dispatch orders and what live pods hold
per environment between cycles, and re-derives only what the view reports touched. After any
sequence of job, status-overlay, pod, definition, queue, in-flight and blocking changes, the kept
orders and sums hold exactly what deriving every candidate and pod afresh gives, and ``plan`` over
them decides exactly what it decides over a fresh snapshot of those jobs (placements, blocked heads
and reasons, cancellations, queue fronts).

A missed change would leave a job never dispatched (or dispatched twice: offered for a pod that
already exists); this proves no change path does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubatch.cluster.view import View
from kubatch.core.podspec import pod_name
from kubatch.observability.metrics import Metrics
from kubatch.runtime.dispatcher import Dispatcher
from kubatch.scheduler import plan

NS = "t"
JOBS = 4  # few jobs, so that random steps keep meeting the same ones


def definition_spec(vcpus: int) -> dict[str, Any]:
    return {
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": "256"}],
        },
    }


class World:
    """A view driven the way the informers, the reconciler and the dispatcher's pod creation drive it."""

    def __init__(self) -> None:
        self.view = View()
        self.rv = 0
        self.revision = 0
        self.definition(1)
        self.view.on_named(
            self.view.envs,
            "ADDED",
            {
                "metadata": {"name": "ce"},
                "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 3, "instanceTypes": ["c5.large"]}},
                "status": {"status": "VALID"},
            },
        )
        self.view.on_named(
            self.view.policies,
            "ADDED",
            {"metadata": {"name": "fs"}, "spec": {"fairsharePolicy": {"shareDecaySeconds": 0}}},
        )
        self.queue("q", False)
        self.queue("fq", True)

    def _rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def definition(self, vcpus: int) -> None:
        self.revision += 1
        spec = definition_spec(vcpus)
        self.view.on_definition("MODIFIED", {"metadata": {"namespace": NS, "name": "work", "uid": "jd"}, "spec": spec})
        self.view.on_revision(
            "ADDED",
            {
                "metadata": {
                    "namespace": NS,
                    "name": f"work-{self.revision}",
                    "labels": {"kubatch.dev/job-definition": "work"},
                },
                "revision": self.revision,
                "data": {"spec": spec},
            },
        )

    def queue(self, name: str, fair: bool) -> None:
        spec: dict[str, Any] = {
            "priority": 1,
            "state": "ENABLED",
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
        }
        if fair:
            spec["schedulingPolicy"] = "fs"
        self.view.on_queue("MODIFIED", {"metadata": {"name": name}, "spec": spec})

    def job(self, i: int, state: str, attempts: int, array: bool, queue: str, share: str, priority: int) -> None:
        status: dict[str, Any] = {"status": state, "jobDefinition": "work:1", "attempts": [{}] * attempts}
        spec: dict[str, Any] = {
            "jobQueue": queue,
            "jobDefinition": "work",
            "shareIdentifier": share,
            "schedulingPriorityOverride": priority,
        }
        if array:
            spec["arrayProperties"] = {"size": 3}
            status["arrayProperties"] = {"indexes": {"RUNNABLE": "0-2" if attempts % 2 == 0 else "1"}}
        obj = {
            "metadata": {
                "namespace": NS,
                "name": f"j{i}",
                "uid": f"u{i}",
                "resourceVersion": self._rv(),
                "creationTimestamp": f"2026-11-26T09:00:0{i}Z",
            },
            "spec": spec,
            "status": status,
        }
        self.view.on_job("MODIFIED", obj)

    def overlay(self, i: int, state: str) -> None:
        job = self.view.jobs.get(f"{NS}/j{i}")
        if job is not None:
            self.view.set_status(f"{NS}/j{i}", {**(job.get("status") or {}), "status": state})

    def delete_job(self, i: int) -> None:
        job = self.view.jobs.get(f"{NS}/j{i}")
        if job is not None:
            self.view.on_job("DELETED", job)

    def pod(self, i: int, attempt: int, index: int | None, phase: str, deleted: bool) -> None:
        name = pod_name(f"j{i}", attempt, array_index=index)
        labels = {"kubatch.dev/job-name": f"j{i}", "kubatch.dev/compute-environment": "ce"}
        if index is not None:
            labels["kubatch.dev/array-index"] = str(index)
        obj = {
            "metadata": {
                "namespace": NS,
                "name": name,
                "uid": f"p-{name}",
                "resourceVersion": self._rv(),
                "labels": labels,
            },
            "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": phase},
        }
        self.view.on_pod("DELETED" if deleted else "MODIFIED", obj)


def unit_key(i: int, index: int | None) -> str:
    return f"{NS}/j{i}" if index is None else f"{NS}/j{i}:{index}"


job_op = st.tuples(
    st.just("job"),
    st.integers(0, JOBS - 1),
    st.sampled_from(["RUNNABLE", "RUNNABLE", "RUNNABLE", "PENDING", "RUNNING", "SUCCEEDED"]),
    st.integers(0, 2),
    st.booleans(),
    st.sampled_from(["q", "q", "fq", "nowhere"]),
    st.sampled_from(["a", "b"]),
    st.integers(0, 2),
)
overlay_op = st.tuples(st.just("overlay"), st.integers(0, JOBS - 1), st.sampled_from(["RUNNABLE", "STARTING"]))
delete_op = st.tuples(st.just("delete"), st.integers(0, JOBS - 1))
pod_op = st.tuples(
    st.just("pod"),
    st.integers(0, JOBS - 1),
    st.integers(1, 3),
    st.none() | st.integers(0, 2),
    st.sampled_from(["Pending", "Running", "Succeeded"]),
    st.booleans(),
)
block_op = st.tuples(st.just("block"), st.integers(0, JOBS - 1), st.none() | st.integers(0, 2), st.booleans())
flight_op = st.tuples(st.just("flight"), st.integers(0, JOBS - 1), st.none() | st.integers(0, 2), st.booleans())
definition_op = st.tuples(st.just("definition"), st.integers(1, 2))
queue_op = st.tuples(st.just("queue"), st.sampled_from(["q", "fq"]), st.booleans())
cycle_op = st.tuples(st.just("cycle"))
ops = st.lists(
    st.one_of(job_op, overlay_op, delete_op, pod_op, block_op, flight_op, definition_op, queue_op, cycle_op),
    max_size=50,
)


def check(d: Dispatcher) -> None:
    """The kept orders equal a fresh derivation, and plan decides the same over both."""
    snap = d.snapshot()
    kept = {j.key: j for j in d.orders}
    fresh = list(d.fresh_orders())
    assert kept == {j.key: j for j in fresh}
    assert set(d.units) == set(kept)
    assert d.usage() == d.usage_fresh()
    assert plan(snap, d.orders) == plan(replace(snap, jobs=tuple(fresh)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
@example([("job", 0, "RUNNABLE", 0, False, "q", "a", 0), ("cycle",), ("block", 0, None, True), ("cycle",)])
@example(
    [
        ("job", 0, "RUNNABLE", 1, False, "q", "a", 0),
        ("cycle",),
        ("pod", 0, 2, None, "Pending", False),
        ("cycle",),
        ("overlay", 0, "STARTING"),
    ]
)
@example([("job", 1, "RUNNABLE", 0, True, "fq", "a", 1), ("cycle",), ("queue", "fq", False), ("cycle",)])
@example([("job", 1, "RUNNABLE", 0, False, "q", "b", 0), ("cycle",), ("definition", 2)])
def test_kept_orders_plan_what_a_fresh_snapshot_plans(steps: list[Any]) -> None:
    world = World()
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    d.audit_per_cycle = 0  # no safety net: only what was reported touched is re-derived
    d.snapshot()
    for step in [*steps, ("cycle",)]:
        kind = step[0]
        if kind == "job":
            world.job(*step[1:])
        elif kind == "overlay":
            world.overlay(*step[1:])
        elif kind == "delete":
            world.delete_job(step[1])
        elif kind == "pod":
            world.pod(*step[1:])
        elif kind == "definition":
            world.definition(step[1])
        elif kind == "queue":
            world.queue(step[1], step[2])
        elif kind == "block":
            key = unit_key(step[1], step[2])
            if step[3]:
                d.blocked_since[key] = ("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 1.0)
            else:
                d.blocked_since.pop(key, None)
        elif kind == "flight":
            key = unit_key(step[1], step[2])
            # As the cycle and _start do: every change of the in-flight set is reported touched.
            (d.in_flight.add if step[3] else d.in_flight.discard)(key)
            d._touched.add(f"{NS}/j{step[1]}")
        else:
            check(d)


def test_a_job_whose_pod_appears_leaves_the_orders_until_its_pod_goes() -> None:
    world = World()
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    world.job(0, "RUNNABLE", 0, False, "q", "a", 0)
    world.job(1, "RUNNABLE", 0, False, "q", "a", 0)
    d.snapshot()
    assert [j.key for j in d.orders.fifo("q")] == [f"{NS}/j0", f"{NS}/j1"]
    world.pod(0, 1, None, "Pending", False)
    d.snapshot()
    assert [j.key for j in d.orders.fifo("q")] == [f"{NS}/j1"]
    world.pod(0, 1, None, "Pending", True)
    d.snapshot()
    assert [j.key for j in d.orders.fifo("q")] == [f"{NS}/j0", f"{NS}/j1"]


def test_a_cycle_re_derives_only_what_changed() -> None:
    world = World()
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    d.audit_per_cycle = 0
    for i in range(JOBS):
        world.job(i, "RUNNABLE", 0, False, "q", "a", 0)
    d.snapshot()
    derived: list[str] = []
    real = d.derive

    def counting(key: str, held: tuple[str, ...] = ()) -> Any:
        derived.append(key)
        return real(key, held)

    d.derive = counting  # type: ignore[method-assign]
    d.snapshot()
    assert derived == []
    world.overlay(2, "STARTING")
    d.snapshot()
    assert derived == [f"{NS}/j2"]
    assert [j.key for j in d.orders.fifo("q")] == [f"{NS}/j0", f"{NS}/j1", f"{NS}/j3"]


def test_re_derived_entries_share_the_strings_already_held() -> None:
    """Every event of a job brings a new key string; re-deriving its entries must not keep a copy
    per job of a deep queue: the units, the entries and their ranks keep the key object held
    already, and the order names the view's name string."""
    world = World()
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    d.audit_per_cycle = 0
    world.job(0, "RUNNABLE", 0, False, "q", "a", 0)
    world.job(1, "RUNNABLE", 0, True, "q", "a", 0)
    d.snapshot()
    held = {k: k for k in d.units}
    for i in range(2):
        world.job(i, "RUNNABLE", 0, i == 1, "q", "a", 0)  # a newer version: new strings
        world.overlay(i, "RUNNABLE")
        d.snapshot()
    assert sorted(d.units) == sorted(held) and len(held) == 4  # j0, and the array's three children
    for ukey, unit in d.units.items():
        assert ukey is held[ukey] and unit.key is held[ukey]
        assert unit.job_key is held.get(unit.job_key, unit.job_key)
        current = d.orders.get(ukey)
        assert current is not None and current.key is held[ukey]
        name = world.view.jobs[unit.job_key]["metadata"]["name"]
        assert current.order[1] is name
    assert d.units[f"{NS}/j1:0"].job_key is d.units[f"{NS}/j1:2"].job_key


def test_the_reconciler_indexes_a_job_under_the_key_the_view_holds() -> None:
    """The key the reconciler steps is the view's string object; the status it decides must index
    the job under that object (candidates, then the dispatcher's entries), not under a copy."""
    import asyncio

    from kubatch.runtime.jobs import JobReconciler

    world = World()
    r = JobReconciler(None, world.view, Events(), Metrics(), coalesce_seconds=60.0)  # type: ignore[arg-type]
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    world.view.dirty.clear()
    world.view.on_job(
        "ADDED",
        {
            "metadata": {"namespace": NS, "name": "new", "uid": "u-new", "resourceVersion": world._rv()},
            "spec": {"jobQueue": "q", "jobDefinition": "work"},
            "status": {"status": "SUBMITTED", "jobDefinition": "work:1", "jobId": "u-new"},
        },
    )
    (key,) = world.view.dirty
    asyncio.run(r.step(key))
    assert world.view.jobs[key]["status"]["status"] == "RUNNABLE"
    assert next(k for k in world.view.candidates if k == key) is key
    d.snapshot()
    assert next(k for k in d.units if k == key) is key and d.units[key].entry.key is key


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, obj: Any, reason: str, message: str, type_: str = "Normal") -> None:
        self.recorded.append((reason, message))


def test_a_head_is_reported_blocked_only_once_it_stays_blocked() -> None:
    world = World()
    events = Events()
    d = Dispatcher(None, world.view, events, Metrics())  # type: ignore[arg-type]
    clock = [1000.0]
    d.now = lambda: clock[0]
    d.blocked_report_seconds = 1.0
    for i in range(3):
        world.pod(i, 1, None, "Running", False)  # three pods hold the environment's 3 vCPUs
    world.job(3, "RUNNABLE", 0, False, "q", "a", 0)

    def cycle() -> None:
        d._record_blocking(plan(d.snapshot(), d.orders))

    cycle()
    assert d.blocked == {} and d.blocked_queues == frozenset()  # blocked just now: not reported yet
    assert d._next_report == 1001.0
    clock[0] = 1000.5
    cycle()
    assert d.blocked == {}
    clock[0] = 1001.0
    cycle()
    assert list(d.blocked) == [f"{NS}/j3"] and d.blocked_queues == frozenset({"q"})
    assert d.blocked[f"{NS}/j3"].startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
    assert [r for r, _ in events.recorded] == ["QueueBlocked"]
    # Capacity frees: placed, no longer reported; a new head blocked for a moment is never reported.
    world.pod(0, 1, None, "Succeeded", False)
    world.job(4, "RUNNABLE", 0, False, "q", "a", 0)
    clock[0] = 1001.2
    cycle()
    assert d.blocked == {} and d.blocked_queues == frozenset()
    world.pod(1, 1, None, "Succeeded", False)
    clock[0] = 1001.4
    cycle()
    assert d.blocked == {} and d._next_report is None
    assert len(events.recorded) == 1
