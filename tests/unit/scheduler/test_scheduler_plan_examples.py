"""Example-based tests of ``plan``: placement, blocking reasons, time limits, consumables, gangs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kubatch.scheduler import Consumable, Policy, Resources, ShareUsage, TimeLimitAction, plan
from kubatch.scheduler.plan import (
    ACTION_REQUIRED,
    CANCEL_REASON_PREFIX,
    CE_MAX_RESOURCE,
    INSUFFICIENT_CAPACITY,
    JOB_RESOURCE_REQUIREMENT,
    reason_code,
)
from tests.unit.scheduler.scheduler_helpers import env, job, placed_keys, queue, snap

# --- FIFO, priority, fall-through -------------------------------------------------------------


def test_fifo_places_in_submission_order_until_full() -> None:
    jobs = [job(f"j{i}", "q", 1.0, seq=i) for i in (3, 1, 2, 0, 4)]
    p = plan(snap([env("ce", 3)], [queue("q", "ce")], jobs))
    assert placed_keys(p) == ["j0", "j1", "j2"]
    assert reason_code(p.blocked["j3"]) == INSUFFICIENT_CAPACITY
    assert p.queue_front["q"] == ("j3", "j4")
    assert p.blocked_queues == {"q"}


def test_retried_job_goes_first() -> None:
    jobs = [job("old", "q", seq=1), job("retry", "q", seq=9, retried=True), job("new", "q", seq=2)]
    p = plan(snap([env("ce", 1)], [queue("q", "ce")], jobs))
    assert placed_keys(p) == ["retry"]
    assert p.queue_front["q"] == ("old", "new")


def test_fifo_ignores_scheduling_priority() -> None:
    jobs = [job("a", "q", seq=1), job("b", "q", seq=2, priority=100)]
    p = plan(snap([env("ce", 1)], [queue("q", "ce")], jobs))
    assert placed_keys(p) == ["a"]


def test_higher_priority_queue_wins_shared_environment() -> None:
    jobs = [job("low", "lo", seq=0), job("high", "hi", seq=5)]
    qs = [queue("lo", "ce", priority=1), queue("hi", "ce", priority=10)]
    p = plan(snap([env("ce", 1)], qs, jobs))
    assert p.placements == [("high", "ce")]
    assert reason_code(p.blocked["low"]) == INSUFFICIENT_CAPACITY


def test_lower_priority_queue_uses_what_is_left() -> None:
    jobs = [job("big", "hi", 4.0), job("small", "lo", 1.0)]
    qs = [queue("lo", "ce", priority=1), queue("hi", "ce", priority=10)]
    p = plan(snap([env("ce", 4, used=Resources(2.0, 0, 0))], qs, jobs))
    assert p.placements == [("small", "ce")]
    assert reason_code(p.blocked["big"]) == INSUFFICIENT_CAPACITY


def test_environment_fall_through_by_order() -> None:
    qs = [queue("q", "first", "second")]
    # First has room: it is used even though the second has room as well.
    p = plan(snap([env("first", 2), env("second", 8)], qs, [job("a", "q")]))
    assert p.placements == [("a", "first")]
    # First full: fall through.
    full = env("first", 2, used=Resources(2.0, 0, 0))
    p = plan(snap([full, env("second", 8)], qs, [job("a", "q")]))
    assert p.placements == [("a", "second")]
    # First cannot ever fit the job: fall through.
    p = plan(snap([env("first", 2), env("second", 8)], qs, [job("a", "q", 4.0)]))
    assert p.placements == [("a", "second")]
    # First INVALID / DISABLED / CREATING: fall through.
    cases: list[dict[str, Any]] = [
        {"status": "INVALID"},
        {"state": "DISABLED"},
        {"status": "CREATING"},
        {"status": "DELETING"},
    ]
    for kw in cases:
        p = plan(snap([env("first", 8, **kw), env("second", 8)], qs, [job("a", "q")]))
        assert p.placements == [("a", "second")], kw
    # UPDATING environments keep taking jobs.
    p = plan(snap([env("first", 8, status="UPDATING"), env("second", 8)], qs, [job("a", "q")]))
    assert p.placements == [("a", "first")]


def test_wave_fills_first_environment_then_the_next() -> None:
    jobs = [job(f"j{i}", "q", seq=i) for i in range(5)]
    p = plan(snap([env("a", 2), env("b", 2)], [queue("q", "a", "b")], jobs))
    assert p.placements == [("j0", "a"), ("j1", "a"), ("j2", "b"), ("j3", "b")]


def test_memory_and_gpus_are_not_over_committed() -> None:
    jobs = [job(f"j{i}", "q", 0.25, seq=i, memory=1024, gpus=1) for i in range(5)]
    ce = env("ce", 64, memory=2048, gpus=4, has_gpu_instance_types=True)
    p = plan(snap([ce], [queue("q", "ce")], jobs))
    assert placed_keys(p) == ["j0", "j1"]


def test_disabled_queue_still_dispatches_its_queued_jobs() -> None:
    """AWS: a DISABLED queue takes no new submissions, but jobs already in it run (admission refuses
    the new ones; the plan serves what is queued as for an ENABLED queue)."""
    jobs = [job("a", "q", seq=0), job("b", "q", seq=1), job("c", "q", seq=2)]
    p = plan(snap([env("ce", 2)], [queue("q", "ce", state="DISABLED")], jobs))
    assert placed_keys(p) == ["a", "b"]
    assert set(p.blocked) == {"c"} and p.blocked_queues == frozenset({"q"})
    assert p.queue_front["q"] == ("c",)


def test_queue_front_is_capped_at_100() -> None:
    jobs = [job(f"j{i:03d}", "q", seq=i) for i in range(250)]
    p = plan(snap([env("ce", 10)], [queue("q", "ce")], jobs))
    assert len(p.placements) == 10
    assert len(p.queue_front["q"]) == 100
    assert p.queue_front["q"][0] == "j010"


# --- blocking reasons -------------------------------------------------------------------------


def test_oversized_job_blocks_fifo_queue_with_max_resource() -> None:
    jobs = [job("small0", "q", seq=0), job("huge", "q", 64.0, seq=1), job("small2", "q", seq=2)]
    p = plan(snap([env("ce", 16), env("ce2", 32)], [queue("q", "ce", "ce2")], jobs))
    assert placed_keys(p) == ["small0"]
    # AWS's exact sentence; which environment and figures are kubatch's detail, kept apart.
    assert p.blocked["huge"] == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
        "the CPU requirement of the job."
    )
    assert p.blocked_detail["huge"] == "ce: needs 64 vCPU, maxvCpus 16; ce2: needs 64 vCPU, maxvCpus 32"
    assert "small2" not in p.blocked
    assert p.blocked_queues == {"q"}
    assert p.queue_front["q"] == ("huge", "small2")


def test_gpu_job_without_gpu_environment_is_job_resource_requirement() -> None:
    p = plan(snap([env("ce", 16, gpus=8)], [queue("q", "ce")], [job("g", "q", gpus=1)]))
    assert p.blocked["g"] == (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
        "than that can be met by the CE(s) attached to the job queue."
    )
    assert p.blocked_detail["g"] == "ce: GPU job but the CE has no GPU instance types"
    gpu_ce = env("ce", 16, gpus=8, has_gpu_instance_types=True)
    p = plan(snap([gpu_ce], [queue("q", "ce")], [job("g", "q", gpus=1)]))
    assert p.placements == [("g", "ce")]


def test_memory_larger_than_any_instance_is_job_resource_requirement() -> None:
    ce = env("ce", 64, memory=1 << 20, max_node=Resources(16.0, 32768, 0))
    p = plan(snap([ce], [queue("q", "ce")], [job("m", "q", 2.0, memory=65536)]))
    assert p.blocked["m"].startswith(JOB_RESOURCE_REQUIREMENT + " - ")


def test_all_environments_invalid_is_action_required() -> None:
    envs = [env("a", 8, status="INVALID"), env("b", 8, state="DISABLED")]
    p = plan(snap(envs, [queue("q", "a", "b", "missing")], [job("j", "q")]))
    assert p.blocked["j"] == "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
    assert p.blocked_detail["j"] == "a: ENABLED/INVALID, b: DISABLED/VALID, missing: MISSING"
    assert p.blocked_queues == {"q"}


def test_missing_consumable_is_action_required() -> None:
    p = plan(snap([env("ce", 8)], [queue("q", "ce")], [job("j", "q", consumables=(("nope", 1),))]))
    assert p.blocked["j"] == (
        "ACTION_REQUIRED - A consumable resource the job requires does not exist or is smaller than the request."
    )
    assert p.blocked_detail["j"] == "consumable resource nope does not exist"


def test_blocked_head_in_lower_queue_does_not_stop_other_queues() -> None:
    jobs = [job("huge", "a", 99.0), job("x", "b")]
    qs = [queue("a", "ce", priority=5), queue("b", "ce", priority=1)]
    p = plan(snap([env("ce", 4)], qs, jobs))
    assert p.placements == [("x", "ce")]
    assert reason_code(p.blocked["huge"]) == CE_MAX_RESOURCE


# --- consumables ------------------------------------------------------------------------------


def test_consumable_with_two_units_places_two_of_six() -> None:
    jobs = [job(f"j{i}", "q", seq=i, consumables=(("lic", 1),)) for i in range(6)]
    p = plan(snap([env("ce", 64)], [queue("q", "ce")], jobs, consumables=(Consumable("lic", 2),)))
    assert placed_keys(p) == ["j0", "j1"]
    assert reason_code(p.blocked["j2"]) == INSUFFICIENT_CAPACITY
    assert p.blocked["j2"] == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type [ce]"
    )
    assert p.blocked_detail["j2"] == "waiting for consumable resource(s) [lic]"


def test_consumable_in_use_and_non_replenishable() -> None:
    jobs = [job(f"j{i}", "q", seq=i, consumables=(("tok", 2),)) for i in range(4)]
    cons = (Consumable("tok", 5, in_use=2, replenishable=False),)
    p = plan(snap([env("ce", 64)], [queue("q", "ce")], jobs, consumables=cons))
    assert placed_keys(p) == ["j0"]


def test_consumable_request_above_total_is_action_required() -> None:
    jobs = [job("j", "q", consumables=(("lic", 3),))]
    p = plan(snap([env("ce", 64)], [queue("q", "ce")], jobs, consumables=(Consumable("lic", 2),)))
    assert p.blocked["j"].startswith(ACTION_REQUIRED + " - ")


# --- multi-node gangs -------------------------------------------------------------------------


def test_gang_is_all_or_nothing() -> None:
    gang = job("mnp", "q", 4.0, num_nodes=4)
    p = plan(snap([env("ce", 16, used=Resources(4.0, 0, 0))], [queue("q", "ce")], [gang]))
    assert p.placements == []
    assert reason_code(p.blocked["mnp"]) == INSUFFICIENT_CAPACITY
    p = plan(snap([env("ce", 16)], [queue("q", "ce")], [gang, job("after", "q", seq=1)]))
    assert p.placements == [("mnp", "ce")]
    assert reason_code(p.blocked["after"]) == INSUFFICIENT_CAPACITY


def test_gang_larger_than_max_vcpus_and_node_limits() -> None:
    p = plan(snap([env("ce", 8)], [queue("q", "ce")], [job("mnp", "q", 4.0, num_nodes=3)]))
    assert reason_code(p.blocked["mnp"]) == CE_MAX_RESOURCE
    ce = env("ce", 64, max_node=Resources(4.0, 1 << 20, 0))
    p = plan(snap([ce], [queue("q", "ce")], [job("mnp", "q", 8.0, num_nodes=2)]))
    assert reason_code(p.blocked["mnp"]) == JOB_RESOURCE_REQUIREMENT


def test_gang_skips_spot_environments() -> None:
    envs = [env("spot", 64, spot=True), env("od", 64)]
    p = plan(snap(envs, [queue("q", "spot", "od")], [job("mnp", "q", 2.0, num_nodes=2)]))
    assert p.placements == [("mnp", "od")]
    p = plan(snap(envs[:1], [queue("q", "spot")], [job("mnp", "q", 2.0, multinode=True)]))
    assert reason_code(p.blocked["mnp"]) == JOB_RESOURCE_REQUIREMENT


def test_gang_runs_on_an_unmanaged_environment() -> None:
    """Unlike AWS (no multi-node jobs on UNMANAGED), kubatch runs gangs on the admin's own nodes."""
    envs = [env("own", 64, type="UNMANAGED")]
    p = plan(snap(envs, [queue("q", "own")], [job("mnp", "q", 2.0, num_nodes=2)]))
    assert p.placements == [("mnp", "own")]


# --- jobStateTimeLimitActions -----------------------------------------------------------------


def _time_limited(now: float, **head_kw: Any) -> tuple[list[str], dict[str, str], dict[str, str]]:
    action = TimeLimitAction(CE_MAX_RESOURCE, 600)
    head = job("huge", "q", 99.0, seq=0, runnable_since=0.0, **head_kw)
    qs = [queue("q", "ce", time_limit_actions=(action,))]
    p = plan(snap([env("ce", 4)], qs, [head, job("next", "q", seq=1)], now=now))
    return placed_keys(p), p.blocked, p.cancellations


def test_time_limit_cancels_head_after_max_time_and_next_job_runs() -> None:
    recorded = {"blocked_reason": CE_MAX_RESOURCE + " - earlier detail", "blocked_since": 100.0}
    placed, blocked, cancelled = _time_limited(699.0, **recorded)
    assert cancelled == {} and placed == [] and "huge" in blocked
    placed, blocked, cancelled = _time_limited(700.0, **recorded)
    assert cancelled == {"huge": CANCEL_REASON_PREFIX + CE_MAX_RESOURCE}
    assert cancelled["huge"] == "Canceled by JobStateTimeLimit action due to reason: " + CE_MAX_RESOURCE
    assert placed == ["next"] and blocked == {}


def test_time_limit_needs_the_same_recorded_reason() -> None:
    # Never recorded as blocked: this cycle starts the clock, no cancellation yet.
    _, blocked, cancelled = _time_limited(10_000.0)
    assert cancelled == {} and "huge" in blocked
    # Recorded with another reason: the blocked state just changed.
    _, _, cancelled = _time_limited(10_000.0, blocked_reason=INSUFFICIENT_CAPACITY, blocked_since=0.0)
    assert cancelled == {}
    # Recorded reason without a time: runnable_since is the clock.
    _, _, cancelled = _time_limited(10_000.0, blocked_reason=CE_MAX_RESOURCE)
    assert "huge" in cancelled


def test_time_limit_never_fires_for_action_required() -> None:
    action = TimeLimitAction(ACTION_REQUIRED, 600)
    head = job("j", "q", blocked_reason=ACTION_REQUIRED, blocked_since=0.0)
    qs = [queue("q", "ce", time_limit_actions=(action,))]
    p = plan(snap([env("ce", 4, status="INVALID")], qs, [head], now=1e6))
    assert p.cancellations == {} and "j" in p.blocked


def test_time_limit_on_capacity_wait() -> None:
    action = TimeLimitAction(INSUFFICIENT_CAPACITY, 600)
    head = job("j", "q", 2.0, blocked_reason=INSUFFICIENT_CAPACITY, blocked_since=50.0)
    qs = [queue("q", "ce", time_limit_actions=(action,))]
    p = plan(snap([env("ce", 4, used=Resources(3.0, 0, 0))], qs, [head], now=650.0))
    assert p.cancellations == {"j": CANCEL_REASON_PREFIX + INSUFFICIENT_CAPACITY}


# --- fair share -------------------------------------------------------------------------------


def _fair(
    policy: Policy, vcpus: float, per_share: dict[str, int], share_usage: tuple[ShareUsage, ...] = ()
) -> Counter[str]:
    jobs = [
        job(f"{share}-{i:03d}", "q", seq=i, share=share) for share, count in per_share.items() for i in range(count)
    ]
    p = plan(
        snap(
            [env("ce", vcpus)],
            [queue("q", "ce", policy=policy.name)],
            jobs,
            policies=(policy,),
            share_usage=share_usage,
        )
    )
    return Counter(k.split("-")[0] for k in placed_keys(p))


def test_equal_weight_fair_share_splits_a_wave_evenly() -> None:
    assert _fair(Policy("fs"), 10, {"a": 20, "b": 20}) == {"a": 5, "b": 5}
    assert _fair(Policy("fs"), 9, {"a": 20, "b": 20, "c": 20}) == {"a": 3, "b": 3, "c": 3}


def test_weight_factor_quarter_gets_four_fifths() -> None:
    got = _fair(Policy("fs", weights=(("a", 0.25), ("b", 1.0))), 100, {"a": 200, "b": 200})
    assert abs(got["a"] - 80) <= 1 and got["a"] + got["b"] == 100


def test_prefix_identifiers_share_their_weight() -> None:
    policy = Policy("fs", weights=(("team*", 1.0),))
    got = _fair(policy, 40, {"team1": 40, "team2": 40, "solo": 40})
    # team1 and team2 each weigh 2 (1.0 x 2 active matches); solo weighs 1.
    assert got == {"solo": 20, "team1": 10, "team2": 10}


def test_current_usage_counts_with_zero_decay() -> None:
    usage = (ShareUsage("q", "a", usage=1e9, running_vcpus=4.0),)
    got = _fair(Policy("fs"), 6, {"a": 10, "b": 10}, share_usage=usage)
    # a already holds 4 vCPUs, so b catches up first (history ignored with shareDecaySeconds=0).
    assert got == {"a": 1, "b": 5}


def test_decayed_history_counts_with_decay_window() -> None:
    usage = (ShareUsage("q", "a", usage=3600.0 * 4, running_vcpus=0.0),)
    got = _fair(Policy("fs", share_decay_seconds=3600), 6, {"a": 10, "b": 10}, share_usage=usage)
    assert got == {"a": 1, "b": 5}
    got = _fair(Policy("fs", share_decay_seconds=0), 6, {"a": 10, "b": 10}, share_usage=usage)
    assert got == {"a": 3, "b": 3}


def test_priority_orders_jobs_within_a_share() -> None:
    jobs = [job("lo", "q", seq=0, share="a", priority=1), job("hi", "q", seq=5, share="a", priority=9)]
    p = plan(snap([env("ce", 1)], [queue("q", "ce", policy="fs")], jobs, policies=(Policy("fs"),)))
    assert placed_keys(p) == ["hi"]


def test_compute_reservation_leaves_room_for_an_inactive_share() -> None:
    policy = Policy("fs", compute_reservation=50)
    # One active share: (50/100)^1 = 50% of 10 vCPUs stays free.
    jobs = [job(f"a{i}", "q", seq=i, share="a") for i in range(10)]
    p = plan(snap([env("ce", 10)], [queue("q", "ce", policy="fs")], jobs, policies=(policy,)))
    assert len(p.placements) == 5
    assert p.blocked == {} and p.blocked_queues == frozenset()  # held by policy, not blocked
    # Next cycle a new share arrives: two active shares keep only 25% free, so b gets its jobs.
    used = Resources(5.0, 0, 0)
    running = (ShareUsage("q", "a", running_vcpus=5.0),)
    later = [job(f"a{i}", "q", seq=i, share="a") for i in range(5, 10)] + [job("b0", "q", seq=20, share="b")]
    p = plan(
        snap(
            [env("ce", 10, used=used)],
            [queue("q", "ce", policy="fs")],
            later,
            policies=(policy,),
            share_usage=running,
        )
    )
    assert "b0" in placed_keys(p)
    assert len(p.placements) == 2  # 7.5 vCPUs allowed, 5 used: b0 then one more


def test_fair_share_head_that_can_never_run_blocks_the_queue() -> None:
    jobs = [job("huge", "q", 99.0, share="a"), job("b0", "q", share="b", seq=1)]
    p = plan(snap([env("ce", 4)], [queue("q", "ce", policy="fs")], jobs, policies=(Policy("fs"),)))
    assert p.placements == []
    assert reason_code(p.blocked["huge"]) == CE_MAX_RESOURCE
    assert p.queue_front["q"] == ("huge", "b0")
