"""JobSchedule (namespaced, short name `js`): submits a BatchJob on a cron schedule, as an EventBridge
Scheduler schedule (or an EventBridge schedule rule) with a Batch job queue target does, run the way
a Kubernetes CronJob runs its Jobs: `concurrencyPolicy`, `startingDeadlineSeconds`, `suspend` and
history limits. The job template is a BatchJob spec without the stop fields (`cancel`, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.config import JsonDict

from kubatch.api.batch_job import _CHILD_STOP_FIELDS, _SPEC_RULES, _STOP_FIELDS, BatchJobSpec
from kubatch.api.common import (
    AnnotationValue,
    KubatchModel,
    LabelValue,
    _no_reserved_keys,
    cel,
    validations,
)
from kubatch.api.constants import API_VERSION, JOB_SCHEDULE

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
#: The CRD checks the shape (five fields or a macro); the webhook and the controller parse it.
SCHEDULE_SHAPE = "^[ \\t]*(@[A-Za-z]+|[^ \\t]+([ \\t]+[^ \\t]+){4})[ \\t]*$"
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
#: Room for `-<unix minutes>` in the names of the schedule's BatchJobs (at most 63 characters).
MAX_NAME_LENGTH = 52
_REMOVED = frozenset((*_STOP_FIELDS, *_CHILD_STOP_FIELDS))


class JobTemplateMetadata(KubatchModel):
    """Labels and annotations of each BatchJob the schedule submits."""

    labels: (
        Annotated[
            dict[str, LabelValue],
            Field(max_length=64, json_schema_extra=validations(_no_reserved_keys("labels"))),
        ]
        | None
    ) = None
    """Labels of the BatchJob (kubatch adds `kubatch.dev/schedule=<schedule name>`). Keys under
    kubatch.dev/, kubernetes.io/ and k8s.io/ are reserved."""
    annotations: (
        Annotated[
            dict[str, AnnotationValue],
            Field(max_length=64, json_schema_extra=validations(_no_reserved_keys("annotations"))),
        ]
        | None
    ) = None
    """Annotations of the BatchJob (kubatch adds `kubatch.dev/scheduled-at`). Keys under kubatch.dev/,
    kubernetes.io/ and k8s.io/ are reserved."""


def _template_schema_extra(schema: JsonDict, cls: type[BaseModel]) -> None:
    """A BatchJob spec's schema without the stop fields and the immutability rules (a template can
    be edited; the jobs already submitted keep their spec)."""
    properties = schema.get("properties")
    assert isinstance(properties, dict)
    for name in _REMOVED:
        properties.pop(name, None)
    rules: list[JsonValue] = [
        rule for rule in _SPEC_RULES if not any(f".{name}" == rule.get("fieldPath") for name in _REMOVED)
    ]
    rules.append(
        cel(
            "!has(self.serviceJobType)",
            "spec.jobTemplate.spec.serviceJobType: a JobSchedule submits jobs of a job definition, not service jobs",
            field_path=".serviceJobType",
        )
    )
    schema["x-kubernetes-validations"] = rules


class BatchJobTemplateSpec(BatchJobSpec):
    """The spec of each BatchJob the schedule submits: a BatchJob spec (AWS Batch SubmitJob's
    parameters: jobQueue, jobDefinition, parameters, arrayProperties, overrides, retryStrategy,
    timeout, ...), without cancel, terminate, cancelChildren and terminateChildren."""

    model_config = ConfigDict(json_schema_extra=_template_schema_extra)


class JobTemplate(KubatchModel):
    """The BatchJob each run submits."""

    metadata: JobTemplateMetadata | None = None
    """Labels and annotations of the BatchJob."""
    spec: BatchJobTemplateSpec
    """The BatchJob's spec."""


class JobScheduleSpec(KubatchModel):
    """When to submit which BatchJob."""

    schedule: Annotated[
        str,
        StringConstraints(min_length=1, max_length=256),
        Field(
            json_schema_extra=validations(
                cel(
                    f"self.matches('{SCHEDULE_SHAPE}')",
                    "spec.schedule: expected five fields (minute hour day-of-month month day-of-week), "
                    "such as '0 3 * * *', or a macro such as @daily",
                )
            )
        ),
    ]
    """A cron schedule as Kubernetes CronJob takes it: five fields, `minute hour day-of-month month
    day-of-week` (`*`, `N`, `N-M`, lists `a,b`, steps `*/15`, names JAN-DEC and SUN-SAT), or one of
    @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly. `0 3 * * *` = every day at 03:00."""
    timeZone: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TIME_ZONE_PATTERN)] | None = None
    """The IANA time zone the schedule is read in, e.g. `Europe/Paris`; unset = UTC."""
    concurrencyPolicy: ConcurrencyPolicy = "Allow"
    """What to do when a run is due while a job of an earlier run is not finished: Allow (submit it
    too), Forbid (skip it while the earlier job runs; it is submitted when that job finishes, if
    still within startingDeadlineSeconds), Replace (terminate the earlier jobs and submit it)."""
    startingDeadlineSeconds: Annotated[int, Field(ge=0)] | None = None
    """A run that cannot be submitted within this many seconds of its time (the operator was down,
    or Forbid held it) is skipped. Unset: a late run is still submitted; either way, after an outage
    only the latest missed run is submitted."""
    suspend: bool = False
    """true: submit no new runs (jobs already submitted go on)."""
    successfulJobsHistoryLimit: Annotated[int, Field(ge=0, le=1000)] = 3
    """How many SUCCEEDED BatchJobs of the schedule to keep; older ones are deleted."""
    failedJobsHistoryLimit: Annotated[int, Field(ge=0, le=1000)] = 1
    """How many FAILED BatchJobs of the schedule to keep; older ones are deleted."""
    jobTemplate: JobTemplate
    """The BatchJob each run submits, named `<schedule name>-<scheduled time in minutes since the epoch>`."""


class JobScheduleStatus(KubatchModel):
    """The schedule's runs, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    lastScheduleTime: datetime | None = None
    """The scheduled time of the latest run submitted."""
    lastSuccessfulTime: datetime | None = None
    """When the latest job of the schedule that SUCCEEDED stopped."""
    active: Annotated[list[Annotated[str, StringConstraints(max_length=63)]], Field(max_length=1000)] | None = None
    """The schedule's BatchJobs that are not finished (SUCCEEDED or FAILED)."""
    statusReason: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """Why the schedule does not run as written: an invalid schedule or time zone, or a run whose
    BatchJob the API server refused (the next runs are tried again). Unset when all is well."""


class JobSchedule(KubatchModel):
    """Submits a BatchJob on a cron schedule, as an EventBridge Scheduler schedule with a Batch job
    queue target does, and in the way of a Kubernetes CronJob (concurrency policy, starting deadline,
    suspend, history limits). Each run's BatchJob is named after the schedule and the run's time, is
    labelled `kubatch.dev/schedule=<name>` and is deleted with the schedule."""

    apiVersion: str = API_VERSION
    kind: str = JOB_SCHEDULE.kind
    metadata: dict[str, Any] = {}
    spec: JobScheduleSpec
    status: JobScheduleStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
    {"name": "Last-Schedule", "type": "date", "jsonPath": ".status.lastScheduleTime"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Time-Zone", "type": "string", "jsonPath": ".spec.timeZone", "priority": 1},
    {"name": "Concurrency", "type": "string", "jsonPath": ".spec.concurrencyPolicy", "priority": 1},
    {"name": "Queue", "type": "string", "jsonPath": ".spec.jobTemplate.spec.jobQueue", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": ".status.statusReason", "priority": 1},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    cel(
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters (its BatchJobs are named "
        "<name>-<minutes since the epoch>, at most 63 characters)",
    ),
]
