"""CreateComputeEnvironment, UpdateComputeEnvironment and DeleteComputeEnvironment through the AWS
Batch API with the real boto3 client (and the real `aws batch` CLI), on the local control plane and
the shared operator: a MANAGED environment with the server's default provisioner (kwok), an
UNMANAGED one whose node selector comes from a kubatch.dev/ tag, AWS's deletion rule, and RBAC
(a key without cluster-wide rights on compute environments is refused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.awsapi.environments import EnvironmentDefaults
from kubatch.awsapi.server import ApiConfig
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.awsapi import client, create_key, in_process
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl, NodeFactory
from tests.integration.test_awsapi import code_of, grant, keys_namespace
from tests.integration.test_awsapi_resources import admin_account

pytestmark = pytest.mark.integration
__all__ = ["admin_account", "keys_namespace"]  # fixtures shared with test_awsapi and test_awsapi_resources

ARN = "arn:aws:batch:us-east-1:000000000000:compute-environment/"


@pytest.fixture(scope="module")
def api_url(cluster: ClusterInfo, operator: Any, keys_namespace: str) -> Iterator[str]:
    """The API server with kwok as the default provisioner of the environments it creates."""
    config = ApiConfig(environments=EnvironmentDefaults(provisioner="kwok"))
    with in_process(cluster.kubeconfig, keys_namespace, config) as url:
        yield url


def described(aws: Any, name: str) -> dict[str, Any] | None:
    found = aws.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    return found[0] if found else None


def wait_described(aws: Any, name: str, check: Callable[[dict[str, Any] | None], bool], what: str) -> Any:
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        last = described(aws, name)
        if check(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"compute environment {name}: never {what}; last: {json.dumps(last, default=str)}")


def test_managed_environment_lifecycle(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, admin_account: str, batch: Batch,
    kget: Callable[..., Any],
) -> None:  # fmt: skip
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", admin_account))
    name = batch.name("managed")
    created = aws.create_compute_environment(
        computeEnvironmentName=name, type="MANAGED", state="ENABLED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 16, "desiredvCpus": 4, "instanceTypes": ["m6i"],
                          "allocationStrategy": "BEST_FIT_PROGRESSIVE", "tags": {"cost-center": "42"},
                          "subnets": ["subnet-0abc"], "securityGroupIds": ["sg-0abc"],
                          "instanceRole": "ecsInstanceRole"},
        serviceRole="arn:aws:iam::000000000000:role/AWSBatchServiceRole", tags={"team": "vision"},
    )  # fmt: skip
    batch.cluster_objects.append(("computeenvironment", name))
    assert created == {**created, "computeEnvironmentName": name, "computeEnvironmentArn": ARN + name}
    spec = kget("computeenvironment", name)["spec"]
    assert spec["computeResources"] == {
        "type": "EC2", "minvCpus": 0, "maxvCpus": 16, "desiredvCpus": 4, "instanceTypes": ["m6i"],
        "allocationStrategy": "BEST_FIT_PROGRESSIVE", "tags": {"cost-center": "42"}, "provisioner": "kwok",
    }  # fmt: skip
    assert spec["tags"] == {"team": "vision"}
    shown = wait_described(aws, name, lambda e: bool(e) and e.get("status") == "VALID", "VALID")
    assert (shown["type"], shown["state"], shown["computeResources"]["maxvCpus"]) == ("MANAGED", "ENABLED", 16)

    # Update: only the fields named change; kubatch's rules answer as AWS's.
    aws.update_compute_environment(
        computeEnvironment=ARN + name, computeResources={"maxvCpus": 32},
        updatePolicy={"terminateJobsOnUpdate": True, "jobExecutionTimeoutMinutes": 5},
    )  # fmt: skip
    spec = kget("computeenvironment", name)["spec"]
    assert spec["computeResources"]["maxvCpus"] == 32 and spec["computeResources"]["instanceTypes"] == ["m6i"]
    assert spec["updatePolicy"] == {"terminateJobsOnUpdate": True, "jobExecutionTimeoutMinutes": 5}
    lowered = {"desiredvCpus": 2}
    code, message, _ = code_of(
        lambda: aws.update_compute_environment(computeEnvironment=name, computeResources=lowered)
    )
    assert code == "ClientException" and "Manually scaling down compute environment is not supported" in message
    code, message, _ = code_of(
        lambda: aws.update_compute_environment(computeEnvironment="absent-" + name, state="DISABLED")
    )
    assert (code, message) == ("ClientException", f"ComputeEnvironment absent-{name} not found.")

    # Delete: AWS's rule, DISABLED and in no queue.
    code, message, status = code_of(lambda: aws.delete_compute_environment(computeEnvironment=name))
    assert (code, status) == ("ClientException", 400)
    assert message == (
        f"Cannot delete compute environment {name}: it is ENABLED. Before you can delete a compute environment, you "
        "must set its state to DISABLED with the UpdateComputeEnvironment API operation and disassociate it from any "
        "job queues with the UpdateJobQueue API operation."
    )
    queue = batch.name("q")
    order = [{"order": 1, "computeEnvironment": ARN + name}]
    aws.create_job_queue(jobQueueName=queue, priority=1, computeEnvironmentOrder=order)
    batch.cluster_objects.insert(0, ("jobqueue", queue))  # cleaned up after the environment
    assert aws.update_compute_environment(computeEnvironment=name, state="DISABLED")["computeEnvironmentName"] == name
    code, message, _ = code_of(lambda: aws.delete_compute_environment(computeEnvironment=name))
    assert code == "ClientException" and f"job queue(s) {queue} use it" in message
    aws.update_job_queue(jobQueue=queue, state="DISABLED")
    aws.delete_job_queue(jobQueue=queue)
    deadline = time.monotonic() + 30
    while aws.describe_job_queues(jobQueues=[queue])["jobQueues"]:
        assert time.monotonic() < deadline, "the queue was never deleted"
        time.sleep(0.25)
    deleted = aws.delete_compute_environment(computeEnvironment=ARN + name)
    assert set(deleted) == {"ResponseMetadata"}  # AWS's empty answer
    wait_described(aws, name, lambda e: e is None, "deleted")


def test_unmanaged_environment_with_the_aws_cli(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, admin_account: str, batch: Batch,
    make_node: NodeFactory, kget: Callable[..., Any],
) -> None:  # fmt: skip
    key = create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", admin_account)
    aws = client(api_url, key)
    name = batch.name("on-prem")
    make_node(cpu=4, memory="16Gi", labels={"example.com/rack": name})
    env = {**os.environ, **key.env(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_ENDPOINT_URL_BATCH": api_url}  # fmt: skip
    aws_cli = str(Path(sys.executable).parent / "aws")

    def cli(*args: str) -> dict[str, Any]:
        out = subprocess.run([aws_cli, "batch", *args, "--output", "json"], capture_output=True, text=True, env=env,
                             timeout=60, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout)) if out.stdout.strip() else {}

    created = cli(
        "create-compute-environment",
        "--compute-environment-name",
        name,
        "--type",
        "UNMANAGED",
        "--unmanagedv-cpus",
        "4",
        "--tags",
        f"team=infra,kubatch.dev/node-selector=example.com/rack={name}",
    )
    batch.cluster_objects.append(("computeenvironment", name))
    assert created == {"computeEnvironmentName": name, "computeEnvironmentArn": ARN + name}
    spec = kget("computeenvironment", name)["spec"]
    assert (spec["nodeSelector"], spec["unmanagedvCpus"], spec["tags"]) == (
        {"example.com/rack": name}, 4, {"team": "infra"},
    )  # fmt: skip
    wait_described(aws, name, lambda e: bool(e) and e.get("status") == "VALID", "VALID")
    batch.wait_for(lambda: (kget("computeenvironment", name).get("status") or {}).get("nodes") == 1,
                   "the labelled node counted in the pool")  # fmt: skip
    cli("update-compute-environment", "--compute-environment", name, "--state", "DISABLED")
    assert described(aws, name)["state"] == "DISABLED"  # type: ignore[index]
    cli("delete-compute-environment", "--compute-environment", ARN + name)
    wait_described(aws, name, lambda e: e is None, "deleted")


def test_environment_operations_need_cluster_rights(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, kubectl: Kubectl, namespace: str, batch: Batch
) -> None:
    kubectl("create", "serviceaccount", "plain", "-n", namespace)
    grant(kubectl, namespace, namespace, "plain")
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, namespace, "--service-account", "plain"))
    existing = batch.environment(cpu=2, memory="8Gi")
    for call in (
        lambda: aws.create_compute_environment(computeEnvironmentName=batch.name("nope"), type="UNMANAGED"),
        lambda: aws.update_compute_environment(computeEnvironment=existing, state="DISABLED"),
        lambda: aws.delete_compute_environment(computeEnvironment=existing),
    ):
        code, message, status = code_of(call)
        assert (code, status) == ("AccessDeniedException", 403), message
        assert f"system:serviceaccount:{namespace}:plain" in message
    assert kubectl("get", "computeenvironment", existing, "-o", "jsonpath={.spec.state}").stdout == "ENABLED"
