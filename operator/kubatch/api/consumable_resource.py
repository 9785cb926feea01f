"""ConsumableResource (cluster-scoped, short name `cres`): a counted resource outside the cluster's
compute (licenses, API tokens, ...), as in AWS Batch resource-aware scheduling. Jobs that list it
start only when enough units are available."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubatch.api.common import KubatchModel, Tags, cel, model_rules
from kubatch.api.constants import API_VERSION, CONSUMABLE_RESOURCE

ConsumableResourceType = Literal["REPLENISHABLE", "NON_REPLENISHABLE"]
INDEX_RANGES = r"^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$"


class ConsumableResourceSpec(KubatchModel):
    """A consumable resource."""

    model_config = model_rules(
        cel(
            "self.resourceType == oldSelf.resourceType",
            "spec.resourceType is immutable",
            field_path=".resourceType",
        ),
    )

    resourceType: ConsumableResourceType = "REPLENISHABLE"
    """REPLENISHABLE: units return when the job ends. NON_REPLENISHABLE: units are used up, whether
    the job succeeds or fails, and do not come back when the job is deleted."""
    totalQuantity: Annotated[int, Field(ge=0)]
    """Units that exist. Lowering it below the units in use takes effect as jobs finish. For a
    NON_REPLENISHABLE resource the units ever made available: raising it adds units."""
    tags: Tags | None = None
    """Tags of the resource."""


class ConsumableResourceStatus(KubatchModel):
    """Use of the resource, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    totalQuantity: Annotated[int, Field(ge=0)] | None = None
    """Units that exist now (NON_REPLENISHABLE resources shrink as jobs consume them)."""
    inUseQuantity: Annotated[int, Field(ge=0)] | None = None
    """Units held by STARTING and RUNNING jobs."""
    availableQuantity: Annotated[int, Field(ge=0)] | None = None
    """Units free for new jobs."""
    consumedQuantity: Annotated[int, Field(ge=0)] | None = None
    """NON_REPLENISHABLE: units used up so far, charged when a job (array child) is placed. They never
    come back, also when the job is deleted: availableQuantity is totalQuantity of the spec minus these."""
    consumers: dict[str, Annotated[str, StringConstraints(pattern=INDEX_RANGES)]] | None = None
    """NON_REPLENISHABLE: the BatchJobs (by uid) whose units consumedQuantity counts, with the array
    children charged (empty: the whole job), so that none is charged twice; an entry goes when its
    BatchJob is deleted."""


class ConsumableResource(KubatchModel):
    """A counted resource outside the cluster's compute (licenses, API tokens, ...), as in AWS Batch
    resource-aware scheduling: jobs that need units of it start only when enough are available."""

    apiVersion: str = API_VERSION
    kind: str = CONSUMABLE_RESOURCE.kind
    metadata: dict[str, Any] = {}
    spec: ConsumableResourceSpec
    status: ConsumableResourceStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.resourceType"},
    {"name": "Total", "type": "integer", "jsonPath": ".spec.totalQuantity"},
    {"name": "In-Use", "type": "integer", "jsonPath": ".status.inUseQuantity"},
    {"name": "Available", "type": "integer", "jsonPath": ".status.availableQuantity"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = []
