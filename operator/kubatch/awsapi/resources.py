"""Job queues, scheduling policies, compute environments and consumable resources (pure): AWS's
requests as kubatch's cluster-scoped objects, and those objects as AWS's ``JobQueueDetail``,
``SchedulingPolicyDetail``, ``ComputeEnvironmentDetail``, GetJobQueueSnapshot's answer and
DescribeConsumableResource's.

kubatch's objects mirror AWS's shapes, so this is mostly the envelope: a name is the object's
``metadata.name`` (a Kubernetes name: lower case, digits and ``-``; AWS's wider names are refused
at creation), references are names (ARNs accepted) inside kubatch and ARNs in answers.
JobQueue fields without an AWS counterpart (``namespaceSelector``, the ``allow*`` flags) are kept
by an update and not shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kubatch.awsapi.arns import COMPUTE_ENVIRONMENT, SCHEDULING_POLICY, Arns, name_of
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.protocol import epoch_ms

JSON = dict[str, Any]
GROUP_VERSION = "kubatch.dev/v1alpha1"
SERVICE_ENVIRONMENT = "service-environment"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def object_name(value: str, what: str) -> str:
    """A name AWS gives for a new object, as kubatch's object name."""
    if not _NAME.match(value) or len(value) > 63:
        raise ClientException(
            f"{what} {value!r}: kubatch names are Kubernetes names: up to 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


# ---- job queues ----------------------------------------------------------------------------------


def _environment_order(value: Any) -> list[JSON]:
    if not isinstance(value, list):
        raise ClientException("computeEnvironmentOrder must be a list")
    return [
        {
            "order": entry.get("order"),
            "computeEnvironment": name_of(
                str(entry.get("computeEnvironment", "")), COMPUTE_ENVIRONMENT, "computeEnvironmentOrder"
            ),
        }
        for entry in value
    ]


def _service_order(value: Any) -> list[JSON]:
    if not isinstance(value, list):
        raise ClientException("serviceEnvironmentOrder must be a list")
    return [
        {
            "order": entry.get("order"),
            "serviceEnvironment": name_of(
                str(entry.get("serviceEnvironment", "")), SERVICE_ENVIRONMENT, "serviceEnvironmentOrder"
            ),
        }
        for entry in value
    ]


def queue_spec_changes(body: Mapping[str, Any]) -> JSON:
    """The JobQueue spec fields CreateJobQueue or UpdateJobQueue sets."""
    spec: JSON = {}
    for field in ("priority", "state", "jobStateTimeLimitActions"):
        if body.get(field) is not None:
            spec[field] = body[field]
    if body.get("schedulingPolicyArn") is not None:
        spec["schedulingPolicy"] = name_of(str(body["schedulingPolicyArn"]), SCHEDULING_POLICY, "schedulingPolicyArn")
    if body.get("computeEnvironmentOrder") is not None:
        spec["computeEnvironmentOrder"] = _environment_order(body["computeEnvironmentOrder"])
    if body.get("serviceEnvironmentOrder") is not None:
        spec["serviceEnvironmentOrder"] = _service_order(body["serviceEnvironmentOrder"])
    return spec


def queue_manifest(body: Mapping[str, Any]) -> JSON:
    name = body.get("jobQueueName")
    if not isinstance(name, str):
        raise ClientException("jobQueueName is required")
    if body.get("priority") is None:
        raise ClientException("priority is required")
    spec = queue_spec_changes(body)
    queue_type = body.get("jobQueueType")
    if queue_type is not None:
        spec["jobQueueType"] = queue_type
    if body.get("tags") is not None:
        spec["tags"] = body["tags"]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "JobQueue",
        "metadata": {"name": object_name(name, "jobQueueName")},
        "spec": spec,
    }


def queue_detail(queue: Mapping[str, Any], arns: Arns) -> JSON:
    name = str(queue["metadata"]["name"])
    spec, status = queue.get("spec") or {}, queue.get("status") or {}
    detail: JSON = {
        "jobQueueName": name,
        "jobQueueArn": arns.job_queue(name),
        "state": spec.get("state", "ENABLED"),
        "status": status.get("status"),
        "statusReason": status.get("statusReason"),
        "priority": spec.get("priority"),
        "computeEnvironmentOrder": [
            {"order": e.get("order"), "computeEnvironment": arns.compute_environment(str(e.get("computeEnvironment")))}
            for e in spec.get("computeEnvironmentOrder") or []
        ],
        "jobQueueType": spec.get("jobQueueType", "EKS"),
        "tags": spec.get("tags"),
        "jobStateTimeLimitActions": spec.get("jobStateTimeLimitActions"),
    }
    if spec.get("schedulingPolicy"):
        detail["schedulingPolicyArn"] = arns.scheduling_policy(str(spec["schedulingPolicy"]))
    if spec.get("serviceEnvironmentOrder"):
        detail["serviceEnvironmentOrder"] = [
            {"order": e.get("order"), "serviceEnvironment": arns.arn(SERVICE_ENVIRONMENT, str(e["serviceEnvironment"]))}
            for e in spec["serviceEnvironmentOrder"]
        ]
    return detail


def snapshot(queue: Mapping[str, Any], arns: Arns) -> JSON:
    """GetJobQueueSnapshot's answer, from the queue's status (kubatch refreshes it every 2 s)."""
    status = queue.get("status") or {}
    updated = epoch_ms(status.get("lastUpdatedAt"))
    jobs = []
    for entry in status.get("front") or []:
        job_id = entry.get("jobId")
        if job_id:
            at = epoch_ms(entry.get("earliestTimeAtPosition"))
            jobs.append({"jobArn": arns.job(str(job_id)), "earliestTimeAtPosition": at})
    answer: JSON = {"frontOfQueue": {"jobs": jobs, "lastUpdatedAt": updated}}
    utilization = status.get("queueUtilization")
    if utilization:
        detail: JSON = {"lastUpdatedAt": updated}
        if utilization.get("totalCapacityUsage") is not None:
            detail["totalCapacityUsage"] = utilization["totalCapacityUsage"]
        fair = utilization.get("fairshareUtilization")
        if fair:
            detail["fairshareUtilization"] = {
                "activeShareCount": fair.get("activeShareCount", 0),
                "topCapacityUtilization": fair.get("topCapacityUtilization"),
            }
        answer["queueUtilization"] = detail
    return answer


# ---- scheduling policies -------------------------------------------------------------------------


def policy_manifest(body: Mapping[str, Any]) -> JSON:
    name = body.get("name")
    if not isinstance(name, str):
        raise ClientException("name is required")
    spec: JSON = policy_kind(body)
    if body.get("tags") is not None:
        spec["tags"] = body["tags"]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "SchedulingPolicy",
        "metadata": {"name": object_name(name, "name")},
        "spec": spec,
    }


def policy_kind(body: Mapping[str, Any]) -> JSON:
    """A policy's fairsharePolicy or quotaSharePolicy (one of them, as kubatch's SchedulingPolicy
    takes; neither: an empty fairsharePolicy, as AWS makes one)."""
    fair, quota = body.get("fairsharePolicy"), body.get("quotaSharePolicy")
    if fair is not None and quota is not None:
        raise ClientException(
            "Specify either fairsharePolicy (a fair-share queue) or quotaSharePolicy (a quota-managed queue), not both"
        )
    if quota is not None:
        return {"quotaSharePolicy": quota}
    return {"fairsharePolicy": fair or {}}


def policy_detail(policy: Mapping[str, Any], arns: Arns) -> JSON:
    name = str(policy["metadata"]["name"])
    spec = policy.get("spec") or {}
    return {
        "name": name,
        "arn": arns.scheduling_policy(name),
        "fairsharePolicy": spec.get("fairsharePolicy"),
        "quotaSharePolicy": spec.get("quotaSharePolicy"),
        "tags": spec.get("tags"),
    }


# ---- compute environments ------------------------------------------------------------------------


def environment_detail(environment: Mapping[str, Any], arns: Arns) -> JSON:
    name = str(environment["metadata"]["name"])
    spec, status = environment.get("spec") or {}, environment.get("status") or {}
    detail: JSON = {
        "computeEnvironmentName": name,
        "computeEnvironmentArn": arns.compute_environment(name),
        "uuid": environment["metadata"].get("uid"),
        "type": spec.get("type"),
        "state": spec.get("state", "ENABLED"),
        "status": status.get("status"),
        "statusReason": status.get("statusReason"),
        "unmanagedvCpus": spec.get("unmanagedvCpus"),
        "tags": spec.get("tags"),
        "containerOrchestrationType": "EKS",
    }
    resources = spec.get("computeResources")
    if resources:
        detail["computeResources"] = {
            "type": resources.get("type", "EC2"),
            "allocationStrategy": resources.get("allocationStrategy"),
            "minvCpus": resources.get("minvCpus", 0),
            "maxvCpus": resources.get("maxvCpus"),
            "desiredvCpus": status.get("desiredvCpus", resources.get("desiredvCpus")),
            "instanceTypes": resources.get("instanceTypes"),
            "tags": resources.get("tags"),
        }
    if spec.get("updatePolicy"):
        detail["updatePolicy"] = spec["updatePolicy"]
    return detail


# ---- consumable resources ------------------------------------------------------------------------

#: UpdateConsumableResource clientTokens seen, per resource: token -> "<payload hash> <expiry ms>".
ANNOTATION_UPDATE_TOKENS = "kubatch.dev/update-tokens"
TOKEN_LIFETIME_MS = 8 * 3600 * 1000


def consumable_manifest(body: Mapping[str, Any]) -> JSON:
    name = body.get("consumableResourceName")
    if not isinstance(name, str):
        raise ClientException("consumableResourceName is required")
    spec: JSON = {"totalQuantity": body.get("totalQuantity", 0)}
    if body.get("resourceType") is not None:
        spec["resourceType"] = body["resourceType"]
    if body.get("tags") is not None:
        spec["tags"] = body["tags"]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ConsumableResource",
        "metadata": {"name": object_name(name, "consumableResourceName")},
        "spec": spec,
    }


def updated_quantity(current: int, operation: str, quantity: int) -> int:
    """UpdateConsumableResource's new totalQuantity: SET, ADD or REMOVE ``quantity``."""
    if quantity < 0:
        raise ClientException("quantity must be a non-negative value")
    if operation == "SET":
        return quantity
    if operation == "ADD":
        return current + quantity
    if operation == "REMOVE":
        if quantity > current:
            raise ClientException(f"quantity: cannot remove {quantity} of {current}")
        return current - quantity
    raise ClientException("operation must be one of SET, ADD, REMOVE")


def seen_tokens(resource: Mapping[str, Any], now_ms: int) -> dict[str, str]:
    """The resource's unexpired clientTokens (token -> "<payload hash> <expiry ms>")."""
    raw = ((resource.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_UPDATE_TOKENS)
    try:
        tokens = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    out = {}
    for token, entry in tokens.items() if isinstance(tokens, dict) else ():
        parts = str(entry).split(" ")
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) > now_ms:
            out[str(token)] = str(entry)
    return out


def consumable_detail(resource: Mapping[str, Any], arns: Arns) -> JSON:
    name = str(resource["metadata"]["name"])
    spec, status = resource.get("spec") or {}, resource.get("status") or {}
    return {
        "consumableResourceName": name,
        "consumableResourceArn": arns.consumable_resource(name),
        "totalQuantity": status.get("totalQuantity", spec.get("totalQuantity")),
        "inUseQuantity": status.get("inUseQuantity", 0),
        "availableQuantity": status.get("availableQuantity", spec.get("totalQuantity")),
        "resourceType": spec.get("resourceType", "REPLENISHABLE"),
        "createdAt": epoch_ms(resource["metadata"].get("creationTimestamp")),
        "tags": spec.get("tags"),
    }


def name_matches(patterns: list[str], name: str) -> bool:
    """CONSUMABLE_RESOURCE_NAME: case-insensitive, ``prefix*``."""
    low = name.lower()
    return any(low.startswith(p[:-1].lower()) if p.endswith("*") else low == p.lower() for p in patterns)
