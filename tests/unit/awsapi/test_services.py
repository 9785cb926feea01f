"""Service environments, service jobs and quota shares as AWS's shapes (botocore's model), and the
requests that make them (pure translation: ``services``, ``quotas``, ``resources.policy_kind``)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.model import ServiceModel, Shape

from kubatch.awsapi import listing, quotas, resources, services
from kubatch.awsapi.arns import Arns
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.protocol import prune
from kubatch.core.job_ids import api_job_id
from tests.unit.awsapi.conftest import batch_model
from tests.unit.awsapi.conftest import conforms as model_conforms

MODEL = ServiceModel(batch_model(), "batch")
ARNS = Arns()
#: Enums whose AWS values do not apply to kubatch: it answers its own (KUBERNETES_JOB, JobUid).
KUBATCH_VALUES = {"ServiceEnvironmentType": {"KUBERNETES_JOB"}, "ServiceJobType": {"KUBERNETES_JOB"},
                  "ServiceResourceIdName": {"JobUid"}}  # fmt: skip


def conforms(value: Any, shape: Shape) -> None:
    """Every member of ``value`` exists in ``shape`` (recursively) with its type; required members
    are present."""
    model_conforms(value, shape, required=True, doubles=True, enum_values=KUBATCH_VALUES)


def output(operation: str) -> Shape:
    shape = MODEL.operation_model(operation).output_shape
    assert shape is not None
    return shape


def test_service_environments() -> None:
    body = {"serviceEnvironmentName": "kubernetes-jobs", "serviceEnvironmentType": "KUBERNETES_JOB",
            "capacityLimits": [{"maxCapacity": 4, "capacityUnit": "NUM_INSTANCES"}], "tags": {"team": "a"}}  # fmt: skip
    manifest = services.environment_manifest(body)
    assert manifest["kind"] == "ServiceEnvironment" and manifest["metadata"] == {"name": "kubernetes-jobs"}
    assert manifest["spec"] == {"serviceEnvironmentType": "KUBERNETES_JOB", "tags": {"team": "a"},
                                "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 4}]}  # fmt: skip
    with pytest.raises(ClientException, match="SAGEMAKER_TRAINING is not applicable in kubatch"):
        services.environment_manifest({**body, "serviceEnvironmentType": "SAGEMAKER_TRAINING"})
    with pytest.raises(ClientException, match="capacityLimits is required"):
        services.environment_manifest({**body, "capacityLimits": []})
    with pytest.raises(ClientException, match="Kubernetes names"):
        services.environment_manifest({**body, "serviceEnvironmentName": "Kubernetes_Jobs"})
    assert services.environment_changes({"serviceEnvironment": "x", "state": "DISABLED"}) == {"state": "DISABLED"}
    environment = {**manifest, "status": {"status": "VALID", "jobQueues": ["q"]}}
    detail = prune(services.environment_detail(environment, ARNS))
    conforms(detail, MODEL.shape_for("ServiceEnvironmentDetail"))
    assert detail["serviceEnvironmentArn"] == "arn:aws:batch:us-east-1:000000000000:service-environment/kubernetes-jobs"
    assert (detail["state"], detail["status"]) == ("ENABLED", "VALID")
    assert "it is ENABLED" in str(services.deletion_refusal(environment))
    disabled = {**environment, "spec": {**environment["spec"], "state": "DISABLED"}}
    assert "job queue(s) q still use it" in str(services.deletion_refusal(disabled))
    assert services.deletion_refusal({**disabled, "status": {"status": "VALID", "jobQueues": []}}) is None
    assert services.environment_name(detail["serviceEnvironmentArn"]) == "kubernetes-jobs"


SUBMIT = {
    "jobName": "Train_1",
    "jobQueue": "arn:aws:batch:us-east-1:0:job-queue/svc",
    "serviceJobType": "KUBERNETES_JOB",
    "serviceRequestPayload": '{"apiVersion": "batch/v1", "kind": "Job"}',
    "schedulingPriority": 5,
    "quotaShareName": "prod",
    "retryStrategy": {"attempts": 2},
    "timeoutConfig": {"attemptDurationSeconds": 600},
    "preemptionConfiguration": {"preemptionRetriesBeforeTermination": 1},
    "tags": {"a": "b"},
}


def test_submit_service_job_manifest() -> None:
    manifest = services.service_job_manifest(SUBMIT, "team-a", 1714979289123, "x7k2p")
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"].startswith("train-1") and meta["name"].endswith("-x7k2p")
    assert meta["labels"] == {"kubatch.dev/job-id": api_job_id("team-a", meta["name"])}
    assert services.ANNOTATION_CLIENT_TOKEN not in meta["annotations"]
    assert spec == {**SUBMIT, "jobQueue": "svc"}  # every field of the request, the queue by its name
    with pytest.raises(ClientException, match="serviceJobType SAGEMAKER_TRAINING is not applicable"):
        services.service_job_manifest({**SUBMIT, "serviceJobType": "SAGEMAKER_TRAINING"}, "ns", 0, "x7k2p")
    with pytest.raises(ClientException, match="jobName"):
        services.service_job_manifest({**SUBMIT, "jobName": "-bad"}, "ns", 0, "x7k2p")
    with pytest.raises(ClientException, match="serviceRequestPayload is required"):
        services.service_job_manifest({**SUBMIT, "serviceRequestPayload": ""}, "ns", 0, "x7k2p")


def test_client_tokens_name_the_same_job_for_the_same_request() -> None:
    first = services.token_suffix("team-a", "tok-1")
    assert first == services.token_suffix("team-a", "tok-1") != services.token_suffix("team-b", "tok-1")
    assert len(first) == 5 and set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    body = {**SUBMIT, "clientToken": "tok-1"}
    job = services.service_job_manifest(body, "team-a", 0, first)
    assert services.same_request(job, {**SUBMIT, "clientToken": "tok-1"})
    assert not services.same_request(job, {**SUBMIT, "schedulingPriority": 6, "clientToken": "tok-1"})


def service_job(**status: Any) -> dict[str, Any]:
    manifest = services.service_job_manifest(SUBMIT, "team-a", 1714979289123, "x7k2p")
    manifest["metadata"].update(uid="u-1", creationTimestamp="2024-05-06T07:08:09Z")
    manifest["status"] = {
        "jobId": "6b1d7c4e-0000-4000-8000-000000000001", "status": "RUNNING", "statusReason": None,
        "scheduledAt": "2024-05-06T07:08:10Z", "startedAt": "2024-05-06T07:08:11Z",
        "capacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": 2}],
        "latestAttempt": {"serviceResourceId": {"name": "JobUid", "value": "job-uid-2"}},
        "attempts": [{"serviceResourceId": {"name": "JobUid", "value": "job-uid-1"},
                      "startedAt": "2024-05-06T07:08:11Z", "stoppedAt": "2024-05-06T07:08:12Z",
                      "statusReason": "Received status from Kubernetes: BackoffLimitExceeded: ..."}],
        "preemptionSummary": {"preemptedAttemptCount": 1, "recentPreemptedAttempts": [
            {"serviceResourceId": {"name": "JobUid", "value": "job-uid-0"},
             "statusReason": "PREEMPTION_IN_PROGRESS: Cross-share preemption triggered to reclaim borrowed capacity"}]},
        **status,
    }  # fmt: skip
    return manifest


def test_describe_and_list_service_jobs_are_awss_shapes() -> None:
    job = service_job()
    detail = prune(services.service_job_detail(job, ARNS))
    conforms(detail, output("DescribeServiceJob"))
    assert detail["jobId"] == "6b1d7c4e-0000-4000-8000-000000000001"
    assert detail["jobQueue"] == "arn:aws:batch:us-east-1:000000000000:job-queue/svc"
    assert (detail["status"], detail["isTerminated"], detail["schedulingPriority"]) == ("RUNNING", False, 5)
    assert detail["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 2.0}]
    assert detail["scheduledAt"] == 1714979290000 and detail["startedAt"] == 1714979291000
    assert detail["latestAttempt"] == {"serviceResourceId": {"name": "JobUid", "value": "job-uid-2"}}
    assert detail["preemptionSummary"]["preemptedAttemptCount"] == 1
    submitted = service_job(status="SUBMITTED", startedAt=None, scheduledAt=None, capacityUsage=None)
    submitted["spec"]["terminate"] = {"reason": "stop"}
    early = prune(services.service_job_detail(submitted, ARNS))
    conforms(early, output("DescribeServiceJob"))
    assert early["startedAt"] == 0 and early["isTerminated"] is True
    summary = prune(services.service_job_summary(job, ARNS))
    conforms(summary, MODEL.shape_for("ServiceJobSummary"))
    assert "startedAt" not in prune(services.service_job_summary(submitted, ARNS))


def test_list_service_jobs_query() -> None:
    query = services.parse_list_service_jobs({"jobQueue": "svc"})
    assert query.query.queue == "svc" and query.query.status == "RUNNING" and query.query.max_results == 100
    job = service_job()
    assert query.matches(job) and not query.matches(service_job(status="RUNNABLE"))
    by_share = services.parse_list_service_jobs(
        {"jobQueue": "svc", "jobStatus": "RUNNING", "filters": [{"name": "QUOTA_SHARE_NAME", "values": ["prod"]}]}
    )
    assert by_share.query.status == "RUNNING" and by_share.matches(job)
    assert not services.parse_list_service_jobs(
        {"jobQueue": "svc", "filters": [{"name": "QUOTA_SHARE_NAME", "values": ["research"]}]}
    ).matches(job)
    by_name = services.parse_list_service_jobs(
        {"jobQueue": "svc", "jobStatus": "SUCCEEDED", "filters": [{"name": "JOB_NAME", "values": ["train*"]}]}
    )
    assert by_name.query.status is None and by_name.matches(job)  # a name filter: jobStatus ignored
    assert services.parse_list_service_jobs({"jobQueue": "svc", "jobStatus": "SCHEDULED"}).query.status == "SCHEDULED"
    for bad, message in (
        ({}, "jobQueue is required"),
        ({"jobQueue": "svc", "jobStatus": "DONE"}, "jobStatus must be one of"),
        ({"jobQueue": "svc", "maxResults": 1000}, "maxResults must be between 1 and 100"),
        ({"jobQueue": "svc", "filters": [{"name": "JOB_DEFINITION", "values": ["d"]}]}, "unknown filter"),
    ):
        with pytest.raises(ClientException, match=message):
            services.parse_list_service_jobs(bad)
    token = listing.encode_token((-1, 0, "a"), query.query)
    assert services.parse_list_service_jobs({"jobQueue": "svc", "nextToken": token}).query.after == (-1, 0, "a")


def test_quota_shares() -> None:
    body = {"quotaShareName": "prod", "jobQueue": "ml",
            "capacityLimits": [{"maxCapacity": 4, "capacityUnit": "NUM_INSTANCES"}],
            "resourceSharingConfiguration": {"strategy": "LEND_AND_BORROW", "borrowLimit": 100},
            "preemptionConfiguration": {"inSharePreemption": "ENABLED"}, "state": "ENABLED"}  # fmt: skip
    share = quotas.new_share(body)
    assert share == {k: body[k] for k in ("quotaShareName", "capacityLimits", "resourceSharingConfiguration",
                                          "preemptionConfiguration")}  # fmt: skip
    for change, message in (
        ({"state": "DISABLED"}, "state DISABLED is not supported by kubatch"),
        ({"tags": {"a": "b"}}, "tags are not supported"),
        ({"preemptionConfiguration": None}, "preemptionConfiguration is required"),
        ({"capacityLimits": {"maxCapacity": 1}}, "capacityLimits must be a list"),
    ):
        with pytest.raises(ClientException, match=message):
            quotas.new_share({**body, **change})
    updated = quotas.updated_share(share, {"capacityLimits": [{"maxCapacity": 8, "capacityUnit": "NUM_INSTANCES"}]})
    assert updated["capacityLimits"][0]["maxCapacity"] == 8 and updated["preemptionConfiguration"] == {
        "inSharePreemption": "ENABLED"
    }
    queue = {
        "metadata": {"name": "ml"},
        "spec": {
            "quotaShares": [
                share,
                {"quotaShareName": "research", "capacityLimits": [{"maxCapacity": 2, "capacityUnit": "m5.large"}]},
            ]
        },
        "status": {"status": "VALID"},
    }
    arn = quotas.share_arn(ARNS, "ml", "prod")
    assert arn == "arn:aws:batch:us-east-1:000000000000:job-queue/ml/quota-share/prod"
    assert quotas.parse_share_arn(arn) == ("ml", "prod") == quotas.parse_share_arn("ml/quota-share/prod")
    for bad in ("arn:aws:batch:us-east-1:0:job-queue/ml", "prod", "arn:aws:batch:us-east-1:0:job/x/quota-share/p"):
        with pytest.raises(ClientException):
            quotas.parse_share_arn(bad)
    found = quotas.find(queue, "research")
    assert found is not None and quotas.find(queue, "nope") is None
    detail = prune(quotas.detail(queue, found, ARNS))
    conforms(detail, output("DescribeQuotaShare"))
    assert detail["resourceSharingConfiguration"] == {"strategy": "RESERVE"}
    assert detail["preemptionConfiguration"] == {"inSharePreemption": "DISABLED"}
    assert (detail["state"], detail["status"], detail["jobQueueArn"]) == ("ENABLED", "VALID", ARNS.job_queue("ml"))
    conforms({"quotaShares": [prune(quotas.detail(queue, share, ARNS))]}, output("ListQuotaShares"))


def test_scheduling_policies_take_a_quota_share_policy() -> None:
    quota = resources.policy_manifest(
        {"name": "ml-quota", "quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}
    )
    assert quota["spec"] == {"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}
    shown = prune(resources.policy_detail(quota, ARNS))
    conforms(shown, MODEL.shape_for("SchedulingPolicyDetail"))
    assert shown["quotaSharePolicy"] == {"idleResourceAssignmentStrategy": "FIFO"} and "fairsharePolicy" not in shown
    assert resources.policy_manifest({"name": "fair"})["spec"] == {"fairsharePolicy": {}}
    with pytest.raises(ClientException, match="not both"):
        resources.policy_kind({"fairsharePolicy": {}, "quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}})
