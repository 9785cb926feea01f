"""Job queues, scheduling policies and compute environments through the AWS Batch API with the real
boto3 client, on the local control plane and the shared operator: a key whose ServiceAccount has
cluster-wide rights on them creates a fair-share policy and a queue, submits to it, reads the front
of the queue with GetJobQueueSnapshot, updates, disables and deletes them; a key without those
rights is refused."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.awsapi import client, create_key
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl
from tests.integration.test_awsapi import api_url, code_of, grant, keys_namespace, pod_definition, wait_job

pytestmark = pytest.mark.integration
__all__ = ["api_url", "keys_namespace"]  # module fixtures shared with test_awsapi


@pytest.fixture
def admin_account(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A ServiceAccount with cluster-wide rights on queues, policies and environments (and jobs in
    its namespace)."""
    name = f"awsapi-admin-{uuid.uuid4().hex[:6]}"
    kubectl("create", "serviceaccount", "admin", "-n", namespace)
    grant(kubectl, namespace, namespace, "admin")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["kubatch.dev"],
                   "resources": ["jobqueues", "schedulingpolicies", "computeenvironments", "consumableresources"],
                   "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"]}],
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(role))
    kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", f"--serviceaccount={namespace}:admin")
    yield "admin"
    kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", "--wait=false", check=False)


def test_queues_and_policies(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, admin_account: str, batch: Batch, kubectl: Kubectl
) -> None:
    key = create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", admin_account)
    aws = client(api_url, key)
    ce = batch.environment(cpu=2, memory="8Gi")
    environments = aws.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]
    assert [(e["computeEnvironmentName"], e["type"], e["state"], e["status"]) for e in environments] == [
        (ce, "UNMANAGED", "ENABLED", "VALID")
    ]
    ce_arn = f"arn:aws:batch:us-east-1:000000000000:compute-environment/{ce}"
    assert environments[0]["computeEnvironmentArn"] == ce_arn

    policy_name, queue_name = batch.name("fair"), batch.name("api-q")
    policy = aws.create_scheduling_policy(
        name=policy_name,
        fairsharePolicy={"shareDecaySeconds": 60,
                         "shareDistribution": [{"shareIdentifier": "blue", "weightFactor": 2}]},
    )
    batch.cluster_objects.append(("schedulingpolicy", policy_name))
    assert policy["name"] == policy_name
    assert policy["arn"] == f"arn:aws:batch:us-east-1:000000000000:scheduling-policy/{policy_name}"
    changed = {"shareDecaySeconds": 120, "shareDistribution": [{"shareIdentifier": "blue", "weightFactor": 3}]}
    aws.update_scheduling_policy(arn=policy["arn"], fairsharePolicy=changed)
    shown = aws.describe_scheduling_policies(arns=[policy["arn"]])["schedulingPolicies"][0]
    assert shown["fairsharePolicy"]["shareDecaySeconds"] == 120
    assert shown["fairsharePolicy"]["shareDistribution"] == [{"shareIdentifier": "blue", "weightFactor": 3.0}]
    assert policy["arn"] in [p["arn"] for p in aws.list_scheduling_policies()["schedulingPolicies"]]

    queue = aws.create_job_queue(
        jobQueueName=queue_name, priority=5, schedulingPolicyArn=policy["arn"],
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environments[0]["computeEnvironmentArn"]}],
    )  # fmt: skip
    batch.cluster_objects.append(("jobqueue", queue_name))
    described = aws.describe_job_queues(jobQueues=[queue["jobQueueArn"]])["jobQueues"][0]
    assert (described["jobQueueName"], described["priority"], described["state"]) == (queue_name, 5, "ENABLED")
    assert described["schedulingPolicyArn"] == policy["arn"]
    assert kubectl("get", "jobqueue", queue_name, "-o", "jsonpath={.spec.schedulingPolicy}").stdout == policy_name

    # Two 1-vCPU jobs fill the environment; the next two wait at the front of the queue.
    aws.register_job_definition(**pod_definition("hold", {"sim.kubatch.dev/duration": "600s"}))
    ids = [
        aws.submit_job(jobName=f"hold-{i}", jobQueue=queue_name, jobDefinition="hold", shareIdentifier="blue")["jobId"]
        for i in range(4)
    ]
    for job_id in ids[:2]:
        wait_job(aws, job_id, "RUNNING")
    deadline = time.monotonic() + 60
    while True:
        front = aws.get_job_queue_snapshot(jobQueue=queue_name)["frontOfQueue"]
        arns = [j["jobArn"] for j in front.get("jobs", [])]
        if len(arns) == 2:
            break
        assert time.monotonic() < deadline, front
        time.sleep(0.5)
    assert sorted(arns) == sorted(f"arn:aws:batch:us-east-1:000000000000:job/{i}" for i in ids[2:])
    assert all(j["earliestTimeAtPosition"] > 0 for j in front["jobs"]) and front["lastUpdatedAt"] > 0
    for job_id in ids:
        aws.terminate_job(jobId=job_id, reason="done with the test")

    # Tags on the queue, in place.
    aws.tag_resource(resourceArn=queue["jobQueueArn"], tags={"team": "blue", "env": "test"})
    assert aws.list_tags_for_resource(resourceArn=queue["jobQueueArn"])["tags"] == {"team": "blue", "env": "test"}
    aws.untag_resource(resourceArn=queue["jobQueueArn"], tagKeys=["env"])
    assert aws.list_tags_for_resource(resourceArn=queue["jobQueueArn"])["tags"] == {"team": "blue"}
    assert kubectl("get", "jobqueue", queue_name, "-o", "jsonpath={.spec.tags}").stdout == '{"team":"blue"}'

    aws.update_job_queue(jobQueue=queue_name, state="DISABLED", priority=7)
    described = aws.describe_job_queues(jobQueues=[queue_name])["jobQueues"][0]
    assert (described["state"], described["priority"]) == ("DISABLED", 7)
    assert queue_name in [q["jobQueueName"] for q in aws.describe_job_queues()["jobQueues"]]
    aws.delete_job_queue(jobQueue=queue["jobQueueArn"])
    deadline = time.monotonic() + 30
    while aws.describe_job_queues(jobQueues=[queue_name])["jobQueues"]:
        assert time.monotonic() < deadline, "the queue was never deleted"
        time.sleep(0.25)
    aws.delete_scheduling_policy(arn=policy["arn"])
    code, message, _ = code_of(lambda: aws.update_job_queue(jobQueue=queue_name, priority=1))
    assert (code, message) == ("ClientException", f"JobQueue {queue_name} not found.")


def test_consumable_resources(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, admin_account: str, batch: Batch
) -> None:
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", admin_account))
    name = batch.name("licenses")
    created = aws.create_consumable_resource(consumableResourceName=name, totalQuantity=3, resourceType="REPLENISHABLE")
    batch.cluster_objects.append(("consumableresource", name))
    arn = f"arn:aws:batch:us-east-1:000000000000:consumable-resource/{name}"
    assert created["consumableResourceArn"] == arn
    described = aws.describe_consumable_resource(consumableResource=arn)
    assert (described["consumableResourceName"], described["totalQuantity"], described["resourceType"]) == (
        name, 3, "REPLENISHABLE",
    )
    # A retried ADD with its clientToken counts once; a reused token with another payload is refused.
    token = uuid.uuid4().hex
    assert aws.update_consumable_resource(consumableResource=name, operation="ADD", quantity=2,
                                          clientToken=token)["totalQuantity"] == 5  # fmt: skip
    assert aws.update_consumable_resource(consumableResource=name, operation="ADD", quantity=2,
                                          clientToken=token)["totalQuantity"] == 5  # fmt: skip
    assert code_of(lambda: aws.update_consumable_resource(consumableResource=name, operation="ADD", quantity=3,
                                                          clientToken=token))[0] == "ClientException"  # fmt: skip
    assert aws.update_consumable_resource(consumableResource=name, operation="REMOVE", quantity=1)["totalQuantity"] == 4
    assert aws.update_consumable_resource(consumableResource=name, operation="SET", quantity=10)["totalQuantity"] == 10
    # Consumable resources are cluster-wide: the pattern (a prefix, in other case) names this test's alone.
    pattern = f"{name[:-1].upper()}*"
    listed = aws.list_consumable_resources(filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": [pattern]}])
    assert [r["consumableResourceName"] for r in listed["consumableResources"]] == [name]
    aws.delete_consumable_resource(consumableResource=name)
    assert code_of(lambda: aws.describe_consumable_resource(consumableResource=name))[0] == "ClientException"


def test_cluster_objects_need_cluster_rights(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "serviceaccount", "plain", "-n", namespace)
    grant(kubectl, namespace, namespace, "plain")
    key = create_key(cluster.kubeconfig, keys_namespace, namespace, "--service-account", "plain")
    aws: Any = client(api_url, key)
    for call in (
        lambda: aws.describe_job_queues(),
        lambda: aws.create_job_queue(jobQueueName="nope", priority=1, computeEnvironmentOrder=[]),
        lambda: aws.describe_compute_environments(),
        lambda: aws.list_scheduling_policies(),
    ):
        code, message, status = code_of(call)
        assert (code, status) == ("AccessDeniedException", 403), message
