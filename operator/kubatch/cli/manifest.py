"""Building a BatchJob manifest from `aws batch submit-job`-style options (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.cli.client import GROUP_VERSION
from kubatch.core.jobnames import kubernetes_name

JSON = dict[str, Any]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DEFINITION_REF = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[1-9][0-9]{0,8})?$")
DEPENDENCY_TYPES = ("N_TO_N", "SEQUENTIAL")
RESERVED_ENV_PREFIX = "AWS_BATCH"


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``["k=v", ...]`` -> dict (later keys win); ValueError names ``what`` on a missing ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def parse_dependency(text: str) -> JSON:
    """``name`` or ``name:N_TO_N`` / ``name:SEQUENTIAL`` -> a dependsOn entry. An AWS job name that
    `submit --job-name` turned into another object name (``My_Job``) names that object."""
    name, sep, kind = text.partition(":")
    try:
        name = kubernetes_name(name)
    except ValueError:
        raise ValueError(f"dependency {text!r}: {name!r} is not a valid job name") from None
    if not sep:
        return {"jobName": name}
    kind = kind.upper()
    if kind not in DEPENDENCY_TYPES:
        raise ValueError(f"dependency {text!r}: type must be one of {', '.join(DEPENDENCY_TYPES)}")
    if kind == "SEQUENTIAL":
        raise ValueError(
            f"dependency {text!r}: SEQUENTIAL is between an array's own children; use --depends-on-sequential"
        )
    return {"jobName": name, "type": kind}


def _positive_number(value: str, what: str) -> str:
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return value


def container_overrides(
    *,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    vcpus: str | None = None,
    memory: int | None = None,
    gpus: int | None = None,
) -> JSON:
    """``containerOverrides`` (empty dict when nothing is overridden)."""
    out: JSON = {}
    if command:
        if any(arg == "" for arg in command):
            raise ValueError("command arguments may not be empty strings")
        out["command"] = list(command)
    if env:
        reserved = [k for k in env if k.startswith(RESERVED_ENV_PREFIX)]
        if reserved:
            raise ValueError(f"environment variables starting with {RESERVED_ENV_PREFIX} are reserved: {reserved[0]}")
        out["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    resources: list[JSON] = []
    if vcpus is not None:
        resources.append({"type": "VCPU", "value": _positive_number(vcpus, "--vcpus")})
    if memory is not None:
        resources.append({"type": "MEMORY", "value": str(memory)})
    if gpus is not None:
        resources.append({"type": "GPU", "value": str(gpus)})
    if resources:
        out["resourceRequirements"] = resources
    return out


def build_batchjob(
    *,
    job_definition: str,
    job_queue: str,
    job_name: str | None = None,
    namespace: str | None = None,
    parameters: Mapping[str, str] | None = None,
    array_size: int | None = None,
    depends_on: Sequence[JSON] = (),
    depends_on_sequential: bool = False,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    vcpus: str | None = None,
    memory: int | None = None,
    gpus: int | None = None,
    timeout: int | None = None,
    retries: int | None = None,
    share_identifier: str | None = None,
    scheduling_priority: int | None = None,
    tags: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    num_nodes: int | None = None,
    propagate_tags: bool | None = None,
) -> JSON:
    """A BatchJob manifest. Without ``job_name`` the name is generated from the definition's. A
    ``job_name`` that AWS accepts but Kubernetes does not (``My_Job``) goes to ``spec.jobName``, and
    ``metadata.name`` is derived from it (``kubatch.core.jobnames.kubernetes_name``).

    Container overrides of a multi-node job (``num_nodes``) go to every node (targetNodes ``0:``),
    since the API takes either containerOverrides or nodeOverrides. ValueError on invalid input.
    """
    if not DEFINITION_REF.match(job_definition):
        raise ValueError(f"job definition {job_definition!r}: expected NAME or NAME:REVISION")
    if not DNS_LABEL.match(job_queue):
        raise ValueError(f"job queue {job_queue!r} is not a valid name")
    metadata: JSON = {}
    spec: JSON = {}
    if job_name:
        # An AWS job name (upper case, '_', up to 128 characters) that cannot be an object name is
        # kept in spec.jobName, and the object gets a name derived from it.
        metadata["name"] = kubernetes_name(job_name)
        if metadata["name"] != job_name:
            spec["jobName"] = job_name
    else:
        metadata["generateName"] = job_definition.split(":")[0][:57].rstrip("-.") + "-"
    if namespace:
        metadata["namespace"] = namespace
    spec.update({"jobQueue": job_queue, "jobDefinition": job_definition})
    if parameters:
        spec["parameters"] = dict(parameters)
    if array_size is not None:
        if not 2 <= array_size <= 10_000:
            raise ValueError(f"array size must be between 2 and 10000, got {array_size}")
        if num_nodes is not None:
            raise ValueError("a multi-node job (--num-nodes) cannot be an array job (--array-size)")
        spec["arrayProperties"] = {"size": array_size}
    deps = [dict(d) for d in depends_on]
    names = [d["jobName"] for d in deps if "jobName" in d]
    if len(set(names)) != len(names):
        raise ValueError("each dependency may be named only once")
    if depends_on_sequential:
        deps.append({"type": "SEQUENTIAL"})
    if any("type" in d for d in deps) and array_size is None:
        raise ValueError("N_TO_N and SEQUENTIAL dependencies need --array-size")
    if len(deps) > 20:
        raise ValueError(f"at most 20 dependencies, got {len(deps)}")
    if deps:
        spec["dependsOn"] = deps
    overrides = container_overrides(command=command, env=env, vcpus=vcpus, memory=memory, gpus=gpus)
    if num_nodes is not None:
        if num_nodes < 1:
            raise ValueError("--num-nodes must be at least 1")
        node_overrides: JSON = {"numNodes": num_nodes}
        if overrides:
            node_overrides["nodePropertyOverrides"] = [{"targetNodes": "0:", "containerOverrides": overrides}]
        spec["nodeOverrides"] = node_overrides
    elif overrides:
        spec["containerOverrides"] = overrides
    if retries is not None:
        if not 1 <= retries <= 10:
            raise ValueError(f"retry attempts must be between 1 and 10, got {retries}")
        spec["retryStrategy"] = {"attempts": retries}
    if timeout is not None:
        if timeout < 60:
            raise ValueError(f"timeout must be at least 60 seconds, got {timeout}")
        spec["timeout"] = {"attemptDurationSeconds": timeout}
    if share_identifier:
        spec["shareIdentifier"] = share_identifier
    if scheduling_priority is not None:
        if not 0 <= scheduling_priority <= 9999:
            raise ValueError(f"scheduling priority must be between 0 and 9999, got {scheduling_priority}")
        spec["schedulingPriorityOverride"] = scheduling_priority
    if propagate_tags is not None:
        spec["propagateTags"] = propagate_tags
    if tags:
        spec["tags"] = dict(tags)
    pod_metadata: JSON = {}
    if labels:
        pod_metadata["labels"] = dict(labels)
    if annotations:
        pod_metadata["annotations"] = dict(annotations)
    if pod_metadata:
        spec["podMetadata"] = pod_metadata
    return {"apiVersion": GROUP_VERSION, "kind": "BatchJob", "metadata": metadata, "spec": spec}
