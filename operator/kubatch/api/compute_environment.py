"""ComputeEnvironment (cluster-scoped, short name `ce`): a pool of nodes jobs run on, as an AWS Batch
compute environment. MANAGED pools are scaled by kubatch through a provisioner (kwok nodes or a
Karpenter NodePool); UNMANAGED pools are existing nodes picked by a node selector."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubatch.api.common import (
    DnsSubdomain,
    KubatchModel,
    LabelValue,
    Tags,
    cel,
    model_rules,
)
from kubatch.api.constants import API_VERSION, COMPUTE_ENVIRONMENT

ComputeEnvironmentType = Literal["MANAGED", "UNMANAGED"]
State = Literal["ENABLED", "DISABLED"]
ResourceStatus = Literal["CREATING", "UPDATING", "DELETING", "DELETED", "VALID", "INVALID"]
AllocationStrategy = Literal[
    "BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"
]
Provisioner = Literal["kwok", "karpenter"]

SCALE_DOWN_MESSAGE = (
    "Manually scaling down compute environment is not supported. Disconnecting job queues from compute "
    "environment will cause it to scale-down to minvCpus."
)


class NodeClassRef(KubatchModel):
    """The Karpenter node class the NodePool of this environment uses (e.g. an EC2NodeClass)."""

    group: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """API group of the node class, e.g. karpenter.k8s.aws."""
    kind: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Kind of the node class, e.g. EC2NodeClass."""
    name: DnsSubdomain
    """Name of the node class."""


class ComputeResources(KubatchModel):
    """How a MANAGED environment's capacity is sized and made. Changing type, instanceTypes,
    allocationStrategy or nodeClassRef is an infrastructure update: the nodes made before are
    replaced, as spec.updatePolicy says; the other fields scale in place."""

    model_config = model_rules(
        cel(
            "self.minvCpus <= self.maxvCpus",
            "computeResources.minvCpus must not exceed computeResources.maxvCpus",
            field_path=".minvCpus",
        ),
        cel(
            "!has(self.desiredvCpus) || (self.minvCpus <= self.desiredvCpus && self.desiredvCpus <= self.maxvCpus)",
            "computeResources.desiredvCpus must lie between computeResources.minvCpus and computeResources.maxvCpus",
            field_path=".desiredvCpus",
        ),
        cel(
            "!self.allocationStrategy.startsWith('SPOT_') || self.type == 'SPOT'",
            "computeResources.allocationStrategy SPOT_CAPACITY_OPTIMIZED and "
            "SPOT_PRICE_CAPACITY_OPTIMIZED need "
            "computeResources.type SPOT",
            field_path=".allocationStrategy",
        ),
        cel(
            "self.provisioner != 'karpenter' || has(self.nodeClassRef)",
            "computeResources.nodeClassRef is required with provisioner karpenter",
            field_path=".nodeClassRef",
        ),
        cel(
            "self.provisioner == 'karpenter' || !has(self.nodeClassRef)",
            "computeResources.nodeClassRef applies only to provisioner karpenter",
            field_path=".nodeClassRef",
        ),
        cel(
            "!has(oldSelf.desiredvCpus) || !has(self.desiredvCpus) || self.desiredvCpus >= oldSelf.desiredvCpus",
            f"computeResources.desiredvCpus cannot be lowered: {SCALE_DOWN_MESSAGE}",
            field_path=".desiredvCpus",
        ),
        cel(
            "self.provisioner == oldSelf.provisioner",
            "computeResources.provisioner is immutable: create a new compute environment instead (blue/green)",
            field_path=".provisioner",
        ),
    )

    type: Literal["EC2", "SPOT"] = "EC2"
    """EC2 (on-demand) or SPOT. With SPOT, pods tolerate interruption and the nodes may be Spot
    capacity where the provisioner supports it."""
    minvCpus: Annotated[int, Field(ge=0)] = 0
    """vCPUs kept even when no job needs them (also while DISABLED)."""
    maxvCpus: Annotated[int, Field(ge=0)]
    """Most vCPUs the environment scales to (it may exceed this by at most one node)."""
    desiredvCpus: Annotated[int, Field(ge=0)] | None = None
    """Recorded only: validated as in AWS Batch (between minvCpus and maxvCpus; it can be raised but
    not lowered, lower minvCpus instead) and otherwise without effect. kubatch sizes the environment
    from queue demand (never below minvCpus) and writes its own figure to status.desiredvCpus."""
    instanceTypes: (
        Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=64)]], Field(max_length=32)] | None
    ) = None
    """Instance types (e.g. c7g.large), families (c7g) or AWS's keywords `default_x86_64` (m6i, c6i,
    r6i, c7i; also what unset means), `default_arm64` (m6g, c6g, r6g, c7g) and `optimal` (the same as
    default_x86_64), all of one architecture. kwok sizes nodes from kubatch's catalogue (a type
    outside it makes the environment INVALID there); Karpenter gets them as
    node.kubernetes.io/instance-type or karpenter.k8s.aws/instance-family requirements, any EC2 name,
    with the architecture as kubernetes.io/arch."""
    allocationStrategy: AllocationStrategy = "BEST_FIT"
    """How instance types are chosen: BEST_FIT, BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED or
    SPOT_PRICE_CAPACITY_OPTIMIZED (the SPOT_ ones need type SPOT)."""
    provisioner: Provisioner
    """How nodes are made: kwok (simulated nodes, for tests and demos) or karpenter (a NodePool)."""
    nodeClassRef: NodeClassRef | None = None
    """The Karpenter node class (provisioner karpenter only)."""
    minScaleDownDelayMinutes: Annotated[int, Field(ge=0, le=10080)] | None = None
    """Minutes an idle node is kept after its last job ended before it is removed."""
    tags: Tags | None = None
    """Recorded only, as AWS Batch computeResources.tags: kubatch passes them to neither nodes nor
    Karpenter. To tag the cloud instances, put the tags in the Karpenter node class
    (EC2NodeClass spec.tags) that nodeClassRef names. Changing them is therefore no infrastructure
    update (the nodes stay)."""


class UpdatePolicy(KubatchModel):
    """What happens to running jobs when an infrastructure update replaces the nodes they run on
    (AWS Batch UpdatePolicy). An infrastructure update is a change of computeResources.type,
    instanceTypes, allocationStrategy or nodeClassRef; the environment is UPDATING until every node
    of the earlier spec is gone. New jobs go to new nodes; a node of the earlier spec is removed once
    its jobs are done."""

    terminateJobsOnUpdate: bool = False
    """true: jobs running on a replaced node are terminated at once (jobExecutionTimeoutMinutes is
    ignored). false: they may run jobExecutionTimeoutMinutes more, then they are terminated. A
    terminated job's attempt ends as on a lost host (`Host EC2 (instance <node>) terminated.`): it
    is retried only when its retry strategy says so."""
    jobExecutionTimeoutMinutes: Annotated[int, Field(ge=1, le=7200)] = 30
    """Minutes the jobs running on a replaced node may still run when terminateJobsOnUpdate is false
    (1 to 7200, default 30), counted from when kubatch sees the update. Shortening it during an
    update brings the moment forward; lengthening it never postpones a moment already set."""


# A taint key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
TAINT_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
MAX_TOLERATIONS = 20


class Toleration(KubatchModel):
    """A Kubernetes toleration, as in a pod's spec.tolerations: it lets the pods of this environment's
    jobs onto nodes with a matching taint."""

    model_config = model_rules(
        cel(
            "self.operator != 'Exists' || !has(self.value) || self.value == ''",
            "tolerations[].value must not be set with operator Exists",
            field_path=".value",
        ),
        cel(
            "self.operator == 'Exists' || (has(self.key) && self.key != '')",
            "tolerations[].key is required with operator Equal (an empty key with Exists tolerates every taint)",
            field_path=".key",
        ),
        cel(
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            "tolerations[].tolerationSeconds applies only to effect NoExecute",
            field_path=".tolerationSeconds",
        ),
    )

    key: Annotated[str, StringConstraints(max_length=317, pattern=TAINT_KEY_PATTERN)] | None = None
    """The taint key, e.g. `example.com/dedicated`. Unset with operator Exists: every taint."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """Equal: the taint's value must equal `value`. Exists: any value (then `value` must be unset)."""
    value: LabelValue | None = None
    """The taint value to match with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to match: NoSchedule, PreferNoSchedule or NoExecute; unset matches every effect."""
    tolerationSeconds: Annotated[int, Field(ge=0)] | None = None
    """NoExecute only: how long a running pod stays on a node after the taint appears (unset: forever)."""


class ComputeEnvironmentSpec(KubatchModel):
    """A pool of nodes. MANAGED needs computeResources; UNMANAGED needs nodeSelector. kubatch labels
    the nodes `kubatch.dev/compute-environment=<name>` and taints them `...:NoSchedule` so that only
    its jobs run there."""

    model_config = model_rules(
        cel(
            "self.type != 'MANAGED' || has(self.computeResources)",
            "spec.computeResources is required for a MANAGED compute environment",
            field_path=".computeResources",
        ),
        cel(
            "self.type != 'UNMANAGED' || !has(self.computeResources)",
            "spec.computeResources must not be set for an UNMANAGED compute environment",
            field_path=".computeResources",
        ),
        cel(
            "self.type != 'UNMANAGED' || (has(self.nodeSelector) && self.nodeSelector.size() > 0)",
            "spec.nodeSelector is required for an UNMANAGED compute environment (it picks the nodes)",
            field_path=".nodeSelector",
        ),
        cel(
            "self.type != 'MANAGED' || (!has(self.nodeSelector) && !has(self.unmanagedvCpus))",
            "spec.nodeSelector and spec.unmanagedvCpus apply only to UNMANAGED compute environments",
            field_path=".nodeSelector",
        ),
        cel("self.type == oldSelf.type", "spec.type is immutable", field_path=".type"),
    )

    type: ComputeEnvironmentType
    """MANAGED (kubatch scales the nodes) or UNMANAGED (existing nodes picked by nodeSelector)."""
    state: State = "ENABLED"
    """ENABLED: jobs are placed here. DISABLED: no new jobs are placed; running ones finish."""
    computeResources: ComputeResources | None = None
    """Sizing of a MANAGED environment."""
    nodeSelector: Annotated[dict[str, LabelValue], Field(max_length=16)] | None = None
    """UNMANAGED: the labels of the existing nodes that form the pool."""
    unmanagedvCpus: Annotated[int, Field(ge=0)] | None = None
    """UNMANAGED: vCPUs to assume for fair-share reservation before the nodes are counted."""
    tolerations: Annotated[list[Toleration], Field(max_length=MAX_TOLERATIONS)] | None = None
    """Tolerations added to the pods of every job placed on this environment (at most 20), so that
    nodes carrying taints of your own can form the pool, e.g. nodes tainted
    `example.com/dedicated=batch:NoSchedule` with `{key: example.com/dedicated, operator: Equal,
    value: batch, effect: NoSchedule}`. kubatch's own `kubatch.dev/compute-environment` taint is
    always tolerated, and `nvidia.com/gpu` by pods that request GPUs. A node of an UNMANAGED pool
    counts toward the environment's capacity only when its NoSchedule and NoExecute taints are all
    tolerated; the others stay in the pool but take no jobs."""
    allowPrivileged: bool = False
    """Allow privileged containers on these nodes."""
    allowHostNetwork: bool = False
    """Allow pods using the node's network (hostNetwork) on these nodes."""
    allowHostPath: bool = False
    """Allow host path volumes and devices on these nodes."""
    tags: Tags | None = None
    """Tags of the compute environment."""
    updatePolicy: UpdatePolicy | None = None
    """MANAGED: what an infrastructure update does to running jobs (unset: terminateJobsOnUpdate false,
    jobExecutionTimeoutMinutes 30). No effect on an UNMANAGED environment, whose nodes kubatch does
    not make."""


class ResourceAmounts(KubatchModel):
    """An amount of compute."""

    vcpus: Annotated[float, Field(ge=0)] = 0
    """vCPUs."""
    memory: Annotated[int, Field(ge=0)] = 0
    """Memory in MiB."""
    gpus: Annotated[int, Field(ge=0)] = 0
    """GPUs."""


class ComputeEnvironmentStatus(KubatchModel):
    """State of the environment, written by kubatch."""

    observedGeneration: int | None = None
    """The metadata.generation this status describes."""
    status: ResourceStatus | None = None
    """CREATING, UPDATING, DELETING, DELETED, VALID or INVALID."""
    statusReason: str | None = None
    """Why the environment has its status."""
    desiredvCpus: Annotated[int, Field(ge=0)] | None = None
    """vCPUs kubatch currently wants in the pool."""
    nodes: Annotated[int, Field(ge=0)] | None = None
    """Ready nodes in the pool."""
    capacity: ResourceAmounts | None = None
    """Allocatable compute of the ready nodes."""
    usage: ResourceAmounts | None = None
    """Compute requested by the STARTING and RUNNING jobs' pods."""
    jobQueues: list[str] | None = None
    """Queues that use this environment."""


class ComputeEnvironment(KubatchModel):
    """A pool of nodes that jobs run on, as an AWS Batch compute environment. MANAGED pools are
    scaled by kubatch between minvCpus and maxvCpus (kwok nodes or a Karpenter NodePool); UNMANAGED
    pools are existing nodes picked by nodeSelector."""

    apiVersion: str = API_VERSION
    kind: str = COMPUTE_ENVIRONMENT.kind
    metadata: dict[str, Any] = {}
    spec: ComputeEnvironmentSpec
    status: ComputeEnvironmentStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "State", "type": "string", "jsonPath": ".spec.state"},
    {"name": "Status", "type": "string", "jsonPath": ".status.status"},
    {"name": "Desired-vCPUs", "type": "integer", "jsonPath": ".status.desiredvCpus"},
    {"name": "Max-vCPUs", "type": "integer", "jsonPath": ".spec.computeResources.maxvCpus"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Provisioner",
        "type": "string",
        "jsonPath": ".spec.computeResources.provisioner",
        "priority": 1,
    },
    {"name": "Min-vCPUs", "type": "integer", "jsonPath": ".spec.computeResources.minvCpus", "priority": 1},
    {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes", "priority": 1},
]
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    cel(
        "self.metadata.name.size() <= 63",
        "metadata.name must be at most 63 characters (it is the value of the nodes' "
        "kubatch.dev/compute-environment label)",
    ),
]
