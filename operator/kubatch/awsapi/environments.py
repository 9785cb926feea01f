"""CreateComputeEnvironment and UpdateComputeEnvironment as ComputeEnvironment objects, and
DeleteComputeEnvironment's rule (pure).

AWS's request maps onto the ComputeEnvironment's spec field by field (``type``, ``state``,
``unmanagedvCpus``, ``computeResources.{type, minvCpus, maxvCpus, desiredvCpus, instanceTypes,
allocationStrategy, tags}``, ``updatePolicy``, ``tags``). What AWS's request does not carry and a
ComputeEnvironment needs comes from the API server's ``EnvironmentDefaults`` (``kubatch api serve
--ce-provisioner``, ``--ce-defaults FILE``), and per request from tags with the prefix
``kubatch.dev/``, which are instructions, not tags (they are not stored in ``spec.tags``):

- ``kubatch.dev/provisioner``: ``kwok`` or ``karpenter`` (MANAGED; else the server's default;
  neither: refused),
- ``kubatch.dev/node-class``: ``GROUP/KIND/NAME`` of a Karpenter node class (MANAGED with
  karpenter; e.g. ``karpenter.k8s.aws/EC2NodeClass/default``),
- ``kubatch.dev/node-selector``: ``key=value,key=value``, the labels of the nodes of an UNMANAGED
  environment (else the server's ``unmanagedNodeSelector``, by default ``kubatch.dev/pool=<name>``).

The EC2 and ECS details of AWS's request (subnets, security groups, instance role, key pair, image,
launch template, placement group, bid percentage, Spot fleet role, ``ec2Configuration``,
``scalingPolicy``), ``serviceRole``, ``eksConfiguration``, ``context`` and ``ecsSettings`` are
accepted and ignored: the cluster kubatch runs in is the EKS cluster, and a Karpenter node class
says what the nodes are made of. Fargate and ECS managed instances are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from kubatch.api.compute_environment import NodeClassRef, Toleration
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.protocol import optional_int, optional_str, string_map
from kubatch.awsapi.resources import GROUP_VERSION, object_name

JSON = dict[str, Any]
TAG_PREFIX = "kubatch.dev/"
TAG_PROVISIONER = "kubatch.dev/provisioner"
TAG_NODE_CLASS = "kubatch.dev/node-class"
TAG_NODE_SELECTOR = "kubatch.dev/node-selector"
KUBATCH_TAGS = (TAG_PROVISIONER, TAG_NODE_CLASS, TAG_NODE_SELECTOR)
PROVISIONERS = ("kwok", "karpenter")
#: The node selector of an UNMANAGED environment when neither the request nor the server names one;
#: ``{name}`` is the environment's name.
DEFAULT_UNMANAGED_SELECTOR: Mapping[str, str] = {"kubatch.dev/pool": "{name}"}
#: computeResources fields kubatch keeps (the rest of AWS's ComputeResource is ignored).
RESOURCE_FIELDS = ("type", "allocationStrategy", "minvCpus", "maxvCpus", "desiredvCpus", "instanceTypes", "tags")
REFUSED_TYPES = ("FARGATE", "FARGATE_SPOT", "ECS_MANAGED_INSTANCES")
DELETE_RULE = (
    "Before you can delete a compute environment, you must set its state to DISABLED with the "
    "UpdateComputeEnvironment API operation and disassociate it from any job queues with the UpdateJobQueue "
    "API operation."
)
_DEFAULT_KEYS = ("provisioner", "nodeClassRef", "minScaleDownDelayMinutes", "unmanagedNodeSelector", "tolerations",
                 "allowPrivileged", "allowHostNetwork", "allowHostPath")  # fmt: skip


@dataclass(frozen=True)
class EnvironmentDefaults:
    """What the API server puts into a compute environment AWS's request cannot describe."""

    provisioner: str | None = None
    node_class: Mapping[str, str] | None = None
    min_scale_down_delay_minutes: int | None = None
    unmanaged_node_selector: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_UNMANAGED_SELECTOR))
    tolerations: tuple[Mapping[str, Any], ...] = ()
    allow: Mapping[str, bool] = field(default_factory=dict)  # allowPrivileged, allowHostNetwork, allowHostPath

    @classmethod
    def parse(cls, data: Mapping[str, Any], provisioner: str | None = None) -> EnvironmentDefaults:
        """The defaults of ``--ce-defaults`` (an object with the keys in ``_DEFAULT_KEYS``);
        ``provisioner`` (``--ce-provisioner``) wins over the file's. ValueError when invalid."""
        unknown = sorted(set(data) - set(_DEFAULT_KEYS))
        if unknown:
            raise ValueError(f"unknown keys {', '.join(unknown)}: use {', '.join(_DEFAULT_KEYS)}")
        chosen = provisioner or data.get("provisioner")
        if chosen is not None and chosen not in PROVISIONERS:
            raise ValueError(f"provisioner must be one of {', '.join(PROVISIONERS)}, not {chosen!r}")
        try:
            node_class = NodeClassRef.model_validate(data["nodeClassRef"]) if data.get("nodeClassRef") else None
            tolerations = TypeAdapter(list[Toleration]).validate_python(data.get("tolerations") or [])
        except ValidationError as e:
            raise ValueError(str(e)) from None
        delay = data.get("minScaleDownDelayMinutes")
        if delay is not None and (not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 10080):
            raise ValueError("minScaleDownDelayMinutes must be an integer from 0 to 10080")
        selector = data.get("unmanagedNodeSelector", DEFAULT_UNMANAGED_SELECTOR)
        if (
            not isinstance(selector, Mapping)
            or not selector
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items())
        ):
            raise ValueError("unmanagedNodeSelector must be a non-empty map of strings")
        allow = {k: data[k] for k in ("allowPrivileged", "allowHostNetwork", "allowHostPath") if k in data}
        if not all(isinstance(v, bool) for v in allow.values()):
            raise ValueError("allowPrivileged, allowHostNetwork and allowHostPath must be true or false")
        return cls(
            provisioner=chosen,
            node_class=node_class.model_dump(exclude_none=True) if node_class else None,
            min_scale_down_delay_minutes=delay,
            unmanaged_node_selector=dict(selector),
            tolerations=tuple(t.model_dump(exclude_none=True) for t in tolerations),
            allow=allow,
        )


def split_tags(tags: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """(the tags to store, kubatch's instructions ``kubatch.dev/...``)."""
    kept: dict[str, str] = {}
    instructions: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if key.startswith(TAG_PREFIX):
            if key not in KUBATCH_TAGS:
                raise ClientException(f"tags: {key} is not one of kubatch's tags ({', '.join(KUBATCH_TAGS)})")
            instructions[key] = value
        else:
            kept[key] = value
    return kept, instructions


def _node_class(value: str) -> JSON:
    parts = value.split("/")
    if len(parts) != 3 or not all(parts):
        raise ClientException(f"tags: {TAG_NODE_CLASS} must be GROUP/KIND/NAME (e.g. karpenter.k8s.aws/EC2NodeClass/"
                              f"default), not {value!r}")  # fmt: skip
    return {"group": parts[0], "kind": parts[1], "name": parts[2]}


def _node_selector(value: str) -> dict[str, str]:
    selector: dict[str, str] = {}
    for pair in value.split(","):
        key, sep, label = pair.strip().partition("=")
        if not sep or not key:
            raise ClientException(f"tags: {TAG_NODE_SELECTOR} must be key=value[,key=value...], not {value!r}")
        selector[key] = label
    return selector


def _resource_type(value: Any) -> Any:
    if value in REFUSED_TYPES:
        raise ClientException(f"computeResources.type {value} is not supported by kubatch: use EC2 or SPOT")
    return value


def compute_resources(body: Mapping[str, Any], *, update: bool = False) -> JSON:
    """The ComputeResources fields kubatch keeps from AWS's ComputeResource (ComputeResourceUpdate)."""
    resources = body.get("computeResources")
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise ClientException("computeResources must be an object")
    out: JSON = {}
    for name in RESOURCE_FIELDS:
        value = resources.get(name)
        if value is None:
            continue
        if name in ("minvCpus", "maxvCpus", "desiredvCpus"):
            optional_int(resources, name, low=0)
        out[name] = _resource_type(value) if name == "type" else value
    if update and out.get("instanceTypes") == []:
        out["instanceTypes"] = None  # AWS: an empty list returns to the default
    return out


def environment_manifest(body: Mapping[str, Any], defaults: EnvironmentDefaults) -> JSON:
    """CreateComputeEnvironment's ComputeEnvironment."""
    name = optional_str(body, "computeEnvironmentName")
    if not name:
        raise ClientException("computeEnvironmentName is required")
    name = object_name(name, "computeEnvironmentName")
    kind = body.get("type")
    if kind not in ("MANAGED", "UNMANAGED"):
        raise ClientException("type is required: MANAGED or UNMANAGED")
    tags, instructions = split_tags(string_map(body, "tags"))
    spec: JSON = {"type": kind}
    if body.get("state") is not None:
        spec["state"] = body["state"]
    if kind == "MANAGED":
        if body.get("computeResources") is None:
            raise ClientException("computeResources is required for a MANAGED compute environment")
        if TAG_NODE_SELECTOR in instructions:
            raise ClientException(f"tags: {TAG_NODE_SELECTOR} applies to UNMANAGED compute environments only")
        resources = compute_resources(body)
        provisioner = instructions.get(TAG_PROVISIONER) or defaults.provisioner
        if provisioner is None:
            raise ClientException(
                "kubatch needs a provisioner for a MANAGED compute environment (kwok or karpenter): give the tag "
                f"{TAG_PROVISIONER}, or start the API server with --ce-provisioner"
            )
        if provisioner not in PROVISIONERS:
            raise ClientException(f"tags: {TAG_PROVISIONER} must be one of {', '.join(PROVISIONERS)}")
        resources["provisioner"] = provisioner
        if provisioner == "karpenter":
            node_class = _node_class(instructions[TAG_NODE_CLASS]) if TAG_NODE_CLASS in instructions else None
            node_class = node_class or (dict(defaults.node_class) if defaults.node_class else None)
            if node_class is not None:
                resources["nodeClassRef"] = node_class
        elif TAG_NODE_CLASS in instructions:
            raise ClientException(f"tags: {TAG_NODE_CLASS} applies to provisioner karpenter only")
        if defaults.min_scale_down_delay_minutes is not None:
            resources["minScaleDownDelayMinutes"] = defaults.min_scale_down_delay_minutes
        spec["computeResources"] = resources
    else:
        if body.get("computeResources") is not None:
            raise ClientException("computeResources must not be set for an UNMANAGED compute environment")
        if TAG_PROVISIONER in instructions or TAG_NODE_CLASS in instructions:
            raise ClientException(
                f"tags: {TAG_PROVISIONER} and {TAG_NODE_CLASS} apply to MANAGED compute environments only"
            )
        if TAG_NODE_SELECTOR in instructions:
            spec["nodeSelector"] = _node_selector(instructions[TAG_NODE_SELECTOR])
        else:
            spec["nodeSelector"] = {k: v.replace("{name}", name) for k, v in defaults.unmanaged_node_selector.items()}
        if body.get("unmanagedvCpus") is not None:
            spec["unmanagedvCpus"] = optional_int(body, "unmanagedvCpus", low=0)
    if defaults.tolerations:
        spec["tolerations"] = [dict(t) for t in defaults.tolerations]
    spec.update(defaults.allow)
    if tags:
        spec["tags"] = tags
    return {"apiVersion": GROUP_VERSION, "kind": "ComputeEnvironment", "metadata": {"name": name}, "spec": spec}


def environment_changes(body: Mapping[str, Any]) -> JSON:
    """UpdateComputeEnvironment's merge patch of the spec: only what the request names."""
    changes: JSON = {}
    if body.get("state") is not None:
        changes["state"] = body["state"]
    if body.get("unmanagedvCpus") is not None:
        changes["unmanagedvCpus"] = optional_int(body, "unmanagedvCpus", low=0)
    resources = compute_resources(body, update=True)
    if resources:
        changes["computeResources"] = resources
    policy = body.get("updatePolicy")
    if policy is not None:
        if not isinstance(policy, Mapping):
            raise ClientException("updatePolicy must be an object")
        changes["updatePolicy"] = {
            k: policy[k] for k in ("terminateJobsOnUpdate", "jobExecutionTimeoutMinutes") if policy.get(k) is not None
        }
    return changes


def deletion_refusal(environment: Mapping[str, Any], attached_queues: list[str]) -> str | None:
    """Why DeleteComputeEnvironment refuses (AWS's rule: DISABLED and in no job queue), or None."""
    name = str((environment.get("metadata") or {}).get("name") or "")
    if ((environment.get("spec") or {}).get("state") or "ENABLED") != "DISABLED":
        return f"Cannot delete compute environment {name}: it is ENABLED. {DELETE_RULE}"
    if attached_queues:
        queues = ", ".join(attached_queues[:10]) + (" ..." if len(attached_queues) > 10 else "")
        return f"Cannot delete compute environment {name}: job queue(s) {queues} use it. {DELETE_RULE}"
    return None
