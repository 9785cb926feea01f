"""The job and job definition translation (pure): SubmitJob and RegisterJobDefinition requests as
BatchJob and JobDefinition objects, and kubatch's objects as AWS's JobDetail, JobSummary and
JobDefinition, every member of which is checked against botocore's model; ListJobs' query, order
and pages; ARNs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.model import ServiceModel, Shape

from kubatch.awsapi import definitions, jobs, listing
from kubatch.awsapi.arns import Arns, job_id_of, name_of
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.protocol import prune
from kubatch.core.job_ids import api_job_id
from tests.unit.awsapi.conftest import batch_model
from tests.unit.awsapi.conftest import conforms as model_conforms

MODEL = ServiceModel(batch_model(), "batch")
ARNS = Arns()
UID = "6b1d7c4e-0000-4000-8000-000000000001"


def conforms(value: Any, shape: Shape) -> None:
    """Every member of ``value`` exists in ``shape`` (recursively) and has its type."""
    model_conforms(value, shape, map_values=True)


def shape(name: str) -> Shape:
    return MODEL.shape_for(name)


def batch_job(**overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "metadata": {
            "name": "first-job-1a2b3-x7k2p",
            "namespace": "team-a",
            "uid": UID,
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "annotations": {
                jobs.ANNOTATION_DEFINITION_NAME: "Hello_Def",
                jobs.ANNOTATION_DEPENDS_ON: json.dumps([{"jobId": "dep-1"}]),
                jobs.ANNOTATION_SUBMITTED_AT: "1714979289123",
            },
        },
        "spec": {
            "jobName": "First_Job",
            "jobQueue": "q",
            "jobDefinition": "hello-def-abc123",
            "parameters": {"p": "1"},
            "containerOverrides": {"command": ["echo", "hi"]},
            "dependsOn": [{"jobName": "dep"}],
            "tags": {"team": "a"},
        },
        "status": {
            "jobId": UID,
            "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "jobDefinition": "hello-def-abc123:2",
            "createdAt": "2024-05-06T07:08:09Z",
            "startedAt": "2024-05-06T07:08:11Z",
            "stoppedAt": "2024-05-06T07:08:15Z",
            "attemptCount": 1,
            "attempts": [
                {
                    "container": {"exitCode": 3, "reason": "Error", "podName": "p-a1", "nodeName": "n"},
                    "startedAt": "2024-05-06T07:08:11Z",
                    "stoppedAt": "2024-05-06T07:08:15Z",
                    "statusReason": "Essential container in task exited",
                }
            ],
        },
    }
    job["spec"].update(overrides.pop("spec", {}))
    job["status"].update(overrides.pop("status", {}))
    return job


def test_submit_manifest() -> None:
    body = {
        "jobName": "First_Job",
        "jobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/q",
        "jobDefinition": "arn:aws:batch:us-east-1:000000000000:job-definition/Hello_Def:2",
        "arrayProperties": {"size": 5},
        "dependsOn": [{"jobId": "dep-1", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}],
        "containerOverrides": {"command": ["echo"], "environment": [{"name": "A", "value": "1"}]},
        "retryStrategy": {"attempts": 3},
        "timeout": {"attemptDurationSeconds": 60},
        "tags": {"a": "b"},
        "propagateTags": True,
        "parameters": {"x": "y"},
        "shareIdentifier": "blue",
        "schedulingPriorityOverride": 4,
        "consumableResourcePropertiesOverride": {
            "consumableResourceList": [
                {"consumableResource": "arn:aws:batch:us-east-1:0:consumable-resource/lic", "quantity": 2}
            ]
        },
    }
    manifest = jobs.submit_manifest(body, "team-a", {"dep-1": "dep-object"}, 1714979289123, "x2b4z")
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"].startswith("first-job-") and meta["name"].endswith("-x2b4z") and meta["namespace"] == "team-a"
    assert meta["labels"] == {jobs.LABEL_JOB_ID: api_job_id("team-a", meta["name"])}
    assert jobs.job_id(manifest) == meta["labels"][jobs.LABEL_JOB_ID]  # its jobId before it has a uid
    assert meta["annotations"] == {
        jobs.ANNOTATION_SUBMITTED_AT: "1714979289123",
        jobs.ANNOTATION_DEPENDS_ON: '[{"jobId":"dep-1","type":"N_TO_N"},{"type":"SEQUENTIAL"}]',
        jobs.ANNOTATION_DEFINITION_NAME: "Hello_Def",
    }
    assert spec["jobName"] == "First_Job" and spec["jobQueue"] == "q"
    assert spec["jobDefinition"] == definitions.object_name("Hello_Def") + ":2"
    assert spec["dependsOn"] == [{"jobName": "dep-object", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}]
    assert spec["consumableResourcePropertiesOverride"]["consumableResourceList"][0]["consumableResource"] == "lic"
    for field in ("arrayProperties", "containerOverrides", "retryStrategy", "timeout", "tags", "propagateTags",
                  "parameters", "shareIdentifier", "schedulingPriorityOverride"):  # fmt: skip
        assert spec[field] == body[field]
    nodes = jobs.submit_manifest(
        {"jobName": "n", "jobQueue": "q", "jobDefinition": "mnp", "nodeOverrides": {"numNodes": 3,
         "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {"command": ["x"]}},
                                   {"targetNodes": "1", "eksPropertiesOverride": {"podProperties": {
                                       "containers": [{"name": "main", "args": ["a"]}]}}}]}},
        "ns", {}, 0, "bbbbb",
    )["spec"]  # fmt: skip
    assert nodes["nodeOverrides"] == {
        "numNodes": 3,
        "nodePropertyOverrides": [
            {"targetNodes": "0:", "containerOverrides": {"command": ["x"]}},
            {"targetNodes": "1", "podOverrides": {"containers": [{"name": "main", "args": ["a"]}]}},
        ],
    }
    pods = jobs.submit_manifest(
        {"jobName": "p", "jobQueue": "q", "jobDefinition": "d",
         "eksPropertiesOverride": {"podProperties": {"metadata": {"labels": {"a": "b"}}}}}, "ns", {}, 0, "bbbbb",
    )["spec"]  # fmt: skip
    assert pods["podOverrides"] == {"metadata": {"labels": {"a": "b"}}}
    long_body = {"jobName": "A" * 128, "jobQueue": "q", "jobDefinition": "d"}
    long_name = jobs.submit_manifest(long_body, "ns", {}, 0, "bbbbb")
    assert len(long_name["metadata"]["name"]) <= 63
    suffixes = {jobs.name_suffix() for _ in range(50)}
    assert len(suffixes) > 45 and all(len(x) == 5 and set(x) <= set(jobs.SUFFIX_ALPHABET) for x in suffixes)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"jobName": "bad name", "jobQueue": "q", "jobDefinition": "d"}, "jobName"),
        ({"jobName": "x", "jobQueue": "Bad_Queue", "jobDefinition": "d"}, "JobQueue Bad_Queue not found."),
        ({"jobName": "x", "jobQueue": "arn:aws:batch:r:1:compute-environment/q", "jobDefinition": "d"},
         "job-queue ARN"),
        ({"jobName": "x", "jobQueue": "q", "jobDefinition": "d:0"}, "invalid revision"),
        ({"jobName": "x", "jobQueue": "q", "jobDefinition": "d", "ecsPropertiesOverride": {}}, "ecsPropertiesOverride"),
        ({"jobName": "x", "jobQueue": "q", "jobDefinition": "d",
          "nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "0", "instanceTypes": ["c5"]}]}},
         "instanceTypes"),
    ],
)  # fmt: skip
def test_submit_refusals(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientException) as e:
        jobs.submit_manifest(body, "ns", {}, 0, "bbbbb")
    assert message in e.value.message


def test_job_detail_and_summary_are_awss_shapes() -> None:
    job = batch_job()
    detail = prune(jobs.job_detail(job, ARNS))
    conforms(detail, shape("JobDetail"))
    assert detail["jobArn"] == f"arn:aws:batch:us-east-1:000000000000:job/{UID}"
    assert detail["jobName"] == "First_Job" and detail["jobId"] == UID
    assert detail["jobQueue"] == "arn:aws:batch:us-east-1:000000000000:job-queue/q"
    assert detail["jobDefinition"] == "arn:aws:batch:us-east-1:000000000000:job-definition/Hello_Def:2"
    assert detail["status"] == "FAILED" and detail["statusReason"] == "Essential container in task exited"
    times = (detail["createdAt"], detail["startedAt"], detail["stoppedAt"])
    assert times == (1714979289000, 1714979291000, 1714979295000)
    assert detail["attempts"] == [
        {"container": {"exitCode": 3, "reason": "Error"}, "startedAt": 1714979291000, "stoppedAt": 1714979295000,
         "statusReason": "Essential container in task exited"}
    ]  # fmt: skip
    assert detail["container"] == {"command": ["echo", "hi"], "exitCode": 3, "reason": "Error"}
    assert detail["dependsOn"] == [{"jobId": "dep-1"}]
    assert (detail["isCancelled"], detail["isTerminated"]) == (False, False)
    summary = prune(jobs.job_summary(job, ARNS))
    conforms(summary, shape("JobSummary"))
    assert summary["container"] == {"exitCode": 3, "reason": "Error"}
    unstarted = prune(jobs.job_detail({"metadata": {"uid": UID, "name": "n"}, "spec": {"jobQueue": "q",
                                       "jobDefinition": "d", "cancel": {"reason": "r"}}}, ARNS))  # fmt: skip
    conforms(unstarted, shape("JobDetail"))
    assert unstarted["status"] == "SUBMITTED" and unstarted["jobName"] == "n" and unstarted["isCancelled"] is True
    assert unstarted["jobDefinition"] == "arn:aws:batch:us-east-1:000000000000:job-definition/d"


def test_array_and_multinode_views() -> None:
    array = batch_job(
        spec={"arrayProperties": {"size": 4}, "cancelChildren": {"2": {"reason": "r"}}},
        status={
            "status": "FAILED",
            "arrayProperties": {
                "size": 4,
                "statusSummary": {"SUCCEEDED": 3, "FAILED": 1},
                "indexes": {"SUCCEEDED": "0-1,3", "FAILED": "2"},
                "exitCodes": {"0": "0-1,3"},
                "statusReasons": {"r": "2"},
            },
        },
    )
    parent = prune(jobs.job_detail(array, ARNS))
    conforms(parent, shape("JobDetail"))
    assert parent["arrayProperties"] == {
        "size": 4,
        "statusSummary": {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0, "RUNNING": 0,
                          "SUCCEEDED": 3, "FAILED": 1},
    }  # fmt: skip
    child = prune(jobs.detail(array, jobs.JobRef.parse(f"{UID}:2"), ARNS))
    conforms(child, shape("JobDetail"))
    assert (child["jobId"], child["status"], child["statusReason"], child["isCancelled"]) == (
        f"{UID}:2", "FAILED", "r", True,
    )  # fmt: skip
    assert child["arrayProperties"] == {"index": 2}
    children = [prune(c) for c in jobs.child_summaries(array, ARNS)]
    for c in children:
        conforms(c, shape("JobSummary"))
    assert [c["status"] for c in children] == ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert children[1]["container"] == {"exitCode": 0}
    with pytest.raises(ClientException):
        jobs.detail(array, jobs.JobRef.parse(f"{UID}:4"), ARNS)

    mnp = batch_job(
        spec={"nodeOverrides": {"numNodes": 2}, "containerOverrides": None},
        status={"status": "RUNNING", "nodeProperties": {"numNodes": 2, "mainNode": 0, "nodes": [
            {"nodeIndex": 0, "status": "RUNNING"}, {"nodeIndex": 1, "status": "STARTING"}]}},
    )  # fmt: skip
    conforms(prune(jobs.job_detail(mnp, ARNS)), shape("JobDetail"))
    node = prune(jobs.detail(mnp, jobs.JobRef.parse(f"{UID}#1"), ARNS))
    conforms(node, shape("JobDetail"))
    assert (node["jobId"], node["status"], node["nodeDetails"]) == (
        f"{UID}#1", "STARTING", {"nodeIndex": 1, "isMainNode": False},
    )  # fmt: skip
    for n in jobs.node_summaries(mnp, ARNS):
        conforms(prune(n), shape("JobSummary"))


def test_job_refs_and_arns() -> None:
    assert jobs.JobRef.parse(UID) == jobs.JobRef(UID)
    assert jobs.JobRef.parse(f"{UID}:7") == jobs.JobRef(UID, index=7)
    assert jobs.JobRef.parse(f"{UID}#2") == jobs.JobRef(UID, node=2)
    assert jobs.JobRef.parse(f"arn:aws:batch:us-east-1:0:job/{UID}:7") == jobs.JobRef(UID, index=7)
    assert str(jobs.JobRef(UID, index=7)) == f"{UID}:7"
    for bad in ("a,b", "x/y", "id#", "id:x", "k in (a)", "-x", "a" * 64):
        with pytest.raises(ClientException):
            jobs.JobRef.parse(bad)
    assert name_of("q", "job-queue", "jobQueue") == "q"
    assert job_id_of(ARNS.job("abc")) == "abc"
    with pytest.raises(ClientException):
        name_of("arn:aws:s3:::bucket/x", "job-queue", "jobQueue")
    assert Arns("eu-west-1", "123").job_definition("d", 3) == "arn:aws:batch:eu-west-1:123:job-definition/d:3"


def test_definitions_round_trip() -> None:
    body = {
        "jobDefinitionName": "my_def",
        "type": "container",
        "platformCapabilities": ["EC2"],
        "parameters": {"a": "b"},
        "containerProperties": {
            "image": "busybox",
            "command": ["echo", "Ref::a"],
            "jobRoleArn": "arn:aws:iam::123456789012:role/builder",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}],
        },
        "retryStrategy": {"attempts": 2},
        "timeout": {"attemptDurationSeconds": 60},
        "tags": {"t": "1"},
    }
    manifest = definitions.definition_manifest(body, "team-a")
    assert manifest["metadata"] == {
        "name": definitions.object_name("my_def"),
        "namespace": "team-a",
        "annotations": {definitions.ANNOTATION_NAME: "my_def"},
    }
    assert manifest["metadata"]["name"].startswith("my-def-")
    spec = manifest["spec"]
    assert spec["containerProperties"]["serviceAccountName"] == "builder"
    assert "jobRoleArn" not in spec["containerProperties"]
    shown = prune(definitions.aws_definition("my_def", 2, spec, "ACTIVE", ARNS))
    conforms(shown, shape("JobDefinition"))
    assert shown["jobDefinitionArn"] == "arn:aws:batch:us-east-1:000000000000:job-definition/my_def:2"
    assert shown["containerProperties"]["jobRoleArn"] == "arn:aws:iam::000000000000:role/builder"
    assert shown["containerOrchestrationType"] == "ECS"
    assert definitions.object_name("plain") == "plain"
    assert definitions.reference("arn:aws:batch:us-east-1:0:job-definition/my_def:3") == (
        "my_def", definitions.object_name("my_def"), 3,
    )  # fmt: skip
    eks = definitions.definition_spec(
        {"type": "container", "eksProperties": {"podProperties": {"containers": [{"name": "c", "image": "i"}]}}}
    )
    assert eks == {"type": "container", "podProperties": {"containers": [{"name": "c", "image": "i"}]}}
    eks_shown = prune(definitions.aws_definition("e", 1, eks, "ACTIVE", ARNS))
    conforms(eks_shown, shape("JobDefinition"))
    assert eks_shown["eksProperties"] == {"podProperties": {"containers": [{"name": "c", "image": "i"}]}}
    mnp = definitions.definition_spec({"type": "multinode", "nodeProperties": {"numNodes": 2, "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": "0:", "container": {"image": "i", "jobRoleArn":
        "arn:aws:iam::1:role/path/to/sa"}}]}})  # fmt: skip
    assert mnp["nodeProperties"]["nodeRangeProperties"][0]["container"] == {"image": "i", "serviceAccountName": "sa"}
    conforms(prune(definitions.aws_definition("m", 1, mnp, "INACTIVE", ARNS)), shape("JobDefinition"))
    for bad, text in (
        ({"type": "container", "platformCapabilities": ["FARGATE"]}, "only EC2"),
        ({"type": "container", "containerProperties": {"image": "i", "executionRoleArn": "x"}}, "executionRoleArn"),
        ({"type": "container", "ecsProperties": {}}, "ecsProperties"),
        ({"type": "other"}, "type"),
    ):
        with pytest.raises(ClientException) as e:
            definitions.definition_spec(bad)
        assert text in e.value.message
    with pytest.raises(ClientException):
        definitions.object_name("bad name")


def summaries(n: int) -> list[tuple[tuple[int, int, str], dict[str, Any]]]:
    return [(listing.sort_key(1000 * (i // 3), i, f"id-{i}"), {"jobId": f"id-{i}"}) for i in range(n)]


def test_list_jobs_query_and_pages() -> None:
    query = listing.parse_list_jobs({"jobQueue": "q"})
    assert (query.queue, query.status, query.max_results) == ("q", "RUNNING", 1000)
    filtered = listing.parse_list_jobs(
        {"jobQueue": "arn:aws:batch:us-east-1:0:job-queue/q", "jobStatus": "FAILED",
         "filters": [{"name": "JOB_NAME", "values": ["abc*"]}, {"name": "AFTER_CREATED_AT", "values": ["1000"]}]}
    )  # fmt: skip
    assert filtered.status is None and filtered.max_results == 100 and filtered.created_after == 1000
    assert list(filtered.filter.names) == ["abc*"]
    shared = listing.parse_list_jobs(
        {"jobQueue": "q", "jobStatus": "FAILED", "filters": [{"name": "SHARE_IDENTIFIER", "values": ["blue"]}]}
    )
    assert shared.status == "FAILED" and shared.filter.share == "blue"
    definition = listing.parse_list_jobs(
        {"jobQueue": "q", "filters": [{"name": "JOB_DEFINITION", "values": ["My_Def:2"]}]}
    )
    assert definition.filter.definition == definitions.object_name("My_Def") + ":2"
    for bad in (
        {},
        {"jobQueue": "q", "arrayJobId": "a"},
        {"jobQueue": "q", "jobStatus": "DONE"},
        {"jobQueue": "q", "filters": [{"name": "NOPE", "values": ["x"]}]},
        {"jobQueue": "q", "filters": [{"name": "BEFORE_CREATED_AT", "values": ["yesterday"]}]},
        {"jobQueue": "q", "nextToken": "garbage"},
    ):
        with pytest.raises(ClientException):
            listing.parse_list_jobs(bad)

    # Pages: most recent first, no repeats or gaps, and the token belongs to its query.
    body = {"jobQueue": "q", "maxResults": 4}
    entries = summaries(10)
    seen: list[str] = []
    token = None
    while True:
        query = listing.parse_list_jobs({**body, **({"nextToken": token} if token else {})})
        page, token = listing.page(entries, query)
        seen.extend(s["jobId"] for s in page)
        if token is None:
            break
    assert seen == [f"id-{i}" for i in reversed(range(10))]
    _, first_token = listing.page(entries, listing.parse_list_jobs(body))
    assert first_token is not None
    with pytest.raises(ClientException):
        listing.parse_list_jobs({"jobQueue": "other", "nextToken": first_token})
    # Jobs submitted after the first page do not shift the next ones.
    later = [(listing.sort_key(99_000, 99, "id-new"), {"jobId": "id-new"}), *entries]
    page, _ = listing.page(later, listing.parse_list_jobs({**body, "nextToken": first_token}))
    assert [s["jobId"] for s in page] == ["id-5", "id-4", "id-3", "id-2"]


def test_queues_policies_environments_are_awss_shapes() -> None:
    from kubatch.awsapi import resources

    manifest = resources.queue_manifest(
        {"jobQueueName": "high", "priority": 5, "state": "ENABLED",
         "schedulingPolicyArn": "arn:aws:batch:us-east-1:0:scheduling-policy/fair",
         "computeEnvironmentOrder": [
             {"order": 1, "computeEnvironment": "arn:aws:batch:us-east-1:0:compute-environment/ce"}],
         "jobStateTimeLimitActions": [{"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "state": "RUNNABLE",
                                       "maxTimeSeconds": 600, "action": "CANCEL"}],
         "tags": {"a": "b"}}
    )  # fmt: skip
    assert manifest["metadata"] == {"name": "high"}
    assert manifest["spec"]["schedulingPolicy"] == "fair"
    assert manifest["spec"]["computeEnvironmentOrder"] == [{"order": 1, "computeEnvironment": "ce"}]
    queue = {**manifest, "status": {
        "status": "VALID", "lastUpdatedAt": "2024-05-06T07:08:09Z",
        "front": [{"namespace": "a", "name": "j", "jobId": UID, "earliestTimeAtPosition": "2024-05-06T07:08:00Z"},
                  {"namespace": "a", "name": "k"}],
        "queueUtilization": {"totalCapacityUsage": [{"capacityUnit": "vCPU", "quantity": 2.5}],
                             "fairshareUtilization": {"activeShareCount": 1, "topCapacityUtilization": [
                                 {"shareIdentifier": "blue",
                                  "capacityUsage": [{"capacityUnit": "vCPU", "quantity": 2.5}]}]}},
    }}  # fmt: skip
    detail = prune(resources.queue_detail(queue, ARNS))
    conforms(detail, shape("JobQueueDetail"))
    assert detail["schedulingPolicyArn"] == "arn:aws:batch:us-east-1:000000000000:scheduling-policy/fair"
    assert detail["computeEnvironmentOrder"][0]["computeEnvironment"].endswith(":compute-environment/ce")
    snap = prune(resources.snapshot(queue, ARNS))
    conforms(snap, shape("GetJobQueueSnapshotResponse"))
    assert snap["frontOfQueue"] == {
        "jobs": [{"jobArn": ARNS.job(UID), "earliestTimeAtPosition": 1714979280000}],
        "lastUpdatedAt": 1714979289000,
    }
    policy = resources.policy_manifest({"name": "fair", "fairsharePolicy": {"shareDecaySeconds": 60,
                                        "shareDistribution": [{"shareIdentifier": "blue",
                                                               "weightFactor": 2.0}]}})  # fmt: skip
    shown = prune(resources.policy_detail(policy, ARNS))
    conforms(shown, shape("SchedulingPolicyDetail"))
    assert shown["arn"] == "arn:aws:batch:us-east-1:000000000000:scheduling-policy/fair"
    environment = {
        "metadata": {"name": "ce", "uid": UID},
        "spec": {"type": "MANAGED", "computeResources": {"type": "SPOT", "minvCpus": 0, "maxvCpus": 64,
                 "instanceTypes": ["c7i"], "provisioner": "karpenter"},
                 "updatePolicy": {"terminateJobsOnUpdate": True}},
        "status": {"status": "VALID", "desiredvCpus": 8},
    }  # fmt: skip
    ce = prune(resources.environment_detail(environment, ARNS))
    conforms(ce, shape("ComputeEnvironmentDetail"))
    assert ce["computeResources"]["desiredvCpus"] == 8 and ce["state"] == "ENABLED"
    with pytest.raises(ClientException):
        resources.queue_manifest({"jobQueueName": "High_Priority", "priority": 1})


def test_consumable_resources() -> None:
    from kubatch.awsapi import resources

    manifest = resources.consumable_manifest({"consumableResourceName": "lic", "totalQuantity": 3,
                                              "resourceType": "NON_REPLENISHABLE", "tags": {"a": "b"}})  # fmt: skip
    assert manifest["spec"] == {"totalQuantity": 3, "resourceType": "NON_REPLENISHABLE", "tags": {"a": "b"}}
    resource = {**manifest, "metadata": {"name": "lic", "creationTimestamp": "2024-05-06T07:08:09Z"},
                "status": {"totalQuantity": 2, "inUseQuantity": 1, "availableQuantity": 1}}  # fmt: skip
    detail = prune(resources.consumable_detail(resource, ARNS))
    conforms(detail, shape("DescribeConsumableResourceResponse"))
    assert detail["consumableResourceArn"] == "arn:aws:batch:us-east-1:000000000000:consumable-resource/lic"
    assert (detail["totalQuantity"], detail["inUseQuantity"], detail["availableQuantity"]) == (2, 1, 1)
    assert [resources.updated_quantity(5, op, 2) for op in ("SET", "ADD", "REMOVE")] == [2, 7, 3]
    for op, quantity in (("REMOVE", 6), ("SET", -1), ("MULTIPLY", 1)):
        with pytest.raises(ClientException):
            resources.updated_quantity(5, op, quantity)
    tokens = json.dumps({"old": "h 1000", "new": "h 3000", "bad": "x"})
    resource["metadata"]["annotations"] = {resources.ANNOTATION_UPDATE_TOKENS: tokens}
    assert resources.seen_tokens(resource, 2000) == {"new": "h 3000"}
    assert resources.name_matches(["LIC*"], "license") and not resources.name_matches(["lic"], "license")
