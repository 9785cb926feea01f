"""A stopping leader writes the job statuses it decided and held back (coalescing): the front jobs'
first, within a time budget, a failed write left for the next leader to decide again."""

from __future__ import annotations

import asyncio
from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.observability.metrics import Metrics
from kubatch.runtime.jobs import JobReconciler, PendingWrite

NS = "t"


class Events:
    def __init__(self) -> None:
        self.posted: list[Any] = []

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.posted.append(args)


class StatusKube:
    """Records status patches in order; ``refuse`` answers 409, ``hang`` never answers."""

    def __init__(self, refuse: frozenset[str] = frozenset(), hang: frozenset[str] = frozenset()) -> None:
        self.patched: list[str] = []
        self.refuse = refuse
        self.hang = hang

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = path.split("/")[-2]
        if name in self.hang:
            await asyncio.Event().wait()
        if name in self.refuse:
            raise ApiError(409, {"reason": "Conflict"}, "PATCH", path)
        self.patched.append(name)
        return {
            "metadata": {"namespace": NS, "name": name, "uid": f"u-{name}", "resourceVersion": "7"},
            "spec": {"jobQueue": "q", "jobDefinition": "work"},
            "status": body["status"],
        }


def reconciler(kube: StatusKube, names: list[str]) -> tuple[JobReconciler, View]:
    """A reconciler holding back the first status (RUNNABLE) of each job ``names`` lists."""
    view = View()
    jobs = JobReconciler(kube, view, Events(), Metrics(), coalesce_seconds=60.0)  # type: ignore[arg-type]
    for name in names:
        view.on_job(
            "ADDED",
            {
                "metadata": {"namespace": NS, "name": name, "uid": f"u-{name}", "resourceVersion": "1"},
                "spec": {"jobQueue": "q", "jobDefinition": "work"},
            },
        )
        status = {"status": "RUNNABLE", "jobId": f"u-{name}", "jobDefinition": "work:1"}
        view.set_status(f"{NS}/{name}", status)
        jobs.pending[f"{NS}/{name}"] = PendingWrite(due=1e18)
    return jobs, view


def test_the_front_jobs_are_written_first_then_the_others() -> None:
    kube = StatusKube()
    jobs, view = reconciler(kube, ["a", "b", "c", "d"])

    written = asyncio.run(jobs.flush_pending(["t/c", "t/gone", "t/a"], timeout=5, concurrency=1))

    assert written == 4
    assert kube.patched == ["c", "a", "b", "d"]
    assert not jobs.pending
    assert view.written_status("t/b") == {"status": "RUNNABLE", "jobId": "u-b", "jobDefinition": "work:1"}


def test_a_refused_write_is_left_and_the_others_are_written() -> None:
    kube = StatusKube(refuse=frozenset({"b"}))
    jobs, view = reconciler(kube, ["a", "b", "c"])

    assert asyncio.run(jobs.flush_pending([], timeout=5)) == 2
    assert sorted(kube.patched) == ["a", "c"]
    assert set(jobs.pending) == {"t/b"}  # the next leader decides it again
    assert view.written_status("t/b") == {}


def test_writes_end_with_the_budget() -> None:
    kube = StatusKube(hang=frozenset({"a"}))
    jobs, _ = reconciler(kube, ["a", "b"])

    written = asyncio.run(jobs.flush_pending(["t/a"], timeout=0.2))

    assert written == 1 and kube.patched == ["b"]
    assert set(jobs.pending) == {"t/a"}  # a cancelled write keeps its pending change
