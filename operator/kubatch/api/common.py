"""Shared pieces of the kubatch API: the base model, CEL rule helpers, constrained string types, and
the sub-objects several kinds embed (container and pod properties, retry strategy, timeout, node
properties, tags, pod metadata, label selectors, consumable resource requests).

Docstrings become the CRD descriptions that `kubectl explain` prints, so they are written for users.
Every list, map and string carries a size bound: the API server estimates the cost of CEL rules
from those bounds and rejects a CRD whose rules could exceed its budget.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.config import JsonDict

# --------------------------------------------------------------------------------------------------
# Base model and schema helpers


class KubatchModel(BaseModel):
    """Base of every API object: attribute docstrings become schema descriptions."""

    # Unknown fields are ignored, not rejected: an older operator must read objects written under a
    # newer CRD. The API server prunes what the CRD does not know.
    model_config = ConfigDict(use_attribute_docstrings=True, extra="ignore")

    def to_dict(self) -> dict[str, Any]:
        """The object as it is written to the API server (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry. `message` must name the field it is about."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def validations(*rules: JsonDict) -> JsonDict:
    """Schema extras carrying CEL rules, for `model_config` or `Field(json_schema_extra=...)`."""
    items: list[JsonValue] = [*rules]
    return {"x-kubernetes-validations": items}


def list_map(*keys: str) -> JsonDict:
    """Mark a list as a map keyed by `keys`: the API server rejects duplicate keys itself."""
    key_list: list[JsonValue] = [*keys]
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": key_list}


def model_rules(*rules: JsonDict) -> ConfigDict:
    """`model_config` for a model whose object carries CEL rules."""
    return ConfigDict(json_schema_extra=validations(*rules))


# --------------------------------------------------------------------------------------------------
# Constrained strings

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
ABSOLUTE_PATH_PATTERN = r"^/.*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
# `n`, `n:`, `:m` or `n:m`: the node indexes a node range applies to, as in AWS Batch.
TARGET_NODES_PATTERN = r"^([0-9]{1,4}|[0-9]{1,4}:|:[0-9]{1,4}|[0-9]{1,4}:[0-9]{1,4})$"
SHARE_IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A Kubernetes name that is also usable as a label value (RFC 1123 label, at most 63 characters)."""
DnsSubdomain = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""A Kubernetes object name (RFC 1123 subdomain)."""
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]
AbsolutePath = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=ABSOLUTE_PATH_PATTERN)]
Quantity = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=QUANTITY_PATTERN)]
Arg = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^=]+$")]
EnvValue = Annotated[str, StringConstraints(max_length=8192)]
TargetNodes = Annotated[str, StringConstraints(min_length=1, max_length=9, pattern=TARGET_NODES_PATTERN)]
IntOrString = int | Annotated[str, StringConstraints(max_length=64)]
"""A Kubernetes resource quantity: an integer or a string such as `500m`, `2Gi`."""

RESERVED_ENV_PREFIX = "AWS_BATCH"
RESERVED_METADATA_PREFIXES = ("kubatch.dev/", "kubernetes.io/", "k8s.io/")

_RESERVED_ENV_RULE = cel(
    f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
    f"environment variable names starting with {RESERVED_ENV_PREFIX} are reserved for the variables "
    "kubatch sets (AWS_BATCH_JOB_ID, AWS_BATCH_JOB_ARRAY_INDEX, ...)",
    field_path=".name",
)

# --------------------------------------------------------------------------------------------------
# Maps: parameters, tags, pod metadata


def _no_reserved_keys(what: str) -> JsonDict:
    checks = " && ".join(f"!k.startsWith('{p}')" for p in RESERVED_METADATA_PREFIXES)
    return cel(
        f"self.all(k, {checks})",
        f"{what} keys must not use the reserved prefixes " + ", ".join(RESERVED_METADATA_PREFIXES),
    )


Parameters = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=4096)]],
    Field(
        max_length=100,
        json_schema_extra=validations(
            cel("self.all(k, k.size() <= 128)", "parameters keys must be at most 128 characters")
        ),
    ),
]
"""Parameter values substituted for `Ref::<name>` tokens in the container command."""

Tags = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=256)]],
    Field(
        max_length=50,
        json_schema_extra=validations(
            cel(
                "self.all(k, k.size() >= 1 && k.size() <= 128 && !k.startsWith('aws:'))",
                "tags keys must be 1 to 128 characters and must not start with the reserved prefix aws:",
            )
        ),
    ),
]
"""Key/value tags (at most 50; keys up to 128 characters, values up to 256), as in AWS Batch."""


class PodMetadata(KubatchModel):
    """Labels and annotations added to every pod kubatch creates for a job."""

    labels: (
        Annotated[
            dict[str, LabelValue],
            Field(max_length=64, json_schema_extra=validations(_no_reserved_keys("labels"))),
        ]
        | None
    ) = None
    """Pod labels. Keys under kubatch.dev/, kubernetes.io/ and k8s.io/ are reserved."""
    annotations: (
        Annotated[
            dict[str, AnnotationValue],
            Field(max_length=64, json_schema_extra=validations(_no_reserved_keys("annotations"))),
        ]
        | None
    ) = None
    """Pod annotations. Keys under kubatch.dev/, kubernetes.io/ and k8s.io/ are reserved."""


class LabelSelectorRequirement(KubatchModel):
    """A label selector requirement, as in Kubernetes."""

    model_config = model_rules(
        cel(
            "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
            "matchExpressions: operators In and NotIn need values; Exists and DoesNotExist take none",
            field_path=".values",
        )
    )

    key: Annotated[str, StringConstraints(min_length=1, max_length=317)]
    """The label key the selector applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: Annotated[list[LabelValue], Field(max_length=64)] = []
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(KubatchModel):
    """A Kubernetes label selector: all of matchLabels and all of matchExpressions must match.
    An empty selector matches everything."""

    matchLabels: Annotated[dict[str, LabelValue], Field(max_length=64)] | None = None
    """Labels that must all be present with exactly these values."""
    matchExpressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] | None = None
    """Requirements that must all hold."""


# --------------------------------------------------------------------------------------------------
# Container properties (AWS Batch `containerProperties`, mapped to one Kubernetes container)

ResourceType = Literal["VCPU", "MEMORY", "GPU"]


class ResourceRequirement(KubatchModel):
    """A resource the container needs. VCPU: number of vCPUs (fractions allowed, e.g. "0.5");
    MEMORY: MiB, as in AWS Batch; GPU: number of NVIDIA GPUs (`nvidia.com/gpu`). Values are
    strings, as in AWS Batch; each becomes the container's request and limit."""

    model_config = model_rules(
        cel(
            "self.type == 'VCPU' || self.value.matches('^[0-9]+$')",
            "resourceRequirements: the value of MEMORY (MiB) and GPU must be a whole number",
            field_path=".value",
        ),
        cel(
            "self.type == 'GPU' || double(self.value) > 0.0",
            "resourceRequirements: the value of VCPU and MEMORY must be greater than 0",
            field_path=".value",
        ),
        cel(
            "self.type != 'MEMORY' || double(self.value) >= 4.0",
            "resourceRequirements: MEMORY must be at least 4 (MiB)",
            field_path=".value",
        ),
    )

    type: ResourceType
    """VCPU, MEMORY or GPU."""
    value: Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^[0-9]+(\.[0-9]+)?$")]
    """The amount, as a decimal string."""


class EnvironmentVariable(KubatchModel):
    """An environment variable of the job's container. Names starting with AWS_BATCH are reserved."""

    model_config = model_rules(_RESERVED_ENV_RULE)

    name: EnvName
    """The variable's name."""
    value: EnvValue = ""
    """The variable's value."""


class Secret(KubatchModel):
    """An environment variable whose value is read from a Kubernetes Secret when the pod starts
    (AWS Batch `secrets`). `valueFrom` is `<secret-name>:<key>` and names a Secret in the job's
    namespace; instead of a Secrets Manager or SSM ARN. Like in AWS Batch, a later change of the
    Secret does not reach a running job."""

    model_config = model_rules(_RESERVED_ENV_RULE)

    name: EnvName
    """The environment variable to set."""
    valueFrom: Annotated[
        str,
        StringConstraints(
            min_length=3,
            max_length=507,
            pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[-._a-zA-Z0-9]+$",
        ),
    ]
    """`<secret-name>:<key>`: the Secret (in the job's namespace) and the key whose value is used."""


class HostVolumeSource(KubatchModel):
    """A directory of the node (a hostPath volume). Needs allowHostPath on the job queue and on the
    compute environment."""

    sourcePath: AbsolutePath | None = None
    """The path on the node. Without it the volume is a scratch directory that is deleted with the
    pod (an emptyDir), as a Docker-assigned host path is in AWS Batch."""


class EmptyDirVolumeSource(KubatchModel):
    """A scratch directory that lives as long as the pod (Kubernetes emptyDir)."""

    medium: Literal["", "Memory"] | None = None
    """"" for node storage, Memory for a tmpfs."""
    sizeLimit: Quantity | None = None
    """Maximum size, as a Kubernetes quantity (e.g. 1Gi)."""


class PersistentVolumeClaimVolumeSource(KubatchModel):
    """A PersistentVolumeClaim in the job's namespace (Kubernetes extension)."""

    claimName: DnsSubdomain
    """The claim's name."""
    readOnly: bool | None = None
    """Mount the claim read-only."""


class SecretVolumeSource(KubatchModel):
    """The keys of a Secret in the job's namespace, as files (Kubernetes extension)."""

    secretName: DnsSubdomain
    """The Secret's name."""
    optional: bool | None = None
    """Start the pod even if the Secret does not exist."""


class ConfigMapVolumeSource(KubatchModel):
    """The keys of a ConfigMap in the job's namespace, as files (Kubernetes extension)."""

    name: DnsSubdomain
    """The ConfigMap's name."""
    optional: bool | None = None
    """Start the pod even if the ConfigMap does not exist."""


_ONE_VOLUME_SOURCE = (
    "[has(self.host), has(self.emptyDir), has(self.persistentVolumeClaim), has(self.secret), has(self.configMap)]"
)


class Volume(KubatchModel):
    """A volume the container can mount (AWS Batch `volumes`). Set at most one source; a volume
    with no source is an empty scratch directory. EFS volumes have no Kubernetes equivalent: use a
    persistentVolumeClaim backed by the EFS CSI driver instead."""

    model_config = model_rules(
        cel(
            f"{_ONE_VOLUME_SOURCE}.filter(x, x).size() <= 1",
            "volumes: set at most one of host, emptyDir, persistentVolumeClaim, secret, configMap",
        )
    )

    name: DnsLabel
    """The volume's name, referenced by mountPoints[].sourceVolume (a DNS label)."""
    host: HostVolumeSource | None = None
    """A directory of the node."""
    emptyDir: EmptyDirVolumeSource | None = None
    """A scratch directory that lives as long as the pod."""
    persistentVolumeClaim: PersistentVolumeClaimVolumeSource | None = None
    """A PersistentVolumeClaim of the job's namespace."""
    secret: SecretVolumeSource | None = None
    """A Secret of the job's namespace, as files."""
    configMap: ConfigMapVolumeSource | None = None
    """A ConfigMap of the job's namespace, as files."""


class MountPoint(KubatchModel):
    """Where a volume is mounted in the container."""

    sourceVolume: DnsLabel
    """The name of a volume in volumes."""
    containerPath: AbsolutePath
    """The absolute path in the container."""
    readOnly: bool = False
    """Mount read-only."""


UlimitName = Literal[
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
]  # fmt: skip


class Ulimit(KubatchModel):
    """A ulimit, as in AWS Batch. Kubernetes has no per-container ulimit setting: the values are
    accepted so that AWS Batch job definitions apply unchanged, and the nodes' limits apply."""

    model_config = model_rules(cel("self.softLimit <= self.hardLimit", "ulimits: softLimit must not exceed hardLimit"))

    name: UlimitName
    """The limit's name."""
    softLimit: Annotated[int, Field(ge=-1)]
    """Soft limit (-1 = unlimited)."""
    hardLimit: Annotated[int, Field(ge=-1)]
    """Hard limit (-1 = unlimited)."""


class Device(KubatchModel):
    """A device of the node (AWS Batch linuxParameters.devices). Accepted and not passed to the pod:
    Kubernetes has no per-container device rule, so a mounted device file could be opened only by a
    privileged container, which sees the node's devices anyway. Use privileged (or a device plugin's
    resource through podProperties). It still counts as a use of the node's paths: it needs
    allowHostPath on the job queue and on the compute environment."""

    hostPath: AbsolutePath
    """The device's path on the node."""
    containerPath: AbsolutePath | None = None
    """The path in the container; defaults to hostPath."""
    permissions: Annotated[list[Literal["READ", "WRITE", "MKNOD"]], Field(max_length=3)] | None = None
    """Device permissions. Recorded for compatibility; Kubernetes grants what the node allows."""


class Tmpfs(KubatchModel):
    """A tmpfs mount (a memory-backed emptyDir)."""

    containerPath: AbsolutePath
    """Where it is mounted."""
    size: Annotated[int, Field(ge=1)]
    """Size in MiB."""
    mountOptions: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=32)] | None = None
    """Mount options. Recorded for compatibility; Kubernetes does not pass options to emptyDir."""


class LinuxParameters(KubatchModel):
    """Linux-specific container settings (AWS Batch `linuxParameters`)."""

    initProcessEnabled: bool | None = None
    """Run an init process that reaps zombies: kubatch sets shareProcessNamespace on the pod, which
    makes the pod's pause process (it reaps orphans) PID 1, and the job's process another PID."""
    sharedMemorySize: Annotated[int, Field(ge=1)] | None = None
    """Size of /dev/shm in MiB (a memory-backed emptyDir mounted at /dev/shm)."""
    tmpfs: Annotated[list[Tmpfs], Field(max_length=32)] | None = None
    """tmpfs mounts."""
    devices: Annotated[list[Device], Field(max_length=32)] | None = None
    """Host devices: accepted and ignored (see devices[].description)."""
    maxSwap: Annotated[int, Field(ge=0)] | None = None
    """Swap in MiB: accepted and ignored (Kubernetes sets swap per node, not per container)."""
    swappiness: Annotated[int, Field(ge=0, le=100)] | None = None
    """Accepted and ignored, as maxSwap."""


LogDriver = Literal[
    "awslogs", "fluentd", "gelf", "json-file", "journald", "logentries", "syslog", "splunk", "awsfirelens"
]


class LogSecretOption(KubatchModel):
    """A secret passed to the log driver (AWS Batch logConfiguration.secretOptions)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """The option's name."""
    valueFrom: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    """Where AWS reads the secret from (an ARN)."""


class LogConfiguration(KubatchModel):
    """The container's log driver, as AWS Batch logConfiguration. Accepted so that AWS Batch job
    definitions apply unchanged, and ignored: a Kubernetes container writes to its node's container
    logs (`kubectl logs`, `kubatch logs`); shipping them elsewhere is the cluster's log agent's work."""

    logDriver: LogDriver
    """awslogs, fluentd, gelf, json-file, journald, logentries, syslog, splunk or awsfirelens."""
    options: Annotated[dict[str, Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=64)] | None = (
        None
    )
    """Driver options."""
    secretOptions: Annotated[list[LogSecretOption], Field(max_length=32)] | None = None
    """Secrets for the driver."""


class ContainerProperties(KubatchModel):
    """A single-container job, as AWS Batch `containerProperties`. kubatch runs it as a pod with one
    container named `default`."""

    model_config = model_rules(
        cel(
            "!has(self.mountPoints) || self.mountPoints.all(m, has(self.volumes) && "
            "self.volumes.exists(v, v.name == m.sourceVolume))",
            "mountPoints[].sourceVolume must name a volume defined in volumes",
            field_path=".mountPoints",
        )
    )

    image: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    """The container image."""
    command: Annotated[list[Arg], Field(max_length=256)] | None = None
    """The command (Docker CMD; the image's entrypoint is kept). `Ref::<name>` tokens are replaced
    by parameters."""
    resourceRequirements: (
        Annotated[list[ResourceRequirement], Field(max_length=3, json_schema_extra=list_map("type"))] | None
    ) = None
    """VCPU, MEMORY (MiB) and GPU; each at most once."""
    vcpus: Annotated[int, Field(ge=1)] | None = None
    """Deprecated in AWS Batch (use resourceRequirements): the vCPUs, used when resourceRequirements
    has no VCPU entry."""
    memory: Annotated[int, Field(ge=4)] | None = None
    """Deprecated in AWS Batch (use resourceRequirements): the memory in MiB, used when
    resourceRequirements has no MEMORY entry."""
    environment: (
        Annotated[list[EnvironmentVariable], Field(max_length=256, json_schema_extra=list_map("name"))] | None
    ) = None
    """Environment variables."""
    secrets: Annotated[list[Secret], Field(max_length=64, json_schema_extra=list_map("name"))] | None = None
    """Environment variables read from Kubernetes Secrets."""
    volumes: Annotated[list[Volume], Field(max_length=32, json_schema_extra=list_map("name"))] | None = None
    """Volumes the container can mount."""
    mountPoints: Annotated[list[MountPoint], Field(max_length=32)] | None = None
    """Where volumes are mounted."""
    ulimits: Annotated[list[Ulimit], Field(max_length=16, json_schema_extra=list_map("name"))] | None = None
    """ulimits (accepted for compatibility; see ulimits[].description)."""
    logConfiguration: LogConfiguration | None = None
    """The log driver: accepted and ignored (see logConfiguration.description)."""
    user: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9]+(:[0-9]+)?$")] | None = None
    """The numeric user (and optionally group) the container runs as, `uid` or `uid:gid`. Kubernetes
    needs numbers, so user names are not accepted."""
    privileged: bool | None = None
    """Run privileged. Needs allowPrivileged on the job queue and on the compute environment."""
    readonlyRootFilesystem: bool | None = None
    """Mount the container's root filesystem read-only."""
    linuxParameters: LinuxParameters | None = None
    """Linux-specific settings: /dev/shm size, tmpfs, devices, init process."""
    instanceType: Annotated[str, StringConstraints(max_length=64)] | None = None
    """The instance type the pod must run on, as in AWS Batch multi-node jobs: the pod gets the
    nodeSelector `node.kubernetes.io/instance-type: <value>`. The scheduler still places the job
    on a compute environment by its capacity alone; if no node of that type comes (an UNMANAGED
    environment without one, a NodePool that does not allow it), the pod stays unschedulable and
    the attempt fails with `Task failed to start` after the start bound."""
    serviceAccountName: DnsSubdomain | None = None
    """The Kubernetes service account the pod runs as; this replaces AWS Batch jobRoleArn
    (use IRSA or EKS Pod Identity on the service account to reach AWS). It must exist in the job's
    namespace when the job starts, else the job FAILS. Unset: the namespace's `default` account."""


# --------------------------------------------------------------------------------------------------
# Pod properties (AWS Batch `eksProperties.podProperties`): Kubernetes-shaped containers


class SecretKeySelector(KubatchModel):
    """A key of a Secret in the pod's namespace."""

    name: DnsSubdomain
    """The Secret's name."""
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """The key."""
    optional: bool | None = None
    """Start even if the Secret or key does not exist."""


class ConfigMapKeySelector(KubatchModel):
    """A key of a ConfigMap in the pod's namespace."""

    name: DnsSubdomain
    """The ConfigMap's name."""
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """The key."""
    optional: bool | None = None
    """Start even if the ConfigMap or key does not exist."""


class ObjectFieldSelector(KubatchModel):
    """A field of the pod (Kubernetes downward API)."""

    fieldPath: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """The field, e.g. metadata.name or status.podIP."""
    apiVersion: Annotated[str, StringConstraints(max_length=64)] | None = None
    """Version of the schema fieldPath is written in (v1)."""


class ResourceFieldSelector(KubatchModel):
    """A resource request or limit of a container (Kubernetes downward API)."""

    resource: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """e.g. limits.cpu or requests.memory."""
    containerName: DnsLabel | None = None
    """The container; defaults to this one."""
    divisor: Quantity | None = None
    """Output unit."""


class EnvVarSource(KubatchModel):
    """Where an environment variable's value comes from (Kubernetes EnvVarSource)."""

    model_config = model_rules(
        cel(
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), "
            "has(self.resourceFieldRef)]"
            ".filter(x, x).size() == 1",
            "env[].valueFrom: set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef",
        )
    )

    secretKeyRef: SecretKeySelector | None = None
    """A key of a Secret."""
    configMapKeyRef: ConfigMapKeySelector | None = None
    """A key of a ConfigMap."""
    fieldRef: ObjectFieldSelector | None = None
    """A field of the pod."""
    resourceFieldRef: ResourceFieldSelector | None = None
    """A resource of a container."""


class EnvVar(KubatchModel):
    """An environment variable of a pod container. Names starting with AWS_BATCH are reserved."""

    model_config = model_rules(
        _RESERVED_ENV_RULE,
        cel(
            "!(has(self.value) && has(self.valueFrom))",
            "env[]: set value or valueFrom, not both",
            field_path=".valueFrom",
        ),
    )

    name: EnvName
    """The variable's name."""
    value: EnvValue | None = None
    """The variable's value."""
    valueFrom: EnvVarSource | None = None
    """Read the value from a Secret, a ConfigMap or the pod."""


ResourceMap = Annotated[dict[str, IntOrString], Field(max_length=16)]


class ContainerResources(KubatchModel):
    """Kubernetes resource requests and limits, e.g. cpu, memory, nvidia.com/gpu."""

    requests: ResourceMap | None = None
    """What the scheduler reserves; a missing request is copied from the limit."""
    limits: ResourceMap | None = None
    """The most the container may use."""


class VolumeMount(KubatchModel):
    """Where a pod volume is mounted in the container."""

    name: DnsLabel
    """The volume's name."""
    mountPath: AbsolutePath
    """The absolute path in the container."""
    subPath: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Mount only this sub-path of the volume."""
    readOnly: bool | None = None
    """Mount read-only."""


class SecurityContext(KubatchModel):
    """Container security settings (the subset AWS Batch on EKS accepts)."""

    runAsUser: Annotated[int, Field(ge=0)] | None = None
    """The user id the container runs as."""
    runAsGroup: Annotated[int, Field(ge=0)] | None = None
    """The group id the container runs as."""
    runAsNonRoot: bool | None = None
    """Refuse to start as root."""
    privileged: bool | None = None
    """Run privileged. Needs allowPrivileged on the job queue and on the compute environment."""
    readOnlyRootFilesystem: bool | None = None
    """Mount the root filesystem read-only."""
    allowPrivilegeEscalation: bool | None = None
    """Allow a process to gain more privileges than its parent."""


class PodContainer(KubatchModel):
    """A container of a pod-based job (Kubernetes container fields, as AWS Batch on EKS accepts them)."""

    name: DnsLabel = "default"
    """The container's name; unique in the pod. Required when there is more than one container."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """The container image."""
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the image is pulled (Kubernetes default: IfNotPresent, Always for :latest)."""
    command: Annotated[list[Arg], Field(max_length=64)] | None = None
    """The entrypoint (not run in a shell). `Ref::<name>` tokens are replaced by parameters."""
    args: Annotated[list[Arg], Field(max_length=64)] | None = None
    """Arguments to the entrypoint. `Ref::<name>` tokens are replaced by parameters."""
    workingDir: AbsolutePath | None = None
    """The working directory."""
    env: Annotated[list[EnvVar], Field(max_length=64, json_schema_extra=list_map("name"))] | None = None
    """Environment variables."""
    resources: ContainerResources | None = None
    """Requests and limits (cpu, memory, nvidia.com/gpu)."""
    volumeMounts: Annotated[list[VolumeMount], Field(max_length=32)] | None = None
    """Where pod volumes are mounted."""
    securityContext: SecurityContext | None = None
    """Security settings."""


class HostPathVolumeSource(KubatchModel):
    """A path of the node. Needs allowHostPath on the job queue and on the compute environment."""

    path: AbsolutePath
    """The path on the node."""
    type: (
        Literal[
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ]
        | None
    ) = None
    """What must exist at the path (Kubernetes hostPath type)."""


_ONE_POD_VOLUME_SOURCE = (
    "[has(self.hostPath), has(self.emptyDir), has(self.persistentVolumeClaim), has(self.secret), has(self.configMap)]"
)


class PodVolume(KubatchModel):
    """A pod volume: exactly one of hostPath, emptyDir, persistentVolumeClaim, secret, configMap."""

    model_config = model_rules(
        cel(
            f"{_ONE_POD_VOLUME_SOURCE}.filter(x, x).size() == 1",
            "volumes: set exactly one of hostPath, emptyDir, persistentVolumeClaim, secret, configMap",
        )
    )

    name: DnsLabel
    """The volume's name, referenced by containers[].volumeMounts[].name."""
    hostPath: HostPathVolumeSource | None = None
    """A path of the node."""
    emptyDir: EmptyDirVolumeSource | None = None
    """A scratch directory that lives as long as the pod."""
    persistentVolumeClaim: PersistentVolumeClaimVolumeSource | None = None
    """A PersistentVolumeClaim of the job's namespace."""
    secret: SecretVolumeSource | None = None
    """A Secret of the job's namespace, as files."""
    configMap: ConfigMapVolumeSource | None = None
    """A ConfigMap of the job's namespace, as files."""


class LocalObjectReference(KubatchModel):
    """A reference to an object in the same namespace."""

    name: DnsSubdomain
    """The object's name."""


class PodProperties(KubatchModel):
    """A pod-based job, as AWS Batch `eksProperties.podProperties`: Kubernetes-shaped containers.
    Every container must exit 0 for the attempt to succeed."""

    model_config = model_rules(
        cel(
            "self.containers.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, "
            "has(self.volumes) && self.volumes.exists(v, v.name == m.name)))",
            "containers[].volumeMounts[].name must name a volume defined in volumes",
            field_path=".containers",
        )
    )

    containers: Annotated[list[PodContainer], Field(min_length=1, max_length=10, json_schema_extra=list_map("name"))]
    """The containers (1 to 10), with unique names."""
    initContainers: Annotated[list[PodContainer], Field(max_length=10, json_schema_extra=list_map("name"))] | None = (
        None
    )
    """Containers run in order before the others; each must succeed. They count as STARTING."""
    volumes: Annotated[list[PodVolume], Field(max_length=32, json_schema_extra=list_map("name"))] | None = None
    """The pod's volumes."""
    serviceAccountName: DnsSubdomain | None = None
    """The service account the pod runs as."""
    hostNetwork: bool | None = None
    """Use the node's network namespace. Unlike AWS Batch on EKS this defaults to false, and true
    needs allowHostNetwork on the job queue and on the compute environment."""
    dnsPolicy: Literal["Default", "ClusterFirst", "ClusterFirstWithHostNet"] | None = None
    """DNS policy; when unset, ClusterFirstWithHostNet with hostNetwork and ClusterFirst without."""
    shareProcessNamespace: bool | None = None
    """Let the containers see each other's processes."""
    imagePullSecrets: Annotated[list[LocalObjectReference], Field(max_length=8)] | None = None
    """Secrets used to pull the images."""
    metadata: PodMetadata | None = None
    """Labels and annotations of the pod."""


# --------------------------------------------------------------------------------------------------
# Retry strategy, timeout, consumable resources

_GLOB_REASON = r"^[A-Za-z0-9.: \t]*\*?$"
# RETRY or EXIT in any case (AWS Batch: "The values aren't case sensitive").
EVALUATE_ON_EXIT_ACTION_PATTERN = r"^([Rr][Ee][Tt][Rr][Yy]|[Ee][Xx][Ii][Tt])$"


class EvaluateOnExit(KubatchModel):
    """A condition on how an attempt ended and what to do then. Every condition given must match;
    entries are checked in order and the first match decides."""

    onStatusReason: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_GLOB_REASON)] | None = None
    """Glob on the attempt's status reason: letters, numbers, periods, colons and white space, with
    an optional trailing `*` (e.g. `Host EC2*`)."""
    onReason: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_GLOB_REASON)] | None = None
    """Glob on the container's reason (e.g. OOMKilled, Error): letters, numbers, periods, colons and
    white space, with an optional trailing `*`."""
    onExitCode: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[0-9]*\*?$")] | None = None
    """Glob on the exit code: digits with an optional trailing `*` (e.g. `137`, `1*`, `*`)."""
    action: Annotated[str, StringConstraints(max_length=5, pattern=EVALUATE_ON_EXIT_ACTION_PATTERN)]
    """RETRY: start another attempt if any remain. EXIT: fail the job now. Case-insensitive, as in
    AWS Batch (`retry`, `Exit` are accepted and read as RETRY, EXIT)."""


class RetryStrategy(KubatchModel):
    """How often a failed job is tried again. Without a retry strategy a job has one attempt. If
    evaluateOnExit is set and no entry matches, the job IS retried: end the list with a catch-all
    such as `{onReason: "*", action: EXIT}`."""

    model_config = model_rules(
        cel(
            "!has(self.evaluateOnExit) || has(self.attempts)",
            "retryStrategy.evaluateOnExit needs retryStrategy.attempts",
            field_path=".attempts",
        )
    )

    attempts: Annotated[int, Field(ge=1, le=10)] | None = None
    """Number of attempts, 1 to 10 (the first one included)."""
    evaluateOnExit: Annotated[list[EvaluateOnExit], Field(max_length=5)] | None = None
    """Up to 5 conditions deciding whether a failed attempt is retried."""


class JobTimeout(KubatchModel):
    """A time limit per attempt (per array child; for the whole job in multi-node jobs)."""

    attemptDurationSeconds: Annotated[int, Field(ge=60)]
    """Seconds an attempt may run, counted from RUNNING (at least 60). Then the container gets
    SIGTERM, SIGKILL 30 seconds later, and the job FAILS without retry."""


class ConsumableResourceRequirement(KubatchModel):
    """How much of a ConsumableResource one job holds while it is STARTING or RUNNING."""

    consumableResource: DnsSubdomain
    """The ConsumableResource's name."""
    quantity: Annotated[int, Field(ge=1)]
    """Units the job needs."""


class ConsumableResourceProperties(KubatchModel):
    """Consumable resources (licenses, tokens, ...) a job must hold before it starts."""

    consumableResourceList: Annotated[
        list[ConsumableResourceRequirement],
        Field(max_length=5, json_schema_extra=list_map("consumableResource")),
    ]
    """Up to 5 resources, each at most once."""


# --------------------------------------------------------------------------------------------------
# Multi-node parallel jobs


# CEL expressions for the first and last node index of a `targetNodes` range (`n`, `n:`, `:m`, `n:m`).
def _range_start(t: str) -> str:
    return f"({t}.startsWith(':') ? 0 : int({t}.split(':')[0]))"


def _range_end(t: str, num_nodes: str) -> str:
    return f"(!{t}.contains(':') ? int({t}) : ({t}.endsWith(':') ? {num_nodes} - 1 : int({t}.split(':')[1])))"


def _node_range_rules() -> list[JsonDict]:
    n = "self.numNodes"
    rs, re_ = _range_start("r.targetNodes"), _range_end("r.targetNodes", n)
    qs, qe = _range_start("q.targetNodes"), _range_end("q.targetNodes", n)
    return [
        cel(
            "self.mainNode < self.numNodes",
            "nodeProperties.mainNode must be less than nodeProperties.numNodes",
            field_path=".mainNode",
        ),
        cel(
            f"self.nodeRangeProperties.all(r, {rs} <= {re_} && {re_} < {n})",
            "nodeProperties.nodeRangeProperties[].targetNodes must be a range start:end with start <= end < numNodes",
            field_path=".nodeRangeProperties",
        ),
        # The union of ranges is [0, numNodes-1] iff node 0 is covered and, for every range ending
        # before the last node, the node right after its end is covered by some range.
        cel(
            f"self.nodeRangeProperties.exists(r, {rs} == 0) && self.nodeRangeProperties.all(r, "
            f"{re_} >= {n} - 1 || self.nodeRangeProperties.exists(q, {qs} <= {re_} + 1 && {qe} > {re_}))",
            "nodeProperties.nodeRangeProperties[].targetNodes must together cover every node from 0 to numNodes-1",
            field_path=".nodeRangeProperties",
        ),
    ]


class NodeRangeProperty(KubatchModel):
    """The container of the nodes in one index range. Where ranges overlap, the narrower range wins."""

    model_config = model_rules(
        cel(
            "has(self.container) != has(self.podProperties)",
            "nodeRangeProperties[]: set exactly one of container or podProperties",
        )
    )

    targetNodes: TargetNodes
    """Node indexes: `n`, `n:m` (inclusive), `:m` (from 0) or `n:` (to the last node)."""
    container: ContainerProperties | None = None
    """A single-container pod for these nodes."""
    podProperties: PodProperties | None = None
    """A Kubernetes-shaped pod for these nodes."""
    instanceTypes: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=8)] | None = None
    """Informational: the instance types allowed for these nodes."""


class NodeProperties(KubatchModel):
    """A multi-node parallel job: numNodes pods started together (gang-scheduled), one per node.
    The main node starts first; the job ends with the main node and takes its status."""

    model_config = ConfigDict(json_schema_extra=validations(*_node_range_rules()))

    numNodes: Annotated[int, Field(ge=1, le=1000)]
    """Number of nodes (1 to 1000)."""
    mainNode: Annotated[int, Field(ge=0, le=999)] = 0
    """Index of the main node; less than numNodes."""
    nodeRangeProperties: Annotated[list[NodeRangeProperty], Field(min_length=1, max_length=5)]
    """Up to 5 node groups whose targetNodes together cover every node."""
