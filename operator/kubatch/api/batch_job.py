"""BatchJob (namespaced, short name `bj`): one submitted job, as AWS Batch SubmitJob. The spec is
the submission and is immutable, except `cancel` and `terminate`, which can be set (once) to stop the
job, and `cancelChildren` and `terminateChildren`, to which entries can be added (never changed or
removed) to stop single children of an array job. The status holds the job's state machine, attempts,
and compact array/multi-node summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.config import JsonDict

from kubatch.api.common import (
    SHARE_IDENTIFIER_PATTERN,
    ConsumableResourceProperties,
    ContainerResources,
    DnsLabel,
    EnvironmentVariable,
    EnvVar,
    JobTimeout,
    KubatchModel,
    Parameters,
    PodMetadata,
    ResourceRequirement,
    RetryStrategy,
    Tags,
    TargetNodes,
    cel,
    list_map,
    validations,
)
from kubatch.api.common import Arg as _Arg
from kubatch.api.constants import API_VERSION, BATCH_JOB
from kubatch.api.job_queue import QUOTA_SHARE_NAME_PATTERN
from kubatch.api.service_environment import CapacityUsage, ServiceType

JobStatusValue = Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatusValue)
#: A BatchJob's status: a job's, or a service job's, which has SCHEDULED between RUNNABLE and STARTING.
BatchJobStatusValue = Literal[
    "SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"
]
#: A service request payload is at most 10 KiB (AWS SubmitServiceJob's serviceRequestPayload).
MAX_SERVICE_PAYLOAD_BYTES = 10 * 1024
TERMINAL_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED"})
DependencyType = Literal["N_TO_N", "SEQUENTIAL"]

# SubmitJob's jobName (kubatch.core.jobnames.AWS_JOB_NAME_PATTERN).
AWS_JOB_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$"
# "name" (latest ACTIVE revision) or "name:revision", optionally as a job definition ARN
# (arn:<partition>:batch:<region>:<account>:job-definition/name:revision; kubatch.core.revisions).
JOB_DEFINITION_REF_PATTERN = (
    r"^(arn:aws[a-z-]*:batch:[a-z0-9-]*:[0-9]*:job-definition/)?"
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[1-9][0-9]{0,8})?$"
)
OverrideArg = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
#: The CRD bounds the characters; the webhook and the controller bound the bytes (UTF-8).
ServicePayload = Annotated[str, StringConstraints(min_length=2, max_length=MAX_SERVICE_PAYLOAD_BYTES)]


class ArrayProperties(KubatchModel):
    """Run the job as an array of `size` children, indexes 0 to size-1. Each child gets
    AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE."""

    size: Annotated[int, Field(ge=2, le=10000)]
    """Number of children, 2 to 10000."""


class JobDependency(KubatchModel):
    """A job this job waits for. Without type, this job waits until the named job (all of it, for an
    array) SUCCEEDED. N_TO_N: child i waits for child i of the named array job (same size).
    SEQUENTIAL (without jobName): child i waits for child i-1 of this array job. A failed dependency
    fails this job."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.jobName) || (has(self.type) && self.type == 'SEQUENTIAL')",
                "dependsOn[]: jobName is required unless type is SEQUENTIAL",
                field_path=".jobName",
            ),
            cel(
                "!(has(self.jobName) && has(self.type) && self.type == 'SEQUENTIAL')",
                "dependsOn[]: a SEQUENTIAL dependency is between this job's own array children and takes no jobName",
                field_path=".jobName",
            ),
        )
    )

    jobName: DnsLabel | None = None
    """Name of a BatchJob in the same namespace."""
    type: DependencyType | None = None
    """N_TO_N or SEQUENTIAL (array jobs only); unset = wait for the whole job."""


class ContainerOverrides(KubatchModel):
    """Changes to the definition's container for this job (AWS Batch containerOverrides)."""

    vcpus: Annotated[int, Field(ge=1)] | None = None
    """Deprecated in AWS Batch (use resourceRequirements): replaces the VCPU requirement unless
    resourceRequirements gives one."""
    memory: Annotated[int, Field(ge=4)] | None = None
    """Deprecated in AWS Batch (use resourceRequirements): replaces the MEMORY requirement (MiB)
    unless resourceRequirements gives one."""

    command: Annotated[list[OverrideArg], Field(max_length=64)] | None = None
    """Replaces the command (no empty strings)."""
    environment: (
        Annotated[list[EnvironmentVariable], Field(max_length=64, json_schema_extra=list_map("name"))] | None
    ) = None
    """Added to the definition's environment; a variable of the same name is replaced."""
    resourceRequirements: (
        Annotated[list[ResourceRequirement], Field(max_length=3, json_schema_extra=list_map("type"))] | None
    ) = None
    """Replaces the definition's VCPU, MEMORY or GPU."""
    instanceType: Annotated[str, StringConstraints(max_length=64)] | None = None
    """Replaces the definition's instanceType: the pod gets the nodeSelector
    `node.kubernetes.io/instance-type: <value>`, so it runs only on a node of that type."""


class PodContainerOverride(KubatchModel):
    """Changes to one container of a pod-based definition, matched by name."""

    name: DnsLabel = "default"
    """The container to change."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Replaces the image."""
    command: Annotated[list[_Arg], Field(max_length=64)] | None = None
    """Replaces the entrypoint."""
    args: Annotated[list[_Arg], Field(max_length=64)] | None = None
    """Replaces the arguments."""
    env: Annotated[list[EnvVar], Field(max_length=64, json_schema_extra=list_map("name"))] | None = None
    """Added to the container's env; a variable of the same name is replaced."""
    resources: ContainerResources | None = None
    """Replaces the given requests and limits."""


class PodOverrides(KubatchModel):
    """Changes to a pod-based definition for this job (AWS Batch eksPropertiesOverride.podProperties)."""

    containers: (
        Annotated[list[PodContainerOverride], Field(max_length=10, json_schema_extra=list_map("name"))] | None
    ) = None
    """Per-container changes, matched by name."""
    initContainers: (
        Annotated[list[PodContainerOverride], Field(max_length=10, json_schema_extra=list_map("name"))] | None
    ) = None
    """Per-init-container changes, matched by name."""
    metadata: PodMetadata | None = None
    """Labels and annotations merged over the definition's."""


class NodePropertyOverride(KubatchModel):
    """Changes for the nodes of one index range of a multi-node job."""

    targetNodes: TargetNodes
    """Node indexes: `n`, `n:m`, `:m` or `n:`."""
    containerOverrides: ContainerOverrides | None = None
    """Changes to the range's container."""
    podOverrides: PodOverrides | None = None
    """Changes to the range's pod."""


class NodeOverrides(KubatchModel):
    """Changes to a multi-node definition for this job."""

    numNodes: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Replaces the number of nodes; the ranges must still cover every node."""
    nodePropertyOverrides: Annotated[list[NodePropertyOverride], Field(max_length=5)] | None = None
    """Per-range changes."""


class ServiceJobTimeout(KubatchModel):
    """A time limit per service job attempt (AWS ServiceJobTimeout)."""

    attemptDurationSeconds: Annotated[int, Field(ge=60)]
    """Seconds an attempt's workload may be active (at least 60). For KUBERNETES_JOB it becomes the
    Job's spec.activeDeadlineSeconds (the payload's own, when shorter, stays): the Job controller
    then stops the Job's pods and fails it (reason DeadlineExceeded). For a type declared in the
    operator's configuration it goes to the type's timeoutPath (a type without one ignores it)."""


class ServiceJobPreemptionConfiguration(KubatchModel):
    """What preemption may do to a service job (AWS ServiceJobPreemptionConfiguration)."""

    preemptionRetriesBeforeTermination: Annotated[int, Field(ge=0, le=10000)] | None = None
    """How many preemptions send the job back to RUNNABLE: the next one fails it. 0: the first
    preemption fails it. Unset: no limit (a preempted job is always RUNNABLE again)."""


class StopRequest(KubatchModel):
    """A request to stop the job, with the reason that becomes its statusReason."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """Why the job is stopped."""


_STOP_FIELDS = ("cancel", "terminate")
#: Maps of array index -> StopRequest: entries can be added after submission, never changed or removed.
_CHILD_STOP_FIELDS = ("cancelChildren", "terminateChildren")
#: Fields that can be set, changed or removed at any time (how long the finished job is kept).
_FREE_FIELDS = ("ttlSecondsAfterFinished",)
#: Fields that can be set and changed, not removed (a service job's schedulingPriority: AWS
#: UpdateServiceJob).
_UPDATABLE_FIELDS = ("schedulingPriority",)
_MUTABLE = (
    "spec.cancel, spec.terminate, spec.cancelChildren, spec.terminateChildren, spec.ttlSecondsAfterFinished "
    "and (service jobs) spec.schedulingPriority"
)
#: An array index as a map key: 0 to 9999, no leading zeros.
CHILD_INDEX_PATTERN = "^(0|[1-9][0-9]{0,3})$"


def _child_keys(name: str) -> JsonDict:
    return validations(
        cel(
            f"self.all(k, k.matches('{CHILD_INDEX_PATTERN}'))",
            f"spec.{name}: keys are array child indexes (0 to 9999, no leading zeros)",
        )
    )


CancelChildren = Annotated[
    dict[str, StopRequest], Field(max_length=10000, json_schema_extra=_child_keys("cancelChildren"))
]
TerminateChildren = Annotated[
    dict[str, StopRequest], Field(max_length=10000, json_schema_extra=_child_keys("terminateChildren"))
]

#: Fields a service job (spec.serviceJobType) does not take: they describe pods kubatch builds from a
#: job definition, and a service job's workload comes whole from its payload (cancelChildren and
#: terminateChildren need arrayProperties already).
_JOB_ONLY_FIELDS = (
    "parameters",
    "arrayProperties",
    "dependsOn",
    "containerOverrides",
    "podOverrides",
    "nodeOverrides",
    "timeout",
    "schedulingPriorityOverride",
    "propagateTags",
    "podMetadata",
    "consumableResourcePropertiesOverride",
)

_SPEC_RULES: list[JsonDict] = [
    cel(
        "has(self.jobDefinition) != has(self.serviceJobType)",
        "spec: set spec.jobDefinition (a job) or spec.serviceJobType with spec.serviceRequestPayload "
        "(a service job), exactly one of them",
        field_path=".jobDefinition",
    ),
    cel(
        "has(self.serviceJobType) == has(self.serviceRequestPayload)",
        "spec.serviceRequestPayload: a service job needs spec.serviceJobType and spec.serviceRequestPayload together",
        field_path=".serviceRequestPayload",
    ),
    cel(
        "!has(self.serviceJobType) || (" + " && ".join(f"!has(self.{f})" for f in _JOB_ONLY_FIELDS) + ")",
        "spec: a service job (spec.serviceJobType) takes none of "
        + ", ".join(_JOB_ONLY_FIELDS)
        + " (its workload comes whole from spec.serviceRequestPayload)",
        field_path=".serviceJobType",
    ),
    cel(
        "has(self.serviceJobType) || (!has(self.timeoutConfig) && !has(self.schedulingPriority))",
        "spec: spec.timeoutConfig and spec.schedulingPriority are for service jobs (jobs use spec.timeout and "
        "spec.schedulingPriorityOverride)",
        field_path=".timeoutConfig",
    ),
    cel(
        "has(self.serviceJobType) || (!has(self.quotaShareName) && !has(self.preemptionConfiguration))",
        "spec: spec.quotaShareName and spec.preemptionConfiguration are for service jobs",
        field_path=".quotaShareName",
    ),
    cel(
        "!has(self.serviceJobType) || !has(self.retryStrategy) || !has(self.retryStrategy.evaluateOnExit) || "
        "self.retryStrategy.evaluateOnExit.all(e, !has(e.onExitCode) && !has(e.onReason))",
        "spec.retryStrategy.evaluateOnExit: a service job's conditions take onStatusReason only",
        field_path=".retryStrategy",
    ),
    cel(
        "!has(self.dependsOn) || has(self.arrayProperties) || self.dependsOn.all(d, !has(d.type))",
        "spec.dependsOn: N_TO_N and SEQUENTIAL dependencies need spec.arrayProperties",
        field_path=".dependsOn",
    ),
    cel(
        "!has(self.dependsOn) || self.dependsOn.all(d, !has(d.jobName) || "
        "self.dependsOn.exists_one(e, has(e.jobName) && e.jobName == d.jobName))",
        "spec.dependsOn: each jobName may appear only once",
        field_path=".dependsOn",
    ),
    cel(
        "!has(self.dependsOn) || self.dependsOn.exists_one(d, has(d.type) && d.type == 'SEQUENTIAL') || "
        "self.dependsOn.all(d, !has(d.type) || d.type != 'SEQUENTIAL')",
        "spec.dependsOn: at most one SEQUENTIAL dependency",
        field_path=".dependsOn",
    ),
    cel(
        "!(has(self.containerOverrides) && has(self.podOverrides))",
        "spec: set spec.containerOverrides (container definitions) or spec.podOverrides (pod definitions), not both",
        field_path=".podOverrides",
    ),
    cel(
        "!has(self.nodeOverrides) || !(has(self.containerOverrides) || has(self.podOverrides))",
        "spec: multi-node jobs take spec.nodeOverrides, not spec.containerOverrides or spec.podOverrides",
        field_path=".nodeOverrides",
    ),
    cel(
        "!(has(self.nodeOverrides) && has(self.arrayProperties))",
        "spec: a multi-node job (spec.nodeOverrides) cannot be an array job (spec.arrayProperties)",
        field_path=".arrayProperties",
    ),
    *(
        cel(
            f"!has(self.{name}) || (has(self.arrayProperties) && "
            f"self.{name}.all(k, int(k) < self.arrayProperties.size))",
            f"spec.{name}: only an array job's children (indexes below spec.arrayProperties.size) can be stopped",
            field_path=f".{name}",
        )
        for name in _CHILD_STOP_FIELDS
    ),
]


def _spec_schema_extra(schema: JsonDict, cls: type[BaseModel]) -> None:
    """The spec's CEL rules: the static ones, then immutability: every field but cancel and
    terminate stays as submitted (a submission is final; those two can be set once), and the child
    stop maps only grow (entries added, none changed or removed).

    Shaped for the API server's cost, which evaluates them on every status write, where the spec is
    unchanged: each field carries its own `self == oldSelf` (a rule on a field runs only when the
    field is there before and after), and one spec rule checks, by presence alone, that no field
    was added or removed."""
    rules: list[JsonValue] = [*_SPEC_RULES]
    properties = schema.get("properties")
    assert isinstance(properties, dict)
    presence: list[tuple[str, str]] = []
    for name in cls.model_fields:
        if name in _FREE_FIELDS:
            continue
        transition = "self == oldSelf"
        if name in _UPDATABLE_FIELDS:
            message = f"spec.{name} can be changed, not removed once set"
            presence.append((f"(!has(oldSelf.{name}) || has(self.{name}))", message))
            continue
        if name in _STOP_FIELDS:
            message = f"spec.{name} cannot be changed or removed once set"
            presence.append((f"(!has(oldSelf.{name}) || has(self.{name}))", message))
        elif name in _CHILD_STOP_FIELDS:
            message = f"spec.{name}: entries can be added, not changed or removed"
            presence.append((f"(!has(oldSelf.{name}) || has(self.{name}))", message))
            transition = "oldSelf.all(k, k in self && self[k] == oldSelf[k])"
        else:
            message = f"spec.{name} is immutable: only {_MUTABLE} can be set after submission"
            presence.append((f"has(self.{name}) == has(oldSelf.{name})", message))
        prop = properties[name]
        assert isinstance(prop, dict)
        prop["x-kubernetes-validations"] = [cel(transition, message)]
    entry = cel(
        " && ".join(rule for rule, _ in presence),
        f"spec is immutable: only {_MUTABLE} can be set after submission",
    )
    first_failing = f"'spec is immutable: only {_MUTABLE} can be set after submission'"
    for rule, message in reversed(presence):
        first_failing = f"{rule} ? ({first_failing}) : '{message}'"
    entry["messageExpression"] = first_failing
    rules.append(entry)
    schema["x-kubernetes-validations"] = rules


class BatchJobSpec(KubatchModel):
    """A job submission (AWS Batch SubmitJob). Immutable once created, except cancel and terminate
    (set once), cancelChildren and terminateChildren (entries added), ttlSecondsAfterFinished and a
    service job's schedulingPriority (changed, not removed)."""

    model_config = ConfigDict(json_schema_extra=_spec_schema_extra)

    jobName: Annotated[str, StringConstraints(max_length=128, pattern=AWS_JOB_NAME_PATTERN)] | None = None
    """The job's name as AWS Batch has it (SubmitJob's jobName): 1 to 128 letters (upper or lower
    case), digits, `-` and `_`, starting with a letter or digit. Shown and matched instead of
    metadata.name (which a Kubernetes name must be) by `kubatch list`, `kubatch describe`, the
    `Job-Name` column and the job's Events; `kubatch submit --job-name` sets it when the name given
    cannot be an object name. Unset, the job's name is metadata.name."""
    jobQueue: DnsLabel
    """The JobQueue the job is submitted to."""
    jobDefinition: (
        Annotated[str, StringConstraints(min_length=1, max_length=400, pattern=JOB_DEFINITION_REF_PATTERN)] | None
    ) = None
    """A JobDefinition in the job's namespace: `name` (its latest ACTIVE revision) or `name:revision`,
    also as AWS writes it, `arn:aws:batch:<region>:<account>:job-definition/name:revision` (only the
    name and revision count: the definition is looked up in the job's namespace). Required, except
    for a service job (spec.serviceJobType), which has none."""
    serviceJobType: ServiceType | None = None
    """Makes this a service job (AWS SubmitServiceJob): `KUBERNETES_JOB` or a type declared in the
    operator's configuration, the type of the service job queue's ServiceEnvironment. A service job
    is not run by kubatch: when its queue's service environment has room, kubatch creates the
    workload of spec.serviceRequestPayload (SCHEDULED) and follows it (STARTING, RUNNING, SUCCEEDED
    or FAILED, from the workload's own status)."""
    serviceRequestPayload: ServicePayload | None = None
    """The workload, passed through as AWS passes a service request payload: for KUBERNETES_JOB a
    `batch/v1` Job manifest as JSON (or YAML) text, at most 10 KiB. kubatch names it
    `<job>-a<attempt>`, creates it in the job's namespace, owned by this BatchJob and labelled with
    its job id; it sets spec.suspend to false and, with spec.timeoutConfig, spec.activeDeadlineSeconds.
    The rest is the Job controller's: a Job the API server refuses fails its attempt with the API
    server's message."""
    timeoutConfig: ServiceJobTimeout | None = None
    """Service jobs: a time limit per attempt (AWS SubmitServiceJob's timeoutConfig)."""
    schedulingPriority: Annotated[int, Field(ge=0, le=9999)] | None = None
    """Service jobs on fair-share and quota-managed queues: the scheduling priority within the share
    or quota share (0 to 9999, higher first), as AWS SubmitServiceJob's schedulingPriority. Can be
    changed after submission (AWS UpdateServiceJob), not removed; a RUNNABLE job is reordered at
    once."""
    quotaShareName: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=QUOTA_SHARE_NAME_PATTERN)] | None
    ) = None
    """Service jobs on quota-managed queues (required there, refused elsewhere): the queue's quota
    share (JobQueue spec.quotaShares) the job runs in."""
    preemptionConfiguration: ServiceJobPreemptionConfiguration | None = None
    """Service jobs: how often the job may be preempted before it fails instead of going back to
    RUNNABLE."""
    parameters: Parameters | None = None
    """Values for `Ref::<name>` tokens; they take precedence over the definition's parameters."""
    arrayProperties: ArrayProperties | None = None
    """Makes this an array job."""
    dependsOn: Annotated[list[JobDependency], Field(max_length=20)] | None = None
    """Up to 20 jobs this job waits for."""
    containerOverrides: ContainerOverrides | None = None
    """Changes to the definition's container (container definitions)."""
    podOverrides: PodOverrides | None = None
    """Changes to the definition's pod (pod definitions)."""
    nodeOverrides: NodeOverrides | None = None
    """Changes to a multi-node definition."""
    retryStrategy: RetryStrategy | None = None
    """Replaces the definition's retry strategy. A service job's: attempts (1 to 10, every
    placement into RUNNABLE counted) and evaluateOnExit entries with onStatusReason only."""
    timeout: JobTimeout | None = None
    """Replaces the definition's timeout."""
    shareIdentifier: Annotated[str, StringConstraints(pattern=SHARE_IDENTIFIER_PATTERN, max_length=255)] | None = None
    """The fair-share identifier; required on queues with a scheduling policy, forbidden on FIFO queues."""
    schedulingPriorityOverride: Annotated[int, Field(ge=0, le=9999)] | None = None
    """Replaces the definition's schedulingPriority (0 to 9999; fair-share queues only)."""
    propagateTags: bool | None = None
    """Copy tags onto the job's pods; replaces the definition's propagateTags."""
    tags: Tags | None = None
    """Tags of the job."""
    podMetadata: PodMetadata | None = None
    """Labels and annotations merged over the definition's, onto every pod of the job."""
    consumableResourcePropertiesOverride: ConsumableResourceProperties | None = None
    """Changes the quantities of the definition's consumable resources for this job."""
    cancel: StopRequest | None = None
    """Set to cancel the job (AWS Batch CancelJob): a job not yet STARTING fails with this reason; a
    STARTING or RUNNING job is not affected. Cannot be changed or removed once set."""
    terminate: StopRequest | None = None
    """Set to terminate the job (AWS Batch TerminateJob): like cancel, and a STARTING or RUNNING job's
    pods are stopped and it fails. Cannot be changed or removed once set."""
    cancelChildren: CancelChildren | None = None
    """Array jobs: cancel single children (AWS Batch CancelJob on `<jobId>:<index>`), as a map from
    the child's index (`"7"`) to a reason. A child not yet STARTING fails with the reason (its N_TO_N
    dependents then fail with `Dependent Job failed`, and the parent fails once every child ended);
    a STARTING or RUNNING child is not affected. Entries can be added, not changed or removed."""
    terminateChildren: TerminateChildren | None = None
    """Array jobs: terminate single children (AWS Batch TerminateJob on `<jobId>:<index>`): like
    cancelChildren, and a STARTING or RUNNING child's pod is stopped and it fails. Entries can be
    added, not changed or removed."""
    ttlSecondsAfterFinished: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    """Seconds the job is kept after it finished (SUCCEEDED or FAILED, from status.stoppedAt); then
    kubatch deletes it, and its pods with it. Replaces the definition's ttlSecondsAfterFinished and
    the operator's default (none: kept until deleted). A job that another, unfinished job depends
    on is kept until that one finished. Can be set, changed or removed at any time."""


class StatusSummary(KubatchModel):
    """Number of array children (or nodes) in each state."""

    SUBMITTED: Annotated[int, Field(ge=0)] = 0
    PENDING: Annotated[int, Field(ge=0)] = 0
    RUNNABLE: Annotated[int, Field(ge=0)] = 0
    STARTING: Annotated[int, Field(ge=0)] = 0
    RUNNING: Annotated[int, Field(ge=0)] = 0
    SUCCEEDED: Annotated[int, Field(ge=0)] = 0
    FAILED: Annotated[int, Field(ge=0)] = 0


IndexRanges = Annotated[str, StringConstraints(pattern=r"^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$")]


class StateIndexes(KubatchModel):
    """Indexes of the children (or nodes) in each state, as compact ranges such as `3-5,9`."""

    SUBMITTED: IndexRanges | None = None
    PENDING: IndexRanges | None = None
    RUNNABLE: IndexRanges | None = None
    STARTING: IndexRanges | None = None
    RUNNING: IndexRanges | None = None
    SUCCEEDED: IndexRanges | None = None
    FAILED: IndexRanges | None = None


class ArrayPropertiesStatus(KubatchModel):
    """State of an array job's children."""

    size: int
    """Number of children."""
    index: int | None = None
    """Set only in the view of a single child (`name:index` in the CLI): its index."""
    statusSummary: StatusSummary | None = None
    """Children per state."""
    indexes: StateIndexes | None = None
    """Which children are in each state."""
    attempts: Annotated[dict[str, IndexRanges], Field(max_length=11)] | None = None
    """Finished attempts per child: attempt count -> the children with that many (none listed: 0)."""
    exitCodes: Annotated[dict[str, IndexRanges], Field(max_length=256)] | None = None
    """Exit code of each child's last finished attempt: exit code -> children."""
    statusReasons: Annotated[dict[str, IndexRanges], Field(max_length=64)] | None = None
    """Why FAILED children failed: statusReason -> children."""


class NodeStatus(KubatchModel):
    """One node of a multi-node job's current attempt (`name#index` in the CLI)."""

    nodeIndex: Annotated[int, Field(ge=0)]
    """The node index (AWS_BATCH_JOB_NODE_INDEX)."""
    podName: str | None = None
    """The node's pod for the current attempt."""
    status: JobStatusValue | None = None
    """The node's state, from its pod."""
    nodeName: str | None = None
    """The Kubernetes node it runs on."""
    exitCode: int | None = None
    """Its container's exit code, once it stopped."""


class NodePropertiesStatus(KubatchModel):
    """State of a multi-node job's nodes."""

    numNodes: int
    """Number of nodes of this job."""
    mainNode: int
    """Index of the main node."""
    mainNodeAddress: str | None = None
    """Pod IP of the main node (AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS of the other nodes)."""
    statusSummary: StatusSummary | None = None
    """Nodes per state."""
    indexes: StateIndexes | None = None
    """Which nodes are in each state."""
    nodes: Annotated[list[NodeStatus], Field(max_length=1000)] | None = None
    """Each node of the current attempt."""


class AttemptContainer(KubatchModel):
    """How the attempt's container (the main node's, for multi-node jobs) ended."""

    exitCode: int | None = None
    """The exit code, when the container ran."""
    reason: str | None = None
    """The container's reason (e.g. OOMKilled, Error, ImagePullBackOff)."""
    podName: str | None = None
    """The attempt's pod."""
    nodeName: str | None = None
    """The node it ran on."""
    nodeUid: str | None = None
    """The UID of that node, when kubatch still knew the node as the attempt ended. (AWS Batch on
    EKS gives it to the container as AWS_BATCH_JOB_KUBERNETES_NODE_UID; a pod cannot learn it, so
    kubatch's containers get the node's name as AWS_BATCH_JOB_KUBERNETES_NODE_NAME instead.)"""
    logStreamName: str | None = None
    """Where the logs are, when a log shipper is configured."""


class ServiceResourceId(KubatchModel):
    """The workload of a service job's attempt (AWS ServiceResourceId)."""

    name: str
    """What value is: `JobUid` (KUBERNETES_JOB: the batch/v1 Job's metadata.uid), `<Kind>Uid` for
    a type declared in the operator's configuration."""
    value: str
    """The identifier."""


class Attempt(KubatchModel):
    """One finished attempt."""

    container: AttemptContainer | None = None
    """The container's outcome."""
    serviceResourceId: ServiceResourceId | None = None
    """Service jobs: the attempt's workload (its Job is `<job>-a<attempt>` in the job's namespace)."""
    startedAt: datetime | None = None
    """When the attempt started RUNNING."""
    stoppedAt: datetime | None = None
    """When it stopped."""
    statusReason: str | None = None
    """Why it stopped."""


class LatestAttempt(KubatchModel):
    """A service job's current attempt (AWS DescribeServiceJob's latestAttempt)."""

    serviceResourceId: ServiceResourceId | None = None
    """Its workload."""


#: How many preempted attempts a job's status keeps (the window of AWS's preemptionSummary).
PREEMPTION_WINDOW = 5


class PreemptionSummary(KubatchModel):
    """A service job's preemptions (AWS's preemptionSummary, as in the "Batch Service Job Preemption
    Completed" event)."""

    preemptedAttemptCount: Annotated[int, Field(ge=0)] = 0
    """How many of the job's attempts were preempted."""
    recentPreemptedAttempts: Annotated[list[Attempt], Field(max_length=PREEMPTION_WINDOW)] | None = None
    """The latest preempted attempts (at most 5), oldest first: their workload, when they ran and
    the PREEMPTION_IN_PROGRESS statusReason. A preempted attempt is not in status.attempts and uses
    none of retryStrategy.attempts."""


class DependencyStatus(KubatchModel):
    """A dependency as resolved by kubatch."""

    jobName: str | None = None
    """The BatchJob's name (unset for SEQUENTIAL)."""
    jobId: str | None = None
    """Its jobId."""
    type: DependencyType | None = None
    """N_TO_N, SEQUENTIAL or unset."""
    status: JobStatusValue | None = None
    """The dependency's last known status."""


class BatchJobStatus(KubatchModel):
    """The job's state, written by kubatch (AWS Batch DescribeJobs)."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    jobId: str | None = None
    """The job's id (the BatchJob's uid)."""
    status: BatchJobStatusValue | None = None
    """SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED; service jobs also
    SCHEDULED (handed to their service, between RUNNABLE and STARTING)."""
    statusReason: str | None = None
    """Why the job is in its status, in AWS Batch's words where AWS has them (for example `Dependent
    Job failed`, or a blocked queue head's `MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s)
    associated with the job queue cannot meet the CPU requirement of the job.`), so that
    `evaluateOnExit.onStatusReason` and `jobStateTimeLimitActions` match as in AWS."""
    statusReasonDetail: str | None = None
    """kubatch's detail of the statusReason, which AWS's fixed text leaves out: the dependency that
    failed, or which compute environment and figures block a queue head. Absent when there is none;
    the job's Event for the change carries it too."""
    jobDefinition: str | None = None
    """The resolved definition revision, `name:revision`."""
    computeEnvironment: str | None = None
    """The compute environment the job (its current attempt) was placed on."""
    serviceEnvironment: str | None = None
    """Service jobs: the service environment the current attempt was scheduled on."""
    scheduledAt: datetime | None = None
    """Service jobs: when the current attempt became SCHEDULED."""
    capacityUsage: Annotated[list[CapacityUsage], Field(max_length=1)] | None = None
    """Service jobs: the capacity the current attempt holds in its service environment."""
    shareIdentifier: str | None = None
    """The fair-share identifier used for scheduling (spec.shareIdentifier), written at submission."""
    schedulingPriority: int | None = None
    """The effective scheduling priority (spec.schedulingPriorityOverride, else the definition's
    schedulingPriority), written at submission when either is set; a service job's
    spec.schedulingPriority, kept current when it is changed."""
    quotaShareName: str | None = None
    """Service jobs on quota-managed queues: the quota share (spec.quotaShareName)."""
    latestAttempt: LatestAttempt | None = None
    """Service jobs: the workload of the current (or last) attempt, from when it was SCHEDULED."""
    preemptionSummary: PreemptionSummary | None = None
    """Service jobs: how often the job was preempted, and its latest preempted attempts."""
    createdAt: datetime | None = None
    """When the job was submitted."""
    queuedAt: datetime | None = None
    """When the job last became RUNNABLE."""
    startedAt: datetime | None = None
    """When the first attempt started RUNNING."""
    stoppedAt: datetime | None = None
    """When the job reached SUCCEEDED or FAILED."""
    attemptCount: int | None = None
    """Number of attempts started so far (AWS_BATCH_JOB_ATTEMPT of the latest)."""
    attempts: list[Attempt] | None = None
    """Finished attempts, oldest first."""
    arrayProperties: ArrayPropertiesStatus | None = None
    """Children of an array job."""
    nodeProperties: NodePropertiesStatus | None = None
    """Nodes of a multi-node job."""
    dependsOn: list[DependencyStatus] | None = None
    """Dependencies, resolved."""


class BatchJob(KubatchModel):
    """A job submitted to a JobQueue, as AWS Batch SubmitJob: it runs a JobDefinition revision with
    this spec's parameters and overrides, as one pod per attempt, an array of children, or a group of
    nodes. The spec is immutable except `cancel` and `terminate` (and, for array children, `cancelChildren`
    and `terminateChildren`); the status follows the AWS Batch states SUBMITTED, PENDING, RUNNABLE,
    STARTING, RUNNING, SUCCEEDED and FAILED."""

    apiVersion: str = API_VERSION
    kind: str = BATCH_JOB.kind
    metadata: dict[str, Any] = {}
    spec: BatchJobSpec
    status: BatchJobStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Job-Name", "type": "string", "jsonPath": ".spec.jobName", "priority": 1},
    {"name": "Queue", "type": "string", "jsonPath": ".spec.jobQueue"},
    {"name": "Status", "type": "string", "jsonPath": ".status.status"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.statusReason"},
    {"name": "Attempts", "type": "integer", "jsonPath": ".status.attemptCount"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Definition", "type": "string", "jsonPath": ".status.jobDefinition", "priority": 1},
    {"name": "CE", "type": "string", "jsonPath": ".status.computeEnvironment", "priority": 1},
    {"name": "Service-Type", "type": "string", "jsonPath": ".spec.serviceJobType", "priority": 1},
    {"name": "Array-Size", "type": "integer", "jsonPath": ".spec.arrayProperties.size", "priority": 1},
    {"name": "Share", "type": "string", "jsonPath": ".spec.shareIdentifier", "priority": 1},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    cel(
        "self.metadata.name.size() <= 63",
        "metadata.name must be at most 63 characters (it is the value of the pods' kubatch.dev/job-name label)",
    ),
    cel(
        "!has(self.spec.dependsOn) || self.spec.dependsOn.all(d, !has(d.jobName) || d.jobName != self.metadata.name)",
        "spec.dependsOn: a job cannot depend on itself",
    ),
]
SELECTABLE_FIELDS: list[str] = [".spec.jobQueue", ".spec.shareIdentifier", ".spec.jobName", ".status.jobId"]
