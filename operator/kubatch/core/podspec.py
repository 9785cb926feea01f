"""JobDefinition + BatchJob -> Kubernetes Pod manifest (and the multi-node headless Service), and
the resources a job needs (``resource_needs``, for the scheduler).

Owns every rule that turns AWS Batch job properties into pod fields. ``build_pod`` raises
``PodSpecError`` (a ``ValueError``; its message is a usable statusReason) for definitions it cannot
turn into a pod.

Sources of the pod, in order of precedence:
- ``nodeProperties`` (multinode): the ``nodeRangeProperties`` entry whose ``targetNodes`` covers the
  node index -- the narrowest range wins (first in list order on a tie); ``targetNodes`` is ``n``,
  ``n:``, ``:m``, ``n:m`` (inclusive) or ``:`` (all). A range holds ``container`` (containerProperties
  shape) or ``podProperties``. ``nodeOverrides.nodePropertyOverrides``
  are selected the same way (narrowest range covering the node wins) and hold
  ``containerOverrides`` and/or ``podOverrides``; ``nodeOverrides.numNodes`` replaces ``numNodes``.
- ``containerProperties``: one container named ``main``. ``command`` maps to the container's
  ``args``, not ``command``: in AWS Batch it is Docker CMD, so the image ENTRYPOINT still runs and
  existing AWS Batch images behave the same. Overrides: ``containerOverrides.command`` replaces,
  ``environment`` merges by name, ``resourceRequirements`` merge by type, ``instanceType`` replaces.
- ``podProperties`` (AWS's ``eksProperties.podProperties``; the CRDs take only this name): passed
  through as a pod spec (``metadata`` goes to the pod's metadata). Unnamed containers are named
  ``main`` (one container) or ``container-<i>``. ``podOverrides`` (AWS's
  ``eksPropertiesOverride.podProperties``) merge containers/initContainers by name (an unnamed
  override applies to the first container): ``image``/``command``/``args`` replace, ``env`` merges by
  name, ``resources`` merge per key, other fields replace; ``metadata`` labels/annotations merge.
  hostNetwork is *not* forced to true (AWS EKS's default): kubatch keeps the Kubernetes default.

Always: ``Ref::`` substitution in command/args (``kubatch.core.params``); the AWS_BATCH_* variables
appended to every container (init containers included) after the user's environment, replacing
any user entry of the same name (``AWS_BATCH_JOB_KUBERNETES_NODE_NAME`` through the downward API:
the node is not known before the pod is bound, and its UID, AWS's
``AWS_BATCH_JOB_KUBERNETES_NODE_UID``, is not offered by the downward API at all);
``restartPolicy: Never``; ``terminationGracePeriodSeconds`` 30 (timeout/terminate = SIGTERM, then
SIGKILL 30 s later); ownerReference to the BatchJob; nodeSelector
``kubatch.dev/compute-environment: <ce>`` and a toleration for the taint
``kubatch.dev/compute-environment=<ce>:NoSchedule``, then the compute environment's own
``spec.tolerations`` (``environment_tolerations``: the caller reads them from the environment the
attempt is placed on); ``nvidia.com/gpu`` Exists/NoSchedule toleration when a container asks for
GPUs. Multi-node pods also get a required podAntiAffinity on the job-id label (hostname topology:
one node per Kubernetes node), ``hostname`` = the pod name and ``subdomain`` = the headless Service
(``build_headless_service``).

containerProperties mapping: VCPU -> cpu request (no cpu limit: ECS vCPUs are shares; "0.25" ->
"250m"); MEMORY MiB -> memory request = limit ("2048" -> "2048Mi"); GPU -> ``nvidia.com/gpu`` request
= limit; the deprecated ``vcpus``/``memory`` keys are read when no resourceRequirement of that type
is given. ``secrets[].valueFrom`` ``secret-name:key`` -> secretKeyRef (no ``:key`` -> the variable's
name is the key; AWS ARNs are rejected). ``volumes``: ``host.sourcePath`` -> hostPath; a volume that
carries a Kubernetes volume source (persistentVolumeClaim, configMap, secret, nfs, csi, ...) is passed
through; anything else (no sourcePath, efsVolumeConfiguration) -> emptyDir. Volume names are made
DNS-valid consistently in volumes and mounts. ``user`` "uid" / "uid:gid" / "root" -> runAsUser
(/runAsGroup); a user *name* has no Kubernetes equivalent and is ignored. ``privileged``,
``readonlyRootFilesystem`` -> securityContext. ``serviceAccountName`` -> the pod's
``serviceAccountName`` (AWS's replacement of ``jobRoleArn`` on Kubernetes; without it the operator's
``PodSettings.service_account_name``, else the namespace's default; in a multi-node job each node
range's ``container`` has its own). ``linuxParameters.sharedMemorySize`` -> an emptyDir
(medium Memory, sizeLimit) on /dev/shm; ``tmpfs`` -> emptyDir Memory mounts;
``initProcessEnabled`` -> the pod's ``shareProcessNamespace`` (the pause process is PID 1 and reaps
orphans). Accepted and ignored, no Kubernetes equivalent: ``linuxParameters.devices`` (a device file
opens only in a privileged container, which sees the node's devices anyway), ``maxSwap``/``swappiness``,
``ulimits``, ``logConfiguration``, IAM roles. ``instanceType`` ->
nodeSelector ``node.kubernetes.io/instance-type``.

Pod naming (deterministic, a DNS label of at most 63 characters): ``<job>-a<attempt>``,
``<job>-<index>-a<attempt>`` (array child), ``<job>-n<node>-a<attempt>`` (multi-node). A job name that
is too long or not a DNS label (dots, upper case) is cut and suffixed with 8 hex characters of a
SHA-256 of the full name, so different jobs keep different pod names. Names are not
globally collision-proof (job ``x`` array child 1 and a plain job ``x-1`` both give ``x-1-a1``): on
AlreadyExists the runtime must compare the existing pod's ownerReference uid with the job's.
``enableServiceLinks`` is off for containerProperties pods (no service env vars injected).

Tag propagation (``propagateTags``: the job's value, else the definition's, else false): JD tags
overlaid by job tags (job wins); more than ``MAX_PROPAGATED_TAGS`` (50) merged tags fail the job at
submission (``core.lifecycle``, as AWS Batch). Every propagated tag is recorded in the annotation
``kubatch.dev/tags`` (JSON, lossless). Each tag whose key is a valid Kubernetes label key becomes a
label when its value is a valid label value, otherwise an annotation. Keys under ``kubatch.dev/``,
``kubernetes.io/`` and ``k8s.io/`` are never propagated as labels/annotations. Label precedence,
lowest first: tags, podProperties.metadata, definition podMetadata, job podMetadata, podOverrides
metadata, kubatch labels (always win).

Every pod carries the annotation ``karpenter.sh/do-not-disrupt: "true"`` (below the tags and the
metadata, which may set it otherwise): Karpenter never moves a running job off a node on its own
(drift, consolidation); an infrastructure update ends the jobs still running on a replaced node as
the environment's ``updatePolicy`` says (``core.updates``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from kubatch.core.params import merge_parameters, substitute_all

API_VERSION = "kubatch.dev/v1alpha1"
KIND = "BatchJob"
LABEL_JOB_NAME = "kubatch.dev/job-name"
LABEL_JOB_ID = "kubatch.dev/job-id"
LABEL_JOB_QUEUE = "kubatch.dev/job-queue"
LABEL_COMPUTE_ENVIRONMENT = "kubatch.dev/compute-environment"
LABEL_ATTEMPT = "kubatch.dev/attempt"
LABEL_ARRAY_INDEX = "kubatch.dev/array-index"
LABEL_NODE_INDEX = "kubatch.dev/node-index"
ANNOTATION_JOB_DEFINITION = "kubatch.dev/job-definition"
ANNOTATION_TAGS = "kubatch.dev/tags"
#: Karpenter's pod annotation that keeps it from disrupting the pod's node voluntarily.
ANNOTATION_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
#: Node label and taint key of a compute environment's nodes.
CE_NODE_KEY = LABEL_COMPUTE_ENVIRONMENT
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
GPU_RESOURCE = "nvidia.com/gpu"
MAIN_CONTAINER = "main"
DEFAULT_GRACE_PERIOD_SECONDS = 30
MAX_PROPAGATED_TAGS = 50
RESERVED_PREFIXES: tuple[str, ...] = ("kubatch.dev/", "kubernetes.io/", "k8s.io/")

ENV_JOB_ID = "AWS_BATCH_JOB_ID"
ENV_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
ENV_JQ_NAME = "AWS_BATCH_JQ_NAME"
ENV_CE_NAME = "AWS_BATCH_CE_NAME"
ENV_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ENV_ARRAY_SIZE = "AWS_BATCH_JOB_ARRAY_SIZE"
ENV_NODE_INDEX = "AWS_BATCH_JOB_NODE_INDEX"
ENV_NUM_NODES = "AWS_BATCH_JOB_NUM_NODES"
ENV_MAIN_NODE_INDEX = "AWS_BATCH_JOB_MAIN_NODE_INDEX"
ENV_MAIN_NODE_IP = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
#: kubatch's own: the name of the node the pod runs on (downward API ``spec.nodeName``). AWS Batch on
#: EKS sets AWS_BATCH_JOB_KUBERNETES_NODE_UID instead, which a pod cannot learn before it is bound
#: (the downward API has no node UID); kubatch records the UID in ``attempts[].container.nodeUid``.
ENV_NODE_NAME = "AWS_BATCH_JOB_KUBERNETES_NODE_NAME"

#: Kubernetes volume sources passed through unchanged from a containerProperties volume.
K8S_VOLUME_SOURCES: frozenset[str] = frozenset(
    {
        "hostPath", "emptyDir", "secret", "configMap", "persistentVolumeClaim", "nfs", "csi",
        "projected", "downwardAPI", "ephemeral", "iscsi", "image", "fc", "cephfs", "rbd",
    }
)  # fmt: skip

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PodSpecError(ValueError):
    """The job cannot be turned into a pod; the message is suitable as a statusReason."""


@dataclass(frozen=True)
class PodSettings:
    """Operator-level knobs for the pods it builds."""

    termination_grace_period_seconds: int = DEFAULT_GRACE_PERIOD_SECONDS
    priority_class_name: str | None = None
    scheduler_name: str | None = None
    service_account_name: str | None = None  # containerProperties jobs without their own serviceAccountName
    enable_service_links: bool = False  # containerProperties jobs only
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Needs:
    """What one job (one array child) needs. ``vcpus``/``memory_mib``/``gpus`` are totals over all
    its pods (for a multi-node job: the sum over nodes); ``per_node`` lists each pod's share
    (one entry for a single-node job). ``consumables`` maps resource name -> quantity."""

    vcpus: float
    memory_mib: int
    gpus: int
    num_nodes: int = 1
    consumables: Mapping[str, int] = field(default_factory=dict)
    per_node: tuple[PodNeeds, ...] = ()


@dataclass(frozen=True)
class PodNeeds:
    vcpus: float
    memory_mib: int
    gpus: int


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` if it is already a DNS label within ``limit``; otherwise a cleaned, cut version
    suffixed with a hash of ``text`` (deterministic, distinct inputs stay distinct)."""
    if len(text) <= limit and _DNS_LABEL.match(text):
        return text
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    keep = max(limit - 9, 0)
    clean = clean[:keep].rstrip("-")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a cut/cleaned version with a hash suffix."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:54].strip("-_.")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


def is_label_value(text: str) -> bool:
    return len(text) <= 63 and bool(_LABEL_VALUE.match(text))


def is_qualified_key(key: str) -> bool:
    """A valid label/annotation key: ``[prefix/]name``."""
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def pod_name(job_name: str, attempt: int, *, array_index: int | None = None, node_index: int | None = None) -> str:
    """Deterministic pod name (module docstring)."""
    if array_index is not None:
        suffix = f"-{array_index}-a{attempt}"
    elif node_index is not None:
        suffix = f"-n{node_index}-a{attempt}"
    else:
        suffix = f"-a{attempt}"
    return dns_label(job_name, 63 - len(suffix)) + suffix


def headless_service_name(job_name: str) -> str:
    """DNS-1035 label (starts with a letter) naming the multi-node job's headless Service."""
    name = dns_label(job_name)
    return name if name[0].isalpha() else dns_label(f"j-{job_name}")


def job_id_env(job_id: str, *, array_index: int | None = None, node_index: int | None = None) -> str:
    """``AWS_BATCH_JOB_ID``: ``<id>``, ``<id>:<index>`` (array child) or ``<id>#<node>`` (MNP node)."""
    if array_index is not None:
        return f"{job_id}:{array_index}"
    if node_index is not None:
        return f"{job_id}#{node_index}"
    return job_id


# --------------------------------------------------------------------------------------------
# quantities
# --------------------------------------------------------------------------------------------
def _decimal(value: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise PodSpecError(f"invalid {what} value {value!r}") from exc
    if not d.is_finite() or d < 0:
        raise PodSpecError(f"invalid {what} value {value!r}")
    return d


def cpu_quantity(vcpus: Any) -> str:
    """AWS vCPUs -> Kubernetes cpu: "1" -> "1", "0.25" -> "250m", "1.5" -> "1500m"."""
    millis = math.ceil(_decimal(vcpus, "VCPU") * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(mib: Any) -> str:
    """AWS MiB -> Kubernetes memory: "2048" -> "2048Mi" (fractions round up)."""
    return f"{math.ceil(_decimal(mib, 'MEMORY'))}Mi"


_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18), "Ki": Decimal(2**10),
    "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("250m", "2Gi", "1e3", 2) as a Decimal in base units."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise PodSpecError(f"invalid quantity {value!r}")
    return Decimal(m.group(1)) * _SUFFIXES[m.group(2) or ""]


# --------------------------------------------------------------------------------------------
# overrides
# --------------------------------------------------------------------------------------------
def merge_by_key(
    base: Sequence[Mapping[str, Any]] | None, over: Sequence[Mapping[str, Any]] | None, key: str
) -> list[dict[str, Any]]:
    """Merge two lists of dicts by ``key``: same key replaced in place, new keys appended."""
    out = [dict(x) for x in base or []]
    index = {x.get(key): i for i, x in enumerate(out)}
    for item in over or []:
        k = item.get(key)
        if k in index:
            out[index[k]] = dict(item)
        else:
            index[k] = len(out)
            out.append(dict(item))
    return out


def _requirements(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """resourceRequirements, with the deprecated vcpus/memory keys added when not given by type."""
    reqs = [dict(r) for r in props.get("resourceRequirements") or []]
    types = {str(r.get("type", "")).upper() for r in reqs}
    if props.get("vcpus") is not None and "VCPU" not in types:
        reqs.append({"type": "VCPU", "value": str(props["vcpus"])})
    if props.get("memory") is not None and "MEMORY" not in types:
        reqs.append({"type": "MEMORY", "value": str(props["memory"])})
    for r in reqs:
        r["type"] = str(r.get("type", "")).upper()
    return reqs


def apply_container_overrides(props: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """containerProperties + containerOverrides (command replaces, environment merged by name,
    resourceRequirements merged by type, instanceType replaces)."""
    out = copy.deepcopy(dict(props))
    out["resourceRequirements"] = _requirements(out)
    out.pop("vcpus", None)
    out.pop("memory", None)
    if not overrides:
        return out
    if overrides.get("command") is not None:
        out["command"] = list(overrides["command"])
    if overrides.get("environment") is not None:
        out["environment"] = merge_by_key(out.get("environment"), overrides["environment"], "name")
    over_reqs = _requirements(overrides)
    if over_reqs:
        out["resourceRequirements"] = merge_by_key(out["resourceRequirements"], over_reqs, "type")
    if overrides.get("instanceType"):
        out["instanceType"] = overrides["instanceType"]
    return out


def _merge_container(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if key == "name":
            continue
        if key == "env":
            base["env"] = merge_by_key(base.get("env"), value, "name")
        elif key == "resources":
            res = copy.deepcopy(base.get("resources") or {})
            for part in ("limits", "requests"):
                if (value or {}).get(part) is not None:
                    res[part] = {**(res.get(part) or {}), **value[part]}
            base["resources"] = res
        else:
            base[key] = copy.deepcopy(value)


def apply_pod_overrides(template: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """podProperties + podOverrides (module docstring). Raises PodSpecError for an override naming
    a container the template does not have."""
    out = copy.deepcopy(dict(template))
    _name_containers(out)
    if not overrides:
        return out
    for field_name in ("containers", "initContainers"):
        for over in overrides.get(field_name) or []:
            targets = out.get(field_name) or []
            name = over.get("name")
            match = next((c for c in targets if c.get("name") == name), None) if name else None
            if match is None and not name and targets:
                match = targets[0]
            if match is None:
                raise PodSpecError(f"podOverrides: no {field_name} entry named {name!r} in the job definition")
            _merge_container(match, over)
    meta = overrides.get("metadata") or {}
    if meta:
        target = out.setdefault("metadata", {})
        for part in ("labels", "annotations"):
            if meta.get(part):
                target[part] = {**(target.get(part) or {}), **meta[part]}
    return out


def _name_containers(template: dict[str, Any]) -> None:
    containers = template.get("containers") or []
    for i, c in enumerate(containers):
        if not c.get("name"):
            c["name"] = MAIN_CONTAINER if len(containers) == 1 else f"container-{i}"
    for i, c in enumerate(template.get("initContainers") or []):
        if not c.get("name"):
            c["name"] = f"init-{i}"


# --------------------------------------------------------------------------------------------
# node ranges (multi-node)
# --------------------------------------------------------------------------------------------
def parse_target_nodes(target: str, num_nodes: int) -> tuple[int, int]:
    """``targetNodes`` -> inclusive (lo, hi): "n", "n:", ":m", "n:m", ":" (all)."""
    text = (target or ":").strip()
    lo_s, sep, hi_s = text.partition(":")
    try:
        if not sep:
            lo = hi = int(lo_s)
        else:
            lo = int(lo_s) if lo_s else 0
            hi = int(hi_s) if hi_s else num_nodes - 1
    except ValueError as exc:
        raise PodSpecError(f"invalid targetNodes {target!r}") from exc
    if lo < 0 or hi < lo:
        raise PodSpecError(f"invalid targetNodes {target!r}")
    return lo, hi


def select_node_range(
    ranges: Sequence[Mapping[str, Any]] | None, node_index: int, num_nodes: int
) -> Mapping[str, Any] | None:
    """The entry whose targetNodes covers ``node_index``; the narrowest wins, first on a tie."""
    best: tuple[int, int] | None = None
    chosen: Mapping[str, Any] | None = None
    for i, entry in enumerate(ranges or []):
        lo, hi = parse_target_nodes(str(entry.get("targetNodes", ":")), num_nodes)
        if lo <= node_index <= hi and (best is None or (hi - lo, i) < best):
            best, chosen = (hi - lo, i), entry
    return chosen


def num_nodes_of(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> int:
    """numNodes: ``nodeOverrides.numNodes`` over the definition's; 1 for single-node jobs."""
    node_props = definition_spec.get("nodeProperties")
    if not node_props:
        return 1
    override = (job_spec.get("nodeOverrides") or {}).get("numNodes")
    return int(override if override is not None else node_props.get("numNodes", 1))


def main_node_of(definition_spec: Mapping[str, Any]) -> int:
    return int((definition_spec.get("nodeProperties") or {}).get("mainNode", 0))


def _pod_template(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template: Mapping[str, Any] | None = props.get("podProperties")
    return template


def _pod_overrides(overrides_holder: Mapping[str, Any]) -> Mapping[str, Any] | None:
    over: Mapping[str, Any] | None = overrides_holder.get("podOverrides")
    return over


@dataclass(frozen=True)
class _Resolved:
    kind: str  # "container" | "pod"
    props: dict[str, Any]  # merged containerProperties, or pod template


def _resolve(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any], node_index: int | None) -> _Resolved:
    node_props = definition_spec.get("nodeProperties")
    if node_props:
        if node_index is None:
            raise PodSpecError("a multinode job definition needs a node index")
        n = num_nodes_of(definition_spec, job_spec)
        if not 0 <= node_index < n:
            raise PodSpecError(f"node index {node_index} outside 0..{n - 1}")
        rng = select_node_range(node_props.get("nodeRangeProperties"), node_index, n)
        if rng is None:
            raise PodSpecError(f"no nodeRangeProperties entry covers node {node_index}")
        over = (
            select_node_range((job_spec.get("nodeOverrides") or {}).get("nodePropertyOverrides"), node_index, n) or {}
        )
        template = _pod_template(rng)
        if rng.get("container") is not None:
            return _Resolved("container", apply_container_overrides(rng["container"], over.get("containerOverrides")))
        if template is not None:
            return _Resolved("pod", apply_pod_overrides(template, _pod_overrides(over)))
        raise PodSpecError(f"nodeRangeProperties entry for node {node_index} has no container")
    if definition_spec.get("containerProperties") is not None:
        return _Resolved(
            "container",
            apply_container_overrides(definition_spec["containerProperties"], job_spec.get("containerOverrides")),
        )
    template = _pod_template(definition_spec)
    if template is not None:
        return _Resolved("pod", apply_pod_overrides(template, _pod_overrides(job_spec)))
    raise PodSpecError("job definition has no containerProperties, podProperties or nodeProperties")


# --------------------------------------------------------------------------------------------
# containerProperties -> container + volumes
# --------------------------------------------------------------------------------------------
def _resources(reqs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for r in reqs:
        kind, value = r.get("type"), r.get("value")
        if value is None:
            continue
        if kind == "VCPU":
            requests["cpu"] = cpu_quantity(value)
        elif kind == "MEMORY":
            requests["memory"] = limits["memory"] = memory_quantity(value)
        elif kind == "GPU":
            gpus = int(_decimal(value, "GPU"))
            if gpus > 0:
                requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _secret_env(secret: Mapping[str, Any]) -> dict[str, Any]:
    name = str(secret.get("name", ""))
    source = str(secret.get("valueFrom", ""))
    if source.startswith("arn:"):
        raise PodSpecError(f"secret {name}: AWS ARNs are not supported, use <secret-name>:<key>")
    secret_name, _, key = source.partition(":")
    if not secret_name:
        raise PodSpecError(f"secret {name}: valueFrom must be <secret-name>:<key>")
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key or name}}}


def _security_context(props: Mapping[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    user = props.get("user")
    if user is not None:
        uid, _, gid = str(user).partition(":")
        uid = "0" if uid == "root" else uid
        gid = "0" if gid == "root" else gid
        if uid.isdigit():
            ctx["runAsUser"] = int(uid)
            if gid.isdigit():
                ctx["runAsGroup"] = int(gid)
    if props.get("privileged") is not None:
        ctx["privileged"] = bool(props["privileged"])
    if props.get("readonlyRootFilesystem") is not None:
        ctx["readOnlyRootFilesystem"] = bool(props["readonlyRootFilesystem"])
    return ctx


def _volume(volume: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": dns_label(str(volume.get("name", "")))}
    native = {k: copy.deepcopy(v) for k, v in volume.items() if k in K8S_VOLUME_SOURCES}
    if native:
        out.update(native)
        return out
    source = (volume.get("host") or {}).get("sourcePath")
    if source:
        out["hostPath"] = {"path": source}
    else:
        out["emptyDir"] = {}
    return out


def _container_from_props(
    props: Mapping[str, Any], parameters: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not props.get("image"):
        raise PodSpecError("containerProperties.image is required")
    container: dict[str, Any] = {"name": MAIN_CONTAINER, "image": props["image"]}
    args = substitute_all(props.get("command"), parameters)
    if args:
        container["args"] = args
    env = [{"name": str(e["name"]), "value": str(e.get("value", ""))} for e in props.get("environment") or []]
    env += [_secret_env(s) for s in props.get("secrets") or []]
    if env:
        container["env"] = env
    resources = _resources(props.get("resourceRequirements") or [])
    if resources:
        container["resources"] = resources
    volumes = [_volume(v) for v in props.get("volumes") or []]
    mounts = [
        {
            "name": dns_label(str(m.get("sourceVolume", ""))),
            "mountPath": m["containerPath"],
            **({"readOnly": True} if m.get("readOnly") else {}),
        }
        for m in props.get("mountPoints") or []
    ]
    linux = props.get("linuxParameters") or {}
    if linux.get("sharedMemorySize"):
        volumes.append(
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": memory_quantity(linux["sharedMemorySize"])},
            }
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for i, tmpfs in enumerate(linux.get("tmpfs") or []):
        empty: dict[str, Any] = {"medium": "Memory"}
        if tmpfs.get("size"):
            empty["sizeLimit"] = memory_quantity(tmpfs["size"])
        volumes.append({"name": f"tmpfs-{i}", "emptyDir": empty})
        mounts.append({"name": f"tmpfs-{i}", "mountPath": tmpfs["containerPath"]})
    if mounts:
        container["volumeMounts"] = mounts
    ctx = _security_context(props)
    if ctx:
        container["securityContext"] = ctx
    return container, volumes


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------
def _reserved(key: str) -> bool:
    """Keys under kubatch.dev/, kubernetes.io/, k8s.io/ (or their subdomains)."""
    prefix = key.rpartition("/")[0]
    return any(prefix == p[:-1] or prefix.endswith("." + p[:-1]) for p in RESERVED_PREFIXES)


def propagated_tags(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> dict[str, str]:
    """The tags to propagate to pods: {} when propagateTags is off, else JD tags + job tags."""
    flag = job_spec.get("propagateTags")
    if flag is None:
        flag = definition_spec.get("propagateTags", False)
    if not flag:
        return {}
    merged = {str(k): str(v) for k, v in (definition_spec.get("tags") or {}).items()}
    merged.update({str(k): str(v) for k, v in (job_spec.get("tags") or {}).items()})
    return merged


def tag_metadata(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) for propagated tags (module docstring)."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if not tags:
        return labels, annotations
    annotations[ANNOTATION_TAGS] = json.dumps(dict(tags), sort_keys=True, separators=(",", ":"))
    for key, value in tags.items():
        if _reserved(key) or not is_qualified_key(key):
            continue
        if is_label_value(value):
            labels[key] = value
        else:
            annotations[key] = value
    return labels, annotations


def _meta(source: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
    source = source or {}
    return (
        {str(k): str(v) for k, v in (source.get("labels") or {}).items()},
        {str(k): str(v) for k, v in (source.get("annotations") or {}).items()},
    )


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --------------------------------------------------------------------------------------------
# the pod
# --------------------------------------------------------------------------------------------
def batch_env(
    *,
    job_id: str,
    queue: str,
    compute_environment: str,
    attempt: int,
    array_index: int | None = None,
    array_size: int | None = None,
    node_index: int | None = None,
    num_nodes: int | None = None,
    main_node_index: int | None = None,
    main_node_ip: str | None = None,
) -> list[dict[str, Any]]:
    """The AWS_BATCH_* variables of one pod, in a fixed order; the last,
    AWS_BATCH_JOB_KUBERNETES_NODE_NAME, comes from the downward API (``spec.nodeName``)."""
    env = [
        (ENV_JOB_ID, job_id_env(job_id, array_index=array_index, node_index=node_index)),
        (ENV_ATTEMPT, str(attempt)),
        (ENV_JQ_NAME, queue),
        (ENV_CE_NAME, compute_environment),
    ]
    if array_index is not None:
        if array_size is None:
            raise PodSpecError("array_size is required with array_index")
        env += [(ENV_ARRAY_INDEX, str(array_index)), (ENV_ARRAY_SIZE, str(array_size))]
    if node_index is not None:
        if num_nodes is None or main_node_index is None:
            raise PodSpecError("num_nodes and main_node_index are required with node_index")
        env += [
            (ENV_NODE_INDEX, str(node_index)),
            (ENV_NUM_NODES, str(num_nodes)),
            (ENV_MAIN_NODE_INDEX, str(main_node_index)),
        ]
        if node_index != main_node_index:
            if not main_node_ip:
                raise PodSpecError("main_node_ip is required for a child node")
            env.append((ENV_MAIN_NODE_IP, main_node_ip))
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env]
    out.append({"name": ENV_NODE_NAME, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    return out


def _with_env(container: dict[str, Any], extra: Sequence[Mapping[str, Any]]) -> None:
    names = {e["name"] for e in extra}
    user = [e for e in container.get("env") or [] if e.get("name") not in names]
    container["env"] = [*user, *(dict(e) for e in extra)]


def environment_tolerations(environment: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The ``spec.tolerations`` of a ComputeEnvironment object (none when it is unknown)."""
    return list(((environment or {}).get("spec") or {}).get("tolerations") or [])


def environment_toleration(compute_environment: str) -> dict[str, Any]:
    """The toleration of the taint kubatch puts on the nodes of ``compute_environment``."""
    return {"key": CE_NODE_KEY, "operator": "Equal", "value": compute_environment, "effect": "NoSchedule"}


_TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")


def _toleration(t: Mapping[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in _TOLERATION_FIELDS if t.get(k) is not None}


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule for one toleration and one taint: an unset effect matches every effect; an
    empty key with ``Exists`` matches every key; ``Exists`` matches any value, ``Equal`` (the
    default) the same value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


#: Taint effects that keep a pod off a node (PreferNoSchedule only discourages).
BLOCKING_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def untolerated_taints(
    taints: Sequence[Mapping[str, Any]] | None, tolerations: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The NoSchedule / NoExecute ``taints`` of a node that none of ``tolerations`` tolerates."""
    return [
        t
        for t in taints or ()
        if t.get("effect") in BLOCKING_TAINT_EFFECTS and not any(tolerates(tol, t) for tol in tolerations)
    ]


def _wants_gpu(containers: Sequence[Mapping[str, Any]]) -> bool:
    for c in containers:
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            value = (res.get(part) or {}).get(GPU_RESOURCE)
            if value is not None and parse_quantity(value) > 0:
                return True
    return False


def build_pod(
    job: Mapping[str, Any],
    definition_spec: Mapping[str, Any],
    definition_name: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """The Pod manifest for one attempt of ``job`` (see ``_build_pod``). Input of the wrong shape
    (which the CRD schema normally keeps out) raises ``PodSpecError`` with a readable message,
    never a bare TypeError."""
    try:
        return _build_pod(job, definition_spec, definition_name, **kwargs)
    except PodSpecError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        raise PodSpecError(f"invalid job or job definition: {type(e).__name__}: {e}") from e


def _build_pod(
    job: Mapping[str, Any],
    definition_spec: Mapping[str, Any],
    definition_name: str,
    *,
    job_id: str,
    queue: str,
    compute_environment: str,
    attempt: int,
    array_index: int | None = None,
    array_size: int | None = None,
    node_index: int | None = None,
    num_nodes: int | None = None,
    main_node_index: int | None = None,
    main_node_ip: str | None = None,
    settings: PodSettings | None = None,
    environment_tolerations: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Pod manifest for one attempt of ``job`` (a BatchJob dict) -- module docstring.

    ``definition_name`` is the resolved ``name:rev``. For multi-node jobs pass ``node_index``;
    ``num_nodes`` / ``main_node_index`` default to the definition (+ nodeOverrides); child nodes
    need ``main_node_ip``. ``environment_tolerations`` is the ``spec.tolerations`` of the compute
    environment ``compute_environment``.
    """
    settings = settings or PodSettings()
    if attempt < 1:
        raise PodSpecError("attempt numbers start at 1")
    if array_index is not None and node_index is not None:
        raise PodSpecError("a job cannot be both an array child and a multi-node node")
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    job_name = str(meta.get("name", ""))
    multinode = bool(definition_spec.get("nodeProperties"))
    if multinode:
        num_nodes = num_nodes if num_nodes is not None else num_nodes_of(definition_spec, spec)
        main_node_index = main_node_index if main_node_index is not None else main_node_of(definition_spec)
    elif node_index is not None:
        raise PodSpecError("node_index given for a single-node job definition")
    parameters = merge_parameters(definition_spec.get("parameters"), spec.get("parameters"))
    resolved = _resolve(definition_spec, spec, node_index)

    pod_spec: dict[str, Any]
    template_meta: Mapping[str, Any] | None = None
    if resolved.kind == "container":
        container, volumes = _container_from_props(resolved.props, parameters)
        pod_spec = {"containers": [container], "enableServiceLinks": settings.enable_service_links}
        if volumes:
            pod_spec["volumes"] = volumes
        service_account = resolved.props.get("serviceAccountName") or settings.service_account_name
        if service_account:
            pod_spec["serviceAccountName"] = str(service_account)
        if resolved.props.get("instanceType"):
            pod_spec["nodeSelector"] = {INSTANCE_TYPE_LABEL: str(resolved.props["instanceType"])}
        if (resolved.props.get("linuxParameters") or {}).get("initProcessEnabled"):
            # No per-container init in Kubernetes: with a shared process namespace the pod's pause
            # process is PID 1 and reaps orphaned processes, what AWS's init process is for.
            pod_spec["shareProcessNamespace"] = True
    else:
        pod_spec = copy.deepcopy(resolved.props)
        template_meta = pod_spec.pop("metadata", None)
        if not pod_spec.get("containers"):
            raise PodSpecError("podProperties.containers must not be empty")
        for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
            for key in ("command", "args"):
                if c.get(key) is not None:
                    c[key] = substitute_all(c[key], parameters)

    env = batch_env(
        job_id=job_id,
        queue=queue,
        compute_environment=compute_environment,
        attempt=attempt,
        array_index=array_index,
        array_size=array_size,
        node_index=node_index,
        num_nodes=num_nodes,
        main_node_index=main_node_index,
        main_node_ip=main_node_ip,
    )
    for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        _with_env(c, env)

    pod_spec["restartPolicy"] = "Never"
    pod_spec["terminationGracePeriodSeconds"] = settings.termination_grace_period_seconds
    pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), CE_NODE_KEY: compute_environment}
    tolerations = list(pod_spec.get("tolerations") or [])
    tolerations.append(environment_toleration(compute_environment))
    tolerations += [_toleration(t) for t in environment_tolerations or ()]
    if _wants_gpu(pod_spec["containers"]):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    pod_spec["tolerations"] = tolerations
    if settings.priority_class_name:
        pod_spec["priorityClassName"] = settings.priority_class_name
    if settings.scheduler_name:
        pod_spec["schedulerName"] = settings.scheduler_name

    name = pod_name(job_name, attempt, array_index=array_index, node_index=node_index)
    if node_index is not None:
        affinity = pod_spec.setdefault("affinity", {})
        anti = affinity.setdefault("podAntiAffinity", {})
        required = anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
        required.append(
            {"labelSelector": {"matchLabels": {LABEL_JOB_ID: label_value(job_id)}}, "topologyKey": HOSTNAME_TOPOLOGY}
        )
        pod_spec["hostname"] = name
        pod_spec["subdomain"] = headless_service_name(job_name)

    labels, tag_annotations = tag_metadata(propagated_tags(definition_spec, spec))
    annotations = {ANNOTATION_DO_NOT_DISRUPT: "true", **tag_annotations}
    for source in (template_meta, definition_spec.get("podMetadata"), spec.get("podMetadata")):
        more_labels, more_annotations = _meta(source)
        labels.update(more_labels)
        annotations.update(more_annotations)
    labels.update(settings.extra_labels)
    annotations.update(settings.extra_annotations)
    labels.update(
        {
            LABEL_JOB_NAME: label_value(job_name),
            LABEL_JOB_ID: label_value(job_id),
            LABEL_JOB_QUEUE: label_value(queue),
            LABEL_COMPUTE_ENVIRONMENT: label_value(compute_environment),
            LABEL_ATTEMPT: str(attempt),
        }
    )
    if array_index is not None:
        labels[LABEL_ARRAY_INDEX] = str(array_index)
    if node_index is not None:
        labels[LABEL_NODE_INDEX] = str(node_index)
    annotations[ANNOTATION_JOB_DEFINITION] = definition_name

    metadata: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner_reference(job)],
    }
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def build_headless_service(job: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """Headless Service giving multi-node pods DNS names ``<pod>.<service>``; selects the job's pods
    (by job-id) including not-ready ones, owned by the BatchJob."""
    meta = job.get("metadata") or {}
    job_name = str(meta.get("name", ""))
    metadata: dict[str, Any] = {
        "name": headless_service_name(job_name),
        "labels": {LABEL_JOB_NAME: label_value(job_name), LABEL_JOB_ID: label_value(job_id)},
        "ownerReferences": [owner_reference(job)],
    }
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB_ID: label_value(job_id)},
        },
    }


# --------------------------------------------------------------------------------------------
# resource needs (for the scheduler)
# --------------------------------------------------------------------------------------------
def _pod_needs_from_requirements(reqs: Sequence[Mapping[str, Any]]) -> PodNeeds:
    vcpus = Decimal(0)
    memory = Decimal(0)
    gpus = 0
    for r in reqs:
        if r.get("value") is None:
            continue
        if r.get("type") == "VCPU":
            vcpus = _decimal(r["value"], "VCPU")
        elif r.get("type") == "MEMORY":
            memory = _decimal(r["value"], "MEMORY")
        elif r.get("type") == "GPU":
            gpus = int(_decimal(r["value"], "GPU"))
    return PodNeeds(float(vcpus), math.ceil(memory), gpus)


def _container_request(container: Mapping[str, Any], resource: str) -> Decimal:
    res = container.get("resources") or {}
    value = (res.get("requests") or {}).get(resource)
    if value is None:
        value = (res.get("limits") or {}).get(resource)
    return parse_quantity(value) if value is not None else Decimal(0)


def _pod_needs_from_template(template: Mapping[str, Any]) -> PodNeeds:
    def total(resource: str) -> Decimal:
        main = sum((_container_request(c, resource) for c in template.get("containers") or []), Decimal(0))
        init = max(
            (_container_request(c, resource) for c in template.get("initContainers") or []),
            default=Decimal(0),
        )
        return max(main, init)

    return PodNeeds(
        vcpus=float(total("cpu")),
        memory_mib=math.ceil(total("memory") / Decimal(2**20)),
        gpus=int(total(GPU_RESOURCE)),
    )


def consumables_of(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> dict[str, int]:
    """consumableResourceList of the definition, quantities overridden by the job's
    ``consumableResourcePropertiesOverride`` (merged by resource name)."""
    base = (definition_spec.get("consumableResourceProperties") or {}).get("consumableResourceList") or []
    over = (job_spec.get("consumableResourcePropertiesOverride") or {}).get("consumableResourceList") or []
    merged = merge_by_key(base, over, "consumableResource")
    return {str(c["consumableResource"]): int(c.get("quantity", 0)) for c in merged if c.get("consumableResource")}


def scheduling_priority(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> int:
    """``schedulingPriorityOverride`` of the job, else the definition's ``schedulingPriority``, else 0."""
    value = job_spec.get("schedulingPriorityOverride")
    if value is None:
        value = definition_spec.get("schedulingPriority")
    return int(value or 0)


def resource_needs(definition_spec: Mapping[str, Any], job_spec: Mapping[str, Any]) -> Needs:
    """What one job (or one array child) needs, after overrides (see ``Needs``)."""
    n = num_nodes_of(definition_spec, job_spec)
    per_node: list[PodNeeds] = []
    for idx in range(n) if definition_spec.get("nodeProperties") else [None]:
        resolved = _resolve(definition_spec, job_spec, idx)
        if resolved.kind == "container":
            per_node.append(_pod_needs_from_requirements(resolved.props["resourceRequirements"]))
        else:
            per_node.append(_pod_needs_from_template(resolved.props))
    return Needs(
        vcpus=sum(p.vcpus for p in per_node),
        memory_mib=sum(p.memory_mib for p in per_node),
        gpus=sum(p.gpus for p in per_node),
        num_nodes=n,
        consumables=consumables_of(definition_spec, job_spec),
        per_node=tuple(per_node),
    )
