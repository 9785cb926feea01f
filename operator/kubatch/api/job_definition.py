"""JobDefinition (namespaced, short name `jd`): a reusable job template, as an AWS Batch job
definition. Every spec change makes a new revision; jobs name `def` (latest ACTIVE) or `def:3`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kubatch.api.common import (
    ConsumableResourceProperties,
    ContainerProperties,
    JobTimeout,
    KubatchModel,
    NodeProperties,
    Parameters,
    PodMetadata,
    PodProperties,
    RetryStrategy,
    Tags,
    cel,
    model_rules,
)
from kubatch.api.constants import API_VERSION, JOB_DEFINITION

JobDefinitionType = Literal["container", "multinode"]
JobDefinitionStatusValue = Literal["ACTIVE", "INACTIVE"]


class JobDefinitionSpec(KubatchModel):
    """What a job runs: a container, a Kubernetes-shaped pod, or a multi-node group, with its
    parameters, retry strategy and timeout. Jobs copy the revision they resolve, so later edits
    never change a submitted job."""

    model_config = model_rules(
        cel(
            "self.type != 'container' || ((has(self.containerProperties) ? 1 : 0) + "
            "(has(self.podProperties) ? 1 : 0) == 1 && !has(self.nodeProperties))",
            "spec: a job definition of type container needs exactly one of spec.containerProperties or "
            "spec.podProperties, and no spec.nodeProperties",
        ),
        cel(
            "self.type != 'multinode' || (has(self.nodeProperties) && !has(self.containerProperties) && "
            "!has(self.podProperties))",
            "spec: a job definition of type multinode needs spec.nodeProperties (put the containers in "
            "spec.nodeProperties.nodeRangeProperties), and no spec.containerProperties or spec.podProperties",
        ),
        cel(
            "!oldSelf.deregistered || self.deregistered",
            "spec.deregistered cannot be set back to false: register a new job definition instead",
            field_path=".deregistered",
        ),
    )

    type: JobDefinitionType = "container"
    """container (one pod per attempt) or multinode (a multi-node parallel job)."""
    parameters: Parameters | None = None
    """Default values for `Ref::<name>` tokens in commands; a job's parameters take precedence."""
    containerProperties: ContainerProperties | None = None
    """A single container (type container)."""
    podProperties: PodProperties | None = None
    """A Kubernetes-shaped pod (type container), as AWS Batch eksProperties.podProperties."""
    nodeProperties: NodeProperties | None = None
    """The node groups of a multi-node parallel job (type multinode)."""
    retryStrategy: RetryStrategy | None = None
    """Retries for jobs of this definition; a job's own retryStrategy replaces it."""
    timeout: JobTimeout | None = None
    """Per-attempt time limit; a job's own timeout replaces it."""
    schedulingPriority: Annotated[int, Field(ge=0, le=9999)] | None = None
    """Priority inside a fair-share queue's share (0 to 9999, higher runs first). Ignored by FIFO
    queues."""
    propagateTags: bool = False
    """Copy the definition's and the job's tags onto the job's pods (the job's value wins on a key
    clash; more than 50 merged tags fail the job, as in AWS Batch)."""
    tags: Tags | None = None
    """Tags of the definition."""
    podMetadata: PodMetadata | None = None
    """Labels and annotations added to every pod of jobs of this definition."""
    consumableResourceProperties: ConsumableResourceProperties | None = None
    """Consumable resources every job of this definition must hold to start."""
    ttlSecondsAfterFinished: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    """Seconds a job of this definition is kept after it finished, then deleted (a job's own
    ttlSecondsAfterFinished replaces it; unset: the operator's default, none unless configured)."""
    deregistered: bool = False
    """Deregister the definition: its status becomes INACTIVE and no new job may use any of its
    revisions (jobs already submitted are not affected). Like in AWS Batch this cannot be undone."""


class JobDefinitionStatus(KubatchModel):
    """State of the definition, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    revision: Annotated[int, Field(ge=1)] | None = None
    """The latest revision; it increments on every spec change (revision numbers are never reused)."""
    status: JobDefinitionStatusValue | None = None
    """ACTIVE, or INACTIVE once deregistered."""
    statusReason: Annotated[str, Field(max_length=1024)] | None = None
    """Why the definition has its status."""
    revisionName: Annotated[str, Field(max_length=64)] | None = None
    """The ControllerRevision holding the latest revision's spec."""


class JobDefinition(KubatchModel):
    """A job template, as an AWS Batch job definition: a container, a Kubernetes-shaped pod or a
    multi-node group, with parameters, retry strategy and timeout. Every spec change makes a new
    revision; BatchJobs name `definition` (latest ACTIVE revision) or `definition:revision`."""

    apiVersion: str = API_VERSION
    kind: str = JOB_DEFINITION.kind
    metadata: dict[str, Any] = {}
    spec: JobDefinitionSpec
    status: JobDefinitionStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Revision", "type": "integer", "jsonPath": ".status.revision"},
    {"name": "Status", "type": "string", "jsonPath": ".status.status"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = []
