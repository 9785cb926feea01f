"""The dispatcher derives its dispatchable units incrementally: after any sequence of job, pod and
blocking changes, re-deriving only what the view reported touched gives exactly what deriving every
candidate afresh gives (the same scheduler entries, blocked reasons, retries and units).

Proves that no change path leaves a stale entry behind: a missed job would never be dispatched,
a stale one would be offered for a pod that already exists."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubatch.cluster.view import View
from kubatch.core.podspec import pod_name
from kubatch.observability.metrics import Metrics
from kubatch.runtime.dispatcher import Dispatcher

NS = "t"
SPEC = {
    "type": "container",
    "containerProperties": {
        "image": "busybox",
        "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
    },
}
JOBS = 3  # few jobs, so that random steps keep meeting the same ones


def view() -> View:
    v = View()
    v.on_definition("ADDED", {"metadata": {"namespace": NS, "name": "work", "uid": "jd"}, "spec": SPEC})
    v.on_revision(
        "ADDED",
        {
            "metadata": {"namespace": NS, "name": "work-1", "labels": {"kubatch.dev/job-definition": "work"}},
            "revision": 1,
            "data": {"spec": SPEC},
        },
    )
    return v


class World:
    """A view driven the way the informers and the reconciler drive it."""

    def __init__(self) -> None:
        self.view = view()
        self.rv = 0

    def _rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def job(self, i: int, state: str, attempts: int, array: bool) -> None:
        status: dict[str, Any] = {"status": state, "jobDefinition": "work:1", "attempts": [{}] * attempts}
        spec: dict[str, Any] = {"jobQueue": "q", "jobDefinition": "work"}
        if array:
            spec["arrayProperties"] = {"size": 3}
            status["arrayProperties"] = {"indexes": {"RUNNABLE": "0-2"}}
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

    def pod(self, i: int, attempt: int, index: int | None, deleted: bool) -> None:
        name = pod_name(f"j{i}", attempt, array_index=index)
        obj = {
            "metadata": {
                "namespace": NS,
                "name": name,
                "uid": f"p-{name}",
                "resourceVersion": self._rv(),
                "labels": {"kubatch.dev/job-name": f"j{i}"},
            },
            "spec": {},
            "status": {"phase": "Pending"},
        }
        self.view.on_pod("DELETED" if deleted else "ADDED", obj)


def entries(d: Dispatcher) -> tuple[list[tuple[Any, ...]], list[tuple[str, int, int | None]]]:
    jobs, units = d.units()
    return (
        sorted((j.key, j.order, j.retried, j.blocked_reason, j.queue) for j in jobs),
        sorted((k, u.attempt, u.index) for k, (u, _) in units.items()),
    )


job_op = st.tuples(
    st.just("job"),
    st.integers(0, JOBS - 1),
    st.sampled_from(["RUNNABLE", "RUNNABLE", "PENDING", "RUNNING", "SUCCEEDED"]),
    st.integers(0, 2),
    st.booleans(),
)
overlay_op = st.tuples(st.just("overlay"), st.integers(0, JOBS - 1), st.sampled_from(["RUNNABLE", "STARTING"]))
delete_op = st.tuples(st.just("delete"), st.integers(0, JOBS - 1))
pod_op = st.tuples(
    st.just("pod"), st.integers(0, JOBS - 1), st.integers(1, 3), st.none() | st.integers(0, 2), st.booleans()
)
block_op = st.tuples(st.just("block"), st.integers(0, JOBS - 1), st.booleans())
cycle_op = st.tuples(st.just("cycle"))
ops = st.lists(st.one_of(job_op, overlay_op, delete_op, pod_op, block_op, cycle_op), max_size=40)


@settings(max_examples=500, deadline=None)
@given(ops)
@example([("job", 0, "RUNNABLE", 0, False), ("cycle",), ("block", 0, True), ("cycle",), ("block", 0, False)])
@example(
    [("job", 0, "RUNNABLE", 1, False), ("cycle",), ("pod", 0, 2, None, False), ("cycle",), ("overlay", 0, "STARTING")]
)
def test_incremental_units_equal_a_fresh_derivation(steps: list[Any]) -> None:
    world = World()
    incremental = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    incremental.units()
    incremental._swept_at = float("inf")  # no safety-net sweep: only what was touched is re-derived
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
        elif kind == "block":
            key = f"{NS}/j{step[1]}"
            if step[2]:
                incremental.blocked_since[key] = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 1.0)
            else:
                incremental.blocked_since.pop(key, None)
        else:
            got = entries(incremental)
            fresh = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
            fresh.blocked_since = dict(incremental.blocked_since)
            assert got == entries(fresh)


def test_a_job_whose_pod_appears_leaves_the_units_until_its_pod_goes() -> None:
    world = World()
    d = Dispatcher(None, world.view, None, Metrics())  # type: ignore[arg-type]
    world.job(0, "RUNNABLE", 0, False)
    world.job(1, "RUNNABLE", 0, False)
    assert [k for k, *_ in entries(d)[1]] == [f"{NS}/j0", f"{NS}/j1"]
    world.pod(0, 1, None, False)
    assert [k for k, *_ in entries(d)[1]] == [f"{NS}/j1"]
    world.pod(0, 1, None, True)
    assert [k for k, *_ in entries(d)[1]] == [f"{NS}/j0", f"{NS}/j1"]
