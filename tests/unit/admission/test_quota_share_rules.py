"""Quota shares in the cross-object rules (kubatch.core.admission): a job of a quota-managed queue
names one of its quota shares; quota shares and quota share policies only where they apply."""

from __future__ import annotations

from typing import Any

from kubatch.core.admission import World, quota_managed, validate_batch_job, validate_job_queue
from tests.unit.admission.test_service_rules import environment, service_job, service_queue

QUOTA_POLICY = {"metadata": {"name": "qp"}, "spec": {"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}}
FAIR_POLICY = {"metadata": {"name": "fp"}, "spec": {"fairsharePolicy": {}}}
SHARES = [
    {"quotaShareName": "a", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]},
    {"quotaShareName": "b", "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]},
]


def quota_world(**queue_spec: Any) -> World:
    queue = service_queue(schedulingPolicy="qp", quotaShares=SHARES, **queue_spec)
    return World(
        namespace="ns",
        queues={"sq": queue},
        service_envs={"se": environment()},
        policies={"qp": QUOTA_POLICY, "fp": FAIR_POLICY},
    )


def messages(job: dict[str, Any], w: World) -> list[str]:
    return [str(v) for v in validate_batch_job(job, w)]


def test_a_job_naming_an_existing_quota_share_passes() -> None:
    assert messages(service_job(quotaShareName="a", schedulingPriority=5), quota_world()) == []


def test_every_job_of_a_quota_managed_queue_names_a_quota_share() -> None:
    (msg,) = messages(service_job(), quota_world())
    assert msg.startswith("spec.quotaShareName: required")
    assert "(a, b)" in msg


def test_an_unknown_quota_share_is_refused() -> None:
    (msg,) = messages(service_job(quotaShareName="c"), quota_world())
    assert msg == 'spec.quotaShareName: quota share "c" does not exist in job queue "sq" (a, b)'


def test_a_quota_managed_queue_takes_no_share_identifier() -> None:
    (msg,) = messages(service_job(quotaShareName="a", shareIdentifier="x"), quota_world())
    assert msg.startswith("spec.shareIdentifier:")


def test_quota_share_name_only_on_quota_managed_queues() -> None:
    w = World(namespace="ns", queues={"sq": service_queue()}, service_envs={"se": environment()})
    (msg,) = messages(service_job(quotaShareName="a"), w)
    assert msg.startswith('spec.quotaShareName: "a" is not allowed')


def test_quota_managed_needs_a_service_queue_and_a_quota_policy() -> None:
    assert quota_managed(service_queue(schedulingPolicy="qp"), QUOTA_POLICY)
    assert not quota_managed(service_queue(schedulingPolicy="fp"), FAIR_POLICY)
    assert not quota_managed({"spec": {"jobQueueType": "EKS", "schedulingPolicy": "qp"}}, QUOTA_POLICY)
    assert not quota_managed(service_queue(), None)


def test_quota_shares_need_a_quota_share_policy() -> None:
    w = quota_world()
    ok = service_queue(schedulingPolicy="qp", quotaShares=SHARES)
    assert validate_job_queue(ok, w) == []
    fair = service_queue(schedulingPolicy="fp", quotaShares=SHARES)
    assert [v.field for v in validate_job_queue(fair, w)] == ["spec.quotaShares"]
    none = service_queue(quotaShares=SHARES)
    assert [v.field for v in validate_job_queue(none, w)] == ["spec.quotaShares"]


def test_a_quota_share_policy_only_on_service_queues() -> None:
    w = quota_world()
    compute = {"metadata": {"name": "q"}, "spec": {"priority": 1, "schedulingPolicy": "qp"}}
    assert [v.field for v in validate_job_queue(compute, w)] == ["spec.schedulingPolicy"]
