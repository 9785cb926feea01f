"""Finished jobs' retention: the pure rules (kubatch.core.retention) and the sweep that deletes
(kubatch.runtime.retention) against a fake API that records deletions."""

from __future__ import annotations

import asyncio
from typing import Any

from kubatch.cluster.view import View
from kubatch.core.retention import due, expires_at, ttl_seconds, waiting_dependents
from kubatch.core.timestamps import parse_iso
from kubatch.runtime.retention import RetentionController

STOPPED = "2027-01-15T08:00:00Z"
T = parse_iso(STOPPED) or 0.0


def job(
    name: str, state: str = "SUCCEEDED", *, ttl: int | None = None, depends_on: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"jobQueue": "q", "jobDefinition": "d"}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    if depends_on:
        spec["dependsOn"] = [{"jobName": depends_on}]
    status: dict[str, Any] = {"status": state, "jobDefinition": "d:1"}
    if state in ("SUCCEEDED", "FAILED"):
        status["stoppedAt"] = STOPPED
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "resourceVersion": "1"},
        "spec": spec,
        "status": status,
    }


# ---- pure rules ------------------------------------------------------------------------------------
def test_the_jobs_ttl_wins_over_the_definitions_and_the_default() -> None:
    assert ttl_seconds(job("a", ttl=5), {"ttlSecondsAfterFinished": 60}, 3600) == 5
    assert ttl_seconds(job("a", ttl=0), {"ttlSecondsAfterFinished": 60}, 3600) == 0
    assert ttl_seconds(job("a"), {"ttlSecondsAfterFinished": 60}, 3600) == 60
    assert ttl_seconds(job("a"), {}, 3600) == 3600
    assert ttl_seconds(job("a"), None, None) is None


def test_only_finished_jobs_expire_from_stopped_at() -> None:
    assert expires_at(job("a")["status"], 10, parse_iso) == T + 10
    assert expires_at(job("a", "FAILED")["status"], 0, parse_iso) == T
    assert expires_at(job("a", "RUNNING")["status"], 10, parse_iso) is None
    assert expires_at(job("a")["status"], None, parse_iso) is None
    assert expires_at({"status": "SUCCEEDED"}, 10, parse_iso) is None  # no stoppedAt: not judged


def test_due_takes_the_longest_expired_first_in_bounded_batches() -> None:
    expiries = [(f"ns/j{i}", T + i) for i in range(10)]
    assert due(expiries, T + 4.5, held=lambda _k: False, limit=3) == ["ns/j0", "ns/j1", "ns/j2"]
    assert due(expiries, T + 4.5, held=lambda k: k == "ns/j1", limit=3) == ["ns/j0", "ns/j2", "ns/j3"]
    assert due(expiries, T + 100, held=lambda _k: False, limit=100) == [k for k, _ in expiries]
    assert due(expiries, T - 1, held=lambda _k: False) == []


def test_unfinished_dependents_hold_their_dependency() -> None:
    jobs = {"ns/b": job("b", "PENDING"), "ns/c": job("c", "FAILED")}
    assert waiting_dependents(["ns/b", "ns/c", "ns/gone"], jobs) == ["ns/b"]
    assert waiting_dependents(["ns/c"], jobs) == []


# ---- the sweep ---------------------------------------------------------------------------------------
class FakeKube:
    def __init__(self) -> None:
        self.deleted: list[tuple[str, str | None]] = []

    async def delete(self, path: str, *, uid: str | None = None, **_: Any) -> None:
        self.deleted.append((path, uid))


def controller(jobs: list[dict[str, Any]], *, default: float | None = None, batch: int = 100) -> Any:
    view = View()
    for j in jobs:
        view.on_job("ADDED", j)
    view.revisions["ns/d"][1] = {
        "metadata": {"labels": {"kubatch.dev/job-definition": "d"}},
        "revision": 1,
        "data": {"spec": {"type": "container", "ttlSecondsAfterFinished": 600}},
    }
    view.definitions["ns/d"] = {"metadata": {"name": "d", "namespace": "ns", "uid": "d-uid"}, "spec": {}}
    kube = FakeKube()
    now = [T]
    ctl = RetentionController(kube, view, default_ttl=default, batch=batch, clock=lambda: now[0])  # type: ignore[arg-type]
    return ctl, kube, view, now


def test_the_sweep_deletes_expired_jobs_with_a_uid_precondition() -> None:
    ctl, kube, view, now = controller([job("quick", ttl=10), job("plain"), job("running", "RUNNING", ttl=0)])
    now[0] = T + 9
    asyncio.run(ctl.sweep())
    assert kube.deleted == []
    now[0] = T + 10
    asyncio.run(ctl.sweep())
    assert kube.deleted == [("/apis/kubatch.dev/v1alpha1/namespaces/ns/batchjobs/quick", "quick-uid")]
    assert "ns/quick" not in view.jobs
    # "plain" has no TTL of its own: its definition's (600 s) applies; "running" never expires
    now[0] = T + 600
    asyncio.run(ctl.sweep())
    assert [p.rsplit("/", 1)[1] for p, _ in kube.deleted] == ["quick", "plain"]
    assert set(view.jobs) == {"ns/running"}


def test_the_operators_default_applies_to_jobs_without_one() -> None:
    ctl, kube, view, now = controller([job("plain")], default=30)
    view.revisions.clear()
    view.definitions.clear()
    now[0] = T + 30
    asyncio.run(ctl.sweep())
    assert [p.rsplit("/", 1)[1] for p, _ in kube.deleted] == ["plain"]


def test_a_dependency_is_kept_while_its_dependent_waits() -> None:
    ctl, kube, view, now = controller([job("up", ttl=0), job("down", "PENDING", depends_on="up")])
    now[0] = T + 1000
    asyncio.run(ctl.sweep())
    assert kube.deleted == []
    view.on_job(
        "MODIFIED",
        {**job("down", "SUCCEEDED", depends_on="up"), "metadata": {**job("down")["metadata"], "resourceVersion": "2"}},
    )
    asyncio.run(ctl.sweep())
    # "down" finished too and has outlived its definition's TTL (600 s) as well
    assert sorted(p.rsplit("/", 1)[1] for p, _ in kube.deleted) == ["down", "up"]


def test_a_backlog_goes_in_batches() -> None:
    ctl, kube, view, now = controller([job(f"j{i}", ttl=i) for i in range(25)], batch=10)
    now[0] = T + 100
    asyncio.run(ctl.sweep())
    assert [p.rsplit("/", 1)[1] for p, _ in kube.deleted] == [f"j{i}" for i in range(10)]
    asyncio.run(ctl.sweep())
    asyncio.run(ctl.sweep())
    assert len(kube.deleted) == 25 and not view.jobs


def test_a_status_not_written_yet_is_not_judged() -> None:
    ctl, kube, view, now = controller([job("j", "RUNNING", ttl=0)])
    finished = job("j", ttl=0)["status"]
    view.set_status("ns/j", finished)  # decided, not written
    now[0] = T + 10
    asyncio.run(ctl.sweep())
    assert kube.deleted == []
