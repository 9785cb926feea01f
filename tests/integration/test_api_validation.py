"""The CRDs' own validation (OpenAPI + CEL) on the real API server: every example is accepted, each
invalid manifest is rejected with a message naming the field, and the transition rules (immutable
BatchJob spec, one-way fields) hold on update."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import yaml

from tests.integration.helpers import delete_cluster_objects

pytestmark = pytest.mark.integration

Kubectl = Callable[..., CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
API_VERSION = "kubatch.dev/v1alpha1"
DELETE = object()  # in a patch: remove the key


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


CONTAINER = {
    "image": "busybox:1.36",
    "command": ["true"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
}
POD = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
BASE: dict[str, dict[str, Any]] = {
    "ComputeEnvironment": {
        "type": "MANAGED",
        "computeResources": {"maxvCpus": 16, "provisioner": "kwok"},
    },
    "JobQueue": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]},
    "SchedulingPolicy": {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a"}]}},
    "ConsumableResource": {"totalQuantity": 1},
    "JobDefinition": {"type": "container", "containerProperties": CONTAINER},
    "BatchJob": {"jobQueue": "q", "jobDefinition": "d"},
    "JobSchedule": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}}},
    "ServiceEnvironment": {
        "serviceEnvironmentType": "KUBERNETES_JOB",
        "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}],
    },
}
SERVICE_QUEUE = {
    "jobQueueType": "KUBERNETES_JOB",
    "computeEnvironmentOrder": DELETE,
    "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": "se"}],
}
SERVICE_JOB = {"jobDefinition": DELETE, "serviceJobType": "KUBERNETES_JOB", "serviceRequestPayload": '{"kind": "Job"}'}


def manifest(kind: str, spec_patch: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": merge(BASE[kind], spec_patch),
    }


def nodes(num: int, *ranges: str, main: int = 0) -> dict[str, Any]:
    return {
        "type": "multinode",
        "containerProperties": DELETE,
        "nodeProperties": {
            "numNodes": num,
            "mainNode": main,
            "nodeRangeProperties": [{"targetNodes": r, "container": CONTAINER} for r in ranges],
        },
    }


def container(**fields: Any) -> dict[str, Any]:
    return {"containerProperties": {**CONTAINER, **fields}}


def pod(**fields: Any) -> dict[str, Any]:
    return {"containerProperties": DELETE, "podProperties": {**POD, **fields}}


@dataclass(frozen=True)
class Invalid:
    id: str
    kind: str
    spec: dict[str, Any]
    expect: str  # must appear in the API server's error: it names the field
    name: str = "x"


RETRY = {"attempts": 2}
INVALID: list[Invalid] = [
    # eksProperties / eksPropertiesOverride are podProperties / podOverrides in kubatch.
    Invalid(
        "eks-properties",
        "JobDefinition",
        {"containerProperties": DELETE, "eksProperties": {"podProperties": POD}},
        'unknown field "spec.eksProperties"',
    ),
    Invalid(
        "queue-arn-as-definition", "BatchJob", {"jobDefinition": "arn:aws:batch:x:1:job-queue/q"}, "spec.jobDefinition"
    ),
    Invalid("deprecated-vcpus-zero", "JobDefinition", container(vcpus=0), "spec.containerProperties.vcpus"),
    Invalid(
        "log-driver-unknown",
        "JobDefinition",
        container(logConfiguration={"logDriver": "stdout"}),
        "spec.containerProperties.logConfiguration.logDriver",
    ),
    # BatchJob
    Invalid("array-size-1", "BatchJob", {"arrayProperties": {"size": 1}}, "spec.arrayProperties.size"),
    Invalid("array-size-10001", "BatchJob", {"arrayProperties": {"size": 10001}}, "spec.arrayProperties.size"),
    Invalid("retry-attempts-0", "BatchJob", {"retryStrategy": {"attempts": 0}}, "spec.retryStrategy.attempts"),
    Invalid("retry-attempts-11", "BatchJob", {"retryStrategy": {"attempts": 11}}, "spec.retryStrategy.attempts"),
    Invalid(
        "evaluate-on-exit-6",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onExitCode": str(i), "action": "RETRY"} for i in range(6)]}},
        "spec.retryStrategy.evaluateOnExit",
    ),
    Invalid(
        "evaluate-on-exit-without-attempts",
        "BatchJob",
        {"retryStrategy": {"evaluateOnExit": [{"onReason": "*", "action": "EXIT"}]}},
        "retryStrategy.evaluateOnExit needs retryStrategy.attempts",
    ),
    Invalid(
        "on-exit-code-letters",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onExitCode": "13a", "action": "RETRY"}]}},
        "spec.retryStrategy.evaluateOnExit[0].onExitCode",
    ),
    Invalid(
        "on-exit-code-inner-star",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onExitCode": "1*3", "action": "RETRY"}]}},
        "spec.retryStrategy.evaluateOnExit[0].onExitCode",
    ),
    Invalid(
        "on-reason-hyphen",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onReason": "Out-of-memory", "action": "RETRY"}]}},
        "spec.retryStrategy.evaluateOnExit[0].onReason",
    ),
    Invalid(
        "on-status-reason-too-long",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onStatusReason": "a" * 513, "action": "RETRY"}]}},
        "spec.retryStrategy.evaluateOnExit[0].onStatusReason",
    ),
    Invalid(
        "evaluate-on-exit-action",
        "BatchJob",
        {"retryStrategy": {**RETRY, "evaluateOnExit": [{"onReason": "*", "action": "IGNORE"}]}},
        "spec.retryStrategy.evaluateOnExit[0].action",
    ),
    Invalid(
        "depends-on-21",
        "BatchJob",
        {"dependsOn": [{"jobName": f"j{i}"} for i in range(21)]},
        "spec.dependsOn",
    ),
    Invalid("depends-on-type", "BatchJob", {"dependsOn": [{"jobName": "a", "type": "ALL"}]}, "spec.dependsOn[0].type"),
    Invalid(
        "n-to-n-without-job-name",
        "BatchJob",
        {"arrayProperties": {"size": 2}, "dependsOn": [{"type": "N_TO_N"}]},
        "jobName is required unless type is SEQUENTIAL",
    ),
    Invalid(
        "sequential-with-job-name",
        "BatchJob",
        {"arrayProperties": {"size": 2}, "dependsOn": [{"jobName": "a", "type": "SEQUENTIAL"}]},
        "SEQUENTIAL dependency is between this job's own array children",
    ),
    Invalid(
        "n-to-n-without-array",
        "BatchJob",
        {"dependsOn": [{"jobName": "a", "type": "N_TO_N"}]},
        "spec.dependsOn: N_TO_N and SEQUENTIAL dependencies need spec.arrayProperties",
    ),
    Invalid(
        "depends-on-duplicate",
        "BatchJob",
        {"dependsOn": [{"jobName": "a"}, {"jobName": "a"}]},
        "spec.dependsOn: each jobName may appear only once",
    ),
    Invalid("depends-on-itself", "BatchJob", {"dependsOn": [{"jobName": "x"}]}, "spec.dependsOn: a job cannot"),
    Invalid(
        "timeout-59", "BatchJob", {"timeout": {"attemptDurationSeconds": 59}}, "spec.timeout.attemptDurationSeconds"
    ),
    Invalid(
        "override-reserved-env",
        "BatchJob",
        {"containerOverrides": {"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}},
        "spec.containerOverrides.environment[0].name",
    ),
    Invalid(
        "override-empty-command",
        "BatchJob",
        {"containerOverrides": {"command": ["echo", ""]}},
        "spec.containerOverrides.command[1]",
    ),
    Invalid(
        "container-and-pod-overrides",
        "BatchJob",
        {"containerOverrides": {"command": ["a"]}, "podOverrides": {"metadata": {"labels": {"a": "b"}}}},
        "spec.podOverrides",
    ),
    Invalid(
        "node-overrides-array",
        "BatchJob",
        {"arrayProperties": {"size": 2}, "nodeOverrides": {"numNodes": 2}},
        "cannot be an array job",
    ),
    Invalid("node-overrides-0-nodes", "BatchJob", {"nodeOverrides": {"numNodes": 0}}, "spec.nodeOverrides.numNodes"),
    Invalid(
        "node-override-target-nodes",
        "BatchJob",
        {"nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "a:b"}]}},
        "spec.nodeOverrides.nodePropertyOverrides[0].targetNodes",
    ),
    Invalid(
        "pod-override-env-value-and-value-from",
        "BatchJob",
        {
            "podOverrides": {
                "containers": [
                    {
                        "name": "main",
                        "env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                    }
                ]
            }
        },
        "env[]: set value or valueFrom, not both",
    ),
    Invalid("job-queue-name", "BatchJob", {"jobQueue": "Bad_Queue"}, "spec.jobQueue"),
    Invalid("job-definition-revision-0", "BatchJob", {"jobDefinition": "def:0"}, "spec.jobDefinition"),
    Invalid("share-identifier-wildcard", "BatchJob", {"shareIdentifier": "team*"}, "spec.shareIdentifier"),
    Invalid(
        "scheduling-priority-override-10000",
        "BatchJob",
        {"schedulingPriorityOverride": 10000},
        "spec.schedulingPriorityOverride",
    ),
    Invalid("cancel-without-reason", "BatchJob", {"cancel": {}}, "spec.cancel.reason"),
    Invalid("name-64", "BatchJob", {}, "metadata.name must be at most 63 characters", name="j" * 64),
    Invalid("tag-aws-prefix", "BatchJob", {"tags": {"aws:owner": "me"}}, "spec.tags"),
    Invalid(
        "pod-label-reserved",
        "BatchJob",
        {"podMetadata": {"labels": {"kubatch.dev/job-name": "x"}}},
        "spec.podMetadata.labels",
    ),
    Invalid(
        "override-memory-fraction",
        "BatchJob",
        {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "1.5"}]}},
        "MEMORY (MiB) and GPU must be a whole number",
    ),
    Invalid(
        "override-resource-type",
        "BatchJob",
        {"containerOverrides": {"resourceRequirements": [{"type": "CPU", "value": "1"}]}},
        "spec.containerOverrides.resourceRequirements[0].type",
    ),
    # JobDefinition
    Invalid("jd-type", "JobDefinition", {"type": "batch"}, "spec.type"),
    Invalid("jd-container-and-pod", "JobDefinition", {"podProperties": POD}, "exactly one of spec.containerProperties"),
    Invalid("jd-container-without-properties", "JobDefinition", {"containerProperties": DELETE}, "exactly one of"),
    Invalid("jd-multinode-without-nodes", "JobDefinition", {"type": "multinode"}, "needs spec.nodeProperties"),
    Invalid(
        "jd-multinode-with-container",
        "JobDefinition",
        {**nodes(2, "0:"), "containerProperties": CONTAINER},
        "needs spec.nodeProperties",
    ),
    Invalid(
        "main-node-out-of-range",
        "JobDefinition",
        nodes(4, "0:", main=4),
        "spec.nodeProperties.mainNode",
    ),
    Invalid("node-ranges-gap", "JobDefinition", nodes(4, "0", "2:"), "cover every node from 0"),
    Invalid("node-ranges-no-zero", "JobDefinition", nodes(4, "1:"), "cover every node from 0"),
    Invalid("node-range-beyond-num-nodes", "JobDefinition", nodes(4, "0:5"), "start <= end < numNodes"),
    Invalid("node-range-reversed", "JobDefinition", nodes(4, "0:", "3:1"), "start <= end < numNodes"),
    Invalid(
        "node-range-syntax", "JobDefinition", nodes(4, "0-3"), "spec.nodeProperties.nodeRangeProperties[0].targetNodes"
    ),
    Invalid(
        "node-ranges-6",
        "JobDefinition",
        nodes(6, "0", "1", "2", "3", "4", "5"),
        "spec.nodeProperties.nodeRangeProperties",
    ),
    Invalid("num-nodes-0", "JobDefinition", nodes(0, "0:"), "spec.nodeProperties.numNodes"),
    Invalid(
        "node-range-container-and-pod",
        "JobDefinition",
        {
            "type": "multinode",
            "containerProperties": DELETE,
            "nodeProperties": {
                "numNodes": 1,
                "nodeRangeProperties": [{"targetNodes": "0", "container": CONTAINER, "podProperties": POD}],
            },
        },
        "exactly one of container or podProperties",
    ),
    Invalid(
        "jd-reserved-env",
        "JobDefinition",
        container(environment=[{"name": "AWS_BATCH_JQ_NAME", "value": "x"}]),
        "spec.containerProperties.environment[0].name",
    ),
    Invalid(
        "jd-reserved-secret-env",
        "JobDefinition",
        container(secrets=[{"name": "AWS_BATCH_X", "valueFrom": "s:k"}]),
        "spec.containerProperties.secrets[0].name",
    ),
    Invalid(
        "secret-value-from-arn",
        "JobDefinition",
        container(secrets=[{"name": "PW", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:pw"}]),
        "spec.containerProperties.secrets[0].valueFrom",
    ),
    Invalid(
        "mount-point-unknown-volume",
        "JobDefinition",
        container(mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}]),
        "mountPoints[].sourceVolume must name a volume",
    ),
    Invalid(
        "volume-two-sources",
        "JobDefinition",
        container(volumes=[{"name": "v", "host": {"sourcePath": "/x"}, "emptyDir": {}}]),
        "volumes: set at most one of",
    ),
    Invalid(
        "resource-requirement-duplicate",
        "JobDefinition",
        container(resourceRequirements=[{"type": "VCPU", "value": "1"}, {"type": "VCPU", "value": "2"}]),
        "spec.containerProperties.resourceRequirements[1]",
    ),
    Invalid("image-empty", "JobDefinition", container(image=""), "spec.containerProperties.image"),
    Invalid("user-name", "JobDefinition", container(user="root"), "spec.containerProperties.user"),
    Invalid(
        "ulimit-soft-above-hard",
        "JobDefinition",
        container(ulimits=[{"name": "nofile", "softLimit": 10, "hardLimit": 5}]),
        "softLimit must not exceed hardLimit",
    ),
    Invalid(
        "pod-duplicate-container-names",
        "JobDefinition",
        pod(containers=[{"image": "a"}, {"image": "b"}]),
        "spec.podProperties.containers[1]",
    ),
    Invalid(
        "pod-11-containers",
        "JobDefinition",
        pod(containers=[{"name": f"c{i}", "image": "a"} for i in range(11)]),
        "spec.podProperties.containers",
    ),
    Invalid(
        "pod-volume-mount-unknown",
        "JobDefinition",
        pod(containers=[{"name": "c", "image": "a", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]),
        "volumeMounts[].name must name a volume",
    ),
    Invalid("pod-volume-no-source", "JobDefinition", pod(volumes=[{"name": "v"}]), "volumes: set exactly one of"),
    Invalid(
        "pod-reserved-env",
        "JobDefinition",
        pod(containers=[{"name": "c", "image": "a", "env": [{"name": "AWS_BATCH_JOB_ID"}]}]),
        "spec.podProperties.containers[0].env[0].name",
    ),
    Invalid("scheduling-priority-10000", "JobDefinition", {"schedulingPriority": 10000}, "spec.schedulingPriority"),
    Invalid(
        "consumable-resources-6",
        "JobDefinition",
        {
            "consumableResourceProperties": {
                "consumableResourceList": [{"consumableResource": f"r{i}", "quantity": 1} for i in range(6)]
            }
        },
        "spec.consumableResourceProperties.consumableResourceList",
    ),
    Invalid(
        "consumable-quantity-0",
        "JobDefinition",
        {"consumableResourceProperties": {"consumableResourceList": [{"consumableResource": "r", "quantity": 0}]}},
        "spec.consumableResourceProperties.consumableResourceList[0].quantity",
    ),
    # ComputeEnvironment
    Invalid(
        "managed-without-compute-resources",
        "ComputeEnvironment",
        {"computeResources": DELETE},
        "spec.computeResources is required for a MANAGED",
    ),
    Invalid(
        "unmanaged-with-compute-resources",
        "ComputeEnvironment",
        {"type": "UNMANAGED", "nodeSelector": {"a": "b"}},
        "spec.computeResources must not be set for an UNMANAGED",
    ),
    Invalid(
        "unmanaged-without-node-selector",
        "ComputeEnvironment",
        {"type": "UNMANAGED", "computeResources": DELETE},
        "spec.nodeSelector is required",
    ),
    Invalid(
        "min-above-max",
        "ComputeEnvironment",
        {"computeResources": {"minvCpus": 32}},
        "computeResources.minvCpus must not exceed computeResources.maxvCpus",
    ),
    Invalid(
        "desired-above-max",
        "ComputeEnvironment",
        {"computeResources": {"desiredvCpus": 17}},
        "computeResources.desiredvCpus must lie between",
    ),
    Invalid(
        "desired-below-min",
        "ComputeEnvironment",
        {"computeResources": {"minvCpus": 4, "desiredvCpus": 2}},
        "computeResources.desiredvCpus must lie between",
    ),
    Invalid(
        "spot-strategy-on-demand",
        "ComputeEnvironment",
        {"computeResources": {"allocationStrategy": "SPOT_CAPACITY_OPTIMIZED"}},
        "spec.computeResources.allocationStrategy",
    ),
    Invalid(
        "provisioner-unknown",
        "ComputeEnvironment",
        {"computeResources": {"provisioner": "aws"}},
        "spec.computeResources.provisioner",
    ),
    Invalid(
        "karpenter-without-node-class",
        "ComputeEnvironment",
        {"computeResources": {"provisioner": "karpenter"}},
        "spec.computeResources.nodeClassRef",
    ),
    Invalid(
        "compute-type-fargate",
        "ComputeEnvironment",
        {"computeResources": {"type": "FARGATE"}},
        "spec.computeResources.type",
    ),
    Invalid("max-vcpus-negative", "ComputeEnvironment", {"computeResources": {"maxvCpus": -1}}, "maxvCpus"),
    Invalid("ce-state", "ComputeEnvironment", {"state": "PAUSED"}, "spec.state"),
    Invalid(
        "update-timeout-0",
        "ComputeEnvironment",
        {"updatePolicy": {"jobExecutionTimeoutMinutes": 0}},
        "spec.updatePolicy.jobExecutionTimeoutMinutes",
    ),
    Invalid(
        "update-timeout-7201",
        "ComputeEnvironment",
        {"updatePolicy": {"jobExecutionTimeoutMinutes": 7201}},
        "spec.updatePolicy.jobExecutionTimeoutMinutes",
    ),
    # JobQueue
    Invalid(
        "queue-no-compute-environment", "JobQueue", {"computeEnvironmentOrder": []}, "spec.computeEnvironmentOrder"
    ),
    Invalid(
        "queue-4-compute-environments",
        "JobQueue",
        {"computeEnvironmentOrder": [{"order": i, "computeEnvironment": f"ce{i}"} for i in range(4)]},
        "spec.computeEnvironmentOrder",
    ),
    Invalid(
        "queue-duplicate-order",
        "JobQueue",
        {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "a"}, {"order": 1, "computeEnvironment": "b"}]},
        "spec.computeEnvironmentOrder[1]",
    ),
    Invalid(
        "queue-compute-environment-twice",
        "JobQueue",
        {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "a"}, {"order": 2, "computeEnvironment": "a"}]},
        "each compute environment may appear only once",
    ),
    Invalid("queue-priority-negative", "JobQueue", {"priority": -1}, "spec.priority"),
    Invalid(
        "time-limit-599",
        "JobQueue",
        {"jobStateTimeLimitActions": [{"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 599}]},
        "spec.jobStateTimeLimitActions[0].maxTimeSeconds",
    ),
    Invalid(
        "time-limit-86401",
        "JobQueue",
        {"jobStateTimeLimitActions": [{"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 86401}]},
        "spec.jobStateTimeLimitActions[0].maxTimeSeconds",
    ),
    Invalid(
        "time-limit-reason",
        "JobQueue",
        {"jobStateTimeLimitActions": [{"reason": "ACTION_REQUIRED", "maxTimeSeconds": 600}]},
        "spec.jobStateTimeLimitActions[0].reason",
    ),
    Invalid(
        "time-limit-action",
        "JobQueue",
        {
            "jobStateTimeLimitActions": [
                {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 600, "action": "TERMINATE"}
            ]
        },
        "spec.jobStateTimeLimitActions[0].action",
    ),
    Invalid(
        "time-limit-state",
        "JobQueue",
        {
            "jobStateTimeLimitActions": [
                {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 600, "state": "RUNNING"}
            ]
        },
        "spec.jobStateTimeLimitActions[0].state",
    ),
    Invalid(
        "namespace-selector-in-without-values",
        "JobQueue",
        {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}},
        "operators In and NotIn need values",
    ),
    Invalid(
        "queue-compute-environment-name",
        "JobQueue",
        {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "CPU_OnDemand"}]},
        "spec.computeEnvironmentOrder[0].computeEnvironment",
    ),
    # SchedulingPolicy
    Invalid(
        "compute-reservation-100",
        "SchedulingPolicy",
        {"fairsharePolicy": {"computeReservation": 100}},
        "spec.fairsharePolicy.computeReservation",
    ),
    Invalid(
        "share-decay-too-long",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDecaySeconds": 604801}},
        "spec.fairsharePolicy.shareDecaySeconds",
    ),
    Invalid(
        "weight-factor-0",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0}]}},
        "spec.fairsharePolicy.shareDistribution[0].weightFactor",
    ),
    Invalid(
        "weight-factor-1000",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1000}]}},
        "spec.fairsharePolicy.shareDistribution[0].weightFactor",
    ),
    Invalid(
        "share-overlap",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "UserA*"}, {"shareIdentifier": "UserA1"}]}},
        "share identifiers must not overlap",
    ),
    Invalid(
        "share-prefix-overlap",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "User*"}, {"shareIdentifier": "UserA*"}]}},
        "share identifiers must not overlap",
    ),
    Invalid(
        "share-duplicate",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a"}, {"shareIdentifier": "a"}]}},
        "spec.fairsharePolicy.shareDistribution[1]",
    ),
    Invalid(
        "share-identifier-space",
        "SchedulingPolicy",
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "team a"}]}},
        "spec.fairsharePolicy.shareDistribution[0].shareIdentifier",
    ),
    Invalid("policy-without-fairshare", "SchedulingPolicy", {"fairsharePolicy": DELETE}, "spec.fairsharePolicy"),
    # ConsumableResource
    Invalid("total-quantity-negative", "ConsumableResource", {"totalQuantity": -1}, "spec.totalQuantity"),
    Invalid("total-quantity-missing", "ConsumableResource", {"totalQuantity": DELETE}, "spec.totalQuantity"),
    Invalid("resource-type", "ConsumableResource", {"resourceType": "RENEWABLE"}, "spec.resourceType"),
    # JobSchedule (the CRD checks the shape of the schedule; the webhook and the controller parse it)
    Invalid("schedule-four-fields", "JobSchedule", {"schedule": "0 3 * *"}, "spec.schedule: expected five fields"),
    Invalid("schedule-six-fields", "JobSchedule", {"schedule": "0 0 3 * * *"}, "spec.schedule: expected five fields"),
    Invalid("schedule-empty", "JobSchedule", {"schedule": ""}, "spec.schedule"),
    Invalid("schedule-missing", "JobSchedule", {"schedule": DELETE}, "spec.schedule"),
    Invalid("time-zone-shape", "JobSchedule", {"timeZone": "Europe/../Paris"}, "spec.timeZone"),
    Invalid("concurrency-policy", "JobSchedule", {"concurrencyPolicy": "Queue"}, "spec.concurrencyPolicy"),
    Invalid(
        "starting-deadline-negative", "JobSchedule", {"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds"
    ),
    Invalid("history-negative", "JobSchedule", {"failedJobsHistoryLimit": -1}, "spec.failedJobsHistoryLimit"),
    Invalid("template-missing", "JobSchedule", {"jobTemplate": DELETE}, "spec.jobTemplate"),
    Invalid(
        "template-without-queue",
        "JobSchedule",
        {"jobTemplate": {"spec": {"jobQueue": DELETE}}},
        "spec.jobTemplate.spec.jobQueue",
    ),
    Invalid(
        "template-array-size-1",
        "JobSchedule",
        {"jobTemplate": {"spec": {"arrayProperties": {"size": 1}}}},
        "spec.jobTemplate.spec.arrayProperties.size",
    ),
    Invalid(
        "template-reserved-label",
        "JobSchedule",
        {"jobTemplate": {"metadata": {"labels": {"kubatch.dev/schedule": "other"}}}},
        "spec.jobTemplate.metadata.labels",
    ),
    Invalid("schedule-name-53", "JobSchedule", {}, "metadata.name must be at most 52 characters", name="s" * 53),
    # Service environments, service job queues and service jobs (issue 14).
    Invalid(
        "se-type-lowercase", "ServiceEnvironment", {"serviceEnvironmentType": "k8s"}, "spec.serviceEnvironmentType"
    ),
    Invalid("se-no-limits", "ServiceEnvironment", {"capacityLimits": []}, "spec.capacityLimits"),
    Invalid(
        "se-two-limits",
        "ServiceEnvironment",
        {"capacityLimits": [{"maxCapacity": 1}, {"maxCapacity": 2}]},
        "spec.capacityLimits",
    ),
    Invalid(
        "se-unit",
        "ServiceEnvironment",
        {"capacityLimits": [{"capacityUnit": "ml m5.large", "maxCapacity": 1}]},
        "spec.capacityLimits[0].capacityUnit",
    ),
    # Quota shares and preemption (issue 14).
    Invalid(
        "se-duplicate-unit",
        "ServiceEnvironment",
        {
            "capacityLimits": [
                {"capacityUnit": "m5.large", "maxCapacity": 1},
                {"capacityUnit": "m5.large", "maxCapacity": 2},
            ]
        },
        "spec.capacityLimits[1]",
    ),
    Invalid("policy-neither", "SchedulingPolicy", {"fairsharePolicy": DELETE}, "exactly one of them"),
    Invalid(
        "policy-both",
        "SchedulingPolicy",
        {"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}},
        "exactly one",
    ),
    Invalid(
        "policy-quota-strategy",
        "SchedulingPolicy",
        {"fairsharePolicy": DELETE, "quotaSharePolicy": {"idleResourceAssignmentStrategy": "LIFO"}},
        "spec.quotaSharePolicy.idleResourceAssignmentStrategy",
    ),
    Invalid(
        "quota-shares-on-eks",
        "JobQueue",
        {
            "quotaShares": [
                {"quotaShareName": "a", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}]}
            ]
        },
        "quota shares are for service job queues",
    ),
    Invalid(
        "quota-shares-21",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "quotaShares": [
                {"quotaShareName": f"s{i}", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}]}
                for i in range(21)
            ],
        },
        "spec.quotaShares",
    ),
    Invalid(
        "quota-share-6-limits",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "quotaShares": [
                {
                    "quotaShareName": "a",
                    "capacityLimits": [{"capacityUnit": f"m5.{i}xlarge", "maxCapacity": 1} for i in range(6)],
                }
            ],
        },
        "spec.quotaShares[0].capacityLimits",
    ),
    Invalid(
        "quota-share-borrow-limit-on-reserve",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "quotaShares": [
                {
                    "quotaShareName": "a",
                    "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}],
                    "resourceSharingConfiguration": {"strategy": "LEND", "borrowLimit": 50},
                }
            ],
        },
        "only a LEND_AND_BORROW share borrows",
    ),
    Invalid(
        "quota-share-duplicate",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "quotaShares": [
                {"quotaShareName": "a", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}]},
                {"quotaShareName": "a", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]},
            ],
        },
        "spec.quotaShares[1]",
    ),
    Invalid("job-quota-share", "BatchJob", {"quotaShareName": "a"}, "are for service jobs"),
    Invalid(
        "service-job-negative-preemption-retries",
        "BatchJob",
        {**SERVICE_JOB, "preemptionConfiguration": {"preemptionRetriesBeforeTermination": -1}},
        "spec.preemptionConfiguration.preemptionRetriesBeforeTermination",
    ),
    Invalid("se-negative", "ServiceEnvironment", {"capacityLimits": [{"maxCapacity": -1}]}, "maxCapacity"),
    Invalid(
        "queue-both-orders",
        "JobQueue",
        {**SERVICE_QUEUE, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]},
        "not both",
    ),
    Invalid(
        "queue-two-service-environments",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "serviceEnvironmentOrder": [
                {"order": 1, "serviceEnvironment": "a"},
                {"order": 2, "serviceEnvironment": "b"},
            ],
        },
        "spec.serviceEnvironmentOrder",
    ),
    Invalid(
        "queue-service-without-environment",
        "JobQueue",
        {**SERVICE_QUEUE, "serviceEnvironmentOrder": DELETE},
        "needs exactly one service environment",
    ),
    Invalid(
        "queue-eks-without-environments",
        "JobQueue",
        {"computeEnvironmentOrder": []},
        "1 to 3 compute environments are required for jobQueueType EKS",
    ),
    Invalid("queue-ecs", "JobQueue", {"jobQueueType": "ECS"}, "kubatch has no ECS or Fargate queues"),
    Invalid(
        "queue-service-reason-on-eks",
        "JobQueue",
        {
            "jobStateTimeLimitActions": [
                {"reason": "MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE", "maxTimeSeconds": 600}
            ]
        },
        "spec.jobStateTimeLimitActions",
    ),
    Invalid(
        "queue-compute-reason-on-service",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "jobStateTimeLimitActions": [
                {"reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", "maxTimeSeconds": 600}
            ],
        },
        "spec.jobStateTimeLimitActions",
    ),
    Invalid("service-job-and-definition", "BatchJob", {**SERVICE_JOB, "jobDefinition": "d"}, "exactly one of them"),
    Invalid("service-job-without-payload", "BatchJob", {**SERVICE_JOB, "serviceRequestPayload": DELETE}, "together"),
    Invalid("job-without-anything", "BatchJob", {"jobDefinition": DELETE}, "exactly one of them"),
    Invalid(
        "service-job-payload-11k",
        "BatchJob",
        {**SERVICE_JOB, "serviceRequestPayload": "{" + " " * 11000 + "}"},
        "spec.serviceRequestPayload",
    ),
    Invalid(
        "service-job-with-overrides",
        "BatchJob",
        {**SERVICE_JOB, "containerOverrides": {"command": ["x"]}},
        "a service job (spec.serviceJobType) takes none of",
    ),
    Invalid(
        "service-job-exit-code-retry",
        "BatchJob",
        {**SERVICE_JOB, "retryStrategy": {"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "RETRY"}]}},
        "onStatusReason only",
    ),
    Invalid(
        "job-with-timeout-config", "BatchJob", {"timeoutConfig": {"attemptDurationSeconds": 60}}, "are for service jobs"
    ),
    Invalid(
        "service-job-schedule",
        "JobSchedule",
        {"jobTemplate": {"spec": SERVICE_JOB}},
        "a JobSchedule submits jobs of a job definition",
    ),
]


@dataclass(frozen=True)
class Valid:
    id: str
    kind: str
    spec: dict[str, Any]
    name: str = "x"


# Edge cases that must be accepted: limits inclusive, and rules that must not over-reach.
VALID: list[Valid] = [
    Valid("array-size-2", "BatchJob", {"arrayProperties": {"size": 2}}),
    Valid("array-size-10000", "BatchJob", {"arrayProperties": {"size": 10000}}),
    Valid(
        "retry-limits",
        "BatchJob",
        {
            "retryStrategy": {
                "attempts": 10,
                "evaluateOnExit": [
                    {"onStatusReason": "Host EC2*", "action": "RETRY"},
                    {"onReason": "CannotPullContainerError:*", "action": "RETRY"},
                    {"onExitCode": "1*", "onReason": "Error", "action": "EXIT"},
                    {"onExitCode": "*", "action": "EXIT"},
                    {"onReason": "*", "action": "EXIT"},
                ],
            }
        },
    ),
    Valid(
        "retry-action-any-case",
        "BatchJob",
        {
            "retryStrategy": {
                "attempts": 3,
                "evaluateOnExit": [{"onExitCode": "1", "action": "retry"}, {"onReason": "*", "action": "Exit"}],
            }
        },
    ),
    Valid(
        "sequential-plus-job",
        "BatchJob",
        {"arrayProperties": {"size": 3}, "dependsOn": [{"type": "SEQUENTIAL"}, {"jobName": "a", "type": "N_TO_N"}]},
    ),
    Valid("depends-on-20", "BatchJob", {"dependsOn": [{"jobName": f"j{i}"} for i in range(20)]}),
    Valid("timeout-60", "BatchJob", {"timeout": {"attemptDurationSeconds": 60}}),
    Valid("name-63", "BatchJob", {}, name="j" * 63),
    Valid("submitted-cancelled", "BatchJob", {"cancel": {"reason": "not needed"}}),
    Valid("pod-override-default-container", "BatchJob", {"podOverrides": {"containers": [{"args": ["x"]}]}}),
    Valid("nested-node-ranges", "JobDefinition", nodes(11, "0:10", "4:5")),
    Valid("open-node-ranges", "JobDefinition", nodes(8, ":3", "4:", main=7)),
    Valid("single-node-ranges", "JobDefinition", nodes(3, "2", "0", "1")),
    Valid("one-node", "JobDefinition", nodes(1, "0")),
    Valid("pod-definition", "JobDefinition", pod()),
    Valid(
        "update-policy",
        "ComputeEnvironment",
        {"updatePolicy": {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": 7200}},
    ),
    Valid("update-policy-terminate", "ComputeEnvironment", {"updatePolicy": {"terminateJobsOnUpdate": True}}),
    Valid(
        "unmanaged",
        "ComputeEnvironment",
        {"type": "UNMANAGED", "computeResources": DELETE, "nodeSelector": {"pool": "batch"}, "unmanagedvCpus": 8},
    ),
    Valid(
        "karpenter",
        "ComputeEnvironment",
        {
            "computeResources": {
                "type": "SPOT",
                "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED",
                "provisioner": "karpenter",
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "minvCpus": 2,
                "desiredvCpus": 2,
                "maxvCpus": 2,
            }
        },
    ),
    Valid(
        "time-limits-bounds",
        "JobQueue",
        {
            "jobStateTimeLimitActions": [
                {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 600},
                {"reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", "maxTimeSeconds": 86400},
            ]
        },
    ),
    Valid(
        "shares-not-overlapping",
        "SchedulingPolicy",
        {
            "fairsharePolicy": {
                "shareDecaySeconds": 604800,
                "computeReservation": 99,
                "shareDistribution": [
                    {"shareIdentifier": "UserA*", "weightFactor": 0.0001},
                    {"shareIdentifier": "UserB", "weightFactor": 999.9999},
                    {"shareIdentifier": "User"},
                ],
            }
        },
    ),
    # AWS spellings kubatch accepts (docs/differences.md): job definition ARNs, deprecated vcpus/memory.
    Valid("definition-arn", "BatchJob", {"jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/d:3"}),
    Valid("definition-arn-latest", "BatchJob", {"jobDefinition": "arn:aws-cn:batch:cn-north-1:1:job-definition/d"}),
    Valid("deprecated-vcpus-memory", "JobDefinition", container(resourceRequirements=DELETE, vcpus=2, memory=2048)),
    Valid("deprecated-override", "BatchJob", {"containerOverrides": {"vcpus": 1, "memory": 512}}),
    # AWS fields kubatch accepts and ignores (docs/differences.md): strict validation takes them.
    Valid(
        "log-configuration",
        "JobDefinition",
        container(
            logConfiguration={
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/batch/x", "awslogs-stream-prefix": "x"},
                "secretOptions": [{"name": "token", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/t"}],
            }
        ),
    ),
    Valid(
        "linux-parameters",
        "JobDefinition",
        container(
            linuxParameters={
                "initProcessEnabled": True,
                "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["READ"]}],
                "maxSwap": 1024,
                "swappiness": 60,
            }
        ),
    ),
    Valid("zero-quantity", "ConsumableResource", {"totalQuantity": 0, "resourceType": "NON_REPLENISHABLE"}),
    Valid("schedule-macro", "JobSchedule", {"schedule": "@daily", "timeZone": "America/Argentina/Buenos_Aires"}),
    Valid("schedule-tabs-and-names", "JobSchedule", {"schedule": " */15\t9-17 * JAN-MAR mon-fri "}),
    Valid("schedule-name-52", "JobSchedule", {"concurrencyPolicy": "Replace"}, name="s" * 52),
    Valid("schedule-history-zero", "JobSchedule", {"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0}),
    Valid("se-zero-capacity", "ServiceEnvironment", {"state": "DISABLED", "capacityLimits": [{"maxCapacity": 0}]}),
    Valid("service-queue", "JobQueue", SERVICE_QUEUE),
    Valid("service-queue-empty-compute-order", "JobQueue", {**SERVICE_QUEUE, "computeEnvironmentOrder": []}),
    Valid(
        "service-job-full",
        "BatchJob",
        {
            **SERVICE_JOB,
            "serviceRequestPayload": "kind: Job\nspec: {}\n",
            "retryStrategy": {
                "attempts": 10,
                "evaluateOnExit": [{"onStatusReason": "Received status*", "action": "RETRY"}],
            },
            "timeoutConfig": {"attemptDurationSeconds": 60},
            "shareIdentifier": "a",
            "schedulingPriority": 9999,
            "tags": {"k": "v"},
        },
    ),
    Valid("quota-share-policy", "SchedulingPolicy", {"fairsharePolicy": DELETE, "quotaSharePolicy": {}}),
    Valid(
        "se-instance-types",
        "ServiceEnvironment",
        {
            "capacityLimits": [
                {"capacityUnit": "NUM_INSTANCES", "maxCapacity": 4},
                {"capacityUnit": "ml.m6i.large", "maxCapacity": 2},
                {"capacityUnit": "m5.large", "maxCapacity": 0},
            ]
        },
    ),
    Valid(
        "quota-shares-20",
        "JobQueue",
        {
            **SERVICE_QUEUE,
            "schedulingPolicy": "qp",
            "quotaShares": [
                {
                    "quotaShareName": f"s{i}",
                    "capacityLimits": [{"capacityUnit": f"m5.{j}xlarge", "maxCapacity": 1} for j in range(5)],
                    "resourceSharingConfiguration": {"strategy": "LEND_AND_BORROW", "borrowLimit": 10000},
                    "preemptionConfiguration": {"inSharePreemption": "ENABLED"},
                }
                for i in range(20)
            ],
        },
    ),
    Valid(
        "service-job-quota-share",
        "BatchJob",
        {
            **SERVICE_JOB,
            "quotaShareName": "a_1-B",
            "schedulingPriority": 0,
            "preemptionConfiguration": {"preemptionRetriesBeforeTermination": 0},
        },
    ),
]


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_edge_case_accepted(kubectl: Kubectl, crds: None, namespace: str, case: Valid) -> None:
    body = json.dumps(manifest(case.kind, case.spec, case.name))
    result = kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=body, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_accepted(kubectl: Kubectl, crds: None, namespace: str, path: Path) -> None:
    result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr


def test_enough_examples_and_cases() -> None:
    assert len(EXAMPLES) >= 12
    assert len(INVALID) >= 40
    assert len({c.id for c in INVALID}) == len(INVALID)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_rejected(kubectl: Kubectl, crds: None, namespace: str, case: Invalid) -> None:
    body = json.dumps(manifest(case.kind, case.spec, case.name))
    result = kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=body, check=False)
    assert result.returncode != 0, f"accepted: {body}"
    assert case.expect in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------------
# Transition rules (need a stored object to update)


def _apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _patch(kubectl: Kubectl, namespace: str, kind: str, name: str, patch: dict[str, Any]) -> CompletedProcess[str]:
    return kubectl(
        "patch", kind.lower(), name, "-n", namespace, "--type", "merge", "-p", json.dumps(patch), check=False
    )


@pytest.fixture
def cluster_name(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A name for cluster-scoped objects of this test; they are deleted afterwards."""
    name = "t" + hashlib.sha1(namespace.encode()).hexdigest()[:12]
    yield name
    kinds = ("schedulingpolicy", "consumableresource", "jobqueue", "computeenvironment")
    delete_cluster_objects(kubectl, [(kind, name) for kind in kinds])


def test_batch_job_spec_is_immutable(kubectl: Kubectl, crds: None, namespace: str) -> None:
    _apply(kubectl, namespace, manifest("BatchJob", {"parameters": {"a": "1"}}, "job"))
    for patch, field in [
        ({"jobQueue": "other"}, "spec.jobQueue is immutable"),
        ({"parameters": {"a": "2"}}, "spec.parameters is immutable"),
        ({"timeout": {"attemptDurationSeconds": 60}}, "spec.timeout is immutable"),
        ({"parameters": None}, "spec.parameters is immutable"),
    ]:
        result = _patch(kubectl, namespace, "BatchJob", "job", {"spec": patch})
        assert result.returncode != 0, patch
        assert field in result.stderr, result.stderr


def test_batch_job_cancel_and_terminate_are_one_way(kubectl: Kubectl, crds: None, namespace: str) -> None:
    _apply(kubectl, namespace, manifest("BatchJob", {}, "job"))
    assert _patch(kubectl, namespace, "BatchJob", "job", {"spec": {"cancel": {"reason": "no"}}}).returncode == 0
    assert _patch(kubectl, namespace, "BatchJob", "job", {"spec": {"terminate": {"reason": "stop"}}}).returncode == 0
    for patch, message in [
        ({"cancel": None}, "spec.cancel cannot be changed or removed once set"),
        ({"cancel": {"reason": "other"}}, "spec.cancel cannot be changed or removed once set"),
        ({"terminate": None}, "spec.terminate cannot be changed or removed once set"),
    ]:
        result = _patch(kubectl, namespace, "BatchJob", "job", {"spec": patch})
        assert result.returncode != 0, patch
        assert message in result.stderr, result.stderr


def test_service_job_scheduling_priority_can_be_changed_not_removed(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    """AWS UpdateServiceJob: a service job's schedulingPriority is updatable; the rest stays."""
    spec = {**SERVICE_JOB, "quotaShareName": "a", "schedulingPriority": 1}
    _apply(kubectl, namespace, manifest("BatchJob", spec, "sjob"))
    assert _patch(kubectl, namespace, "BatchJob", "sjob", {"spec": {"schedulingPriority": 7}}).returncode == 0
    for patch, message in [
        ({"schedulingPriority": None}, "spec.schedulingPriority can be changed, not removed once set"),
        ({"quotaShareName": "b"}, "spec.quotaShareName is immutable"),
        (
            {"preemptionConfiguration": {"preemptionRetriesBeforeTermination": 1}},
            "spec.preemptionConfiguration is immutable",
        ),
    ]:
        result = _patch(kubectl, namespace, "BatchJob", "sjob", {"spec": patch})
        assert result.returncode != 0, patch
        assert message in result.stderr, result.stderr


def test_job_definition_deregistration_is_final(kubectl: Kubectl, crds: None, namespace: str) -> None:
    _apply(kubectl, namespace, manifest("JobDefinition", {}, "def"))
    assert _patch(kubectl, namespace, "JobDefinition", "def", {"spec": {"deregistered": True}}).returncode == 0
    result = _patch(kubectl, namespace, "JobDefinition", "def", {"spec": {"deregistered": False}})
    assert result.returncode != 0
    assert "spec.deregistered cannot be set back to false" in result.stderr


def test_compute_environment_transitions(kubectl: Kubectl, crds: None, namespace: str, cluster_name: str) -> None:
    _apply(
        kubectl,
        namespace,
        manifest("ComputeEnvironment", {"computeResources": {"desiredvCpus": 8}}, cluster_name),
    )
    ok = _patch(
        kubectl, namespace, "ComputeEnvironment", cluster_name, {"spec": {"computeResources": {"desiredvCpus": 12}}}
    )
    assert ok.returncode == 0, ok.stderr
    for patch, message in [
        ({"computeResources": {"desiredvCpus": 4}}, "Manually scaling down compute environment is not supported"),
        ({"computeResources": {"provisioner": "karpenter"}}, "computeResources.provisioner is immutable"),
        ({"type": "UNMANAGED", "computeResources": None, "nodeSelector": {"a": "b"}}, "spec.type is immutable"),
    ]:
        result = _patch(kubectl, namespace, "ComputeEnvironment", cluster_name, {"spec": patch})
        assert result.returncode != 0, patch
        assert message in result.stderr, result.stderr


def test_job_queue_scheduling_policy_cannot_be_added_or_removed(
    kubectl: Kubectl, crds: None, namespace: str, cluster_name: str
) -> None:
    _apply(kubectl, namespace, manifest("JobQueue", {}, cluster_name))
    result = _patch(kubectl, namespace, "JobQueue", cluster_name, {"spec": {"schedulingPolicy": "fair"}})
    assert result.returncode != 0
    assert "spec.schedulingPolicy cannot be added to or removed" in result.stderr
    # Other fields stay editable.
    assert _patch(kubectl, namespace, "JobQueue", cluster_name, {"spec": {"priority": 5}}).returncode == 0


def test_consumable_resource_type_is_immutable(kubectl: Kubectl, crds: None, namespace: str, cluster_name: str) -> None:
    _apply(kubectl, namespace, manifest("ConsumableResource", {}, cluster_name))
    assert (
        _patch(kubectl, namespace, "ConsumableResource", cluster_name, {"spec": {"totalQuantity": 5}}).returncode == 0
    )
    result = _patch(
        kubectl, namespace, "ConsumableResource", cluster_name, {"spec": {"resourceType": "NON_REPLENISHABLE"}}
    )
    assert result.returncode != 0
    assert "spec.resourceType is immutable" in result.stderr


def test_evaluate_on_exit_action_is_case_insensitive(kubectl: Kubectl, crds: None, namespace: str) -> None:
    """AWS Batch accepts `retry` / `Exit`; so does `kubectl apply`, which stores the value as written
    (kubatch reads it in any case)."""
    entries = [{"onExitCode": "1", "action": "retry"}, {"onReason": "*", "action": "Exit"}]
    body = manifest("JobDefinition", {"retryStrategy": {"attempts": 2, "evaluateOnExit": entries}}, "def")
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    stored = json.loads(kubectl("get", "jobdefinition", "def", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["retryStrategy"]["evaluateOnExit"] == entries


def test_defaults_are_filled(kubectl: Kubectl, crds: None, namespace: str) -> None:
    _apply(kubectl, namespace, manifest("JobDefinition", {"type": DELETE}, "def"))
    stored = yaml.safe_load(kubectl("get", "jobdefinition", "def", "-n", namespace, "-o", "yaml").stdout)
    assert stored["spec"]["type"] == "container"
    assert stored["spec"]["deregistered"] is False
    _apply(kubectl, namespace, manifest("JobSchedule", {}, "sched"))
    stored = yaml.safe_load(kubectl("get", "jobschedule", "sched", "-n", namespace, "-o", "yaml").stdout)
    assert {k: stored["spec"][k] for k in ("concurrencyPolicy", "suspend")} == {
        "concurrencyPolicy": "Allow",
        "suspend": False,
    }
    assert (stored["spec"]["successfulJobsHistoryLimit"], stored["spec"]["failedJobsHistoryLimit"]) == (3, 1)


def test_job_schedule_template_is_editable_and_has_no_stop_fields(kubectl: Kubectl, crds: None, namespace: str) -> None:
    """Unlike a BatchJob's spec, a schedule's template can be changed (its next runs use the new one),
    and a template carries no cancel or terminate: those are for the jobs it submits."""
    _apply(kubectl, namespace, manifest("JobSchedule", {"jobTemplate": {"spec": {"parameters": {"a": "1"}}}}, "sched"))
    patch = {"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"jobQueue": "other", "parameters": {"a": "2"}}}}}
    result = _patch(kubectl, namespace, "JobSchedule", "sched", patch)
    assert result.returncode == 0, result.stderr
    stored = json.loads(kubectl("get", "jobschedule", "sched", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["jobTemplate"]["spec"] == {
        "jobQueue": "other",
        "jobDefinition": "d",
        "parameters": {"a": "2"},
    }
    body = manifest("JobSchedule", {"jobTemplate": {"spec": {"cancel": {"reason": "x"}}}}, "stops")
    result = kubectl(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(body),
        check=False,
    )
    assert result.returncode != 0 and 'unknown field "spec.jobTemplate.spec.cancel"' in result.stderr, result.stderr


def test_categories_and_short_names(kubectl: Kubectl, crds: None, namespace: str) -> None:
    _apply(kubectl, namespace, manifest("BatchJob", {}, "job"))
    _apply(kubectl, namespace, manifest("JobSchedule", {}, "sched"))
    listed = kubectl("get", "kubatch", "-n", namespace, "-o", "name").stdout
    assert "batchjob.kubatch.dev/job" in listed
    assert kubectl("get", "js", "-n", namespace, "-o", "name").stdout.split() == ["jobschedule.kubatch.dev/sched"]
    header = kubectl("get", "js", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "SCHEDULE", "SUSPEND", "LAST-SCHEDULE", "AGE"]
    wide = kubectl("get", "bj", "-n", namespace, "-o", "wide").stdout
    header = wide.splitlines()[0].split()
    assert [h for h in header if h != "JOB-NAME"][:6] == ["NAME", "QUEUE", "STATUS", "REASON", "ATTEMPTS", "AGE"]
    assert "JOB-NAME" in header  # spec.jobName, a priority column
    assert "DEFINITION" in header and "CE" in header
    selected = kubectl("get", "bj", "-n", namespace, "--field-selector", "spec.jobQueue=q", "-o", "name").stdout
    assert selected.split() == ["batchjob.kubatch.dev/job"]
    other = kubectl("get", "bj", "-n", namespace, "--field-selector", "spec.jobQueue=other", "-o", "name").stdout
    assert other.split() == []
