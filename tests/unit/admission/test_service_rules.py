"""Service jobs and service environments in the cross-object rules: admission (kubatch.core.admission),
access (kubatch.core.access), deletion (kubatch.core.deletion) and a service queue's status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubatch.core.access import Permission, batch_job_uses, job_violations
from kubatch.core.admission import World, references, validate_batch_job, validate_job_queue
from kubatch.core.deletion import attached_service_queues, service_environment_deletion_blockers
from kubatch.runtime.queues import queue_validity

PAYLOAD = json.dumps({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {}}})


def service_queue(se: str = "se", kind: str = "KUBERNETES_JOB", **spec: Any) -> dict[str, Any]:
    order = [{"order": 1, "serviceEnvironment": se}]
    return {
        "metadata": {"name": "sq"},
        "spec": {"jobQueueType": kind, "priority": 1, "serviceEnvironmentOrder": order, **spec},
    }


def environment(status: str | None = "VALID", kind: str = "KUBERNETES_JOB", **meta: Any) -> dict[str, Any]:
    se: dict[str, Any] = {
        "metadata": {"name": "se", **meta},
        "spec": {
            "serviceEnvironmentType": kind,
            "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}],
        },
    }
    if status is not None:
        se["status"] = {"status": status}
    return se


def service_job(**spec: Any) -> dict[str, Any]:
    body = {"jobQueue": "sq", "serviceJobType": "KUBERNETES_JOB", "serviceRequestPayload": PAYLOAD, **spec}
    return {"metadata": {"name": "j", "namespace": "ns"}, "spec": body}


def world(**kw: Any) -> World:
    w = World(namespace="ns", queues={"sq": service_queue()}, service_envs={"se": environment()})
    for key, value in kw.items():
        setattr(w, key, value)
    return w


def messages(job: dict[str, Any], w: World) -> list[str]:
    return [str(v) for v in validate_batch_job(job, w)]


def test_a_service_job_on_a_valid_service_queue_passes() -> None:
    assert messages(service_job(), world()) == []
    assert ("ServiceEnvironment", "se") in references("BatchJob", service_job(), world())


@pytest.mark.parametrize(("status", "refused"), [("VALID", False), ("CREATING", True), ("INVALID", True), (None, True)])
def test_the_environment_must_be_valid_at_submission(status: str | None, refused: bool) -> None:
    found = messages(service_job(), world(service_envs={"se": environment(status)}))
    assert bool(found) == refused
    if refused:
        assert found[0].startswith('spec.jobQueue: service environment "se" of job queue "sq" is ')


def test_a_disabled_environment_still_takes_submissions() -> None:
    se = environment()
    se["spec"]["state"] = "DISABLED"
    assert messages(service_job(), world(service_envs={"se": se})) == []


def test_a_deleted_or_missing_environment_refuses() -> None:
    deleting = environment(deletionTimestamp="2024-01-01T00:00:00Z")
    assert "is DELETING" in messages(service_job(), world(service_envs={"se": deleting}))[0]
    assert "does not exist" in messages(service_job(), world(service_envs={}))[0]


def test_queue_kinds_must_match() -> None:
    compute = {"metadata": {"name": "sq"}, "spec": {"priority": 1, "computeEnvironmentOrder": []}}
    found = messages(service_job(), world(queues={"sq": compute}))
    assert found == [
        'spec.jobQueue: job queue "sq" is a queue of compute environments of jobQueueType EKS, '
        "not of the service job's serviceJobType KUBERNETES_JOB"
    ]
    plain = {"metadata": {"name": "j", "namespace": "ns"}, "spec": {"jobQueue": "sq", "jobDefinition": "d"}}
    assert any("is a service job queue" in m for m in messages(plain, world()))


def test_payload_size_counts_bytes() -> None:
    big = json.dumps({"kind": "Job", "metadata": {"annotations": {"x": "é" * 6000}}}, ensure_ascii=False)
    (found,) = messages(service_job(serviceRequestPayload=big), world())
    assert found.startswith("spec.serviceRequestPayload: is 12") and "at most 10240 bytes" in found


def test_shares_as_on_fair_share_queues() -> None:
    assert messages(service_job(shareIdentifier="a"), world())[0].startswith("spec.shareIdentifier:")
    assert messages(service_job(schedulingPriority=3), world())[0].startswith("spec.schedulingPriority:")
    fair = world(queues={"sq": service_queue(schedulingPolicy="p")})
    assert messages(service_job(shareIdentifier="a", schedulingPriority=3), fair) == []
    assert messages(service_job(), fair)[0].startswith("spec.shareIdentifier: required")


def test_a_service_queue_needs_an_existing_environment_of_its_type() -> None:
    assert validate_job_queue(service_queue(), world()) == []
    (missing,) = validate_job_queue(service_queue("nope"), world())
    assert missing.field == "spec.serviceEnvironmentOrder[0].serviceEnvironment"
    other = world(service_envs={"se": environment(kind="OTHER")})
    (mismatch,) = validate_job_queue(service_queue(), other)
    assert "is of serviceEnvironmentType OTHER, the queue of jobQueueType KUBERNETES_JOB" in mismatch.message
    # An update that keeps the environment is not judged again.
    assert validate_job_queue(service_queue("nope"), world(), old=service_queue("nope")) == []


def test_submitting_a_service_job_needs_create_jobs() -> None:
    (use,) = batch_job_uses(service_job(), world())
    assert use.field == "spec.serviceRequestPayload"
    assert use.use.any_of == (Permission("create", "jobs", group="batch"),)
    (refusal,) = job_violations([use], {}, "alice", "ns")
    assert str(refusal) == (
        'spec.serviceRequestPayload: user "alice" may not create jobs.batch in namespace "ns" (needs create jobs.batch)'
    )
    assert job_violations([use], {Permission("create", "jobs", group="batch"): True}, "alice", "ns") == []


def test_an_environment_is_deleted_once_disabled_detached_and_idle() -> None:
    queues = {"sq": service_queue(), "other": service_queue("se2")}
    assert attached_service_queues("se", queues) == ["sq"]
    se = environment()
    blockers = service_environment_deletion_blockers("se", se, queues, 2)
    assert blockers == [
        "it is ENABLED (set spec.state: DISABLED)",
        "job queue(s) sq still use it (delete them, or name another service environment)",
        "service jobs still hold 2 instance(s) on it",
    ]
    se["spec"]["state"] = "DISABLED"
    assert service_environment_deletion_blockers("se", se, {"other": queues["other"]}, 0) == []


def test_a_service_queues_status_follows_its_environment() -> None:
    assert queue_validity(service_queue(), {}, {}, {"se": environment()}) == ("VALID", "")
    assert queue_validity(service_queue(), {}, {}, {}) == (
        "INVALID",
        "CLIENT_ERROR - service environment not found: se",
    )
    status, reason = queue_validity(service_queue(), {}, {}, {"se": environment("INVALID")})
    assert (status, reason) == ("INVALID", "CLIENT_ERROR - service environment INVALID: se")
    status, reason = queue_validity(service_queue(), {}, {}, {"se": environment(kind="OTHER")})
    assert status == "INVALID" and "of type OTHER" in reason
