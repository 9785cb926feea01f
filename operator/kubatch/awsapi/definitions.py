"""Job definitions: RegisterJobDefinition's request as a JobDefinition, and a JobDefinition (or one
of its stored revisions) as AWS's ``JobDefinition`` (pure).

Names: an AWS job definition name (up to 128 letters, digits, ``-`` and ``_``) is the JobDefinition's
``metadata.name`` when it can be one, else a Kubernetes name derived from it (lower case, ``-``, a
short hash: ``kubatch.core.jobnames.kubernetes_name``) with the AWS name kept in the annotation
``kubatch.dev/job-definition-name``; the mapping is deterministic, so a name (or an ARN) in any
request finds its object without a lookup.

Fields: kubatch's JobDefinition mirrors AWS's, so the translation is mostly the envelope. Besides:
``eksProperties.podProperties`` is kubatch's ``podProperties`` (also in node ranges); a
``jobRoleArn`` (``arn:aws:iam::<account>:role/<name>``) becomes the ``serviceAccountName`` <name>
(kubatch's job role), and is shown back that way; ``platformCapabilities: [EC2]`` is accepted and
``FARGATE`` refused; ``ecsProperties`` is refused; Fargate-only and ECS-only container fields
(``executionRoleArn``, ``fargatePlatformConfiguration``, ``networkConfiguration``,
``runtimePlatform``, ``ephemeralStorage``, ``repositoryCredentials``, ``enableExecuteCommand``) are
refused with the field named. Anything else kubatch does not know is refused by the CRD (the API
creates objects with strict field validation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubatch.awsapi.arns import JOB_DEFINITION, Arns, name_of
from kubatch.awsapi.errors import ClientException
from kubatch.core.jobnames import kubernetes_name

JSON = dict[str, Any]

ANNOTATION_NAME = "kubatch.dev/job-definition-name"
AWS_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]*:role/(?:.*/)?(?P<name>[^/]+)$")
UNSUPPORTED_CONTAINER_FIELDS = (
    "executionRoleArn",
    "fargatePlatformConfiguration",
    "networkConfiguration",
    "runtimePlatform",
    "ephemeralStorage",
    "repositoryCredentials",
    "enableExecuteCommand",
)
#: RegisterJobDefinition members copied as they are.
_PLAIN = ("parameters", "schedulingPriority", "retryStrategy", "propagateTags", "timeout", "tags")


def object_name(aws_name: str) -> str:
    """The JobDefinition's ``metadata.name`` for an AWS job definition name."""
    if not AWS_NAME.match(aws_name):
        raise ClientException(
            f"jobDefinitionName {aws_name!r}: up to 128 letters (uppercase and lowercase), numbers, hyphens, "
            "and underscores are allowed"
        )
    return kubernetes_name(aws_name)


def aws_name(definition: Mapping[str, Any]) -> str:
    meta = definition.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(ANNOTATION_NAME) or meta.get("name") or "")


def reference(value: str, what: str = "jobDefinition") -> tuple[str, str, int | None]:
    """A job definition given as ``name``, ``name:revision`` or an ARN: (AWS name, object name,
    revision or None)."""
    text = value.strip()
    if text.startswith("arn:"):
        text = name_of(text, JOB_DEFINITION, what)
    name, sep, rev = text.partition(":")
    if sep and (not rev.isdigit() or int(rev) < 1):
        raise ClientException(f"{what}: {value} has an invalid revision")
    return name, object_name(name), int(rev) if sep else None


def _role(container: Mapping[str, Any], where: str) -> JSON:
    out = dict(container)
    for field in UNSUPPORTED_CONTAINER_FIELDS:
        if field in out:
            raise ClientException(f"{where}.{field} is not supported by kubatch (no Fargate or ECS)")
    role = out.pop("jobRoleArn", None)
    if role is not None:
        match = ROLE_ARN.match(str(role))
        if not match:
            raise ClientException(f"{where}.jobRoleArn: {role} is not an IAM role ARN")
        if out.get("serviceAccountName") not in (None, match.group("name")):
            raise ClientException(f"{where}: jobRoleArn and serviceAccountName name different accounts")
        out["serviceAccountName"] = match.group("name")
    return out


def _pod(eks: Any, where: str) -> JSON:
    if not isinstance(eks, Mapping) or not isinstance(eks.get("podProperties"), Mapping):
        raise ClientException(f"{where}.podProperties is required")
    return dict(eks["podProperties"])


def definition_spec(body: Mapping[str, Any]) -> JSON:
    """The JobDefinition spec of a RegisterJobDefinition request."""
    kind = body.get("type")
    if kind not in ("container", "multinode"):
        raise ClientException("type must be container or multinode")
    if "ecsProperties" in body:
        raise ClientException("ecsProperties is not supported by kubatch: use containerProperties")
    capabilities = body.get("platformCapabilities") or []
    if any(c != "EC2" for c in capabilities):
        raise ClientException("platformCapabilities: only EC2 applies to kubatch (there is no Fargate)")
    spec: JSON = {"type": kind}
    for name in _PLAIN:
        if body.get(name) is not None:
            spec[name] = body[name]
    if body.get("consumableResourceProperties") is not None:
        spec["consumableResourceProperties"] = consumable_properties(body["consumableResourceProperties"])
    if body.get("containerProperties") is not None:
        spec["containerProperties"] = _role(body["containerProperties"], "containerProperties")
    if body.get("eksProperties") is not None:
        spec["podProperties"] = _pod(body["eksProperties"], "eksProperties")
    if body.get("nodeProperties") is not None:
        node_properties = dict(body["nodeProperties"])
        ranges = []
        for i, entry in enumerate(node_properties.get("nodeRangeProperties") or []):
            where = f"nodeProperties.nodeRangeProperties[{i}]"
            item = dict(entry)
            if "ecsProperties" in item:
                raise ClientException(f"{where}.ecsProperties is not supported by kubatch: use container")
            if item.get("container") is not None:
                item["container"] = _role(item["container"], f"{where}.container")
            if item.get("eksProperties") is not None:
                item["podProperties"] = _pod(item.pop("eksProperties"), f"{where}.eksProperties")
            if item.get("consumableResourceProperties") is not None:
                raise ClientException(f"{where}.consumableResourceProperties: kubatch takes them for the whole job")
            ranges.append(item)
        node_properties["nodeRangeProperties"] = ranges
        spec["nodeProperties"] = node_properties
    return spec


def consumable_properties(value: Any) -> JSON:
    """``consumableResourceProperties`` with each resource as its name (ARNs accepted)."""
    if not isinstance(value, Mapping):
        raise ClientException("consumableResourceProperties must be an object")
    out = []
    for entry in value.get("consumableResourceList") or []:
        item = dict(entry)
        if isinstance(item.get("consumableResource"), str):
            item["consumableResource"] = name_of(
                item["consumableResource"], "consumable-resource", "consumableResourceList[].consumableResource"
            )
        out.append(item)
    return {"consumableResourceList": out}


def definition_manifest(body: Mapping[str, Any], namespace: str) -> JSON:
    """The JobDefinition a RegisterJobDefinition request registers."""
    name = body.get("jobDefinitionName")
    if not isinstance(name, str):
        raise ClientException("jobDefinitionName is required")
    metadata: JSON = {"name": object_name(name), "namespace": namespace}
    if metadata["name"] != name:
        metadata["annotations"] = {ANNOTATION_NAME: name}
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": metadata,
        "spec": definition_spec(body),
    }


def _shown_container(container: Mapping[str, Any], arns: Arns) -> JSON:
    out = dict(container)
    account = out.pop("serviceAccountName", None)
    if account:
        out["jobRoleArn"] = f"arn:{arns.partition}:iam::{arns.account}:role/{account}"
    return out


def aws_definition(name: str, revision: int, spec: Mapping[str, Any], status: str, arns: Arns) -> JSON:
    """One revision as AWS's JobDefinition."""
    out: JSON = {
        "jobDefinitionName": name,
        "jobDefinitionArn": arns.job_definition(name, revision),
        "revision": revision,
        "status": status,
        "type": spec.get("type", "container"),
        "containerOrchestrationType": "EKS" if _uses_pods(spec) else "ECS",
        "platformCapabilities": ["EC2"],
    }
    for field in (*_PLAIN, "consumableResourceProperties"):
        if spec.get(field) is not None:
            out[field] = spec[field]
    out.setdefault("propagateTags", False)
    if spec.get("containerProperties"):
        out["containerProperties"] = _shown_container(spec["containerProperties"], arns)
    if spec.get("podProperties"):
        out["eksProperties"] = {"podProperties": spec["podProperties"]}
    if spec.get("nodeProperties"):
        nodes = dict(spec["nodeProperties"])
        ranges = []
        for entry in nodes.get("nodeRangeProperties") or []:
            item = dict(entry)
            if item.get("container"):
                item["container"] = _shown_container(item["container"], arns)
            if item.get("podProperties"):
                item["eksProperties"] = {"podProperties": item.pop("podProperties")}
            ranges.append(item)
        nodes["nodeRangeProperties"] = ranges
        out["nodeProperties"] = nodes
    return out


def _uses_pods(spec: Mapping[str, Any]) -> bool:
    if spec.get("podProperties"):
        return True
    ranges = (spec.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    return any(r.get("podProperties") for r in ranges)


def definition_status(definition: Mapping[str, Any]) -> str:
    spec, status = definition.get("spec") or {}, definition.get("status") or {}
    return "INACTIVE" if spec.get("deregistered") or status.get("status") == "INACTIVE" else "ACTIVE"
