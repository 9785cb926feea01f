"""A deleted JobQueue's unfinished jobs are looked at again (they fail if they have not started)."""

from __future__ import annotations

from typing import Any

from kubatch.cluster.view import View


def job(name: str, queue: str, state: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": "1"},
        "spec": {"jobQueue": queue, "jobDefinition": "d"},
        "status": {"status": state},
    }


def test_deleting_a_queue_marks_its_unfinished_jobs() -> None:
    view = View()
    view.on_queue("ADDED", {"metadata": {"name": "q"}, "spec": {}})
    for j in (job("waiting", "q", "RUNNABLE"), job("done", "q", "SUCCEEDED"), job("elsewhere", "p", "RUNNABLE")):
        view.on_job("ADDED", j)
    view.dirty.clear()
    view.on_queue("MODIFIED", {"metadata": {"name": "q"}, "spec": {"state": "DISABLED"}})
    assert view.dirty == set() and "q" in view.queues
    view.on_queue("DELETED", {"metadata": {"name": "q"}})
    assert "q" not in view.queues
    assert view.dirty == {"ns/waiting"}
