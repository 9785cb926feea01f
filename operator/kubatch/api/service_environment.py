"""ServiceEnvironment (cluster-scoped, short name `se`): capacity for service jobs, as an AWS Batch
service environment. A service job is queued by kubatch but run by another controller: for the
built-in type KUBERNETES_JOB, a `batch/v1` Job that the cluster's Job controller runs. The
environment caps how many instances (a Job's pods running in parallel) the service jobs of its queues
hold at once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubatch.api.common import KubatchModel, Tags, cel, list_map, model_rules
from kubatch.api.constants import API_VERSION, SERVICE_ENVIRONMENT

State = Literal["ENABLED", "DISABLED"]
ServiceEnvironmentStatusValue = Literal["CREATING", "VALID", "INVALID", "DELETING"]
#: A capacity unit: NUM_INSTANCES, or (for a queue with quota shares) an instance type such as
#: `m5.large` or `ml.m6i.large`, matched against the value of a workload's pod template's
#: `node.kubernetes.io/instance-type` node selector.
CAPACITY_UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
CapacityUnit = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=CAPACITY_UNIT_PATTERN)]
NUM_INSTANCES = "NUM_INSTANCES"
#: A service environment type: upper-case letters, digits and `_` (KUBERNETES_JOB is built in; the
#: operator marks an environment of a type it does not know INVALID).
SERVICE_TYPE_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
ServiceType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SERVICE_TYPE_PATTERN)]


class CapacityLimit(KubatchModel):
    """The most capacity of one unit the environment's service jobs hold at once."""

    capacityUnit: CapacityUnit = NUM_INSTANCES
    """NUM_INSTANCES: instances, where a KUBERNETES_JOB service job's instances are its Job's pods
    that may run in parallel (spec.parallelism, default 1, at most spec.completions). Under quota
    management (a queue with quota shares) also an instance type, e.g. `m5.large`: the instances of
    the service jobs whose Job's pod template selects it (nodeSelector
    `node.kubernetes.io/instance-type`); a Job that selects none counts as NUM_INSTANCES."""
    maxCapacity: Annotated[int, Field(ge=0, le=1_000_000)]
    """The most instances the SCHEDULED, STARTING and RUNNING service jobs hold together. 0 holds
    every job back (a job needing more than the limit waits with
    MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE). A change applies at once: raising it admits
    waiting jobs in the next scheduling cycle; lowering it stops no running job, new ones wait until
    the usage is below the new limit."""


class ServiceEnvironmentSpec(KubatchModel):
    """A service environment. serviceEnvironmentType cannot be changed; capacityLimits, state and
    tags can, and apply at once."""

    model_config = model_rules(
        cel(
            "self.serviceEnvironmentType == oldSelf.serviceEnvironmentType",
            "spec.serviceEnvironmentType is immutable: create a new service environment instead",
            field_path=".serviceEnvironmentType",
        ),
    )

    serviceEnvironmentType: ServiceType
    """What runs the service jobs: `KUBERNETES_JOB` (built in: the job's serviceRequestPayload is a
    `batch/v1` Job, which the cluster's Job controller runs), or a type declared in the operator's
    configuration (KUBATCH_SERVICE_WORKLOAD_TYPES, the chart's serviceWorkloadTypes: a custom
    resource with a suspend field). An environment of a type the operator does not know is
    INVALID."""
    state: State = "ENABLED"
    """ENABLED: its queues' RUNNABLE service jobs are scheduled. DISABLED: they wait (new ones are
    still accepted); SCHEDULED, STARTING and RUNNING jobs go on. A service environment can be
    deleted only once DISABLED and no job queue uses it."""
    capacityLimits: Annotated[
        list[CapacityLimit], Field(min_length=1, max_length=10, json_schema_extra=list_map("capacityUnit"))
    ]
    """The capacity limits, one per capacityUnit: NUM_INSTANCES, or under quota management per
    instance type (AWS: "capacity limits expressed per instance type"). A queue without quota shares
    is held to the NUM_INSTANCES entry (without one, to the sum of the entries)."""
    tags: Tags | None = None
    """Tags of the service environment."""


class CapacityUsage(KubatchModel):
    """An amount of capacity in use."""

    capacityUnit: CapacityUnit
    """NUM_INSTANCES, or an instance type (quota management)."""
    quantity: Annotated[float, Field(ge=0)]
    """How much is in use."""


class ServiceEnvironmentStatus(KubatchModel):
    """State of the service environment, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    status: ServiceEnvironmentStatusValue | None = None
    """CREATING (not yet looked at: its queues take no service jobs yet), VALID, INVALID (its
    queues take no service jobs; statusReason says why) or DELETING."""
    statusReason: str | None = None
    """Why the service environment has its status."""
    jobQueues: list[str] | None = None
    """The job queues whose serviceEnvironmentOrder names this environment."""
    capacityUsage: Annotated[list[CapacityUsage], Field(max_length=10)] | None = None
    """What the SCHEDULED, STARTING and RUNNING service jobs placed here hold now, per capacityUnit
    (NUM_INSTANCES always)."""


class ServiceEnvironment(KubatchModel):
    """Capacity for service jobs (AWS Batch CreateServiceEnvironment): queues whose
    serviceEnvironmentOrder names it schedule their service jobs here, within its capacityLimits.
    For KUBERNETES_JOB the jobs are `batch/v1` Jobs that the cluster's Job controller runs."""

    apiVersion: str = API_VERSION
    kind: str = SERVICE_ENVIRONMENT.kind
    metadata: dict[str, Any] = {}
    spec: ServiceEnvironmentSpec
    status: ServiceEnvironmentStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.serviceEnvironmentType"},
    {"name": "State", "type": "string", "jsonPath": ".spec.state"},
    {"name": "Status", "type": "string", "jsonPath": ".status.status"},
    {"name": "Max-Capacity", "type": "integer", "jsonPath": ".spec.capacityLimits[0].maxCapacity"},
    {"name": "In-Use", "type": "number", "jsonPath": ".status.capacityUsage[0].quantity"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.statusReason", "priority": 1},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    cel(
        "self.metadata.name.size() <= 63",
        "metadata.name must be at most 63 characters (it is the value of the service jobs' "
        "kubatch.dev/service-environment label)",
    ),
]
