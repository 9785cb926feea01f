"""``plan_service``: service job queues against their service environments' NUM_INSTANCES limits."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from kubatch.scheduler import Job, Policy, Queue, Resources, TimeLimitAction
from kubatch.scheduler.plan import CANCEL_REASON_PREFIX, INSUFFICIENT_CAPACITY, reason_code
from kubatch.scheduler.service import SERVICE_ENV_MAX_RESOURCE, ServiceEnv, ServiceSnapshot, plan_service


def job(key: str, instances: int = 1, *, queue: str = "q", order: float = 0.0, **kw: object) -> Job:
    return Job(key=key, queue=queue, needs=Resources(float(instances), 0, 0), order=(order, key), **kw)  # type: ignore[arg-type]


def snap(
    jobs: list[Job],
    *,
    limit: int = 3,
    in_use: int = 0,
    state: str = "ENABLED",
    status: str = "VALID",
    queues: tuple[Queue, ...] = (Queue("q", 1, ()),),
    env_type: str = "KUBERNETES_JOB",
    now: float = 1000.0,
    policies: tuple[Policy, ...] = (),
) -> ServiceSnapshot:
    return ServiceSnapshot(
        now=now,
        envs=(ServiceEnv("se", env_type, limit, in_use, state, status),),
        queues=queues,
        env_of=tuple((q.name, "se") for q in queues),
        queue_types=tuple((q.name, "KUBERNETES_JOB") for q in queues),
        jobs=tuple(jobs),
        policies=policies,
    )


def test_jobs_are_scheduled_up_to_the_limit_and_the_rest_wait_behind_the_head() -> None:
    p = plan_service(snap([job(f"j{i}", order=i) for i in range(5)], limit=3, in_use=1))
    assert p.placements == [("j0", "se"), ("j1", "se")]
    assert reason_code(p.blocked["j2"]) == INSUFFICIENT_CAPACITY
    assert p.blocked["j2"].endswith("[se]")
    assert p.blocked_detail["j2"] == "needs 1 instances; 3 of 3 in use in service environment se"
    assert p.queue_front["q"] == ("j2", "j3", "j4")
    assert p.blocked_queues == frozenset({"q"})


def test_a_job_bigger_than_the_limit_blocks_the_queue_with_the_misconfiguration_reason() -> None:
    p = plan_service(snap([job("big", 4, order=0), job("small", 1, order=1)], limit=3))
    assert p.placements == []  # head-of-line: the small job does not overtake
    assert reason_code(p.blocked["big"]) == SERVICE_ENV_MAX_RESOURCE
    assert "small" not in p.blocked


def test_a_disabled_or_invalid_environment_schedules_nothing() -> None:
    disabled = plan_service(snap([job("a")], state="DISABLED"))
    assert disabled.placements == []
    assert disabled.blocked["a"] == "ACTION_REQUIRED - Service environment associated with the job queue is DISABLED."
    for status in ("CREATING", "INVALID", "DELETING"):
        p = plan_service(snap([job("a")], status=status))
        assert p.placements == [] and p.blocked["a"].startswith("ACTION_REQUIRED - Service environment")
        assert p.blocked_detail["a"] == f"service environment se is {status}"
    wrong_type = plan_service(snap([job("a")], env_type="OTHER"))
    assert wrong_type.placements == [] and "of type OTHER" in wrong_type.blocked_detail["a"]


def test_queues_sharing_an_environment_are_served_by_priority() -> None:
    queues = (Queue("low", 1, ()), Queue("high", 5, ()))
    jobs = [job("l1", queue="low", order=0), job("h1", queue="high", order=5), job("h2", queue="high", order=6)]
    p = plan_service(snap(jobs, limit=2, queues=queues))
    assert p.placements == [("h1", "se"), ("h2", "se")]
    assert reason_code(p.blocked["l1"]) == INSUFFICIENT_CAPACITY


def test_fifo_retried_first_then_submission_order() -> None:
    p = plan_service(snap([job("new", order=0), job("retry", order=9, retried=True)], limit=1))
    assert p.placements == [("retry", "se")]


def test_fair_share_orders_by_share_then_priority() -> None:
    queues = (Queue("q", 1, (), policy="fs"),)
    jobs = [
        job("a1", share="a", order=0),
        job("a2", share="a", order=1),
        job("b1", share="b", order=2, priority=1),
        job("b2", share="b", order=3, priority=9),
    ]
    p = plan_service(snap(jobs, limit=2, queues=queues, policies=(Policy("fs"),)))
    assert sorted(k for k, _ in p.placements) == ["a1", "b2"]  # one per share; b2 by its priority


def test_time_limit_action_cancels_a_head_blocked_long_enough() -> None:
    action = TimeLimitAction(reason=INSUFFICIENT_CAPACITY, max_time_seconds=600)
    queues = (Queue("q", 1, (), time_limit_actions=(action,)),)
    head = job("head", order=0, blocked_reason=INSUFFICIENT_CAPACITY + " - x", blocked_since=100.0, runnable_since=50.0)
    p = plan_service(snap([head, job("next", order=1)], limit=1, in_use=1, queues=queues, now=800.0))
    assert p.cancellations == {"head": CANCEL_REASON_PREFIX + INSUFFICIENT_CAPACITY}
    assert reason_code(p.blocked["next"]) == INSUFFICIENT_CAPACITY
    young = plan_service(snap([head, job("next", order=1)], limit=1, in_use=1, queues=queues, now=650.0))
    assert young.cancellations == {}


@given(
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["q1", "q2"]), st.booleans()), max_size=30),
    st.integers(0, 8),
    st.integers(0, 8),
)
def test_never_over_the_limit_and_never_past_a_head(
    specs: list[tuple[int, str, bool]], limit: int, in_use: int
) -> None:
    queues = (Queue("q1", 2, ()), Queue("q2", 1, ()))
    jobs = [job(f"j{i}", n, queue=q, order=i, retried=r) for i, (n, q, r) in enumerate(specs)]
    p = plan_service(snap(jobs, limit=limit, in_use=in_use, queues=queues))
    placed = sum(int(j.needs.vcpus) for j in jobs if j.key in dict(p.placements))
    assert placed <= max(0, limit - in_use)
    by_key = {j.key: j for j in jobs}
    per_queue: dict[str, list[str]] = defaultdict(list)
    for key, _ in p.placements:
        per_queue[by_key[key].queue].append(key)
    for key in p.blocked:
        blocked = by_key[key]
        # Nothing of the blocked head's queue that comes after it in FIFO order was placed.
        later = [k for k in per_queue[blocked.queue] if by_key[k].fifo_rank > blocked.fifo_rank]
        assert later == []
    assert len(p.blocked) <= len(queues)
