"""SchedulingPolicy (cluster-scoped, short name `sp`): a fair-share policy, as in AWS Batch.
Attached to a JobQueue, it orders the queue's jobs by share usage instead of FIFO. A policy with a
quotaSharePolicy instead makes a service job queue quota-managed: its jobs run in the queue's quota
shares (JobQueue spec.quotaShares)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubatch.api.common import KubatchModel, Tags, cel, list_map, model_rules, validations
from kubatch.api.constants import API_VERSION, SCHEDULING_POLICY

# An identifier, or a prefix ending in `*` that matches every identifier starting with it.
SHARE_IDENTIFIER_OR_PREFIX_PATTERN = r"^[A-Za-z0-9_-]{1,255}\*?$"


# A prefix `P*` must not match any other entry (an identifier or another prefix starting with P).
_NO_OVERLAP = cel(
    "self.all(a, !a.shareIdentifier.endsWith('*') || self.all(b, b.shareIdentifier == a.shareIdentifier || "
    "!b.shareIdentifier.startsWith(a.shareIdentifier.replace('*', ''))))",
    "spec.fairsharePolicy.shareDistribution: share identifiers must not overlap (a prefix such as UserA* "
    "cannot be combined with an identifier it matches, such as UserA1)",
)


class ShareAttributes(KubatchModel):
    """The weight of one share identifier, or of every identifier matching a prefix such as `UserA*`
    (the matching identifiers then share that weight)."""

    # The API server checks an integer value (e.g. 0) against a number's minimum after truncating the
    # bound to an integer, so 0 would pass `minimum: 0.0001`; CEL compares as doubles.
    model_config = model_rules(
        cel(
            "self.weightFactor >= 0.0001 && self.weightFactor <= 999.9999",
            "spec.fairsharePolicy.shareDistribution[].weightFactor must be between 0.0001 and 999.9999",
            field_path=".weightFactor",
        )
    )

    shareIdentifier: Annotated[
        str, StringConstraints(min_length=1, max_length=256, pattern=SHARE_IDENTIFIER_OR_PREFIX_PATTERN)
    ]
    """A share identifier (letters, numbers, - and _), or a prefix ending in `*`."""
    weightFactor: Annotated[float, Field(ge=0.0001, le=999.9999)] = 1.0
    """0.0001 to 999.9999. LOWER means MORE compute: a share with 0.125 gets 8 times the compute of
    a share with 1. Identifiers not listed get 1."""


class FairsharePolicy(KubatchModel):
    """How the queue's compute is shared."""

    shareDecaySeconds: Annotated[int, Field(ge=0, le=604800)] = 0
    """Window (0 to 604800 seconds) over which past usage counts; 0 = only current usage."""
    computeReservation: Annotated[int, Field(ge=0, le=99)] = 0
    """Keeps (computeReservation/100)^activeShares of the queue's maximum vCPUs free for shares that
    are not active yet (0 to 99)."""
    shareDistribution: (
        Annotated[
            list[ShareAttributes],
            Field(max_length=100, json_schema_extra=list_map("shareIdentifier") | validations(_NO_OVERLAP)),
        ]
        | None
    ) = None
    """Weights of share identifiers (unique, not overlapping); unlisted shares weigh 1."""


class QuotaSharePolicy(KubatchModel):
    """Quota management of a service job queue (AWS QuotaSharePolicy)."""

    idleResourceAssignmentStrategy: Literal["FIFO"] = "FIFO"
    """How idle capacity lent by quota shares is given to borrowing shares: FIFO, the RUNNABLE jobs
    of LEND_AND_BORROW shares in submission order (AWS's only strategy)."""


class SchedulingPolicySpec(KubatchModel):
    """A fair-share scheduling policy, or a quota share policy (exactly one of the two)."""

    model_config = model_rules(
        cel(
            "has(self.fairsharePolicy) != has(self.quotaSharePolicy)",
            "spec: set spec.fairsharePolicy (a fair-share queue) or spec.quotaSharePolicy (a quota-managed "
            "service job queue), exactly one of them",
            field_path=".fairsharePolicy",
        ),
    )

    fairsharePolicy: FairsharePolicy | None = None
    """The fair-share settings."""
    quotaSharePolicy: QuotaSharePolicy | None = None
    """Makes the service job queues using this policy quota-managed: every job names one of the
    queue's quota shares (spec.quotaShareName), which hold capacity per instance type, lend and
    borrow it and preempt (docs/service-jobs.md, "Quota shares and preemption")."""
    tags: Tags | None = None
    """Tags of the policy."""


class SchedulingPolicyStatus(KubatchModel):
    """State of the policy, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    jobQueues: list[str] | None = None
    """Queues that use this policy."""


class SchedulingPolicy(KubatchModel):
    """A fair-share scheduling policy, as in AWS Batch: attached to a JobQueue, it shares the queue's
    compute among share identifiers by weight instead of serving jobs first in, first out."""

    apiVersion: str = API_VERSION
    kind: str = SCHEDULING_POLICY.kind
    metadata: dict[str, Any] = {}
    spec: SchedulingPolicySpec
    status: SchedulingPolicyStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Decay",
        "type": "integer",
        "jsonPath": ".spec.fairsharePolicy.shareDecaySeconds",
        "priority": 1,
    },
    {
        "name": "Reservation",
        "type": "integer",
        "jsonPath": ".spec.fairsharePolicy.computeReservation",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = []
