"""Dispatch orders kept between cycles (``DispatchOrders``): after any sequence of additions,
replacements, removals and queue-kind changes they hold the jobs in dispatch order, and ``plan`` over
them decides exactly what it decides over a snapshot of the same jobs."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from kubatch.scheduler import Job, Resources, Snapshot, plan
from kubatch.scheduler.fairshare import within_share_rank
from kubatch.scheduler.orders import DispatchOrders, SortedSeq
from tests.unit.scheduler.test_scheduler_plan_properties import snapshots


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=3000))
def test_sorted_seq_is_a_sorted_set(steps: list[tuple[bool, int]]) -> None:
    seq = SortedSeq()
    model: set[int] = set()
    for add, value in steps:
        item = (value, str(value))
        if add and value not in model:
            seq.add(item)
            model.add(value)
        elif not add and value in model:
            seq.remove(item)
            model.discard(value)
    assert [v for v, _ in seq] == sorted(model)
    assert len(seq) == len(model)


def test_sorted_seq_splits_and_refuses_what_it_lacks() -> None:
    items = [(i, str(i)) for i in range(5000)]
    random.Random(1).shuffle(items)
    seq = SortedSeq(items[:100])
    for item in items[100:]:
        seq.add(item)
    assert list(seq) == sorted(items)
    for item in items[::2]:
        seq.remove(item)
    assert list(seq) == sorted(items[1::2])
    try:
        seq.remove(items[0])
    except KeyError:
        pass
    else:
        raise AssertionError("removing a missing item must raise KeyError")


def _variant(job: Job, rnd: random.Random, queues: list[str]) -> Job:
    """The same key with other rank or queue fields, or with only a blocked reason changed."""
    pick = rnd.randrange(5)
    if pick == 0:
        return replace(job, retried=not job.retried)
    if pick == 1:
        return replace(job, priority=rnd.randrange(3), share=rnd.choice(["a", "b", "team1", None]))
    if pick == 2:
        return replace(job, queue=rnd.choice(queues))
    if pick == 3:
        return replace(job, order=(rnd.randrange(10),))
    return replace(job, blocked_reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - x", blocked_since=1.0)


@given(snapshots(), st.randoms(use_true_random=False), st.integers(0, 60), st.booleans())
def test_kept_orders_plan_what_a_snapshot_of_the_same_jobs_plans(
    s: Snapshot, rnd: random.Random, churn: int, tell_kinds: bool
) -> None:
    queues = [q.name for q in s.queues] + ["nowhere"]
    orders = DispatchOrders(fair_queues=rnd.sample(queues, rnd.randrange(len(queues) + 1)))
    current: dict[str, Job] = {}
    for job in s.jobs:
        orders.add(job)
        current[job.key] = job
    for _ in range(churn):
        key = rnd.choice([j.key for j in s.jobs] + ["extra"]) if s.jobs else "extra"
        action = rnd.randrange(4)
        if action == 0:
            orders.discard(key)
            current.pop(key, None)
        elif action == 1:
            base = current.get(key) or Job(key, rnd.choice(queues), Resources(1.0, 0, 0), (rnd.randrange(10),))
            job = _variant(base, rnd, queues)
            orders.add(job)
            current[key] = job
        elif action == 2:
            orders.set_fair_queues(rnd.sample(queues, rnd.randrange(len(queues) + 1)))
        else:
            orders.add(current[key]) if key in current else orders.discard(key)
    if tell_kinds:
        orders.set_fair_queues(q.name for q in s.queues if q.policy is not None)
    assert {j.key: j for j in orders} == current
    assert len(orders) == len(current)
    for q in queues:
        if orders.is_fair(q):
            for share, jobs in orders.shares(q).items():
                listed = list(jobs)
                assert listed == sorted(listed, key=within_share_rank)
                assert {j.share or "" for j in listed} == {share}
        else:
            listed = list(orders.fifo(q))
            assert listed == sorted(listed, key=lambda j: j.fifo_rank)
        assert sorted(j.key for j in orders.jobs_of(q)) == sorted(k for k, j in current.items() if j.queue == q)
    fresh = replace(s, jobs=tuple(current.values()))
    assert plan(replace(s, jobs=()), orders) == plan(fresh)


def test_a_job_replaced_at_the_same_rank_leaves_nothing_of_its_old_entry_held() -> None:
    """In a deep queue every job is re-derived at least once (its status write's response): the
    sequences must then hold the new entry's rank, or each job keeps two entries' tuples alive."""
    jobs = [
        Job(f"{q}/j{i}", q, Resources(1.0, 0, 0), (float(i), f"j{i}", -1), share="a")
        for q in ("fifo", "fair")
        for i in range(2000)
    ]
    orders = DispatchOrders(jobs, fair_queues=["fair"])
    for old in jobs[::3]:
        new = replace(old, key="".join(old.key), order=tuple(old.order), blocked_reason="waiting")
        assert new.key is not old.key and new.key == old.key
        orders.add(new)
        assert orders.get(old.key) is new
    held = {id(rank[-1]) for rank in orders._fifo["fifo"]}
    held |= {id(rank[-1]) for seq in orders._shares["fair"].values() for rank in seq}
    assert held == {id(job.key) for job in orders}  # every rank is its current entry's
    assert [j.key for j in orders.fifo("fifo")] == [j.key for j in jobs if j.queue == "fifo"]
    seq = SortedSeq([(1, "a"), (2, "b")])
    try:
        seq.replace((3, "c"))
    except KeyError:
        pass
    else:
        raise AssertionError("replacing a missing item must raise KeyError")


def test_plan_refuses_jobs_from_both_places() -> None:
    s = Snapshot(now=0.0, envs=(), queues=(), jobs=(Job("a", "q", Resources(1.0, 0, 0)),))
    try:
        plan(s, DispatchOrders())
    except ValueError:
        pass
    else:
        raise AssertionError("plan must refuse jobs in the snapshot and in the orders")


def test_kept_fair_share_orders_count_the_shares_of_waiting_jobs_as_active() -> None:
    """computeReservation keeps (30 %) ** active shares free: the waiting jobs' two shares are active."""
    from kubatch.scheduler import ComputeEnv, Policy, Queue

    env = ComputeEnv("ce", capacity=Resources(10.0, 1 << 20, 0))
    queue = Queue("fq", 1, ("ce",), policy="fsw")
    policy = Policy("fsw", share_decay_seconds=600, compute_reservation=30)
    jobs = [Job(f"{s}{i}", "fq", Resources(1.0, 0, 0), (i,), share=s) for s in "ab" for i in range(8)]
    s = Snapshot(now=0.0, envs=(env,), queues=(queue,), jobs=tuple(jobs), policies=(policy,))
    fresh = plan(s)
    assert len(fresh.placements) == 9  # 10 x (1 - 0.3 ** 2) = 9.1 vCPUs
    orders = DispatchOrders(jobs, fair_queues=["fq"])
    assert plan(replace(s, jobs=()), orders) == fresh
