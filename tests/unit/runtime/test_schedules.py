"""The JobSchedule loop (kubatch.runtime.schedules) against a fake API and a fake clock: a due run is
created once, a restart or a lost status write does not duplicate it, refusals and passing failures,
Replace, history, and the loop waking at the next run time by itself."""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.core.schedules import format_time, run_name
from kubatch.runtime.schedules import RETRY_MIN, ScheduleController

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
JOBS = "/apis/kubatch.dev/v1alpha1/namespaces/ns/batchjobs"
SCHEDULE = "/apis/kubatch.dev/v1alpha1/namespaces/ns/jobschedules/every"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class FakeKube:
    """BatchJobs and one JobSchedule, stored as the API server would; every write echoes into the
    view as the informers would (``echo=False``: the echo is late)."""

    def __init__(self, view: View, schedule: dict[str, Any]) -> None:
        self.view = view
        self.schedule = schedule
        self.jobs: dict[str, dict[str, Any]] = {}
        self.rv = 10
        self.fail_create: list[ApiError] = []
        self.calls: list[tuple[str, str]] = []
        self.echo = True

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body["metadata"]["name"]))
        if self.fail_create:
            raise self.fail_create.pop(0)
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise ApiError(409, {"reason": "AlreadyExists", "message": "exists"}, "POST", path)
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = f"uid-{name}"
        obj["metadata"]["creationTimestamp"] = format_time(T0)
        self._bump(obj)
        self.jobs[name] = obj
        if self.echo:
            self.view.on_job("ADDED", copy.deepcopy(obj))
        return copy.deepcopy(obj)

    async def get(self, path: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        if name not in self.jobs:
            raise ApiError(404, {"reason": "NotFound"}, "GET", path)
        return copy.deepcopy(self.jobs[name])

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/status"):
            self.calls.append(("status", path))
            merge(self.schedule.setdefault("status", {}), body["status"])
            self._bump(self.schedule)
            if self.echo:
                self.view.on_schedule("MODIFIED", copy.deepcopy(self.schedule))
            return copy.deepcopy(self.schedule)
        name = path.rsplit("/", 1)[-1]
        self.calls.append(("patch", name))
        merge(self.jobs[name], body)
        self._bump(self.jobs[name])
        self.view.on_job("MODIFIED", copy.deepcopy(self.jobs[name]))
        return copy.deepcopy(self.jobs[name])

    async def delete(self, path: str, **_: Any) -> None:
        name = path.rsplit("/", 1)[-1]
        self.calls.append(("delete", name))
        gone = self.jobs.pop(name, None)
        if gone is not None:
            self.view.on_job("DELETED", gone)

    def finish(self, name: str, state: str, stopped: datetime) -> None:
        job = self.jobs[name]
        job["status"] = {"status": state, "stoppedAt": format_time(stopped)}
        self._bump(job)
        self.view.on_job("MODIFIED", copy.deepcopy(job))


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def record(self, obj: dict[str, Any], reason: str, message: str, *, type_: str = "Normal") -> None:
        assert obj["kind"] == "JobSchedule" and obj["apiVersion"] == "kubatch.dev/v1alpha1"
        self.recorded.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.recorded]


class Clock:
    def __init__(self, t: datetime) -> None:
        self.now = t.timestamp()

    def __call__(self) -> float:
        return self.now


def setup(
    cron: str = "* * * * *", *, last: datetime | None = None, **spec: Any
) -> tuple[FakeKube, View, ScheduleController, FakeEvents, Clock]:
    schedule: dict[str, Any] = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "JobSchedule",
        "metadata": {
            "name": "every",
            "namespace": "ns",
            "uid": "sched-uid",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2025-06-01T00:00:00Z",
        },
        "spec": {"schedule": cron, "jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}}, **spec},
        "status": {"lastScheduleTime": format_time(last)} if last else {},
    }
    view = View()
    view.on_schedule("ADDED", copy.deepcopy(schedule))
    kube = FakeKube(view, schedule)
    events = FakeEvents()
    clock = Clock(T0)
    controller = ScheduleController(kube, view, events, clock=clock)  # type: ignore[arg-type]
    return kube, view, controller, events, clock


def creates(kube: FakeKube) -> list[str]:
    return [name for op, name in kube.calls if op == "create"]


def test_a_due_run_is_created_once_and_a_restart_does_not_repeat_it() -> None:
    kube, view, controller, events, clock = setup(last=datetime(2025, 6, 2, 11, 50, tzinfo=UTC))
    clock.now += 20

    async def go() -> None:
        await controller.sync("ns/every")
        await controller.sync("ns/every")
        # A new process (same cluster state): nothing more to do.
        fresh = ScheduleController(kube, view, events, clock=clock)  # type: ignore[arg-type]
        await fresh.sync("ns/every")

    asyncio.run(go())
    job = run_name("every", T0)
    assert creates(kube) == [job] and list(kube.jobs) == [job]
    assert kube.schedule["status"]["lastScheduleTime"] == format_time(T0)
    assert kube.schedule["status"]["active"] == [job]
    assert kube.jobs[job]["metadata"]["ownerReferences"][0]["uid"] == "sched-uid"
    assert events.reasons() == ["SuccessfulCreate"]
    assert controller.due["ns/every"] == T0.timestamp() + 60  # wakes at the next minute


def test_a_lost_status_write_finds_the_job_by_name() -> None:
    """The job was created, then the process died before the status was written."""
    kube, view, controller, events, clock = setup(last=datetime(2025, 6, 2, 11, 50, tzinfo=UTC))
    kube.echo = False  # the informers have not shown the job yet either

    async def go() -> None:
        await controller.sync("ns/every")
        kube.schedule["status"]["lastScheduleTime"] = "2025-06-02T11:50:00Z"  # the write "lost"
        view.schedules["ns/every"] = copy.deepcopy(kube.schedule)
        view.jobs.clear()  # ... and the new process's view does not have the job yet
        view.scheduled_jobs.clear()
        fresh = ScheduleController(kube, view, events, clock=clock)  # type: ignore[arg-type]
        await fresh.sync("ns/every")

    asyncio.run(go())
    job = run_name("every", T0)
    assert creates(kube) == [job, job]  # the second create answered 409 by our own job
    assert list(kube.jobs) == [job]
    assert kube.schedule["status"]["lastScheduleTime"] == format_time(T0)
    assert kube.schedule["status"].get("statusReason") is None


def test_a_name_taken_by_a_stranger_is_reported() -> None:
    kube, _view, controller, events, _clock = setup(last=datetime(2025, 6, 2, 11, 50, tzinfo=UTC))
    job = run_name("every", T0)
    kube.jobs[job] = {"metadata": {"name": job, "namespace": "ns", "uid": "other"}, "spec": {}}
    asyncio.run(controller.sync("ns/every"))
    assert "exists that this schedule did not create" in kube.schedule["status"]["statusReason"]
    assert kube.schedule["status"]["lastScheduleTime"] == format_time(T0)  # the run is used up
    assert events.reasons() == ["FailedCreate"]


def test_a_refused_create_uses_up_the_run_and_a_later_run_clears_the_reason() -> None:
    kube, _view, controller, events, clock = setup(last=datetime(2025, 6, 2, 11, 50, tzinfo=UTC))
    refusal = {"reason": "BadRequest", "message": 'admission webhook denied the request: job queue "q" does not exist'}
    kube.fail_create.append(ApiError(400, refusal, "POST", JOBS))

    async def go() -> None:
        await controller.sync("ns/every")
        reason = kube.schedule["status"]["statusReason"]
        assert reason.startswith("Run of 2025-06-02T12:00:00Z not submitted: job every-")
        assert 'job queue "q" does not exist' in reason
        assert kube.schedule["status"]["lastScheduleTime"] == format_time(T0)
        assert kube.jobs == {}
        clock.now += 60
        await controller.sync("ns/every")

    asyncio.run(go())
    assert "statusReason" not in kube.schedule["status"]
    assert list(kube.jobs) == [run_name("every", datetime(2025, 6, 2, 12, 1, tzinfo=UTC))]
    assert [t for t, _, _ in events.recorded] == ["Warning", "Normal"]


def test_a_passing_failure_is_retried_with_a_backoff() -> None:
    kube, _view, controller, _events, clock = setup(last=datetime(2025, 6, 2, 11, 50, tzinfo=UTC))
    kube.fail_create.append(ApiError(503, "unavailable", "POST", JOBS))

    async def go() -> None:
        await controller.sync("ns/every")
        assert kube.jobs == {} and "lastScheduleTime" in kube.schedule["status"]
        assert kube.schedule["status"]["lastScheduleTime"] == "2025-06-02T11:50:00Z"  # not written
        assert controller.due["ns/every"] == clock.now + RETRY_MIN
        clock.now += RETRY_MIN
        await controller.sync("ns/every")

    asyncio.run(go())
    assert list(kube.jobs) == [run_name("every", T0)]


def test_invalid_schedule_is_reported_in_the_status_and_cleared_when_fixed() -> None:
    kube, view, controller, events, _clock = setup("0 0 30 2 *")

    async def go() -> None:
        await controller.sync("ns/every")
        assert kube.schedule["status"]["statusReason"].startswith("spec.schedule: the schedule never runs")
        assert "ns/every" not in controller.due
        fixed = copy.deepcopy(kube.schedule)
        fixed["spec"]["schedule"] = "@hourly"
        fixed["metadata"]["generation"] = 2
        kube.schedule = fixed
        kube._bump(fixed)
        view.on_schedule("MODIFIED", copy.deepcopy(fixed))
        await controller.sync("ns/every")

    asyncio.run(go())
    assert "statusReason" not in kube.schedule["status"]
    assert kube.schedule["status"]["observedGeneration"] == 2
    assert events.reasons() == ["InvalidSchedule", "SuccessfulCreate"]  # the 12:00 run, due since creation


def test_replace_terminates_the_running_job_then_history_deletes_old_ones() -> None:
    kube, _view, controller, _events, clock = setup(
        last=datetime(2025, 6, 2, 11, 58, tzinfo=UTC), concurrencyPolicy="Replace", successfulJobsHistoryLimit=1
    )

    async def go() -> None:
        clock.now -= 60  # 11:59
        await controller.sync("ns/every")
        clock.now += 60  # 12:00: the 11:59 job still runs
        await controller.sync("ns/every")

    asyncio.run(go())
    first, second = run_name("every", T0.replace(minute=59, hour=11)), run_name("every", T0)
    assert kube.jobs[first]["spec"]["terminate"]["reason"].startswith("Replaced by the run of 2025-06-02T12:00:00Z")
    assert sorted(kube.jobs) == [first, second]
    kube.finish(first, "FAILED", T0)
    kube.finish(second, "SUCCEEDED", T0)
    asyncio.run(controller.sync("ns/every"))
    assert sorted(kube.jobs) == [first, second]  # within the limits (1 of each)
    assert "active" not in kube.schedule["status"]
    assert kube.schedule["status"]["lastSuccessfulTime"] == format_time(T0)


def test_history_limits_delete_the_oldest_jobs() -> None:
    kube, _view, controller, _events, _clock = setup("0 0 1 1 *", last=T0, successfulJobsHistoryLimit=2)
    for i in range(4):
        body = {
            "metadata": {
                "name": f"every-{i}",
                "namespace": "ns",
                "labels": {"kubatch.dev/schedule": "every"},
                "ownerReferences": [{"uid": "sched-uid", "kind": "JobSchedule", "name": "every"}],
            },
            "spec": {},
        }
        asyncio.run(kube.create(JOBS, body))
        kube.finish(f"every-{i}", "SUCCEEDED", T0.replace(minute=i))
    kube.calls.clear()
    asyncio.run(controller.sync("ns/every"))
    assert sorted(kube.jobs) == ["every-2", "every-3"]
    assert [c for c in kube.calls if c[0] == "delete"] == [("delete", "every-0"), ("delete", "every-1")]


def test_the_loop_wakes_at_the_next_run_time_without_any_change() -> None:
    """Real time: "now" is 0.3 s before a minute; the loop must create that minute's job on its own."""
    boundary = T0.timestamp() + 60
    offset = boundary - 0.3 - time.time()
    kube, _view, controller, _events, _clock = setup(last=T0)
    controller.clock = lambda: time.time() + offset

    async def go() -> None:
        controller.ready.set()
        task = asyncio.create_task(controller.run())
        try:
            deadline = time.monotonic() + 10
            while not kube.jobs and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    assert list(kube.jobs) == [run_name("every", datetime(2025, 6, 2, 12, 1, tzinfo=UTC))]
    assert controller.woken <= 3  # a wake-up for the run time (and the echoes), not a polling loop
