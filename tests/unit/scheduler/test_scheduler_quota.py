"""The quota share scheduler (kubatch.scheduler.quota): placement within shares' limits, borrowing,
cross-share reclaim, lowered limits and in-share preemption; examples and properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubatch.scheduler.quota import (
    CROSS_SHARE,
    IN_SHARE,
    LEND,
    LEND_AND_BORROW,
    LIMIT_LOWERED,
    RESERVE,
    Holding,
    QuotaShare,
    QuotaSnapshot,
    Waiting,
    plan_quota,
)

U = "NUM_INSTANCES"


def share(name: str, own: int, strategy: str = RESERVE, borrow: int = 100, in_share: bool = False) -> QuotaShare:
    return QuotaShare(name, ((U, own),), strategy, borrow, in_share)


def snap(
    shares: list[QuotaShare],
    waiting: list[Waiting] = (),
    holding: list[Holding] = (),
    limit: int = 100,  # type: ignore[assignment]
) -> QuotaSnapshot:
    return QuotaSnapshot("q", "se", ((U, limit),), tuple(shares), tuple(waiting), tuple(holding))


def wait(key: str, s: str, n: int = 1, priority: int = 0, t: float = 0.0) -> Waiting:
    return Waiting(key, s, n, U, priority, (t, key))


def hold(key: str, s: str, n: int = 1, priority: int = 0, started: float = 0.0, stopping: bool = False) -> Holding:
    return Holding(key, s, n, U, priority, started, stopping)


def placed(plan: object) -> list[str]:
    return [k for k, _ in plan.placements]  # type: ignore[attr-defined]


def test_a_share_runs_up_to_its_own_limit_and_waits_behind_its_head() -> None:
    p = plan_quota(snap([share("a", 2)], [wait("a1", "a", t=1), wait("a2", "a", t=2), wait("a3", "a", t=3)]))
    assert placed(p) == ["a1", "a2"]
    assert p.blocked["a3"].startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
    assert p.share_front == {"a": "a3"}
    assert p.usage == {"a": {U: 2}}


def test_priority_orders_jobs_inside_a_share() -> None:
    p = plan_quota(snap([share("a", 1)], [wait("low", "a", priority=1, t=1), wait("high", "a", priority=9, t=2)]))
    assert placed(p) == ["high"]


def test_reserve_never_lends() -> None:
    shares = [share("a", 2, RESERVE), share("b", 1, LEND_AND_BORROW, borrow=500)]
    p = plan_quota(snap(shares, [wait("b1", "b", t=1), wait("b2", "b", t=2), wait("b3", "b", t=3)]))
    assert placed(p) == ["b1"]
    assert "b2" in p.blocked


def test_lend_and_borrow_borrows_idle_lent_capacity_up_to_its_borrow_limit() -> None:
    shares = [share("a", 4, LEND), share("b", 2, LEND_AND_BORROW, borrow=50)]
    p = plan_quota(snap(shares, [wait(f"b{i}", "b", t=i) for i in range(6)]))
    assert placed(p) == ["b0", "b1", "b2"]  # 2 own + 50% of 2 borrowed
    assert p.borrowed == {"a": {}, "b": {U: 1}}
    assert "borrowLimit 50%" in p.blocked_detail["b3"]


def test_lend_only_shares_do_not_borrow() -> None:
    shares = [share("a", 4, LEND), share("b", 1, LEND)]
    p = plan_quota(snap(shares, [wait("b1", "b", t=1), wait("b2", "b", t=2)]))
    assert placed(p) == ["b1"]


def test_an_owner_reclaims_lent_capacity_by_preempting_the_borrower() -> None:
    shares = [share("a", 2, LEND), share("b", 2, LEND_AND_BORROW, borrow=100)]
    holding = [
        hold("b1", "b", started=1),
        hold("b2", "b", started=2),
        hold("b3", "b", started=3),
        hold("b4", "b", started=4),
    ]
    p = plan_quota(snap(shares, [wait("a1", "a", t=10)], holding, limit=4))
    assert placed(p) == []
    assert list(p.preemptions) == ["b4"]  # the latest started holds the borrowed capacity
    assert p.preemptions["b4"].reason == CROSS_SHARE
    assert p.preemptions["b4"].for_job == "a1"
    assert "reclaiming 1 lent to b" in p.blocked_detail["a1"]
    # Next cycle, b4 being stopped: a1 waits for it without a second victim, and b's own RUNNABLE
    # jobs do not get the capacity.
    holding[3] = hold("b4", "b", started=4, stopping=True)
    p = plan_quota(snap(shares, [wait("a1", "a", t=10), wait("b4", "b", t=0)], holding, limit=4))
    assert placed(p) == [] and p.preemptions == {}
    # Once it is gone, the owner gets it.
    p = plan_quota(snap(shares, [wait("a1", "a", t=10), wait("b4", "b", t=0)], holding[:3], limit=4))
    assert placed(p) == ["a1"]


def test_reclaim_chooses_most_borrowed_then_lowest_priority_then_shortest_running() -> None:
    shares = [share("a", 4, LEND), share("b", 1, LEND_AND_BORROW, 1000), share("c", 1, LEND_AND_BORROW, 1000)]
    holding = [
        hold("b-own", "b", started=1),
        hold("b-big", "b", n=2, priority=5, started=2),  # 2 borrowed
        hold("c-own", "c", started=1),
        hold("c-low", "c", priority=1, started=3),  # 1 borrowed, low priority
        hold("c-high", "c", priority=8, started=9),  # 1 borrowed
    ]
    p = plan_quota(snap(shares, [wait("a1", "a", n=3, t=10)], holding, limit=6))
    assert list(p.preemptions) == ["b-big", "c-low"]


def test_no_preemption_when_reclaim_would_not_be_enough() -> None:
    shares = [share("a", 4, LEND), share("b", 2, LEND_AND_BORROW)]
    holding = [hold("b1", "b"), hold("b2", "b"), hold("b3", "b")]
    # The environment is smaller than the shares' limits: b borrows 1, a needs 3 more than is free.
    p = plan_quota(snap(shares, [wait("a1", "a", n=4)], holding, limit=4))
    assert p.preemptions == {}
    assert "a1" in p.blocked


def test_a_lowered_limit_preempts_the_lowest_priority_jobs_first() -> None:
    holding = [hold("x", "a", priority=5, started=1), hold("y", "a", priority=1, started=2), hold("z", "a", priority=9)]
    p = plan_quota(snap([share("a", 1, LEND)], [], holding))
    assert set(p.preemptions) == {"x", "y"}
    assert all(v.reason == LIMIT_LOWERED and v.for_job is None for v in p.preemptions.values())


def test_in_share_preemption_only_for_a_higher_priority() -> None:
    holding = [hold("low", "a", priority=1, started=5), hold("mid", "a", priority=5, started=1)]
    enabled = share("a", 2, in_share=True)
    p = plan_quota(snap([enabled], [wait("new", "a", priority=5)], holding))
    assert list(p.preemptions) == ["low"]
    assert p.preemptions["low"].reason == IN_SHARE
    # Equal priority: never.
    p = plan_quota(snap([enabled], [wait("new", "a", priority=1)], holding))
    assert p.preemptions == {}
    # Disabled: it waits.
    p = plan_quota(snap([share("a", 2)], [wait("new", "a", priority=9)], holding))
    assert p.preemptions == {} and "new" in p.blocked


def test_in_share_preemption_waits_for_its_victims_without_more() -> None:
    enabled = share("a", 1, in_share=True)
    holding = [hold("low", "a", priority=1, stopping=True)]
    p = plan_quota(snap([enabled], [wait("new", "a", priority=5)], holding))
    assert p.preemptions == {} and placed(p) == []
    assert "waiting for its preempted jobs" in p.blocked_detail["new"]


def test_a_job_bigger_than_its_share_may_hold_is_a_misconfiguration() -> None:
    p = plan_quota(snap([share("a", 2)], [wait("big", "a", n=3)]))
    assert p.blocked["big"].startswith("MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - Quota share")
    p = plan_quota(snap([share("a", 8)], [wait("big", "a", n=5)], limit=4))
    assert p.blocked["big"].startswith("MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - Service environment")


def test_instance_types_are_separate_units() -> None:
    shares = [QuotaShare("a", ((U, 1), ("m5.large", 2)))]
    env = ((U, 4), ("m5.large", 2))
    waiting = (
        Waiting("n1", "a", 1, U, order=(1,)),
        Waiting("m1", "a", 2, "m5.large", order=(2,)),
        Waiting("n2", "a", 1, U, order=(3,)),
    )
    p = plan_quota(QuotaSnapshot("q", "se", env, tuple(shares), waiting))
    assert placed(p) == ["n1", "m1"]
    assert p.blocked["n2"].endswith("instance type [se]")


def test_a_problem_blocks_every_share_head() -> None:
    s = QuotaSnapshot("q", "se", ((U, 4),), (share("a", 2), share("b", 2)), (wait("a1", "a"), wait("b1", "b")))
    s = QuotaSnapshot(s.queue, s.env, s.env_limits, s.shares, s.waiting, problem=("ACTION_REQUIRED - x", "d"))
    p = plan_quota(s)
    assert placed(p) == [] and p.blocked == {"a1": "ACTION_REQUIRED - x", "b1": "ACTION_REQUIRED - x"}


# ---- properties -----------------------------------------------------------------------------------

STRATEGIES = st.sampled_from([RESERVE, LEND, LEND_AND_BORROW])


@st.composite
def scenarios(draw: st.DrawFn) -> QuotaSnapshot:
    n_shares = draw(st.integers(1, 4))
    shares = tuple(
        QuotaShare(
            f"s{i}",
            ((U, draw(st.integers(0, 5))),),
            draw(STRATEGIES),
            draw(st.integers(0, 200)),
            draw(st.booleans()),
        )
        for i in range(n_shares)
    )
    names = [s.name for s in shares]
    holding = tuple(
        Holding(
            f"h{i}",
            draw(st.sampled_from(names)),
            draw(st.integers(1, 3)),
            U,
            draw(st.integers(0, 3)),
            float(draw(st.integers(0, 20))),
            draw(st.booleans()) and draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 10)))
    )
    waiting = tuple(
        Waiting(f"w{i}", draw(st.sampled_from(names)), draw(st.integers(1, 3)), U, draw(st.integers(0, 3)), (i,), False)
        for i in range(draw(st.integers(0, 10)))
    )
    limit = draw(st.integers(0, 20))
    return QuotaSnapshot("q", "se", ((U, limit),), shares, waiting, holding)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_plan_properties(s: QuotaSnapshot) -> None:
    p = plan_quota(s)
    shares = {x.name: x for x in s.shares}
    waiting = {w.key: w for w in s.waiting}
    holding = {h.key: h for h in s.holding}
    placed_keys = {k for k, _ in p.placements}
    # No job is both placed and preempted; only running jobs not already stopping are preempted.
    assert not placed_keys & set(p.preemptions)
    assert placed_keys <= set(waiting)
    assert all(k in holding and not holding[k].stopping for k in p.preemptions)
    # Never over a share's limit plus what it may borrow, nor over the environment's limit: the
    # jobs that keep running (not stopping, not preempted) and the placed ones.
    for name, sh in shares.items():
        kept = sum(h.instances for h in s.holding if h.share == name and not h.stopping and h.key not in p.preemptions)
        new = sum(waiting[k].instances for k in placed_keys if waiting[k].share == name)
        assert kept + new <= sh.cap(U)
        if new:
            assert kept + new <= sh.own(U) or sh.borrows
    total_held = sum(h.instances for h in s.holding)
    new_total = sum(waiting[k].instances for k in placed_keys)
    if new_total:
        assert total_held + new_total <= dict(s.env_limits)[U]
    # Borrowed capacity comes only from lending shares' idle capacity.
    usage_after = {n: 0 for n in shares}
    for h in s.holding:
        usage_after[h.share] += h.instances
    for k in placed_keys:
        usage_after[waiting[k].share] += waiting[k].instances
    if new_total:
        lent = sum(max(0, usage_after[n] - shares[n].own(U)) for n in shares)
        idle = sum(max(0, shares[n].own(U) - usage_after[n]) for n in shares if shares[n].lends)
        borrowed_before = sum(
            max(0, sum(h.instances for h in s.holding if h.share == n) - shares[n].own(U)) for n in shares
        )
        assert lent <= idle or lent <= borrowed_before
    for key, v in p.preemptions.items():
        victim = holding[key]
        if v.kind == "in-share":
            # Never preempting for an equal or lower priority, and only inside the share.
            cause = waiting[v.for_job or ""]
            assert victim.share == cause.share and victim.priority < cause.priority
            assert shares[cause.share].in_share_preemption
        elif v.kind == "cross-share":
            # Reclaim takes capacity back from a borrower for an owner within its own limit, and
            # nothing borrows in that unit in the same plan.
            cause = waiting[v.for_job or ""]
            assert victim.share != cause.share
            held = sum(h.instances for h in s.holding if h.share == victim.share)
            assert held > shares[victim.share].own(U)
            assert not any(waiting[k].share == victim.share for k in placed_keys)
            assert cause.key not in placed_keys
        else:
            assert v.kind == "limit"
            kept = sum(h.instances for h in s.holding if h.share == victim.share and not h.stopping)
            assert kept > shares[victim.share].cap(U)


def test_quota_share_metrics_are_scrape_time_gauges_per_share() -> None:
    from kubatch.observability.metrics import quota_share_metrics

    shares = [share("a", 2, LEND), share("b", 1, LEND_AND_BORROW)]
    p = plan_quota(snap(shares, [wait("b1", "b", t=1), wait("b2", "b", t=2)]))
    families = {m.name: {tuple(s.labels.values()): s.value for s in m.samples} for m in quota_share_metrics({"q": p})}
    assert families["kubatch_quota_share_usage"] == {("q", "a", U): 0.0, ("q", "b", U): 2.0}
    assert families["kubatch_quota_share_borrowed"] == {("q", "a", U): 0.0, ("q", "b", U): 1.0}
