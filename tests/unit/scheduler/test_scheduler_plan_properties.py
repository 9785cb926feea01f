"""Hypothesis properties of ``plan`` over random snapshots."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from kubatch.scheduler import (
    ComputeEnv,
    Consumable,
    Job,
    Plan,
    Policy,
    Queue,
    Resources,
    ShareUsage,
    Snapshot,
    plan,
)
from kubatch.scheduler.fairshare import within_share_rank
from kubatch.scheduler.snapshot import EPSILON

ENV_NAMES = ("e0", "e1", "e2", "e3")
SHARES = ("a", "b", "c", "team1", "team2")
POLICIES = (
    Policy("fs", share_decay_seconds=0),
    Policy("fsw", share_decay_seconds=600, compute_reservation=30, weights=(("a", 0.25), ("team*", 0.5))),
)

CONSUMABLE_REFS = ("lic", "db", "gone")
small_vcpus = st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 4.0])


@st.composite
def resources(draw: st.DrawFn, big: bool) -> Resources:
    if big:
        v = draw(st.sampled_from([0.0, 1.0, 2.0, 4.0, 8.0, 16.0]))
        m = draw(st.sampled_from([0, 2048, 8192, 65536]))
        g = draw(st.integers(0, 4))
    else:
        v = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 6.0, 20.0]))
        m = draw(st.sampled_from([0, 1024, 4096, 70000]))
        g = draw(st.integers(0, 2))
    return Resources(v, m, g)


@st.composite
def compute_envs(draw: st.DrawFn, name: str) -> ComputeEnv:
    return ComputeEnv(
        name=name,
        capacity=draw(resources(True)),
        used=draw(resources(False)),
        max_node=draw(st.none() | resources(True)),
        state=draw(st.sampled_from(["ENABLED", "ENABLED", "ENABLED", "DISABLED"])),
        status=draw(st.sampled_from(["VALID", "VALID", "UPDATING", "INVALID", "CREATING", "DELETING"])),
        type=draw(st.sampled_from(["MANAGED", "MANAGED", "UNMANAGED"])),
        has_gpu_instance_types=draw(st.booleans()),
        spot=draw(st.booleans()),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    n_envs = draw(st.integers(1, len(ENV_NAMES)))
    envs = tuple(draw(compute_envs(ENV_NAMES[i])) for i in range(n_envs))
    consumables = tuple(
        Consumable(name, draw(st.integers(0, 4)), draw(st.integers(0, 5)), draw(st.booleans()))
        for name in draw(st.lists(st.sampled_from(["lic", "db"]), unique=True))
    )
    queues = []
    for qi in range(draw(st.integers(1, 4))):
        order = draw(st.lists(st.sampled_from([*ENV_NAMES, "ghost"]), min_size=1, max_size=3, unique=True))
        queues.append(
            Queue(
                name=f"q{qi}",
                priority=draw(st.integers(0, 3)),
                ce_order=tuple(order),
                state=draw(st.sampled_from(["ENABLED", "ENABLED", "ENABLED", "DISABLED"])),
                policy=draw(st.sampled_from([None, None, "fs", "fsw"])),
            )
        )
    jobs = []
    for ji in range(draw(st.integers(0, 30))):
        q = draw(st.sampled_from(queues))
        jobs.append(
            Job(
                key=f"j{ji:02d}",
                queue=draw(st.sampled_from([q.name, q.name, q.name, "nowhere"])),
                needs=Resources(
                    draw(small_vcpus),
                    draw(st.sampled_from([0, 512, 2048])),
                    draw(st.sampled_from([0, 0, 0, 1])),
                ),
                order=(draw(st.integers(0, 10)),),
                num_nodes=draw(st.sampled_from([1, 1, 1, 2, 3])),
                consumables=tuple(
                    (name, draw(st.integers(1, 3)))
                    for name in draw(st.lists(st.sampled_from(CONSUMABLE_REFS), unique=True, max_size=2))
                ),
                share=draw(st.sampled_from(SHARES)),
                priority=draw(st.integers(0, 2)),
                retried=draw(st.booleans()),
            )
        )
    usage = tuple(
        ShareUsage(q.name, s, draw(st.floats(0, 1e4)), draw(st.sampled_from([0.0, 1.0, 4.0])))
        for q in queues
        if q.policy
        for s in draw(st.lists(st.sampled_from(SHARES), unique=True, max_size=3))
    )
    return Snapshot(
        now=1000.0,
        envs=envs,
        queues=tuple(queues),
        jobs=tuple(jobs),
        policies=POLICIES,
        share_usage=usage,
        consumables=consumables,
    )


def _fifo_rank(j: Job) -> tuple[int, tuple[float | int | str, ...], str]:
    return (0 if j.retried else 1, j.order, j.key)


@given(snapshots())
def test_never_over_commits_environments_or_consumables(s: Snapshot) -> None:
    p = plan(s)
    jobs = {j.key: j for j in s.jobs}
    envs = {e.name: e for e in s.envs}
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    cons: dict[str, int] = defaultdict(int)
    for key, env_name in p.placements:
        t = jobs[key].total
        acc = sums[env_name]
        acc[0] += t.vcpus
        acc[1] += t.memory_mib
        acc[2] += t.gpus
        for name, qty in jobs[key].consumables:
            cons[name] += qty
    for env_name, (v, m, g) in sums.items():
        free = envs[env_name].free
        assert v <= free.vcpus + EPSILON and m <= free.memory_mib and g <= free.gpus
    available = {c.name: c.available for c in s.consumables}
    for name, qty in cons.items():
        assert qty <= available[name]


@given(snapshots())
def test_only_enabled_queues_and_accepting_environments(s: Snapshot) -> None:
    p = plan(s)
    jobs = {j.key: j for j in s.jobs}
    envs = {e.name: e for e in s.envs}
    queues = {q.name: q for q in s.queues}
    keys = [k for k, _ in p.placements]
    assert len(keys) == len(set(keys))
    for key, env_name in p.placements:
        j, e = jobs[key], envs[env_name]
        q = queues[j.queue]
        assert e.accepts_jobs and env_name in q.ce_order
        assert j.needs.fits(e.node_limit)
        if j.gang:
            assert not e.spot
        if j.needs.gpus:
            assert e.has_gpu_instance_types
    assert not (set(keys) & (set(p.blocked) | set(p.cancellations)))


@given(snapshots())
def test_queue_priority_order_of_dispatch(s: Snapshot) -> None:
    p = plan(s)
    prio = {q.name: q.priority for q in s.queues}
    jobs = {j.key: j for j in s.jobs}
    seq = [(-prio[jobs[k].queue], jobs[k].queue) for k, _ in p.placements]
    assert seq == sorted(seq)


@given(snapshots())
def test_fifo_order_and_head_of_line_blocking(s: Snapshot) -> None:
    p = plan(s)
    gone = {k for k, _ in p.placements} | set(p.cancellations)
    for q in s.queues:
        if q.policy is not None or q.state != "ENABLED":
            continue
        ordered = sorted((j for j in s.jobs if j.queue == q.name), key=_fifo_rank)
        k = 0
        while k < len(ordered) and ordered[k].key in gone:
            k += 1
        # What left the queue is exactly a prefix of its order (retried jobs first) ...
        assert {j.key for j in ordered[k:]}.isdisjoint(gone)
        # ... and the first job that stayed is the blocked head, the only one with a reason.
        heads = [j.key for j in ordered if j.key in p.blocked]
        if k < len(ordered):
            assert heads == [ordered[k].key]
            assert q.name in p.blocked_queues
            assert p.queue_front[q.name][0] == ordered[k].key
        else:
            assert heads == []
        retried_left = [j for j in ordered[k:] if j.retried]
        if retried_left:
            assert all(j.retried for j in ordered[:k])


@given(snapshots())
def test_fair_share_takes_a_prefix_of_each_share(s: Snapshot) -> None:
    p = plan(s)
    gone = {k for k, _ in p.placements} | set(p.cancellations)
    for q in s.queues:
        if q.policy is None:
            continue
        by_share: dict[str, list[Job]] = defaultdict(list)
        for j in s.jobs:
            if j.queue == q.name:
                by_share[j.share or ""].append(j)
        for jobs in by_share.values():
            flags = [j.key in gone for j in sorted(jobs, key=within_share_rank)]
            assert flags == sorted(flags, reverse=True)
        assert sum(1 for j in s.jobs if j.queue == q.name and j.key in p.blocked) <= 1


@given(snapshots())
def test_queue_front_lists_remaining_jobs(s: Snapshot) -> None:
    p = plan(s)
    gone = {k for k, _ in p.placements} | set(p.cancellations)
    for q in s.queues:
        front = p.queue_front[q.name]
        remaining = {j.key for j in s.jobs if j.queue == q.name} - gone
        assert len(front) == min(100, len(remaining))
        assert set(front) <= remaining


@given(snapshots(), st.randoms(use_true_random=False))
def test_plan_is_deterministic(s: Snapshot, rnd: random.Random) -> None:
    first = plan(s)
    assert plan(s) == first
    shuffled = list(s.jobs)
    rnd.shuffle(shuffled)
    queues = list(s.queues)
    rnd.shuffle(queues)
    assert plan(replace(s, jobs=tuple(shuffled), queues=tuple(queues))) == first


@given(
    st.integers(0, 12),
    st.integers(0, 12),
    small_vcpus,
    st.sampled_from([0.0, 1.0, 4.0, 8.0, 16.0]),
    st.sampled_from([None, "fs"]),
)
def test_higher_priority_queue_fills_shared_environment_first(
    n_high: int, n_low: int, size: float, free: float, policy: str | None
) -> None:
    env = ComputeEnv("shared", capacity=Resources(16.0, 1 << 20, 0), used=Resources(16.0 - free, 0, 0))
    queues = (
        Queue("low", 1, ("shared",), policy=policy),
        Queue("high", 5, ("shared",), policy=policy),
    )
    jobs = [Job(f"h{i:02d}", "high", Resources(size, 0, 0), (i,), share="s") for i in range(n_high)]
    jobs += [Job(f"l{i:02d}", "low", Resources(size, 0, 0), (i,), share="s") for i in range(n_low)]
    s = Snapshot(now=0.0, envs=(env,), queues=queues, jobs=tuple(jobs), policies=POLICIES[:1])
    p: Plan = plan(s)
    slots = int(free // size + EPSILON)
    high = [k for k, _ in p.placements if k.startswith("h")]
    low = [k for k, _ in p.placements if k.startswith("l")]
    assert len(high) == min(n_high, slots)
    assert len(low) == min(n_low, slots - len(high))


@given(st.integers(1, 6), small_vcpus, st.sampled_from([0.0, 2.0, 4.0, 8.0, 12.0, 16.0]))
def test_gang_is_all_or_nothing(nodes: int, size: float, free: float) -> None:
    env = ComputeEnv("ce", capacity=Resources(16.0, 1 << 20, 0), used=Resources(16.0 - free, 0, 0))
    s = Snapshot(
        now=0.0,
        envs=(env,),
        queues=(Queue("q", 1, ("ce",)),),
        jobs=(Job("mnp", "q", Resources(size, 0, 0), num_nodes=nodes),),
    )
    p = plan(s)
    fits = nodes * size <= free + EPSILON
    assert (p.placements == [("mnp", "ce")]) == fits
    assert ("mnp" in p.blocked) != fits
