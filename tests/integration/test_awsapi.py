"""The AWS Batch API with the real boto3 client (and one real `aws batch` call) against the local
control plane and the shared operator: job definitions registered, jobs submitted (a plain job, an
array of 5, a dependent job, one that fails), DescribeJobs with AWS's field names until SUCCEEDED or
FAILED, ListJobs and its pages, CancelJob and TerminateJob, AWS's errors, and access control (a key
acts in its namespace as its identity, and RBAC decides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from kubatch.core.job_ids import api_job_id
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.awsapi import Key, client, create_key, in_process
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl, fresh_namespace

pytestmark = pytest.mark.integration

ROLE_RULES = [
    {
        "apiGroups": ["kubatch.dev"],
        "resources": ["batchjobs", "jobdefinitions"],
        "verbs": ["create", "get", "list", "watch", "patch", "update", "delete"],
    },
    {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["get", "list"]},
]
CONTAINER = {
    "image": "busybox:1.36",
    "command": ["sh", "-c", "echo hello"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
}


def pod_definition(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A pod-based definition (AWS's eksProperties) whose simulated pods run or exit as annotated."""
    return {
        "jobDefinitionName": name,
        "type": "container",
        "eksProperties": {
            "podProperties": {
                "containers": [
                    {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "true"],
                     "resources": {"requests": {"cpu": "1", "memory": "256Mi"}}}
                ],
                "metadata": {"annotations": annotations},
            }
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def keys_namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from fresh_namespace(kubectl, "keys")


@pytest.fixture(scope="module")
def api_url(cluster: ClusterInfo, operator: Any, keys_namespace: str) -> Iterator[str]:
    with in_process(cluster.kubeconfig, keys_namespace) as url:
        yield url


def grant(kubectl: Kubectl, namespace: str, account_namespace: str, account: str) -> None:
    """A Role over jobs, definitions and revisions in ``namespace`` for a ServiceAccount."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"batch-{account}", "namespace": namespace},
        "rules": ROLE_RULES,
    }
    kubectl("apply", "-f", "-", input=json.dumps(role))
    kubectl(
        "create", "rolebinding", f"batch-{account}", f"--role=batch-{account}",
        f"--serviceaccount={account_namespace}:{account}", "-n", namespace,
    )  # fmt: skip


@pytest.fixture
def key(cluster: ClusterInfo, kubectl: Kubectl, keys_namespace: str, namespace: str) -> Key:
    """A key of the test namespace acting as its ServiceAccount `submitter`, allowed jobs there."""
    kubectl("create", "serviceaccount", "submitter", "-n", namespace)
    grant(kubectl, namespace, namespace, "submitter")
    return create_key(cluster.kubeconfig, keys_namespace, namespace, "--service-account", "submitter")


@pytest.fixture
def aws(api_url: str, key: Key) -> Any:
    return client(api_url, key)


def wait_job(
    aws: Any, job_id: str, *states: str, timeout: float = 120, check: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """DescribeJobs until the job is in one of ``states`` (polled)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        jobs = aws.describe_jobs(jobs=[job_id])["jobs"]
        if jobs:
            last = jobs[0]
            if last["status"] in states and (check is None or check(last)):
                return last
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} never reached {states}; last: {json.dumps(last, default=str)}")


def code_of(call: Callable[[], Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as e:
        call()
    error = e.value.response["Error"]
    return error["Code"], error["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_definitions_jobs_arrays_dependencies(aws: Any, batch: Batch, kget: Callable[..., Any]) -> None:
    queue = batch.queue([batch.environment(cpu=8, memory="32Gi")])
    first = aws.register_job_definition(jobDefinitionName="Hello_Def", type="container", containerProperties=CONTAINER)
    assert first["jobDefinitionName"] == "Hello_Def" and first["revision"] == 1
    assert first["jobDefinitionArn"] == "arn:aws:batch:us-east-1:000000000000:job-definition/Hello_Def:1"
    changed = {**CONTAINER, "command": ["sh", "-c", "echo changed"]}
    second = aws.register_job_definition(jobDefinitionName="Hello_Def", type="container", containerProperties=changed)
    assert second["revision"] == 2
    described = aws.describe_job_definitions(jobDefinitionName="Hello_Def")["jobDefinitions"]
    assert [(d["revision"], d["status"]) for d in described] == [(1, "ACTIVE"), (2, "ACTIVE")]
    assert described[1]["containerProperties"]["command"] == ["sh", "-c", "echo changed"]
    assert described[0]["containerProperties"]["command"] == ["sh", "-c", "echo hello"]
    only = aws.describe_job_definitions(jobDefinitions=["Hello_Def:1"])["jobDefinitions"]
    assert [d["revision"] for d in only] == [1]

    # A plain job, by queue ARN and definition name: a normal BatchJob, found at once.
    queue_arn = f"arn:aws:batch:us-east-1:000000000000:job-queue/{queue}"
    submitted = aws.submit_job(jobName="First_Job", jobQueue=queue_arn, jobDefinition="Hello_Def")
    job_id = submitted["jobId"]
    assert submitted["jobName"] == "First_Job"
    assert submitted["jobArn"] == f"arn:aws:batch:us-east-1:000000000000:job/{job_id}"
    assert [j["jobId"] for j in aws.describe_jobs(jobs=[job_id, "no,such", str(uuid.uuid4()), job_id])["jobs"]] == [
        job_id
    ]
    # Created with its jobId label (one write): a UUID of its namespace and name, not its uid.
    objects = kget("batchjobs", "-n", batch.ns, "-l", f"kubatch.dev/job-id={job_id}")["items"]
    assert len(objects) == 1 and objects[0]["spec"]["jobName"] == "First_Job"
    assert job_id == api_job_id(batch.ns, objects[0]["metadata"]["name"]) != objects[0]["metadata"]["uid"]
    done = wait_job(aws, job_id, "SUCCEEDED", "FAILED")
    recorded = kget("batchjobs", "-n", batch.ns, "--field-selector", f"status.jobId={job_id}")["items"]
    assert [o["metadata"]["name"] for o in recorded] == [objects[0]["metadata"]["name"]]  # kubatch's jobId too
    assert done["status"] == "SUCCEEDED", done
    assert done["jobQueue"] == queue_arn
    assert done["jobDefinition"].endswith(":job-definition/Hello_Def:2")
    assert done["attempts"][0]["container"]["exitCode"] == 0
    assert done["container"]["exitCode"] == 0
    assert done["createdAt"] <= done["startedAt"] <= done["stoppedAt"]
    assert done["isCancelled"] is False and done["isTerminated"] is False

    # An array of 5, and a job that depends on the first.
    array = aws.submit_job(
        jobName="array", jobQueue=queue, jobDefinition="Hello_Def:1", arrayProperties={"size": 5},
        containerOverrides={"environment": [{"name": "X", "value": "1"}]},
    )["jobId"]  # fmt: skip
    dependent = aws.submit_job(
        jobName="after", jobQueue=queue, jobDefinition="Hello_Def", dependsOn=[{"jobId": array}]
    )["jobId"]
    parent = wait_job(aws, array, "SUCCEEDED", "FAILED")
    assert parent["status"] == "SUCCEEDED", parent
    assert parent["arrayProperties"]["size"] == 5
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 5
    child = aws.describe_jobs(jobs=[f"{array}:3"])["jobs"][0]
    assert (child["jobId"], child["status"], child["arrayProperties"]) == (f"{array}:3", "SUCCEEDED", {"index": 3})
    children = aws.list_jobs(arrayJobId=array, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [c["jobId"] for c in children] == [f"{array}:{i}" for i in range(5)]
    after = wait_job(aws, dependent, "SUCCEEDED", "FAILED")
    assert after["status"] == "SUCCEEDED"
    assert after["dependsOn"] == [{"jobId": array}]

    # Tags: a job's and a definition's are listed; they are set at submission (registration).
    tagged = aws.submit_job(jobName="tagged", jobQueue=queue, jobDefinition="Hello_Def", tags={"k": "v"})["jobArn"]
    assert aws.list_tags_for_resource(resourceArn=tagged)["tags"] == {"k": "v"}
    assert code_of(lambda: aws.tag_resource(resourceArn=tagged, tags={"a": "b"}))[0] == "ClientException"
    assert aws.list_tags_for_resource(resourceArn=second["jobDefinitionArn"])["tags"] == {}

    # A job that fails, in AWS's words.
    aws.register_job_definition(**pod_definition("fails", {"sim.kubatch.dev/exit-code": "3"}))
    failed = wait_job(aws, aws.submit_job(jobName="fails", jobQueue=queue, jobDefinition="fails")["jobId"], "FAILED")
    assert failed["statusReason"] == "Essential container in task exited"
    assert failed["attempts"][-1]["container"]["exitCode"] == 3

    # Deregistered: INACTIVE, and no longer submittable; registering again makes a new revision.
    aws.deregister_job_definition(jobDefinition="Hello_Def:2")
    revisions = aws.describe_job_definitions(jobDefinitionName="Hello_Def")["jobDefinitions"]
    statuses = {d["revision"]: d["status"] for d in revisions}
    assert statuses == {1: "INACTIVE", 2: "INACTIVE"}
    code, message, status = code_of(lambda: aws.submit_job(jobName="x", jobQueue=queue, jobDefinition="Hello_Def"))
    assert (code, status) == ("ClientException", 400)
    assert message == "JobDefinition name Hello_Def does not exist or is not in ACTIVE status"
    again = aws.register_job_definition(jobDefinitionName="Hello_Def", type="container", containerProperties=CONTAINER)
    assert again["revision"] == 3


def test_list_jobs_pages_and_statuses(aws: Any, batch: Batch) -> None:
    queue = batch.queue([batch.environment(cpu=16, memory="64Gi")])
    aws.register_job_definition(**pod_definition("sleepy", {"sim.kubatch.dev/duration": "600s"}))
    aws.register_job_definition(jobDefinitionName="quick", type="container", containerProperties=CONTAINER)
    ids = [aws.submit_job(jobName=f"page-{i:02d}", jobQueue=queue, jobDefinition="quick")["jobId"] for i in range(30)]
    running = aws.submit_job(jobName="runner", jobQueue=queue, jobDefinition="sleepy")["jobId"]
    wait_job(aws, running, "RUNNING")

    # Paginated with a filter (status ignored): every job once, most recent first.
    pages = aws.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["PAGE-*"]}], PaginationConfig={"PageSize": 7}
    )
    seen = [[s["jobId"] for s in p["jobSummaryList"]] for p in pages]
    assert [len(p) for p in seen] == [7, 7, 7, 7, 2]
    flat = [i for p in seen for i in p]
    assert flat == list(reversed(ids))
    # No status: RUNNING only (on a busy machine a quick job may still be running beside the runner).
    listed = aws.list_jobs(jobQueue=queue)["jobSummaryList"]
    assert running in [s["jobId"] for s in listed], listed
    assert all(s["status"] == "RUNNING" for s in listed), listed
    for job_id in ids:
        wait_job(aws, job_id, "SUCCEEDED", timeout=180)
    succeeded = aws.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED", maxResults=10)
    assert len(succeeded["jobSummaryList"]) == 10 and succeeded["nextToken"]
    rest = aws.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED", maxResults=100, nextToken=succeeded["nextToken"])
    assert len(rest["jobSummaryList"]) == 20 and "nextToken" not in rest
    summary = rest["jobSummaryList"][0]
    assert summary["status"] == "SUCCEEDED" and summary["container"]["exitCode"] == 0
    assert summary["jobDefinition"].endswith(":job-definition/quick:1")
    code, _, _ = code_of(lambda: aws.list_jobs(jobQueue=queue, nextToken="garbage"))
    assert code == "ClientException"


def test_cancel_terminate_and_errors(aws: Any, batch: Batch) -> None:
    queue = batch.queue([batch.environment(cpu=8, memory="32Gi")])
    aws.register_job_definition(**pod_definition("long", {"sim.kubatch.dev/duration": "600s"}))
    long = aws.submit_job(jobName="long", jobQueue=queue, jobDefinition="long")["jobId"]
    wait_job(aws, long, "RUNNING")
    waiting = aws.submit_job(jobName="waiting", jobQueue=queue, jobDefinition="long", dependsOn=[{"jobId": long}])
    wait_job(aws, waiting["jobId"], "PENDING")

    aws.cancel_job(jobId=waiting["jobId"], reason="not needed any more")
    cancelled = wait_job(aws, waiting["jobId"], "FAILED")
    assert cancelled["statusReason"] == "not needed any more" and cancelled["isCancelled"] is True
    aws.cancel_job(jobId=waiting["jobId"], reason="again")  # succeeds, changes nothing
    aws.cancel_job(jobId=long, reason="too late to cancel")  # RUNNING: not cancelled
    assert aws.describe_jobs(jobs=[long])["jobs"][0]["status"] == "RUNNING"
    aws.terminate_job(jobId=long, reason="stopped by the test")
    terminated = wait_job(aws, long, "FAILED")
    assert terminated["statusReason"] == "stopped by the test" and terminated["isTerminated"] is True

    # The bulk forms: each job reported on its own; one that does not exist counts as done.
    second = aws.submit_job(jobName="second", jobQueue=queue, jobDefinition="long")["jobId"]
    blocker = aws.submit_job(jobName="blocker", jobQueue=queue, jobDefinition="long")["jobId"]
    wait_job(aws, second, "RUNNING")
    queued = aws.submit_job(jobName="queued", jobQueue=queue, jobDefinition="long", dependsOn=[{"jobId": blocker}])
    wait_job(aws, queued["jobId"], "PENDING")
    absent = str(uuid.uuid4())
    bulk = aws.terminate_jobs(jobs=[second, queued["jobId"], absent, "not a job id"], reason="bulk stop")
    assert bulk["successful"] == [second, queued["jobId"], absent]
    assert [(e["job"], e["code"]) for e in bulk["errors"]] == [("not a job id", "ValidationException")]
    for job_id in (second, queued["jobId"]):
        stopped = wait_job(aws, job_id, "FAILED")
        assert stopped["statusReason"] == "bulk stop" and stopped["isTerminated"] is True
    assert aws.cancel_jobs(jobs=[second], reason="again")["successful"] == [second]
    aws.terminate_job(jobId=blocker, reason="done")

    client_error = [
        (lambda: aws.submit_job(jobName="x", jobQueue="no-such-queue", jobDefinition="long"),
         "JobQueue no-such-queue not found."),
        (lambda: aws.submit_job(jobName="x", jobQueue=queue, jobDefinition="no-such-definition"),
         "JobDefinition name no-such-definition does not exist or is not in ACTIVE status"),
        (lambda: aws.submit_job(jobName="bad name!", jobQueue=queue, jobDefinition="long"), "jobName"),
        (lambda: aws.submit_job(jobName="x", jobQueue=queue, jobDefinition="long",
                                containerOverrides={"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}),
         "AWS_BATCH"),
        (lambda: aws.submit_job(jobName="x", jobQueue=queue, jobDefinition="long", dependsOn=[{"jobId": "nope"}]),
         "nope"),
        (lambda: aws.cancel_job(jobId=str(uuid.uuid4()), reason="r"), "not found"),
    ]  # fmt: skip
    for call, text in client_error:
        code, message, status = code_of(call)
        assert (code, status) == ("ClientException", 400), message
        assert text in message, message


def test_access_is_the_keys_identity(
    api_url: str, aws: Any, key: Key, batch: Batch, cluster: ClusterInfo, kubectl: Kubectl, keys_namespace: str
) -> None:
    queue = batch.queue([batch.environment()])
    aws.register_job_definition(jobDefinitionName="mine", type="container", containerProperties=CONTAINER)
    job_id = aws.submit_job(jobName="mine", jobQueue=queue, jobDefinition="mine")["jobId"]
    other_ns = next(fresh := fresh_namespace(kubectl, "t"))
    try:
        # Team B's key: its ServiceAccount has rights in B only.
        kubectl("create", "serviceaccount", "team-b", "-n", other_ns)
        grant(kubectl, other_ns, other_ns, "team-b")
        b_key = create_key(cluster.kubeconfig, keys_namespace, other_ns, "--service-account", "team-b")
        team_b = client(api_url, b_key)
        assert team_b.describe_jobs(jobs=[job_id])["jobs"] == []  # B's namespace has no such job
        # A key for A's namespace bound to B's identity: refused by RBAC.
        crossed = create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", f"{other_ns}/team-b")
        refused = client(api_url, crossed)
        for call in (
            lambda: refused.describe_jobs(jobs=[job_id]),
            lambda: refused.submit_job(jobName="intruder", jobQueue=queue, jobDefinition="mine"),
            lambda: refused.list_jobs(jobQueue=queue),
            lambda: refused.terminate_job(jobId=job_id, reason="no"),
        ):
            code, message, status = code_of(call)
            assert (code, status) == ("AccessDeniedException", 403), message
            assert f"system:serviceaccount:{other_ns}:team-b" in message
        bulk = refused.cancel_jobs(jobs=[job_id], reason="no")  # 200, the refusal per job
        assert bulk["successful"] == [] and [e["code"] for e in bulk["errors"]] == ["AccessDenied"]
    finally:
        next(fresh, None)
    assert code_of(lambda: client(api_url, key, signature_version=UNSIGNED).list_jobs(jobQueue=queue))[0] == (
        "MissingAuthenticationTokenException"
    )
    wrong = client(api_url, Key(key.access_key_id, "x" * 40))
    assert code_of(lambda: wrong.list_jobs(jobQueue=queue))[:2] == (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details.",
    )
    unknown = client(api_url, Key("KBATAAAAAAAAAAAAAAAA", key.secret_access_key))
    assert code_of(lambda: unknown.list_jobs(jobQueue=queue))[0] == "UnrecognizedClientException"


def test_the_aws_cli(api_url: str, key: Key, aws: Any, batch: Batch) -> None:
    queue = batch.queue([batch.environment()])
    aws.register_job_definition(jobDefinitionName="cli_def", type="container", containerProperties=CONTAINER)
    env = {**os.environ, **key.env(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}  # fmt: skip
    aws_cli = str(Path(sys.executable).parent / "aws")
    out = subprocess.run(
        [aws_cli, "batch", "submit-job", "--endpoint-url", api_url, "--job-name", "From_The_CLI",
         "--job-queue", queue, "--job-definition", "cli_def", "--container-overrides",
         json.dumps({"command": ["echo", "from the cli"]}), "--output", "json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    submitted = json.loads(out.stdout)
    assert submitted["jobName"] == "From_The_CLI"
    done = wait_job(aws, submitted["jobId"], "SUCCEEDED")
    assert done["container"]["command"] == ["echo", "from the cli"]
    described = subprocess.run(  # the endpoint from the environment, as the SDKs read it
        [aws_cli, "batch", "describe-jobs", "--jobs", submitted["jobId"], "--output", "json"],
        capture_output=True, text=True, env={**env, "AWS_ENDPOINT_URL_BATCH": api_url}, timeout=60, check=False,
    )  # fmt: skip
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["jobs"][0]["status"] == "SUCCEEDED"
    missing = subprocess.run(
        [aws_cli, "batch", "submit-job", "--endpoint-url", api_url, "--job-name", "x", "--job-queue", "absent",
         "--job-definition", "cli_def"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "An error occurred (ClientException) when calling the SubmitJob operation: JobQueue absent not found." in (
        missing.stderr
    )


def test_jobs_made_with_kubectl_are_seen(aws: Any, batch: Batch) -> None:
    """A BatchJob created with kubectl (no API label) is listed, and found by jobId once kubatch has
    written its status (the CRD's status.jobId field selector)."""
    queue = batch.queue([batch.environment()])
    definition = batch.container_definition("made-by-kubectl")
    batch.job("kubectl-job", queue, definition)
    status = batch.wait_done("kubectl-job")
    job_id = status["jobId"]
    listed = aws.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["kubectl-job"]}])
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [job_id]
    described = aws.describe_jobs(jobs=[job_id])["jobs"]
    assert [(d["jobId"], d["jobName"], d["status"]) for d in described] == [(job_id, "kubectl-job", "SUCCEEDED")]
    assert described[0]["jobDefinition"].endswith(f":job-definition/{definition}:1")


def test_multinode_job(aws: Any, batch: Batch) -> None:
    queue = batch.queue([batch.environment(nodes=3)])
    registered = aws.register_job_definition(
        jobDefinitionName="gang", type="multinode",
        nodeProperties={"numNodes": 2, "mainNode": 0,
                        "nodeRangeProperties": [{"targetNodes": "0:", "container": CONTAINER}]},
    )  # fmt: skip
    shown = aws.describe_job_definitions(jobDefinitions=[registered["jobDefinitionArn"]])["jobDefinitions"][0]
    assert shown["type"] == "multinode" and shown["nodeProperties"]["numNodes"] == 2
    submitted = aws.submit_job(jobName="gang", jobQueue=queue, jobDefinition="gang", nodeOverrides={"numNodes": 3})
    job_id = submitted["jobId"]
    done = wait_job(aws, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    assert done["nodeProperties"] == {"numNodes": 3, "mainNode": 0}
    node = aws.describe_jobs(jobs=[f"{job_id}#1"])["jobs"][0]
    assert node["jobId"] == f"{job_id}#1" and node["nodeDetails"] == {"nodeIndex": 1, "isMainNode": False}
    nodes = {
        n["jobId"]: n
        for status in ("SUCCEEDED", "FAILED")  # the workers' pods are stopped once the main node ended
        for n in aws.list_jobs(multiNodeJobId=job_id, jobStatus=status)["jobSummaryList"]
    }
    assert sorted(nodes) == [f"{job_id}#{i}" for i in range(3)]
    assert nodes[f"{job_id}#0"]["status"] == "SUCCEEDED"
    assert nodes[f"{job_id}#0"]["nodeProperties"] == {"numNodes": 3, "nodeIndex": 0, "isMainNode": True}
