"""JobQueue (cluster-scoped, short name `jq`): where jobs wait, as an AWS Batch job queue. A queue of
jobQueueType EKS (the default) feeds 1 to 3 compute environments in order; queues sharing an
environment are served by priority. A service job queue (jobQueueType KUBERNETES_JOB) feeds exactly
one ServiceEnvironment of that type instead. With a schedulingPolicy the queue is fair-share,
otherwise FIFO."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubatch.api.common import (
    DnsLabel,
    DnsSubdomain,
    KubatchModel,
    LabelSelector,
    Tags,
    cel,
    list_map,
    model_rules,
)
from kubatch.api.constants import API_VERSION, JOB_QUEUE
from kubatch.api.service_environment import CapacityUnit as CapacityUnitName

State = Literal["ENABLED", "DISABLED"]
ResourceStatus = Literal["CREATING", "UPDATING", "DELETING", "DELETED", "VALID", "INVALID"]
JobStateTimeLimitReason = Literal[
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE",
]
#: The jobQueueType of a queue of compute environments: AWS's name for queues whose jobs are
#: Kubernetes pods (ECS and ECS_FARGATE have no counterpart in kubatch).
COMPUTE_QUEUE_TYPE = "EKS"
#: jobQueueType: EKS, or the serviceEnvironmentType of the queue's service environment (AWS's
#: convention: a SageMaker queue is SAGEMAKER_TRAINING, as its service environment).
JobQueueType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]


class ComputeEnvironmentOrder(KubatchModel):
    """A compute environment of the queue. Environments are tried in ascending order."""

    order: Annotated[int, Field(ge=0)]
    """Position; lower is tried first. Orders are unique within a queue."""
    computeEnvironment: DnsLabel
    """The ComputeEnvironment's name."""


class ServiceEnvironmentOrder(KubatchModel):
    """The service environment of a service job queue (AWS allows exactly one)."""

    order: Annotated[int, Field(ge=0)]
    """Position (one environment: any value)."""
    serviceEnvironment: DnsLabel
    """The ServiceEnvironment's name."""


class JobStateTimeLimitAction(KubatchModel):
    """Cancel the job at the head of the queue when it has been RUNNABLE with the given blocking
    reason for longer than maxTimeSeconds. Its statusReason becomes
    `Canceled by JobStateTimeLimit action due to reason: <reason>`."""

    reason: JobStateTimeLimitReason
    """The blocking reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY,
    MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE or MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT
    (EKS queues); CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY or
    MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE (service job queues)."""
    state: Literal["RUNNABLE"] = "RUNNABLE"
    """The state watched; only RUNNABLE."""
    maxTimeSeconds: Annotated[int, Field(ge=600, le=86400)]
    """Seconds in that state before the action (600 to 86400)."""
    action: Literal["CANCEL"] = "CANCEL"
    """What is done; only CANCEL."""


QUOTA_SHARE_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$"
QuotaShareName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=QUOTA_SHARE_NAME_PATTERN)]
#: At most this many quota shares per queue (AWS's fixed quota).
MAX_QUOTA_SHARES = 20


class QuotaShareCapacityLimit(KubatchModel):
    """The capacity of one unit a quota share owns."""

    capacityUnit: CapacityUnitName
    """NUM_INSTANCES or an instance type (e.g. `m5.large`), as in the service environment's
    capacityLimits: a service job counts against the instance type its Job's pod template selects
    (nodeSelector `node.kubernetes.io/instance-type`), else against NUM_INSTANCES."""
    maxCapacity: Annotated[int, Field(ge=0, le=1_000_000)]
    """The instances of this unit the share's own SCHEDULED, STARTING and RUNNING jobs may hold.
    Lowered below what the share holds, its running jobs are preempted until it fits (lowest
    priority first)."""


class ResourceSharingConfiguration(KubatchModel):
    """Whether a quota share lends its idle capacity and borrows others' (AWS
    QuotaShareResourceSharingConfiguration)."""

    model_config = model_rules(
        cel(
            "self.strategy == 'LEND_AND_BORROW' || !has(self.borrowLimit)",
            "spec.quotaShares[].resourceSharingConfiguration.borrowLimit: only a LEND_AND_BORROW share borrows",
            field_path=".borrowLimit",
        ),
    )

    strategy: Literal["RESERVE", "LEND", "LEND_AND_BORROW"] = "RESERVE"
    """RESERVE: idle capacity is kept for the share's own jobs (never lent). LEND: other shares may
    use it while the share does not; it is taken back (cross-share preemption) when the share's own
    jobs need it. LEND_AND_BORROW: lends, and its jobs may also borrow other shares' idle capacity."""
    borrowLimit: Annotated[int, Field(ge=0, le=10000)] | None = None
    """LEND_AND_BORROW: the most the share borrows, in percent of its own maxCapacity per unit
    (100: as much again as it owns). Unset: 100."""


class QuotaSharePreemptionConfiguration(KubatchModel):
    """Preemption inside a quota share."""

    inSharePreemption: Literal["ENABLED", "DISABLED"] = "DISABLED"
    """ENABLED: a RUNNABLE job of the share that does not fit preempts running jobs of the same share
    with a lower schedulingPriority (never an equal or higher one). DISABLED: it waits."""


class QuotaShare(KubatchModel):
    """A quota share: a virtual queue inside a quota-managed service job queue (AWS CreateQuotaShare),
    with capacity of its own, which it may lend and borrow."""

    quotaShareName: QuotaShareName
    """Its name, unique within the queue (jobs name it in spec.quotaShareName)."""
    capacityLimits: Annotated[
        list[QuotaShareCapacityLimit],
        Field(min_length=1, max_length=5, json_schema_extra=list_map("capacityUnit")),
    ]
    """1 to 5 limits, one per capacity unit."""
    resourceSharingConfiguration: ResourceSharingConfiguration | None = None
    """RESERVE (unset: RESERVE), LEND or LEND_AND_BORROW with a borrowLimit."""
    preemptionConfiguration: QuotaSharePreemptionConfiguration | None = None
    """In-share preemption (unset: DISABLED)."""


class JobQueueSpec(KubatchModel):
    """A job queue."""

    model_config = model_rules(
        cel(
            "!has(self.computeEnvironmentOrder) || self.computeEnvironmentOrder.all(a, "
            "self.computeEnvironmentOrder.exists_one(b, b.computeEnvironment == a.computeEnvironment))",
            "spec.computeEnvironmentOrder: each compute environment may appear only once",
            field_path=".computeEnvironmentOrder",
        ),
        cel(
            "!(has(self.serviceEnvironmentOrder) && has(self.computeEnvironmentOrder) && "
            "self.computeEnvironmentOrder.size() > 0)",
            "spec: a job queue takes computeEnvironmentOrder (jobQueueType EKS) or serviceEnvironmentOrder "
            "(a service job queue), not both",
            field_path=".serviceEnvironmentOrder",
        ),
        cel(
            f"self.jobQueueType != '{COMPUTE_QUEUE_TYPE}' || "
            "(has(self.computeEnvironmentOrder) && self.computeEnvironmentOrder.size() > 0)",
            "spec.computeEnvironmentOrder: 1 to 3 compute environments are required for jobQueueType EKS",
            field_path=".computeEnvironmentOrder",
        ),
        cel(
            f"self.jobQueueType == '{COMPUTE_QUEUE_TYPE}' || has(self.serviceEnvironmentOrder)",
            "spec.serviceEnvironmentOrder: a service job queue (jobQueueType other than EKS) needs exactly "
            "one service environment",
            field_path=".serviceEnvironmentOrder",
        ),
        cel(
            "!(self.jobQueueType in ['ECS', 'ECS_FARGATE', 'FARGATE'])",
            "spec.jobQueueType: kubatch has no ECS or Fargate queues: jobs run as Kubernetes pods (EKS), "
            "service jobs on a service environment (e.g. KUBERNETES_JOB)",
            field_path=".jobQueueType",
        ),
        cel(
            "self.jobQueueType == oldSelf.jobQueueType",
            "spec.jobQueueType is immutable",
            field_path=".jobQueueType",
        ),
        cel(
            f"!has(self.jobStateTimeLimitActions) || (self.jobQueueType == '{COMPUTE_QUEUE_TYPE}' ? "
            "self.jobStateTimeLimitActions.all(a, a.reason != 'MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE') : "
            "self.jobStateTimeLimitActions.all(a, a.reason == 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY' || "
            "a.reason == 'MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE'))",
            "spec.jobStateTimeLimitActions: reason MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE applies to "
            "service job queues only, which take CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY and it",
            field_path=".jobStateTimeLimitActions",
        ),
        cel(
            f"!has(self.quotaShares) || self.quotaShares.size() == 0 || self.jobQueueType != '{COMPUTE_QUEUE_TYPE}'",
            "spec.quotaShares: quota shares are for service job queues (jobQueueType other than EKS)",
            field_path=".quotaShares",
        ),
        cel(
            "has(self.schedulingPolicy) == has(oldSelf.schedulingPolicy)",
            "spec.schedulingPolicy cannot be added to or removed from an existing queue (a FIFO queue stays "
            "FIFO; a fair-share queue's policy can only be replaced)",
            field_path=".schedulingPolicy",
        ),
    )

    priority: Annotated[int, Field(ge=0, le=2147483647)]
    """Queues sharing a compute environment are served by priority, higher first."""
    state: State = "ENABLED"
    """ENABLED: accepts and runs jobs. DISABLED: rejects new jobs; queued ones still run."""
    jobQueueType: JobQueueType = COMPUTE_QUEUE_TYPE
    """EKS (the default): the queue's jobs run as pods on its compute environments. A service job
    queue has the type of its service environment (`KUBERNETES_JOB`): its jobs are service jobs (a
    workload such as a `batch/v1` Job, run by its own controller). Immutable."""
    computeEnvironmentOrder: (
        Annotated[list[ComputeEnvironmentOrder], Field(min_length=0, max_length=3, json_schema_extra=list_map("order"))]
        | None
    ) = None
    """jobQueueType EKS: 1 to 3 compute environments, tried in ascending order. A service job queue
    has none (unset or empty, as AWS shows it)."""
    serviceEnvironmentOrder: (
        Annotated[list[ServiceEnvironmentOrder], Field(min_length=1, max_length=1, json_schema_extra=list_map("order"))]
        | None
    ) = None
    """Service job queues: exactly one ServiceEnvironment, of the queue's jobQueueType."""
    schedulingPolicy: DnsSubdomain | None = None
    """A SchedulingPolicy: makes the queue fair-share (jobs then need a shareIdentifier). Without it the
    queue is FIFO. It can be replaced later but not added or removed."""
    jobStateTimeLimitActions: (
        Annotated[list[JobStateTimeLimitAction], Field(max_length=3, json_schema_extra=list_map("reason"))] | None
    ) = None
    """Cancel blocked jobs at the head of the queue after a time; one action per reason."""
    quotaShares: (
        Annotated[
            list[QuotaShare],
            Field(max_length=MAX_QUOTA_SHARES, json_schema_extra=list_map("quotaShareName")),
        ]
        | None
    ) = None
    """Service job queues whose schedulingPolicy has a quotaSharePolicy: up to 20 quota shares
    (AWS CreateQuotaShare / UpdateQuotaShare / DeleteQuotaShare are edits of this list). Every job of
    such a queue names one in spec.quotaShareName. Changes apply at once: a lowered maxCapacity
    preempts the share's running jobs down to it."""
    namespaceSelector: LabelSelector | None = None
    """Namespaces whose BatchJobs may use this queue; unset = all namespaces."""
    allowPrivileged: bool = False
    """Allow jobs with privileged containers (the compute environment must allow them too)."""
    allowHostNetwork: bool = False
    """Allow jobs using the node's network (the compute environment must allow it too)."""
    allowHostPath: bool = False
    """Allow jobs with host path volumes or devices (the compute environment must allow them too)."""
    tags: Tags | None = None
    """Tags of the queue."""


class JobCounts(KubatchModel):
    """Jobs of the queue per state (array children counted one by one)."""

    SUBMITTED: Annotated[int, Field(ge=0)] = 0
    PENDING: Annotated[int, Field(ge=0)] = 0
    RUNNABLE: Annotated[int, Field(ge=0)] = 0
    SCHEDULED: Annotated[int, Field(ge=0)] = 0
    """Service jobs handed to their service (service job queues)."""
    STARTING: Annotated[int, Field(ge=0)] = 0
    RUNNING: Annotated[int, Field(ge=0)] = 0
    SUCCEEDED: Annotated[int, Field(ge=0)] = 0
    FAILED: Annotated[int, Field(ge=0)] = 0


class FrontOfQueueJob(KubatchModel):
    """A RUNNABLE job near the head of the queue."""

    namespace: str
    """The BatchJob's namespace."""
    name: str
    """The BatchJob's name, with `:index` for an array child."""
    jobId: str | None = None
    """Its jobId."""
    shareIdentifier: str | None = None
    """Its share (fair-share queues)."""
    earliestTimeAtPosition: datetime | None = None
    """When the job moved to its current position (AWS GetJobQueueSnapshot's field): kept while the
    job stays at this position, also across operator restarts (it is carried over from this status),
    set anew when it moves (a job ahead of it started or left, or another job went ahead of it). The
    front is looked at every 2 seconds, so this is the first time it was seen there."""
    estimatedStartAt: datetime | None = None
    """When the job is expected to start, if nothing else is submitted (kubatch's addition: the
    scheduler's plan simulated forward with run times learned per job definition; concepts.md,
    "When will my job start?"). Unset when the job cannot start as things are (e.g. a head that
    can never be placed, or a job behind it)."""
    position: Annotated[int, Field(ge=1)] | None = None
    """1 for the head of the queue."""
    queuedAt: datetime | None = None
    """When the job became RUNNABLE."""
    statusReason: str | None = None
    """Why the head of the queue waits (only on the head)."""


class ShareUsage(KubatchModel):
    """Usage of one share of a fair-share queue."""

    shareIdentifier: str
    """The share."""
    usage: Annotated[float, Field(ge=0)] = 0
    """Decayed vCPU-seconds; the share with the lowest usage times weightFactor is served first."""
    weightFactor: float | None = None
    """The effective weight factor: the policy's for the share, a `prefix*` entry's times the number
    of active shares it matches, 1 for a share the policy does not name."""
    runningvCpus: Annotated[float, Field(ge=0)] | None = None
    """vCPUs of the share's STARTING and RUNNING jobs."""
    activeJobs: Annotated[int, Field(ge=0)] | None = None
    """The share's jobs that are not finished."""


class CapacityUsage(KubatchModel):
    """An amount of capacity in use, as AWS's capacityUsage items."""

    capacityUnit: CapacityUnitName
    """vCPU (AWS's unit for compute jobs), MiB (memory) or GPU; NUM_INSTANCES or an instance type
    for service jobs."""
    quantity: Annotated[float, Field(ge=0)]
    """How much: vCPUs (fractions allowed), MiB of memory, whole GPUs or instances."""


class ShareCapacityUsage(KubatchModel):
    """Capacity held by one share's STARTING and RUNNING jobs."""

    shareIdentifier: str
    """The share."""
    capacityUsage: Annotated[list[CapacityUsage], Field(max_length=3)]
    """vCPU, MiB and GPU in use."""


class ComputeEnvironmentCapacityUsage(KubatchModel):
    """Capacity the queue's STARTING and RUNNING jobs hold in one compute environment."""

    computeEnvironment: str
    """The compute environment."""
    capacityUsage: Annotated[list[CapacityUsage], Field(max_length=3)]
    """vCPU, MiB and GPU in use."""


class FairshareUtilization(KubatchModel):
    """Fair-share figures of the queue (AWS's queueUtilization.fairshareUtilization)."""

    activeShareCount: Annotated[int, Field(ge=0)] = 0
    """Active share identifiers: those with a SUBMITTED, PENDING, RUNNABLE, STARTING or RUNNING job,
    or that held vCPUs within the policy's shareDecaySeconds (AWS's definition; the n of
    computeReservation's (computeReservation/100)^n)."""
    topCapacityUtilization: Annotated[list[ShareCapacityUsage], Field(max_length=20)] | None = None
    """The 20 shares holding the most vCPUs (only shares with STARTING or RUNNING jobs), most first."""


class QuotaShareCapacityUsage(KubatchModel):
    """Capacity held by one quota share's SCHEDULED, STARTING and RUNNING jobs."""

    quotaShareName: str
    """The quota share."""
    capacityUsage: Annotated[list[CapacityUsage], Field(max_length=10)]
    """What its jobs hold, per capacity unit."""
    borrowedCapacity: Annotated[list[CapacityUsage], Field(max_length=10)] | None = None
    """Of that, what is above the share's own maxCapacity: borrowed from lending shares (kubatch's
    addition)."""


class QuotaShareUtilization(KubatchModel):
    """Quota shares' capacity (AWS's queueUtilization.quotaShareUtilization)."""

    topCapacityUtilization: Annotated[list[QuotaShareCapacityUsage], Field(max_length=20)] | None = None
    """Every quota share of the queue, holding the most first."""


class QueueUtilization(KubatchModel):
    """What the queue's jobs hold right now (AWS GetJobQueueSnapshot's queueUtilization): the
    requests of their STARTING and RUNNING pods (service job queues: the instances of their
    SCHEDULED, STARTING and RUNNING service jobs)."""

    totalCapacityUsage: Annotated[list[CapacityUsage], Field(max_length=4)] | None = None
    """vCPU, MiB and GPU in use by the queue's jobs; NUM_INSTANCES for a service job queue."""
    computeEnvironmentUsage: Annotated[list[ComputeEnvironmentCapacityUsage], Field(max_length=10)] | None = None
    """The same per compute environment where the queue's jobs hold any, by name (kubatch's addition;
    an environment taken out of the queue appears while jobs it started there run)."""
    fairshareUtilization: FairshareUtilization | None = None
    """Active shares and the shares' capacity (fair-share queues only)."""
    quotaShareUtilization: QuotaShareUtilization | None = None
    """The quota shares' capacity (quota-managed queues only)."""


class FrontOfQuotaShareJob(KubatchModel):
    """The first RUNNABLE job of a quota share."""

    namespace: str
    """The BatchJob's namespace."""
    name: str
    """The BatchJob's name."""
    jobId: str | None = None
    """Its jobId."""
    schedulingPriority: int | None = None
    """Its schedulingPriority."""
    statusReason: str | None = None
    """Why it waits, when it is blocked."""


class FrontOfQuotaShares(KubatchModel):
    """The first RUNNABLE job of each quota share (AWS GetJobQueueSnapshot's frontOfQuotaShares)."""

    quotaShares: dict[str, Annotated[list[FrontOfQuotaShareJob], Field(max_length=1)]] | None = None
    """Quota share name -> its first RUNNABLE job (an empty list for a share with none)."""


class JobQueueStatus(KubatchModel):
    """State of the queue, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    status: ResourceStatus | None = None
    """CREATING, UPDATING, DELETING, DELETED, VALID or INVALID."""
    statusReason: str | None = None
    """Why the queue has its status."""
    jobCounts: JobCounts | None = None
    """Jobs per state."""
    front: list[FrontOfQueueJob] | None = None
    """The first RUNNABLE jobs in dispatch order (at most 100), as of lastUpdatedAt."""
    shareUsage: list[ShareUsage] | None = None
    """Usage of the active shares (fair-share queues; at most 20, highest usage first)."""
    queueUtilization: QueueUtilization | None = None
    """Capacity the queue's jobs hold, in total, per compute environment and (fair share) per share."""
    lastUpdatedAt: datetime | None = None
    """When this status last changed. kubatch recomputes it every 2 seconds and writes it only when
    something in it changed (a share's decayed usage alone is refreshed at most every 30 seconds),
    so while the operator runs the status is current even when lastUpdatedAt is old."""
    frontOfQuotaShares: FrontOfQuotaShares | None = None
    """Quota-managed queues: the first RUNNABLE job of each quota share."""
    disabledAt: datetime | None = None
    """Since when the queue is DISABLED (unset while ENABLED): a job created later is refused, one
    created before still runs."""


class JobQueue(KubatchModel):
    """A queue that BatchJobs are submitted to, as an AWS Batch job queue. It places jobs on 1 to 3
    compute environments in order; queues sharing an environment are served by priority. A service
    job queue (jobQueueType KUBERNETES_JOB) schedules service jobs on one ServiceEnvironment instead.
    Without a schedulingPolicy the queue is FIFO, with one it is fair-share."""

    apiVersion: str = API_VERSION
    kind: str = JOB_QUEUE.kind
    metadata: dict[str, Any] = {}
    spec: JobQueueSpec
    status: JobQueueStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
    {"name": "State", "type": "string", "jsonPath": ".spec.state"},
    {"name": "Status", "type": "string", "jsonPath": ".status.status"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Type", "type": "string", "jsonPath": ".spec.jobQueueType", "priority": 1},
    {"name": "Policy", "type": "string", "jsonPath": ".spec.schedulingPolicy", "priority": 1},
    {"name": "Runnable", "type": "integer", "jsonPath": ".status.jobCounts.RUNNABLE", "priority": 1},
    {"name": "Running", "type": "integer", "jsonPath": ".status.jobCounts.RUNNING", "priority": 1},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    cel(
        "self.metadata.name.size() <= 63",
        "metadata.name must be at most 63 characters (it is the value of the pods' kubatch.dev/job-queue label)",
    ),
]
