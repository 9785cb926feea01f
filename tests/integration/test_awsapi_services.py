"""Service environments, service jobs and quota shares through the AWS Batch API with the real boto3
client, on the local control plane and the shared operator: a key whose ServiceAccount has
cluster-wide rights on service environments, queues and policies creates a KUBERNETES_JOB service
environment and a service queue, submits a batch/v1 Job payload with SubmitServiceJob and follows it
with DescribeServiceJob to SUCCEEDED (the Job controller runs it on a kwok node), lists, terminates
and resubmits with a clientToken; a quota-managed queue's shares are created, described, listed,
updated and deleted (also concurrently), and UpdateServiceJob reorders a job in its share."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.awsapi import client, create_key
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl
from tests.integration.test_awsapi import api_url, code_of, grant, keys_namespace

pytestmark = pytest.mark.integration
__all__ = ["api_url", "keys_namespace"]  # module fixtures shared with test_awsapi

ARN = "arn:aws:batch:us-east-1:000000000000"


@pytest.fixture
def service_admin(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A ServiceAccount with cluster-wide rights on service environments, queues and policies, jobs
    in its namespace, and the right to create what its service jobs ask for (batch/v1 Jobs)."""
    name = f"awsapi-svc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "serviceaccount", "svc-admin", "-n", namespace)
    grant(kubectl, namespace, namespace, "svc-admin")
    workloads = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "svc-workloads", "namespace": namespace},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list"]}],
    }
    kubectl("apply", "-f", "-", input=json.dumps(workloads))
    kubectl("create", "rolebinding", "svc-workloads", "--role=svc-workloads",
            f"--serviceaccount={namespace}:svc-admin", "-n", namespace)  # fmt: skip
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["kubatch.dev"],
                   "resources": ["jobqueues", "schedulingpolicies", "serviceenvironments"],
                   "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"]}],
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(role))
    kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", f"--serviceaccount={namespace}:svc-admin")
    yield "svc-admin"
    kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", "--wait=false", check=False)


def payload(label: str, duration: str) -> str:
    """A batch/v1 Job whose one pod runs ``duration`` on the test's kwok node."""
    return json.dumps({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sim.kubatch.dev/duration": duration}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubatch.dev/service-test": label},
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                },
            },
        },
    })  # fmt: skip


def poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float) -> Any:
    """``read()`` until ``done`` holds for its value (polled every 0.25 s)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = read()
        if done(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} never happened; last: {json.dumps(last, default=str)}")


def service_setup(aws: Any, batch: Batch, limit: int, **queue: Any) -> tuple[str, str, str]:
    """A kwok node for the Jobs' pods, a KUBERNETES_JOB service environment (VALID) and a service
    queue on it, made through the API; (node label, environment, queue)."""
    label = f"svc-{uuid.uuid4().hex[:8]}"
    batch.make_node(cpu=32, memory="64Gi", labels={"kubatch.dev/service-test": label})
    se = batch.name("api-se")
    created = aws.create_service_environment(
        serviceEnvironmentName=se, serviceEnvironmentType="KUBERNETES_JOB",
        capacityLimits=[{"maxCapacity": limit, "capacityUnit": "NUM_INSTANCES"}], tags={"team": "a"},
    )  # fmt: skip
    batch.cluster_objects.append(("serviceenvironment", se))
    assert created["serviceEnvironmentArn"] == f"{ARN}:service-environment/{se}"
    poll(
        lambda: aws.describe_service_environments(serviceEnvironments=[se])["serviceEnvironments"],
        lambda found: len(found) == 1 and found[0]["status"] == "VALID",
        f"{se} VALID",
        timeout=30,
    )
    q = batch.name("api-sq")
    aws.create_job_queue(
        jobQueueName=q, priority=1, jobQueueType="KUBERNETES_JOB",
        serviceEnvironmentOrder=[{"order": 1, "serviceEnvironment": created["serviceEnvironmentArn"]}], **queue,
    )  # fmt: skip
    batch.cluster_objects.append(("jobqueue", q))
    return label, se, q


def describe(aws: Any, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = aws.describe_service_job(jobId=job_id)
    found.pop("ResponseMetadata", None)
    return found


def test_service_environments_and_service_jobs(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, service_admin: str, batch: Batch, kubectl: Kubectl
) -> None:
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", service_admin))
    code, message, status = code_of(lambda: aws.create_service_environment(
        serviceEnvironmentName=batch.name("sm"), serviceEnvironmentType="SAGEMAKER_TRAINING",
        capacityLimits=[{"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}]))  # fmt: skip
    assert (code, status) == ("ClientException", 400)
    assert "SAGEMAKER_TRAINING is not applicable in kubatch" in message and "KUBERNETES_JOB" in message
    label, se, q = service_setup(aws, batch, 2)
    (shown,) = aws.describe_service_environments(serviceEnvironments=[se])["serviceEnvironments"]
    assert shown["serviceEnvironmentType"] == "KUBERNETES_JOB" and shown["state"] == "ENABLED"
    assert shown["capacityLimits"] == [{"maxCapacity": 2, "capacityUnit": "NUM_INSTANCES"}]
    assert shown["tags"] == {"team": "a"}
    assert se in [e["serviceEnvironmentName"] for e in aws.describe_service_environments()["serviceEnvironments"]]
    (queue,) = aws.describe_job_queues(jobQueues=[q])["jobQueues"]
    assert queue["jobQueueType"] == "KUBERNETES_JOB"
    assert queue["serviceEnvironmentOrder"] == [{"order": 1, "serviceEnvironment": f"{ARN}:service-environment/{se}"}]

    # SubmitServiceJob -> DescribeServiceJob until SUCCEEDED
    quick = aws.submit_service_job(
        jobName="Train_Quick", jobQueue=f"{ARN}:job-queue/{q}", serviceJobType="KUBERNETES_JOB",
        serviceRequestPayload=payload(label, "2s"), tags={"project": "x"},
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onStatusReason": "*", "action": "EXIT"}]},
    )  # fmt: skip
    assert quick["jobName"] == "Train_Quick" and quick["jobArn"] == f"{ARN}:job/{quick['jobId']}"
    done = poll(lambda: describe(aws, quick["jobId"]), lambda j: j["status"] in ("SUCCEEDED", "FAILED"),
                "the service job to finish", timeout=120)  # fmt: skip
    assert done["status"] == "SUCCEEDED", done
    assert done["statusReason"].startswith("Received status from Kubernetes: CompletionsReached")
    assert done["serviceJobType"] == "KUBERNETES_JOB" and done["jobQueue"] == f"{ARN}:job-queue/{q}"
    assert done["serviceRequestPayload"] == payload(label, "2s") and done["tags"] == {"project": "x"}
    assert done["retryStrategy"]["attempts"] == 2 and done["isTerminated"] is False
    assert done["createdAt"] <= done["scheduledAt"] <= done["startedAt"] <= done["stoppedAt"]
    (attempt,) = done["attempts"]
    workloads = batch.kget("jobs.batch", "-n", batch.ns, "-l", f"kubatch.dev/job-id={quick['jobId']}")["items"]
    (workload,) = workloads
    assert attempt["serviceResourceId"] == {"name": "JobUid", "value": workload["metadata"]["uid"]}
    assert done["latestAttempt"] == {"serviceResourceId": attempt["serviceResourceId"]}

    # ListServiceJobs: by status, name filter, pages
    listed = aws.list_service_jobs(jobQueue=q, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [(j["jobId"], j["jobName"], j["status"]) for j in listed] == [(quick["jobId"], "Train_Quick", "SUCCEEDED")]
    assert listed[0]["serviceJobType"] == "KUBERNETES_JOB" and listed[0]["jobArn"] == quick["jobArn"]
    assert aws.list_service_jobs(jobQueue=q)["jobSummaryList"] == []  # RUNNING only when no status is given
    by_name = aws.list_service_jobs(jobQueue=q, filters=[{"name": "JOB_NAME", "values": ["train_q*"]}])
    assert [j["jobId"] for j in by_name["jobSummaryList"]] == [quick["jobId"]]

    # a long job: RUNNING, listed, terminated
    long = aws.submit_service_job(jobName="long", jobQueue=q, serviceJobType="KUBERNETES_JOB",
                                  serviceRequestPayload=payload(label, "600s"))  # fmt: skip
    poll(lambda: describe(aws, long["jobId"]), lambda j: j["status"] == "RUNNING", "RUNNING", timeout=90)
    running = aws.list_service_jobs(jobQueue=q)["jobSummaryList"]
    assert [j["jobId"] for j in running] == [long["jobId"]]
    assert running[0]["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 1.0}]
    aws.terminate_service_job(jobId=long["jobId"], reason="no longer needed")
    aws.terminate_service_job(jobId=long["jobId"], reason="again")  # already terminated: succeeds, changes nothing
    ended = poll(lambda: describe(aws, long["jobId"]), lambda j: j["status"] == "FAILED", "FAILED", timeout=60)
    assert ended["isTerminated"] is True and ended["statusReason"] == "no longer needed"
    unknown = "00000000-0000-4000-8000-000000000000"
    bulk = aws.terminate_service_jobs(jobs=[unknown, "not a job id"], reason="r")
    assert bulk["successful"] == [unknown]
    assert [(e["job"], e["code"]) for e in bulk["errors"]] == [("not a job id", "ValidationException")]
    code, message, _ = code_of(lambda: aws.describe_service_job(jobId=unknown))
    assert (code, message) == ("ClientException", f"Job {unknown} not found.")

    # clientToken: a retry names the same job; the token with another request is refused
    token = f"tok-{uuid.uuid4().hex}"
    request = {"jobName": "tokened", "jobQueue": q, "serviceJobType": "KUBERNETES_JOB",
               "serviceRequestPayload": payload(label, "1s"), "clientToken": token}  # fmt: skip
    first, second = aws.submit_service_job(**request), aws.submit_service_job(**request)
    assert first["jobId"] == second["jobId"]
    code, message, _ = code_of(
        lambda: aws.submit_service_job(**{**request, "serviceRequestPayload": payload(label, "2s")})
    )
    assert code == "ClientException" and f"clientToken {token} was already used" in message
    tokened = batch.kget("batchjobs", "-n", batch.ns, "-l", f"kubatch.dev/job-id={first['jobId']}")["items"]
    assert len(tokened) == 1

    # AWS's error for a queue that does not exist
    missing = {"jobName": "x", "jobQueue": "no-such-queue", "serviceJobType": "KUBERNETES_JOB"}
    code, message, _ = code_of(lambda: aws.submit_service_job(**missing, serviceRequestPayload="{}"))
    assert (code, message) == ("ClientException", "JobQueue no-such-queue not found.")

    # UpdateServiceEnvironment, and DeleteServiceEnvironment's order: disable, detach, delete
    three = [{"maxCapacity": 3, "capacityUnit": "NUM_INSTANCES"}]
    aws.update_service_environment(serviceEnvironment=se, capacityLimits=three)
    assert batch.kget("serviceenvironment", se)["spec"]["capacityLimits"][0]["maxCapacity"] == 3
    code, message, _ = code_of(lambda: aws.delete_service_environment(serviceEnvironment=se))
    assert code == "ClientException" and "it is ENABLED" in message
    aws.update_service_environment(serviceEnvironment=f"{ARN}:service-environment/{se}", state="DISABLED")
    code, message, _ = code_of(lambda: aws.delete_service_environment(serviceEnvironment=se))
    assert code == "ClientException" and f"job queue(s) {q} still use it" in message
    aws.update_job_queue(jobQueue=q, state="DISABLED")
    aws.delete_job_queue(jobQueue=q)
    poll(lambda: aws.describe_job_queues(jobQueues=[q])["jobQueues"], lambda found: found == [], "queue gone", 60)
    poll(lambda: (batch.kget("serviceenvironment", se).get("status") or {}).get("jobQueues"),
         lambda queues: not queues, "the environment detached from its queue", 30)  # fmt: skip
    aws.delete_service_environment(serviceEnvironment=se)
    poll(lambda: aws.describe_service_environments(serviceEnvironments=[se])["serviceEnvironments"],
         lambda found: found == [], "environment gone", 60)  # fmt: skip


def test_quota_shares_and_update_service_job(
    api_url: str, cluster: ClusterInfo, keys_namespace: str, service_admin: str, batch: Batch
) -> None:
    aws = client(api_url, create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", service_admin))
    policy = aws.create_scheduling_policy(name=batch.name("api-qp"),
                                          quotaSharePolicy={"idleResourceAssignmentStrategy": "FIFO"})  # fmt: skip
    batch.cluster_objects.append(("schedulingpolicy", policy["name"]))
    (shown,) = aws.describe_scheduling_policies(arns=[policy["arn"]])["schedulingPolicies"]
    assert shown["quotaSharePolicy"] == {"idleResourceAssignmentStrategy": "FIFO"} and "fairsharePolicy" not in shown
    label, _, q = service_setup(aws, batch, 2, schedulingPolicyArn=policy["arn"])

    def share(name: str, limit: int, strategy: str, **extra: Any) -> dict[str, Any]:
        return aws.create_quota_share(  # type: ignore[no-any-return]
            quotaShareName=name, jobQueue=q, capacityLimits=[{"maxCapacity": limit, "capacityUnit": "NUM_INSTANCES"}],
            resourceSharingConfiguration={"strategy": strategy, **extra},
            preemptionConfiguration={"inSharePreemption": "DISABLED"},
        )  # fmt: skip

    prod = share("prod", 1, "LEND_AND_BORROW", borrowLimit=100)
    assert prod == {"quotaShareName": "prod", "quotaShareArn": f"{ARN}:job-queue/{q}/quota-share/prod",
                    "ResponseMetadata": prod["ResponseMetadata"]}  # fmt: skip
    research = share("research", 1, "LEND")
    code, message, _ = code_of(lambda: share("prod", 2, "RESERVE"))
    assert (code, message) == ("ClientException", f"Quota share prod already exists in job queue {q}.")
    code, message, _ = code_of(lambda: aws.create_quota_share(
        quotaShareName="off", jobQueue=q, capacityLimits=[{"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}],
        resourceSharingConfiguration={"strategy": "RESERVE"}, preemptionConfiguration={"inSharePreemption": "DISABLED"},
        state="DISABLED"))  # fmt: skip
    assert code == "ClientException" and "state DISABLED is not supported by kubatch" in message
    described = aws.describe_quota_share(quotaShareArn=prod["quotaShareArn"])
    assert described["jobQueueArn"] == f"{ARN}:job-queue/{q}" and described["state"] == "ENABLED"
    assert described["resourceSharingConfiguration"] == {"strategy": "LEND_AND_BORROW", "borrowLimit": 100}
    assert described["capacityLimits"] == [{"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}]
    first = aws.list_quota_shares(jobQueue=q, maxResults=1)
    rest = aws.list_quota_shares(jobQueue=q, maxResults=1, nextToken=first["nextToken"])
    assert [s["quotaShareName"] for s in first["quotaShares"] + rest["quotaShares"]] == ["prod", "research"]
    assert "nextToken" not in rest

    # UpdateQuotaShare changes what it names; the queue's spec is the source
    aws.update_quota_share(quotaShareArn=research["quotaShareArn"],
                           capacityLimits=[{"maxCapacity": 2, "capacityUnit": "NUM_INSTANCES"}],
                           preemptionConfiguration={"inSharePreemption": "ENABLED"})  # fmt: skip
    spec_shares = {s["quotaShareName"]: s for s in batch.kget("jobqueue", q)["spec"]["quotaShares"]}
    assert spec_shares["research"]["capacityLimits"] == [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]
    assert spec_shares["research"]["preemptionConfiguration"] == {"inSharePreemption": "ENABLED"}
    assert spec_shares["research"]["resourceSharingConfiguration"] == {"strategy": "LEND"}

    # concurrent creates of one queue's shares: every one kept (a conflict is read again and retried)
    names = [f"team-{i}" for i in range(6)]
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: share(n, 1, "RESERVE"), names))
    listed = [s["quotaShareName"] for s in aws.list_quota_shares(jobQueue=q)["quotaShares"]]
    assert listed == ["prod", "research", *names]

    # a service job in a share; UpdateServiceJob changes its priority
    job = aws.submit_service_job(jobName="ranked", jobQueue=q, serviceJobType="KUBERNETES_JOB",
                                 serviceRequestPayload=payload(label, "600s"), quotaShareName="prod",
                                 schedulingPriority=1)  # fmt: skip
    updated = aws.update_service_job(jobId=job["jobId"], schedulingPriority=50)
    assert (updated["jobId"], updated["jobName"], updated["jobArn"]) == (job["jobId"], "ranked", job["jobArn"])
    detail = describe(aws, job["jobId"])
    assert detail["schedulingPriority"] == 50 and detail["quotaShareName"] == "prod"
    running = poll(lambda: describe(aws, job["jobId"]), lambda j: j["status"] == "RUNNING", "RUNNING", timeout=90)
    assert running["schedulingPriority"] == 50
    by_share = aws.list_service_jobs(jobQueue=q, jobStatus="RUNNING",
                                     filters=[{"name": "QUOTA_SHARE_NAME", "values": ["prod"]}])  # fmt: skip
    assert [j["jobId"] for j in by_share["jobSummaryList"]] == [job["jobId"]]
    assert by_share["jobSummaryList"][0]["quotaShareName"] == "prod"
    code, _, _ = code_of(lambda: aws.update_service_job(jobId=job["jobId"], schedulingPriority=10000))
    assert code == "ClientException"
    aws.terminate_service_job(jobId=job["jobId"], reason="done")

    # DeleteQuotaShare
    aws.delete_quota_share(quotaShareArn=research["quotaShareArn"])
    code, message, _ = code_of(lambda: aws.describe_quota_share(quotaShareArn=research["quotaShareArn"]))
    assert (code, message) == ("ClientException", f"Quota share research not found in job queue {q}.")
    remaining = [s["quotaShareName"] for s in aws.list_quota_shares(jobQueue=q)["quotaShares"]]
    assert remaining == ["prod", *names]
    code, _, _ = code_of(lambda: aws.delete_quota_share(quotaShareArn=research["quotaShareArn"]))
    assert code == "ClientException"
