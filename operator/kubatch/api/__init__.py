"""The kubatch custom resource API (`kubatch.dev/v1alpha1`): pydantic models of the eight kinds.
`kubatch.api.crdgen` renders the CRDs in `crds/` from them."""

from kubatch.api.batch_job import BatchJob, BatchJobSpec, BatchJobStatus
from kubatch.api.compute_environment import (
    ComputeEnvironment,
    ComputeEnvironmentSpec,
    ComputeEnvironmentStatus,
)
from kubatch.api.constants import API_VERSION, CATEGORY, GROUP, KINDS, VERSION, KindInfo
from kubatch.api.consumable_resource import (
    ConsumableResource,
    ConsumableResourceSpec,
    ConsumableResourceStatus,
)
from kubatch.api.job_definition import JobDefinition, JobDefinitionSpec, JobDefinitionStatus
from kubatch.api.job_queue import JobQueue, JobQueueSpec, JobQueueStatus
from kubatch.api.job_schedule import JobSchedule, JobScheduleSpec, JobScheduleStatus
from kubatch.api.scheduling_policy import SchedulingPolicy, SchedulingPolicySpec, SchedulingPolicyStatus
from kubatch.api.service_environment import (
    ServiceEnvironment,
    ServiceEnvironmentSpec,
    ServiceEnvironmentStatus,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "VERSION",
    "BatchJob",
    "BatchJobSpec",
    "BatchJobStatus",
    "ComputeEnvironment",
    "ComputeEnvironmentSpec",
    "ComputeEnvironmentStatus",
    "ConsumableResource",
    "ConsumableResourceSpec",
    "ConsumableResourceStatus",
    "JobDefinition",
    "JobDefinitionSpec",
    "JobDefinitionStatus",
    "JobQueue",
    "JobQueueSpec",
    "JobQueueStatus",
    "JobSchedule",
    "JobScheduleSpec",
    "JobScheduleStatus",
    "KindInfo",
    "SchedulingPolicy",
    "SchedulingPolicySpec",
    "SchedulingPolicyStatus",
    "ServiceEnvironment",
    "ServiceEnvironmentSpec",
    "ServiceEnvironmentStatus",
]
