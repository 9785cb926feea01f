"""The service_jobs benchmark's pure pieces (bench/scenarios/service_jobs.py).

Proves: the three phases run the same Job (phase A's plain Job, phase B's serviceRequestPayload as
kubatch builds its workload from it, phase C's suspended Job) with the run and key labels the watches
select on, on the pool's nodes, one instance of 1 vCPU; phase C's Job carries the label kubatch adopts
by; the service environment and queue are what docs/service-jobs.md describes; a job's steps are
read from the trackers' times in order; ratios and sizes are as stated."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from bench.baseline import KEY_LABEL, RUN_LABEL
from bench.harness import POOL_LABEL
from bench.scenarios.service_jobs import (
    ADOPT_LABEL,
    STEPS,
    PhaseRun,
    job_template,
    plain_job,
    ratio,
    service_environment,
    service_job,
    service_queue,
    sizes,
)

from kubatch.core import service_jobs as core


def test_sizes_keep_ten_jobs_per_instance() -> None:
    assert sizes(True) == (200, 50)
    assert sizes(False) == (2000, 200)


def test_the_job_is_one_pod_of_one_vcpu_for_one_second_on_the_pool() -> None:
    job = job_template("r", "j00001", "pool")
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 0)
    assert "ttlSecondsAfterFinished" not in spec and "suspend" not in spec
    assert job["metadata"]["labels"] == {RUN_LABEL: "r", KEY_LABEL: "j00001"}
    tmpl = spec["template"]
    assert tmpl["metadata"]["labels"] == {RUN_LABEL: "r", KEY_LABEL: "j00001"}
    assert tmpl["metadata"]["annotations"] == {"sim.kubatch.dev/duration": "1s"}
    assert tmpl["spec"]["nodeSelector"] == {POOL_LABEL: "pool"}
    assert tmpl["spec"]["restartPolicy"] == "Never"
    (container,) = tmpl["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "1"
    assert core.job_instances(job) == 1


def test_phase_a_job_is_the_template_named_and_unsuspended() -> None:
    job = plain_job("r", "j00002", "pool")
    assert job["metadata"]["name"] == "j00002"
    assert job["spec"] == job_template("r", "j00002", "pool")["spec"]
    assert ADOPT_LABEL not in job["metadata"]["labels"]
    assert not core.job_suspended(job)


def test_phase_c_job_is_suspended_and_labelled_for_adoption() -> None:
    job = plain_job("r", "j00003", "pool", queue="sq")
    assert ADOPT_LABEL == core.LABEL_JOB_QUEUE
    assert job["metadata"]["labels"] == {RUN_LABEL: "r", KEY_LABEL: "j00003", ADOPT_LABEL: "sq"}
    assert core.job_suspended(job)
    adopter = core.adoption_job(
        {**job, "metadata": {**job["metadata"], "namespace": "ns", "uid": "u"}}, core.KUBERNETES_JOB
    )
    assert adopter["metadata"]["name"] == "j00003" and adopter["spec"]["jobQueue"] == "sq"
    unsuspended = dict(job, spec={k: v for k, v in job["spec"].items() if k != "suspend"})
    assert unsuspended["spec"] == job_template("r", "j00003", "pool")["spec"]


def test_phase_b_payload_becomes_the_same_job_with_the_watched_labels() -> None:
    bj = service_job("ns", "r", "j00004", "pool", "sq")
    assert bj["kind"] == "BatchJob" and bj["metadata"] == {"name": "j00004", "namespace": "ns"}
    assert bj["spec"]["jobQueue"] == "sq" and bj["spec"]["serviceJobType"] == "KUBERNETES_JOB"
    assert "jobDefinition" not in bj["spec"]
    payload = bj["spec"]["serviceRequestPayload"]
    assert core.payload_problem(payload) is None
    assert core.parse_payload(payload) == job_template("r", "j00004", "pool")
    with_uid = {**bj, "metadata": {**bj["metadata"], "uid": "u1"}}
    built = core.build_workload(with_uid, core.KUBERNETES_JOB, 1, service_environment="se")
    assert built["metadata"]["labels"][RUN_LABEL] == "r" and built["metadata"]["labels"][KEY_LABEL] == "j00004"
    tmpl_labels = built["spec"]["template"]["metadata"]["labels"]
    assert tmpl_labels[RUN_LABEL] == "r" and tmpl_labels[KEY_LABEL] == "j00004"
    assert built["spec"]["template"]["spec"] == job_template("r", "j00004", "pool")["spec"]["template"]["spec"]
    assert core.job_instances(built) == 1


def test_service_environment_and_queue() -> None:
    se = service_environment("se", 50)
    assert se["kind"] == "ServiceEnvironment"
    assert se["spec"] == {
        "serviceEnvironmentType": "KUBERNETES_JOB",
        "state": "ENABLED",
        "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 50}],
    }
    assert core.instances_limit(se) == 50
    q = service_queue("sq", "se")
    assert q["kind"] == "JobQueue" and q["metadata"] == {"name": "sq"}
    assert q["spec"]["jobQueueType"] == "KUBERNETES_JOB"
    assert q["spec"]["serviceEnvironmentOrder"] == [{"order": 1, "serviceEnvironment": "se"}]
    assert "computeEnvironmentOrder" not in q["spec"]


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 3.0) == 0.333
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, None) is None


def _run(batchjobs: bool) -> PhaseRun:
    jobs = SimpleNamespace(unsuspended={"a": 11.0, "b": 12.0}, finished={"a": 15.0})
    pods = SimpleNamespace(created={"a": 12.0}, running={"a": 13.0, "b": 14.5}, finished={"a": 14.0})
    bj = SimpleNamespace(times=lambda state: {"a": 16.0} if state == "SUCCEEDED" else {})
    return PhaseRun(
        t0=10.0,
        submit_end=10.5,
        end=15.0,
        submitted={"a": 10.0, "b": 10.5},
        jobs=cast(Any, jobs),
        pods=cast(Any, pods),
        batchjobs=cast(Any, bj) if batchjobs else None,
    )


def test_a_phase_reads_each_job_steps_from_the_trackers() -> None:
    r = _run(True)
    assert r.makespan == 5.0
    assert sorted(r.to_running()) == [3.0, 4.0]
    stamps = r.stamps()
    assert list(stamps["a"]) == list(STEPS)
    assert stamps["a"] == {
        "submitted": 10.0,
        "job unsuspended": 11.0,
        "pod created": 12.0,
        "pod running": 13.0,
        "pod finished": 14.0,
        "job complete": 15.0,
        "batchjob succeeded": 16.0,
    }
    assert stamps["b"] == {"submitted": 10.5, "job unsuspended": 12.0, "pod running": 14.5}
    assert "batchjob succeeded" not in _run(False).stamps()["a"]
