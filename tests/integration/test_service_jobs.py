"""Service jobs on the real control plane: batch/v1 Jobs queued by kubatch, run by the real Job controller.

A service job queue (jobQueueType KUBERNETES_JOB) feeds one ServiceEnvironment whose NUM_INSTANCES
limit caps the instances (parallel pods) of its SCHEDULED, STARTING and RUNNING service jobs. The
Jobs' pods run on a kwok node of the test, their run time and exit code from the sim annotations of
the pod template (hack/cluster/kwok-stages.yaml).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.integration.batch import GROUP, TERMINAL, Batch

pytestmark = pytest.mark.integration

PREFIX = "Received status from Kubernetes: "
HOLDING = ("SCHEDULED", "STARTING", "RUNNING")


class Service:
    """Service environments, service queues and service jobs of one test; the Jobs' pods go to a
    kwok node of the test (its label is their nodeSelector)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.label = f"svc-{uuid.uuid4().hex[:8]}"
        batch.make_node(cpu=32, memory="64Gi", labels={"kubatch.dev/service-test": self.label})

    def environment(self, limit: int, *, state: str = "ENABLED", wait: bool = True) -> str:
        name = self.batch.name("se")
        spec = {
            "serviceEnvironmentType": "KUBERNETES_JOB",
            "state": state,
            "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": limit}],
        }
        self.batch.cluster_object("ServiceEnvironment", name, spec)
        if wait:
            self.batch.wait_for(lambda: self.env_status(name).get("status") == "VALID", f"{name} VALID", timeout=30)
        return name

    def env_status(self, name: str) -> dict[str, Any]:
        return dict(self.batch.kget("serviceenvironment", name).get("status") or {})

    def queue(self, env: str, *, priority: int = 1, **spec: Any) -> str:
        name = self.batch.name(f"sq{priority}")
        body = {
            "jobQueueType": "KUBERNETES_JOB",
            "priority": priority,
            "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": env}],
            **spec,
        }
        return self.batch.cluster_object("JobQueue", name, body)

    def payload(
        self, *, duration: str = "2s", parallelism: int | None = None, annotations: dict[str, str] | None = None
    ) -> str:
        job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": {"sim.kubatch.dev/duration": duration, **(annotations or {})}},
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"kubatch.dev/service-test": self.label},
                        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                    },
                },
            },
        }
        if parallelism is not None:
            job["spec"]["parallelism"] = parallelism
            job["spec"]["completions"] = parallelism
        return json.dumps(job)

    def job(self, name: str, queue: str, payload: str | None = None, **spec: Any) -> str:
        body = {
            "jobQueue": queue,
            "serviceJobType": "KUBERNETES_JOB",
            "serviceRequestPayload": payload or self.payload(),
            **spec,
        }
        self.batch.apply(
            {
                "apiVersion": GROUP,
                "kind": "BatchJob",
                "metadata": {"name": name, "namespace": self.batch.ns},
                "spec": body,
            }
        )
        return name

    def workloads(self, job: str) -> list[dict[str, Any]]:
        out = self.batch.kget("jobs.batch", "-n", self.batch.ns, "-l", f"kubatch.dev/service-job={job}")
        return sorted(out["items"], key=lambda j: j["metadata"]["name"])


@pytest.fixture
def svc(batch: Batch) -> Service:
    return Service(batch)


def states(batch: Batch, names: list[str]) -> dict[str, str]:
    return {n: str(batch.status(n).get("status")) for n in names}


def test_a_service_queue_admits_jobs_up_to_the_limit_and_the_rest_wait(batch: Batch, svc: Service) -> None:
    se = svc.environment(2)
    q = svc.queue(se)
    names = [svc.job(f"sj{i}", q, svc.payload(duration="4s")) for i in range(5)]
    seen_holding = 0
    seen_blocked = ""
    deadline = time.monotonic() + 150
    while True:
        now = states(batch, names)
        holding = [n for n, s in now.items() if s in HOLDING]
        assert len(holding) <= 2, now  # never over the environment's limit
        seen_holding = max(seen_holding, len(holding))
        for n in names:
            st = batch.status(n)
            if st.get("status") == "RUNNABLE" and st.get("statusReason", "").startswith("CAPACITY:"):
                seen_blocked = st["statusReason"]
        if all(s in TERMINAL for s in now.values()):
            break
        assert time.monotonic() < deadline, f"service jobs did not finish: {now}"
        time.sleep(0.3)
    assert seen_holding == 2
    sentence = "Service cannot fulfill the capacity requested for instance type"
    assert seen_blocked == f"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - {sentence} [{se}]"
    for n in names:
        st = batch.status(n)
        assert st["status"] == "SUCCEEDED", st
        assert st["statusReason"].startswith(PREFIX + "CompletionsReached"), st
        assert st["scheduledAt"] and st["serviceEnvironment"] == se  # it went through SCHEDULED
        (attempt,) = st["attempts"]
        (workload,) = svc.workloads(n)
        assert workload["metadata"]["name"] == f"{n}-a1"
        assert attempt["serviceResourceId"] == {"name": "JobUid", "value": workload["metadata"]["uid"]}
        owner = workload["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("BatchJob", n, batch.get(n)["metadata"]["uid"])
        assert workload["metadata"]["labels"]["kubatch.dev/job-id"] == st["jobId"]
    env = svc.env_status(se)
    assert env["jobQueues"] == [q]
    batch.wait_for(
        lambda: svc.env_status(se).get("capacityUsage") == [{"capacityUnit": "NUM_INSTANCES", "quantity": 0}],
        "capacity released",
        timeout=30,
    )
    counts = batch.wait_for(
        lambda: (batch.kget("jobqueue", q).get("status") or {}).get("jobCounts", {}).get("SUCCEEDED") == 5,
        "queue counts",
        timeout=30,
    )
    assert counts


def test_scheduled_until_the_job_controller_makes_a_pod(batch: Batch, svc: Service) -> None:
    """A ResourceQuota of 0 pods keeps the Job controller from creating the pod: the job is SCHEDULED
    (handed over, holding its capacity); once the quota goes, it starts and ends."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": batch.ns},
        "spec": {"hard": {"pods": "0"}},
    }
    batch.apply(quota)
    se = svc.environment(1)
    q = svc.queue(se)
    svc.job("held", q, svc.payload(duration="1s"))
    svc.job("next", q, svc.payload(duration="1s"))
    st = batch.wait_status("held", "SCHEDULED", timeout=60)
    assert st["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 1}]
    time.sleep(3)  # the Job controller keeps failing to create the pod: still SCHEDULED, still holding
    assert batch.status("held")["status"] == "SCHEDULED"
    assert batch.status("next")["status"] == "RUNNABLE"
    batch.kubectl("delete", "resourcequota", "no-pods", "-n", batch.ns)
    assert batch.wait_done("held", timeout=120)["status"] == "SUCCEEDED"
    assert batch.wait_done("next", timeout=120)["status"] == "SUCCEEDED"


def test_a_failing_job_is_retried_by_its_status_reason(batch: Batch, svc: Service) -> None:
    se = svc.environment(4)
    q = svc.queue(se)
    retry = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": PREFIX + "BackoffLimitExceeded*", "action": "RETRY"},
            {"onStatusReason": "*", "action": "EXIT"},
        ],
    }
    # The first attempt's pod exits 3 (backoffLimit 0: the Job fails), the second's succeeds.
    flaky = svc.payload(duration="1s", annotations={"sim.kubatch.dev/exit-code-attempt-1": "3"})
    svc.job("flaky", q, flaky, retryStrategy=retry)
    broken = svc.payload(duration="1s", annotations={"sim.kubatch.dev/exit-code": "3"})
    svc.job(
        "broken",
        q,
        broken,
        retryStrategy={"attempts": 3, "evaluateOnExit": [{"onStatusReason": "*", "action": "EXIT"}]},
    )
    st = batch.wait_done("flaky", timeout=120)
    assert st["status"] == "SUCCEEDED", st
    first, second = st["attempts"]
    assert first["statusReason"].startswith(PREFIX + "BackoffLimitExceeded"), first
    assert second["statusReason"].startswith(PREFIX + "CompletionsReached"), second
    assert [w["metadata"]["name"] for w in svc.workloads("flaky")] == ["flaky-a1", "flaky-a2"]
    assert first["serviceResourceId"]["value"] != second["serviceResourceId"]["value"]
    st = batch.wait_done("broken", timeout=120)
    assert st["status"] == "FAILED" and len(st["attempts"]) == 1, st
    assert st["statusReason"].startswith(PREFIX + "BackoffLimitExceeded"), st


def test_terminate_stops_the_job_and_frees_its_capacity(batch: Batch, svc: Service) -> None:
    se = svc.environment(1)
    q = svc.queue(se)
    svc.job("long", q, svc.payload(duration="600s"))
    svc.job("waiting", q, svc.payload(duration="1s"))
    batch.wait_status("long", "RUNNING", timeout=60)
    assert batch.status("waiting")["status"] == "RUNNABLE"
    patch = json.dumps({"spec": {"terminate": {"reason": "no longer needed"}}})
    batch.kubectl("patch", "batchjob", "long", "-n", batch.ns, "--type=merge", "-p", patch)
    st = batch.wait_done("long", timeout=60)
    assert (st["status"], st["statusReason"]) == ("FAILED", "no longer needed")
    assert st["attempts"][0]["statusReason"] == "no longer needed"
    batch.wait_for(lambda: not svc.workloads("long"), "the terminated Job deleted", timeout=60)
    assert batch.wait_done("waiting", timeout=90)["status"] == "SUCCEEDED"


def test_disabled_environment_schedules_nothing_and_limits_apply_at_once(batch: Batch, svc: Service) -> None:
    se = svc.environment(1, state="DISABLED")
    q = svc.queue(se)
    svc.job("a", q, svc.payload(duration="600s"))
    svc.job("b", q, svc.payload(duration="1s"))
    st = batch.wait_for(
        lambda: (s := batch.status("a")).get("statusReason", "").startswith("ACTION_REQUIRED") and s, "a blocked"
    )
    assert st["status"] == "RUNNABLE"
    assert st["statusReason"] == "ACTION_REQUIRED - Service environment associated with the job queue is DISABLED."
    time.sleep(2)
    assert not svc.workloads("a") and not svc.workloads("b")
    batch.kubectl("patch", "serviceenvironment", se, "--type=merge", "-p", json.dumps({"spec": {"state": "ENABLED"}}))
    batch.wait_status("a", "RUNNING", timeout=60)
    st = batch.wait_for(
        lambda: (s := batch.status("b")).get("statusReason", "").startswith("CAPACITY:") and s, "b waits for capacity"
    )
    assert st["status"] == "RUNNABLE"
    # A higher limit applies at once: b starts while a still runs.
    limits = {"spec": {"capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]}}
    batch.kubectl("patch", "serviceenvironment", se, "--type=merge", "-p", json.dumps(limits))
    assert batch.wait_done("b", timeout=60)["status"] == "SUCCEEDED"
    assert batch.status("a")["status"] == "RUNNING"


def test_parallel_jobs_hold_their_instances(batch: Batch, svc: Service) -> None:
    se = svc.environment(3)
    q = svc.queue(se)
    # Submitted within one second, FIFO goes by name: p1, p2, p3.
    svc.job("p1-wide", q, svc.payload(duration="5s", parallelism=2))
    svc.job("p2-too-wide", q, svc.payload(duration="1s", parallelism=2))
    svc.job("p3-huge", q, svc.payload(duration="1s", parallelism=4))
    st = batch.wait_status("p1-wide", *HOLDING, timeout=60)
    assert st["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 2}]
    assert batch.wait_done("p2-too-wide", timeout=90)["status"] == "SUCCEEDED"
    # After p2-too-wide, p3-huge is the head: it can never fit (4 > 3) and blocks the queue.
    st = batch.wait_for(
        lambda: (s := batch.status("p3-huge")).get("statusReason", "").startswith("MISCONFIGURATION") and s,
        "p3-huge blocked",
    )
    assert st["statusReason"].startswith("MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - ")
    assert "needs 4 instances" in st["statusReasonDetail"]
    patch = json.dumps({"spec": {"cancel": {"reason": "too big"}}})
    batch.kubectl("patch", "batchjob", "p3-huge", "-n", batch.ns, "--type=merge", "-p", patch)
    assert batch.wait_done("p3-huge")["statusReason"] == "too big"


def test_a_payload_the_api_server_refuses_fails_the_attempt(batch: Batch, svc: Service) -> None:
    se = svc.environment(1)
    q = svc.queue(se)
    invalid = json.dumps({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": []}}}})
    svc.job("invalid", q, invalid)
    st = batch.wait_done("invalid", timeout=60)
    assert st["status"] == "FAILED"
    assert st["statusReason"].startswith(PREFIX + "Invalid: "), st
    assert not svc.workloads("invalid")


def test_admission_refuses_bad_service_queues_and_jobs(batch: Batch, svc: Service, admission_namespace: str) -> None:
    se = svc.environment(1)
    other = svc.environment(1)
    ce = batch.environment(cpu=1)

    def queue(spec: dict[str, Any]) -> Any:
        body = {"apiVersion": GROUP, "kind": "JobQueue", "metadata": {"name": batch.name("bad")}, "spec": spec}
        return batch.create(body, check=False)

    both = queue(
        {
            "jobQueueType": "KUBERNETES_JOB",
            "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": ce}],
            "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": se}],
        }
    )
    assert both.returncode != 0 and "not both" in both.stderr
    two = queue(
        {
            "jobQueueType": "KUBERNETES_JOB",
            "priority": 1,
            "serviceEnvironmentOrder": [
                {"order": 1, "serviceEnvironment": se},
                {"order": 2, "serviceEnvironment": other},
            ],
        }
    )
    assert two.returncode != 0 and "serviceEnvironmentOrder" in two.stderr and "at most 1" in two.stderr
    none = queue({"jobQueueType": "KUBERNETES_JOB", "priority": 1})
    assert none.returncode != 0 and "exactly one service environment" in none.stderr
    q = svc.queue(se)

    def job(name: str, payload: str) -> Any:
        spec = {"jobQueue": q, "serviceJobType": "KUBERNETES_JOB", "serviceRequestPayload": payload}
        body = {"apiVersion": GROUP, "kind": "BatchJob", "metadata": {"name": name, "namespace": admission_namespace}}
        return batch.create({**body, "spec": spec}, check=False)

    long_ascii = json.dumps({"kind": "Job", "metadata": {"annotations": {"x": "a" * 11000}}})
    refused = job("too-long", long_ascii)
    assert refused.returncode != 0 and "serviceRequestPayload" in refused.stderr
    # Under 10240 characters, over 10 KiB of UTF-8: the webhook counts the bytes.
    wide = json.dumps({"kind": "Job", "metadata": {"annotations": {"x": "€" * 4000}}}, ensure_ascii=False)
    refused = job("too-big", wide)
    assert refused.returncode != 0
    assert "spec.serviceRequestPayload: is 12" in refused.stderr and "at most 10240 bytes" in refused.stderr
    refused = job("not-an-object", "[1, 2, 3]")
    assert refused.returncode != 0 and "must be an object" in refused.stderr
    batch.container_definition("plain")
    compute = {"jobQueue": q, "jobDefinition": "plain"}
    body = {"apiVersion": GROUP, "kind": "BatchJob", "metadata": {"name": "plain", "namespace": admission_namespace}}
    refused = batch.create({**body, "spec": compute}, check=False)
    assert refused.returncode != 0 and "is a service job queue" in refused.stderr
    both_kinds = {**compute, "serviceJobType": "KUBERNETES_JOB", "serviceRequestPayload": "{}"}
    refused = batch.create({**body, "spec": both_kinds}, check=False)
    assert refused.returncode != 0 and "exactly one of them" in refused.stderr
    ok = job("fine", svc.payload())
    assert ok.returncode == 0, ok.stderr


def test_suspended_jobs_labelled_with_a_queue_are_adopted(batch: Batch, svc: Service) -> None:
    """A batch/v1 Job created suspended with the label kubatch.dev/job-queue becomes a service job
    of that queue: its BatchJob (same name) is created, the Job is unsuspended when scheduled, and
    deleting the Job deletes the BatchJob. A Job that is not suspended is left alone."""
    se = svc.environment(1)
    q = svc.queue(se)

    def create_job(name: str, *, suspend: bool, duration: str) -> None:
        manifest = json.loads(svc.payload(duration=duration))
        manifest["metadata"] = {"name": name, "namespace": batch.ns, "labels": {"kubatch.dev/job-queue": q}}
        manifest["spec"]["suspend"] = suspend
        batch.create(manifest)

    create_job("first", suspend=True, duration="4s")
    batch.wait_status("first", *HOLDING, timeout=60)
    create_job("second", suspend=True, duration="1s")
    st = batch.wait_for(
        lambda: (s := batch.status("second")).get("statusReason", "").startswith("CAPACITY:") and s,
        "second waits for capacity",
    )
    assert st["status"] == "RUNNABLE"
    job = batch.kget("jobs.batch", "second", "-n", batch.ns)
    assert job["spec"]["suspend"] is True  # held back by kubatch
    assert job["metadata"]["labels"]["kubatch.dev/service-job"] == "second"
    bj = batch.get("second")
    assert bj["spec"]["jobQueue"] == q and bj["metadata"]["annotations"]["kubatch.dev/workload"] == "second"
    assert bj["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    for name in ("first", "second"):
        st = batch.wait_done(name, timeout=90)
        assert st["status"] == "SUCCEEDED", st
        assert (
            st["attempts"][0]["serviceResourceId"]["value"]
            == batch.kget("jobs.batch", name, "-n", batch.ns)["metadata"]["uid"]
        )
    assert batch.kget("jobs.batch", "second", "-n", batch.ns)["spec"]["suspend"] is False

    create_job("unmanaged", suspend=False, duration="1s")
    batch.wait_for(
        lambda: any(e["reason"] == "NotAdopted" for e in batch.events("unmanaged")), "the NotAdopted Event", timeout=30
    )
    assert batch.kubectl("get", "batchjob", "unmanaged", "-n", batch.ns, check=False).returncode != 0

    batch.kubectl("delete", "jobs.batch", "first", "-n", batch.ns, "--wait=false")
    batch.wait_for(
        lambda: batch.kubectl("get", "batchjob", "first", "-n", batch.ns, check=False).returncode != 0,
        "the BatchJob of a deleted Job deleted",
        timeout=60,
    )


def test_jobs_are_refused_while_the_service_environment_is_invalid(
    batch: Batch, svc: Service, admission_namespace: str
) -> None:
    """A service environment of a type no workload type declares is INVALID (checklist #108): its
    queue accepts no service job until it is VALID."""
    kind = "NOT_DECLARED_ANYWHERE"
    env = batch.name("se-bad")
    limits = [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}]
    batch.cluster_object("ServiceEnvironment", env, {"serviceEnvironmentType": kind, "capacityLimits": limits})
    status = batch.wait_for(
        lambda: (st := svc.env_status(env)).get("status") == "INVALID" and st, f"{env} INVALID", timeout=30
    )
    assert f"serviceEnvironmentType {kind} is not known to kubatch" in status["statusReason"]
    queue = svc.queue(env, jobQueueType=kind)
    body = {"jobQueue": queue, "serviceJobType": kind, "serviceRequestPayload": svc.payload()}
    manifest = {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": "refused", "namespace": admission_namespace},
        "spec": body,
    }
    out = batch.create(manifest, check=False)
    assert out.returncode != 0
    assert f'service environment "{env}" of job queue "{queue}" is INVALID' in out.stderr, out.stderr
