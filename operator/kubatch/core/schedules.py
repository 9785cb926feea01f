"""JobSchedule decisions (the schedules of EventBridge Scheduler, as Kubernetes CronJob runs them). Pure.

Owns: reading a JobSchedule's spec (``read_spec``: the parsed cron and time zone, the policies), the
admission rule (``validate_job_schedule``), the name and manifest of the BatchJob of one run
(``run_name``, ``job_manifest``: deterministic, so that creating it twice is a 409, never a second
run), the BatchJobs of a schedule as ``Run``s, and ``plan``: given the schedule, its runs and the
time, what to do now:

- which run is due: the latest scheduled time in (``lastScheduleTime`` or the creation time, now];
  with ``startingDeadlineSeconds`` only runs at most that late count. After an outage at most one
  missed run is started (the latest), as CronJob does; older ones are dropped;
- concurrency: ``Allow`` starts it beside running jobs; ``Forbid`` leaves it pending while a job
  of the schedule is not finished (it starts when that job finishes, if still within the starting
  deadline); ``Replace`` terminates the running jobs and starts it;
- history: finished jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` (the
  oldest first, by when they stopped) are deleted;
- the status (``lastScheduleTime``, ``lastSuccessfulTime``, ``active``) and when the schedule is
  due next (the caller sleeps until then).

A job that already exists under the due run's name means the run was started before (a restart
between creating the job and writing the status): the run counts as done.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from kubatch.core.admission import Violation
from kubatch.core.cron import Cron, CronError, parse, parse_time_zone

JSON = Mapping[str, Any]
ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
CONCURRENCY_POLICIES: tuple[str, ...] = ("Allow", "Forbid", "Replace")

API_VERSION = "kubatch.dev/v1alpha1"
KIND = "JobSchedule"
LABEL_SCHEDULE = "kubatch.dev/schedule"
ANNOTATION_SCHEDULED_AT = "kubatch.dev/scheduled-at"
DEFAULT_SUCCESSFUL_HISTORY = 3
DEFAULT_FAILED_HISTORY = 1
#: A schedule's name leaves room for ``-<unix minutes>`` in its jobs' names (63 characters).
MAX_NAME_LENGTH = 52
FINISHED = frozenset({"SUCCEEDED", "FAILED"})


@dataclass(frozen=True)
class ScheduleSpec:
    """The parts of a JobSchedule's spec the decisions read."""

    cron: Cron
    tz: tzinfo
    concurrency: str = "Allow"
    starting_deadline: int | None = None
    suspend: bool = False
    successful_limit: int = DEFAULT_SUCCESSFUL_HISTORY
    failed_limit: int = DEFAULT_FAILED_HISTORY


def read_spec(spec: JSON) -> ScheduleSpec:
    """The spec's schedule and policies; ``CronError`` for a schedule or time zone that cannot be used."""
    schedule = spec.get("schedule")
    try:
        cron = parse(schedule if isinstance(schedule, str) else "")
    except CronError as e:
        raise CronError(f"spec.schedule: {e}") from None
    try:
        tz = parse_time_zone(spec.get("timeZone") or None)
    except CronError as e:
        raise CronError(f"spec.timeZone: {e}") from None
    deadline = spec.get("startingDeadlineSeconds")
    return ScheduleSpec(
        cron=cron,
        tz=tz,
        concurrency=str(spec.get("concurrencyPolicy") or "Allow"),
        starting_deadline=int(deadline) if isinstance(deadline, int) else None,
        suspend=bool(spec.get("suspend")),
        successful_limit=_limit(spec.get("successfulJobsHistoryLimit"), DEFAULT_SUCCESSFUL_HISTORY),
        failed_limit=_limit(spec.get("failedJobsHistoryLimit"), DEFAULT_FAILED_HISTORY),
    )


def _limit(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default


def validate_job_schedule(obj: JSON) -> list[Violation]:
    """The admission rule: the schedule parses and can run, and the time zone exists (the CRD checks
    the rest)."""
    out: list[Violation] = []
    raw = obj.get("spec")
    spec: JSON = raw if isinstance(raw, Mapping) else {}
    schedule = spec.get("schedule")
    try:
        parse(schedule if isinstance(schedule, str) else "")
    except CronError as e:
        out.append(Violation("spec.schedule", str(e)))
    try:
        parse_time_zone(spec.get("timeZone") or None)
    except CronError as e:
        out.append(Violation("spec.timeZone", str(e)))
    return out


# ---- the jobs of a schedule ---------------------------------------------------------------------------
def run_name(schedule: str, scheduled_at: datetime) -> str:
    """The BatchJob name of the run at ``scheduled_at``: ``<schedule>-<minutes since the epoch>``."""
    return f"{schedule}-{int(scheduled_at.timestamp()) // 60}"


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as written by the API server (or kubatch), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def owner_reference(schedule: JSON) -> dict[str, Any]:
    md = schedule.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": md.get("name"),
        "uid": md.get("uid"),
        "controller": True,
    }


def job_manifest(schedule: JSON, scheduled_at: datetime) -> dict[str, Any]:
    """The BatchJob of the run at ``scheduled_at``: the template's spec, its labels and annotations,
    the schedule's label and the scheduled time, owned by the schedule (deleted with it)."""
    md = schedule.get("metadata") or {}
    template = (schedule.get("spec") or {}).get("jobTemplate") or {}
    template_md = template.get("metadata") or {}
    name = str(md.get("name", ""))
    metadata: dict[str, Any] = {
        "name": run_name(name, scheduled_at),
        "namespace": md.get("namespace"),
        "labels": {**(template_md.get("labels") or {}), LABEL_SCHEDULE: name},
        "annotations": {**(template_md.get("annotations") or {}), ANNOTATION_SCHEDULED_AT: format_time(scheduled_at)},
        "ownerReferences": [owner_reference(schedule)],
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": metadata,
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


@dataclass(frozen=True)
class Run:
    """One BatchJob of a schedule."""

    name: str
    status: str | None = None
    created: datetime | None = None
    stopped: datetime | None = None
    terminating: bool = False  # spec.terminate is set

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def ended(self) -> datetime:
        """When it stopped (its creation, for a job without stoppedAt), for the history order."""
        return self.stopped or self.created or datetime.min.replace(tzinfo=UTC)


def owned_by(job: JSON, schedule: JSON) -> bool:
    """Whether the schedule created ``job`` (its ownerReference names the schedule's uid)."""
    uid = (schedule.get("metadata") or {}).get("uid")
    refs = (job.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def as_run(job: JSON) -> Run:
    md, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    return Run(
        name=str(md.get("name", "")),
        status=status.get("status"),
        created=parse_time(md.get("creationTimestamp")),
        stopped=parse_time(status.get("stoppedAt")),
        terminating=bool(spec.get("terminate")),
    )


def runs_of(schedule: JSON, jobs: Iterable[JSON]) -> list[Run]:
    """The runs among ``jobs`` that ``schedule`` created."""
    return [as_run(j) for j in jobs if owned_by(j, schedule)]


def prune(runs: Iterable[Run], successful_limit: int, failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits, oldest first."""
    out: list[str] = []
    for state, limit in (("SUCCEEDED", successful_limit), ("FAILED", failed_limit)):
        done = sorted((r for r in runs if r.status == state), key=lambda r: (r.ended, r.name), reverse=True)
        out += [r.name for r in reversed(done[limit:])]
    return out


# ---- the decision ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """Something worth an Event; ``key`` identifies it so that it is reported once."""

    key: str
    reason: str
    message: str
    warning: bool = False


@dataclass
class Plan:
    """What to do for one schedule now."""

    create: datetime | None = None  # the scheduled time of the run to start now
    job_name: str | None = None
    terminate: list[str] = field(default_factory=list)  # Replace: running jobs to terminate first
    delete: list[str] = field(default_factory=list)  # history beyond the limits
    last_schedule_time: datetime | None = None
    last_successful_time: datetime | None = None
    active: list[str] = field(default_factory=list)
    next_run: datetime | None = None  # when the schedule is due next (None: suspended or invalid)
    notes: list[Note] = field(default_factory=list)
    problem: str | None = None  # the spec cannot be used (invalid schedule or time zone)


def plan(schedule: JSON, runs: Iterable[Run], now: datetime) -> Plan:
    """The decision for ``schedule`` (a JobSchedule as the API has it) with its ``runs`` at ``now``."""
    md, status = schedule.get("metadata") or {}, schedule.get("status") or {}
    name = str(md.get("name", ""))
    runs = list(runs)
    by_name = {r.name: r for r in runs}
    last_schedule = parse_time(status.get("lastScheduleTime"))
    successes = [r.stopped for r in runs if r.status == "SUCCEEDED" and r.stopped is not None]
    recorded_success = parse_time(status.get("lastSuccessfulTime"))
    out = Plan(
        last_schedule_time=last_schedule,
        last_successful_time=max([*successes, *([recorded_success] if recorded_success else [])], default=None),
        active=sorted(r.name for r in runs if not r.finished),
    )
    try:
        spec = read_spec(schedule.get("spec") or {})
    except CronError as e:
        out.problem = str(e)
        return out
    out.delete = prune(runs, spec.successful_limit, spec.failed_limit)
    if spec.suspend:
        return out
    out.next_run = spec.cron.next_after(now, spec.tz)
    created = parse_time(md.get("creationTimestamp")) or now
    since = last_schedule or created
    earliest = since
    if spec.starting_deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=spec.starting_deadline))
    due = spec.cron.last_at_or_before(now, spec.tz)
    if due is None or due <= earliest:
        missed = due if due is not None and due > since else None
        if missed is not None:
            out.notes.append(
                Note(
                    f"missed/{int(missed.timestamp())}",
                    "MissedSchedule",
                    f"Missed the run of {format_time(missed)}: it is more than startingDeadlineSeconds "
                    f"({spec.starting_deadline}s) late",
                    warning=True,
                )
            )
        return out
    job = run_name(name, due)
    if job in by_name:
        out.last_schedule_time = due  # started before (the status write was lost)
        return out
    running = [r for r in runs if not r.finished]
    if spec.concurrency == "Forbid" and running:
        out.notes.append(
            Note(
                f"forbid/{int(due.timestamp())}",
                "JobAlreadyActive",
                f"Not starting the run of {format_time(due)}: concurrencyPolicy is Forbid and "
                f"{', '.join(sorted(r.name for r in running))} is still running",
            )
        )
        return out
    if spec.concurrency == "Replace":
        out.terminate = sorted(r.name for r in running if not r.terminating)
    out.create = due
    out.job_name = job
    out.last_schedule_time = due
    out.active = sorted({*out.active, job})
    return out


def replace_reason(schedule: str, scheduled_at: datetime) -> str:
    """The statusReason of a job terminated by concurrencyPolicy Replace."""
    return f"Replaced by the run of {format_time(scheduled_at)} of JobSchedule {schedule} (concurrencyPolicy Replace)"


def status_patch(current: JSON, p: Plan, *, reason: str | None, generation: int | None) -> dict[str, Any] | None:
    """The merge patch of the schedule's status that records ``p`` (None: nothing changed). A field
    that should be absent is set to None (a merge patch deletes it)."""
    want: dict[str, Any] = {
        "lastScheduleTime": format_time(p.last_schedule_time) if p.last_schedule_time else None,
        "lastSuccessfulTime": format_time(p.last_successful_time) if p.last_successful_time else None,
        "active": p.active or None,
        "statusReason": reason or None,
        "observedGeneration": generation,
    }
    patch = {k: v for k, v in want.items() if current.get(k) != v}
    return patch or None
