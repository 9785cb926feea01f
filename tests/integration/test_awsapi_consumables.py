"""ListJobsByConsumableResource through the AWS Batch API with the real boto3 client, on the local
control plane and the shared operator: jobs needing a consumable resource through their definition
revision or their override, each with its quantity (an older revision's jobs keep theirs), filters,
pages, AWS's error for a missing resource, and a namespace key that may not read the cluster-scoped
resource still listing its own jobs."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.awsapi import Key, client, create_key
from tests.integration.batch import Batch
from tests.integration.test_awsapi import api_url, code_of, key, keys_namespace, pod_definition, wait_job
from tests.integration.test_awsapi_resources import admin_account

pytestmark = pytest.mark.integration
__all__ = ["admin_account", "api_url", "key", "keys_namespace"]  # fixtures shared with the other AWS API tests

ACCOUNT = "arn:aws:batch:us-east-1:000000000000"


def needing(resource: str, quantity: int) -> dict[str, Any]:
    return {"consumableResourceList": [{"consumableResource": resource, "quantity": quantity}]}


def test_jobs_by_consumable_resource(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, admin_account: str, batch: Batch
) -> None:
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", admin_account))
    licenses = batch.name("licenses")
    aws.create_consumable_resource(consumableResourceName=licenses, totalQuantity=2, resourceType="REPLENISHABLE")
    batch.cluster_objects.append(("consumableresource", licenses))
    queue = batch.queue([batch.environment(cpu=8, memory="32Gi")])
    hold = {"sim.kubatch.dev/duration": "600s"}
    aws.register_job_definition(**pod_definition("lic", hold), consumableResourceProperties=needing(licenses, 1))
    aws.register_job_definition(**pod_definition("plain", hold))

    first = [aws.submit_job(jobName=f"Lic_{c}", jobQueue=queue, jobDefinition="lic")["jobId"] for c in "ab"]
    for job_id in first:
        wait_job(aws, job_id, "RUNNING")
    big = aws.submit_job(jobName="Lic_c", jobQueue=queue, jobDefinition="lic",
                         consumableResourcePropertiesOverride=needing(licenses, 2))["jobId"]  # fmt: skip
    aws.submit_job(jobName="Plain", jobQueue=queue, jobDefinition="plain")
    # A new revision needs 3 units; the jobs pinned to revision 1 keep theirs.
    second = aws.register_job_definition(**pod_definition("lic", {**hold, "changed": "yes"}),
                                         consumableResourceProperties=needing(licenses, 3))  # fmt: skip
    assert second["revision"] == 2
    newer = aws.submit_job(jobName="Lic_d", jobQueue=queue, jobDefinition="lic")["jobId"]
    # Held for want of units: its reason is written once it stayed blocked a moment (1 s).
    wait_job(aws, big, "RUNNABLE", check=lambda j: bool(j.get("statusReason")))

    listed = aws.list_jobs_by_consumable_resource(consumableResource=licenses)
    assert "nextToken" not in listed
    jobs = {j["jobName"]: j for j in listed["jobs"]}
    assert {name: j["quantity"] for name, j in jobs.items()} == {"Lic_a": 1, "Lic_b": 1, "Lic_c": 2, "Lic_d": 3}
    assert [j["jobName"] for j in listed["jobs"]] == ["Lic_d", "Lic_c", "Lic_b", "Lic_a"]  # most recent first
    a = jobs["Lic_a"]
    assert a["jobArn"] == f"{ACCOUNT}:job/{first[0]}"
    assert a["jobQueueArn"] == f"{ACCOUNT}:job-queue/{queue}"
    assert a["jobDefinitionArn"] == f"{ACCOUNT}:job-definition/lic:1"
    assert a["jobStatus"] == "RUNNING" and a["startedAt"] > 0 and a["createdAt"] > 0
    assert a["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": f"{ACCOUNT}:consumable-resource/{licenses}", "quantity": 1}]
    }
    # Lic_d may not have its first status yet (kubatch writes a queued job's within 60 s): then its
    # definition is shown as submitted, and its units are those of the revision it will resolve to.
    assert jobs["Lic_d"]["jobDefinitionArn"] in (f"{ACCOUNT}:job-definition/lic:2", f"{ACCOUNT}:job-definition/lic")
    assert jobs["Lic_c"]["jobStatus"] == "RUNNABLE" and jobs["Lic_c"]["statusReason"]

    running = aws.list_jobs_by_consumable_resource(
        consumableResource=f"{ACCOUNT}:consumable-resource/{licenses}",
        filters=[{"name": "JOB_STATUS", "values": ["RUNNING"]}],
    )["jobs"]
    assert sorted(j["jobName"] for j in running) == ["Lic_a", "Lic_b"]
    named = aws.list_jobs_by_consumable_resource(
        consumableResource=licenses, filters=[{"name": "JOB_NAME", "values": ["LIC_C*"]}]
    )["jobs"]
    assert [j["jobName"] for j in named] == ["Lic_c"]
    pages = aws.get_paginator("list_jobs_by_consumable_resource").paginate(
        consumableResource=licenses, PaginationConfig={"PageSize": 3}
    )
    seen = [[j["jobName"] for j in p["jobs"]] for p in pages]
    assert seen == [["Lic_d", "Lic_c", "Lic_b"], ["Lic_a"]]

    code, message, status = code_of(lambda: aws.list_jobs_by_consumable_resource(consumableResource="absent-x"))
    assert (code, message, status) == ("ClientException", "ConsumableResource absent-x not found.", 400)
    for job_id in [*first, big, newer]:
        aws.terminate_job(jobId=job_id, reason="done with the test")


def test_a_namespace_key_lists_its_own_jobs(api_url: str, key: Key, batch: Batch) -> None:
    """The key's identity may not read cluster-scoped consumable resources: it still lists its jobs."""
    aws = client(api_url, key)
    tokens = batch.cluster_object("ConsumableResource", batch.name("tokens"), {"totalQuantity": 0})
    queue = batch.queue([batch.environment(cpu=4, memory="16Gi")])
    aws.register_job_definition(**pod_definition("tok", {"sim.kubatch.dev/duration": "600s"}),
                                consumableResourceProperties=needing(tokens, 1))  # fmt: skip
    job_id = aws.submit_job(jobName="waits", jobQueue=queue, jobDefinition="tok")["jobId"]
    wait_job(aws, job_id, "RUNNABLE")
    listed = aws.list_jobs_by_consumable_resource(consumableResource=tokens)["jobs"]
    assert [(j["jobName"], j["quantity"], j["jobStatus"]) for j in listed] == [("waits", 1, "RUNNABLE")]
    assert aws.list_jobs_by_consumable_resource(consumableResource="other-" + tokens)["jobs"] == []
    aws.terminate_job(jobId=job_id, reason="done with the test")
