"""JobDefinition + BatchJob -> Kubernetes Pod manifest (and the multi-node headless Service), and
the resources a job needs (``resource_needs``, for the scheduler).

Owns every rule that turns AWS Batch job properties into pod fields: this module assembles the
pod (metadata, tags, the AWS_BATCH_* environment, placement) and is the API the rest of kubatch
imports (``__all__``); the parts live in ``kubatch.core.pods``, one module per job kind or concern
(``names``, ``quantities``, ``overrides``, ``kinds``, ``container``, ``multinode``, ``tolerations``,
``needs``). ``build_pod`` raises
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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.params import merge_parameters, substitute_all
from kubatch.core.pods.container import K8S_VOLUME_SOURCES, container_from_props
from kubatch.core.pods.kinds import resolve
from kubatch.core.pods.multinode import (
    build_headless_service,
    main_node_of,
    num_nodes_of,
    parse_target_nodes,
    select_node_range,
)
from kubatch.core.pods.names import (
    ANNOTATION_DO_NOT_DISRUPT,
    ANNOTATION_JOB_DEFINITION,
    ANNOTATION_TAGS,
    API_VERSION,
    CE_NODE_KEY,
    ENV_ARRAY_INDEX,
    ENV_ARRAY_SIZE,
    ENV_ATTEMPT,
    ENV_CE_NAME,
    ENV_JOB_ID,
    ENV_JQ_NAME,
    ENV_MAIN_NODE_INDEX,
    ENV_MAIN_NODE_IP,
    ENV_NODE_INDEX,
    ENV_NODE_NAME,
    ENV_NUM_NODES,
    GPU_RESOURCE,
    HOSTNAME_TOPOLOGY,
    INSTANCE_TYPE_LABEL,
    KIND,
    LABEL_ARRAY_INDEX,
    LABEL_ATTEMPT,
    LABEL_COMPUTE_ENVIRONMENT,
    LABEL_JOB_ID,
    LABEL_JOB_NAME,
    LABEL_JOB_QUEUE,
    LABEL_NODE_INDEX,
    MAIN_CONTAINER,
    RESERVED_PREFIXES,
    PodSpecError,
    dns_label,
    headless_service_name,
    is_label_value,
    is_qualified_key,
    job_id_env,
    label_value,
    owner_reference,
    pod_name,
)
from kubatch.core.pods.needs import Needs, PodNeeds, consumables_of, resource_needs, scheduling_priority
from kubatch.core.pods.overrides import apply_container_overrides, apply_pod_overrides, merge_by_key
from kubatch.core.pods.quantities import cpu_quantity, memory_quantity, parse_quantity
from kubatch.core.pods.tolerations import (
    BLOCKING_TAINT_EFFECTS,
    environment_toleration,
    environment_tolerations,
    tolerates,
    toleration,
    untolerated_taints,
)

#: The pod-building API: what this module builds, and the parts it re-exports from kubatch.core.pods.
__all__ = [
    "ANNOTATION_DO_NOT_DISRUPT",
    "ANNOTATION_JOB_DEFINITION",
    "ANNOTATION_TAGS",
    "API_VERSION",
    "BLOCKING_TAINT_EFFECTS",
    "CE_NODE_KEY",
    "DEFAULT_GRACE_PERIOD_SECONDS",
    "ENV_ARRAY_INDEX",
    "ENV_ARRAY_SIZE",
    "ENV_ATTEMPT",
    "ENV_CE_NAME",
    "ENV_JOB_ID",
    "ENV_JQ_NAME",
    "ENV_MAIN_NODE_INDEX",
    "ENV_MAIN_NODE_IP",
    "ENV_NODE_INDEX",
    "ENV_NODE_NAME",
    "ENV_NUM_NODES",
    "GPU_RESOURCE",
    "HOSTNAME_TOPOLOGY",
    "INSTANCE_TYPE_LABEL",
    "K8S_VOLUME_SOURCES",
    "KIND",
    "LABEL_ARRAY_INDEX",
    "LABEL_ATTEMPT",
    "LABEL_COMPUTE_ENVIRONMENT",
    "LABEL_JOB_ID",
    "LABEL_JOB_NAME",
    "LABEL_JOB_QUEUE",
    "LABEL_NODE_INDEX",
    "MAIN_CONTAINER",
    "MAX_PROPAGATED_TAGS",
    "RESERVED_PREFIXES",
    "Needs",
    "PodNeeds",
    "PodSettings",
    "PodSpecError",
    "apply_container_overrides",
    "apply_pod_overrides",
    "batch_env",
    "build_headless_service",
    "build_pod",
    "consumables_of",
    "cpu_quantity",
    "dns_label",
    "environment_toleration",
    "environment_tolerations",
    "headless_service_name",
    "is_label_value",
    "is_qualified_key",
    "job_id_env",
    "label_value",
    "main_node_of",
    "memory_quantity",
    "merge_by_key",
    "num_nodes_of",
    "owner_reference",
    "parse_quantity",
    "parse_target_nodes",
    "pod_name",
    "propagated_tags",
    "resource_needs",
    "scheduling_priority",
    "select_node_range",
    "tag_metadata",
    "tolerates",
    "untolerated_taints",
]


DEFAULT_GRACE_PERIOD_SECONDS = 30

MAX_PROPAGATED_TAGS = 50


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
    resolved = resolve(definition_spec, spec, node_index)

    pod_spec: dict[str, Any]
    template_meta: Mapping[str, Any] | None = None
    if resolved.kind == "container":
        container, volumes = container_from_props(resolved.props, parameters)
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
    tolerations += [toleration(t) for t in environment_tolerations or ()]
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
