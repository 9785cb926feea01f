"""The JobSchedule loop (leader only): submits each schedule's due runs as BatchJobs.

Thin: every decision is ``kubatch.core.schedules.plan``; this module reads the view (the schedules,
and each schedule's BatchJobs through the view's ``kubatch.dev/schedule`` label index), carries out
the plan, and sleeps until the earliest next run time of any schedule or until the view reports a
change to a schedule or to one of its jobs, whichever comes first (no polling).

Order per schedule: terminate the running jobs (concurrencyPolicy Replace), create the run's
BatchJob, write the status (``lastScheduleTime``, ...), delete the jobs beyond the history limits.
The job's name is deterministic, so a run created just before a crash (its status not written)
is found again after the restart, by name, and never submitted twice: a create answered 409 by a
job of this schedule is "already done". A create the API server refuses (an invalid template, a
webhook's rejection) uses up the run: ``status.statusReason`` and a Warning Event say why, and
the next run is tried as usual. A create that fails for a passing reason (the API server
unavailable) is retried with a backoff of up to five minutes.

The clock is injectable (``clock``: epoch seconds), for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.schedules import (
    API_VERSION,
    KIND,
    Plan,
    format_time,
    job_manifest,
    owned_by,
    plan,
    replace_reason,
    runs_of,
    status_patch,
)
from kubatch.observability.events import EventRecorder

log = logging.getLogger(__name__)

JSON = dict[str, Any]
GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
#: Longest sleep without a change: a safety net against a clock jump, not a polling period.
MAX_SLEEP = 3600.0
RETRY_MIN = 5.0
RETRY_MAX = 300.0
REPORTED_MAX = 10_000


def _spec_problem(reason: Any) -> bool:
    """A statusReason about the spec itself (``spec.schedule: ...``), which a valid spec clears."""
    return isinstance(reason, str) and reason.startswith("spec.")


class ScheduleController:
    """Submits the due runs of every JobSchedule while this replica leads."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        events: EventRecorder,
        *,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        synced: asyncio.Event | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.is_leader = is_leader
        self.clock = clock
        self.ready = asyncio.Event()
        # The JobSchedule informer's first list: without it no decision (a schedule not seen yet
        # is not due), and the other loops need not wait for it (an older CRD set has no schedules).
        self.synced = synced
        self.due: dict[str, float] = {}  # schedule key -> when to look at it again (epoch seconds)
        self.failures: dict[str, int] = {}  # schedule key -> transient failures in a row
        self.reported: OrderedDict[str, None] = OrderedDict()  # notes already turned into Events
        self.created = 0
        self.woken = 0

    # ---- the loop ------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.ready.wait()
        if self.synced is not None:
            await self.synced.wait()
        everything = True
        while True:
            self.view.schedules_changed.clear()
            if self.is_leader():
                keys = set(self.view.schedules) if everything else self._due_keys()
                everything = False
                for key in sorted(keys):
                    try:
                        await self.sync(key)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("schedule %s: sync failed", key)
                        self._retry_later(key)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
            # arrives as the event fires, and the loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep()):
                    await self.view.schedules_changed.wait()
            self.woken += 1

    def _due_keys(self) -> set[str]:
        now = self.clock()
        keys = self.view.take_dirty_schedules()
        keys |= {k for k, t in self.due.items() if t <= now}
        return keys

    def _sleep(self) -> float:
        if not self.due:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, min(self.due.values()) - self.clock()))

    def _retry_later(self, key: str) -> None:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        self.due[key] = self.clock() + min(RETRY_MAX, RETRY_MIN * 2 ** (n - 1))

    # ---- one schedule ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """Carry out the plan of one schedule now."""
        obj = self.view.schedules.get(key)
        self.due.pop(key, None)
        if obj is None:
            self.failures.pop(key, None)
            return
        md = obj.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return
        ns, name = key.split("/", 1)
        jobs = [self.view.jobs[k] for k in sorted(self.view.scheduled_jobs.get(key, ())) if k in self.view.jobs]
        now = datetime.fromtimestamp(self.clock(), UTC)
        p = plan(obj, runs_of(obj, jobs), now)
        status = obj.get("status") or {}
        reason: str | None = status.get("statusReason")
        if p.problem is not None:
            reason = p.problem
            self._note(obj, f"invalid/{md.get('generation')}", "InvalidSchedule", p.problem, warning=True)
        elif _spec_problem(reason):
            reason = None
        for note in p.notes:
            self._note(obj, note.key, note.reason, note.message, warning=note.warning)

        if p.create is not None:
            outcome = await self._start(obj, p)
            if outcome is None:  # a passing failure: nothing recorded, tried again later
                return
            reason = outcome or None  # started: the last run's refusal no longer applies
        patch = status_patch(status, p, reason=reason, generation=md.get("generation"))
        if patch is not None:
            await self._write_status(ns, name, obj, patch)
        for job in p.delete:
            await self.kube.delete(f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{job}", propagation="Background")
            self._note(obj, f"deleted/{job}", "SuccessfulDelete", f"Deleted job {job} (history limit)")
        self.failures.pop(key, None)
        if p.next_run is not None:
            self.due[key] = p.next_run.timestamp()

    async def _start(self, obj: Mapping[str, Any], p: Plan) -> str | None:
        """Terminate what Replace replaces and create the run's job. Returns "" when the run is
        started (or was before), a statusReason when the API server refused it (the run is used
        up), None when it should be tried again later."""
        md = obj.get("metadata") or {}
        ns, name = str(md.get("namespace", "")), str(md.get("name", ""))
        key = f"{ns}/{name}"
        assert p.create is not None and p.job_name is not None
        for job in p.terminate:
            try:
                await self.kube.merge_patch(
                    f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{job}",
                    {"spec": {"terminate": {"reason": replace_reason(name, p.create)}}},
                )
            except ApiError as e:
                if e.status != 404:
                    log.warning("schedule %s: cannot terminate %s for concurrencyPolicy Replace: %s", key, job, e)
                    self._retry_later(key)
                    return None
            self._note(obj, f"replaced/{job}", "JobReplaced", f"Terminated job {job}: concurrencyPolicy is Replace")
        manifest = job_manifest(obj, p.create)
        when = format_time(p.create)
        try:
            created = await self.kube.create(f"{GROUP_PATH}/namespaces/{ns}/batchjobs", manifest)
        except ApiError as e:
            if e.status == 409:
                return await self._exists(obj, p)
            if e.namespace_terminating:
                return None
            if e.status == 0 or e.status == 429 or e.status >= 500:
                log.warning("schedule %s: creating job %s failed, will retry: %s", key, p.job_name, e)
                self._retry_later(key)
                return None
            message = e.body.get("message") if isinstance(e.body, dict) else None
            reason = f"Run of {when} not submitted: job {p.job_name}: {message or e}"
            self._note(obj, f"failed/{p.job_name}", "FailedCreate", reason, warning=True)
            return reason[:2048]
        self.created += 1
        self.view.put_job(created)
        self._note(obj, f"created/{p.job_name}", "SuccessfulCreate", f"Created job {p.job_name} for the run of {when}")
        return ""

    async def _exists(self, obj: Mapping[str, Any], p: Plan) -> str | None:
        """The run's job name is taken: ours (the run was started before) or someone else's."""
        md = obj.get("metadata") or {}
        ns = str(md.get("namespace", ""))
        try:
            job = await self.kube.get(f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{p.job_name}")
        except ApiError as e:
            if e.status == 404:  # deleted meanwhile: the next pass creates it
                self._retry_later(f"{ns}/{md.get('name')}")
                return None
            raise
        if owned_by(job, obj):
            return ""
        when = format_time(p.create) if p.create else ""
        reason = f"Run of {when} not submitted: a BatchJob named {p.job_name} exists that this schedule did not create"
        self._note(obj, f"failed/{p.job_name}", "FailedCreate", reason, warning=True)
        return reason

    async def _write_status(self, ns: str, name: str, obj: Mapping[str, Any], patch: JSON) -> None:
        path = f"{GROUP_PATH}/namespaces/{ns}/jobschedules/{name}/status"
        uid = (obj.get("metadata") or {}).get("uid")
        try:
            written = await self.kube.merge_patch(path, {"metadata": {"uid": uid}, "status": patch})
        except ApiError as e:
            if e.status in (404, 409):  # deleted, or replaced by a new object of the same name
                return
            raise
        self.view.on_schedule("MODIFIED", written)

    def _note(self, obj: Mapping[str, Any], key: str, reason: str, message: str, *, warning: bool = False) -> None:
        """Record an Event once per schedule and ``key`` (per process)."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        full = f"{uid}/{key}"
        if full in self.reported:
            return
        self.reported[full] = None
        while len(self.reported) > REPORTED_MAX:
            self.reported.popitem(last=False)
        self.events.record(
            {**obj, "apiVersion": API_VERSION, "kind": KIND}, reason, message, type_="Warning" if warning else "Normal"
        )
