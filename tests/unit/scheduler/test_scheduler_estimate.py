"""Start-time estimates: the plan simulated forward over expected run times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubatch.scheduler import Consumable, Job, Policy, Resources
from kubatch.scheduler.estimate import Running, RunTimes, estimate_starts
from tests.unit.scheduler.scheduler_helpers import env, job, queue, snap

NOW = 1000.0


def ten_seconds(_: Job) -> float:
    return 10.0


def test_fifo_jobs_start_as_capacity_frees() -> None:
    s = snap([env("ce", 2)], [queue("q", "ce")], [job(f"j{i}", "q", seq=i) for i in range(5)], now=NOW)
    est = estimate_starts(s, [], ten_seconds)
    assert est.complete
    assert est.starts == {"j0": NOW, "j1": NOW, "j2": NOW + 10, "j3": NOW + 10, "j4": NOW + 20}
    assert set(est.where.values()) == {"ce"}


def test_running_work_holds_capacity_until_its_expected_end() -> None:
    s = snap(
        [env("ce", 2, used=Resources(2.0, 0, 0))], [queue("q", "ce")], [job("a", "q"), job("b", "q", seq=1)], now=NOW
    )
    est = estimate_starts(s, [Running("r", NOW + 30, "ce", Resources(2.0, 0, 0), queue="q")], ten_seconds)
    assert est.starts == {"a": NOW + 30, "b": NOW + 30}


def test_work_past_its_expected_end_is_expected_to_end_now() -> None:
    s = snap([env("ce", 1, used=Resources(1.0, 0, 0))], [queue("q", "ce")], [job("a", "q")], now=NOW)
    est = estimate_starts(s, [Running("r", NOW - 50, "ce", Resources(1.0, 0, 0))], ten_seconds)
    assert est.starts == {"a": NOW}


def test_a_head_that_can_never_run_has_no_estimate_nor_have_the_jobs_behind_it() -> None:
    s = snap([env("ce", 4)], [queue("q", "ce")], [job("big", "q", vcpus=8), job("small", "q", seq=1)], now=NOW)
    est = estimate_starts(s, [], ten_seconds)
    assert est.complete
    assert est.starts == {}


def test_the_higher_priority_queue_goes_first_on_a_shared_environment() -> None:
    jobs = [job(f"lo{i}", "lo", seq=i) for i in range(2)] + [job(f"hi{i}", "hi", seq=i) for i in range(2)]
    s = snap([env("ce", 1)], [queue("lo", "ce", priority=1), queue("hi", "ce", priority=9)], jobs, now=NOW)
    est = estimate_starts(s, [], ten_seconds)
    assert [est.starts[k] - NOW for k in ("hi0", "hi1", "lo0", "lo1")] == [0, 10, 20, 30]


def test_non_replenishable_units_do_not_come_back() -> None:
    tokens = Consumable("tokens", total=1)
    jobs = [job("a", "q", consumables=(("tokens", 1),)), job("b", "q", seq=1, consumables=(("tokens", 1),))]
    s = snap([env("ce", 4)], [queue("q", "ce")], jobs, now=NOW, consumables=(tokens,))
    assert estimate_starts(s, [], ten_seconds).starts == {"a": NOW, "b": NOW + 10}
    once = Consumable("tokens", total=1, replenishable=False)
    s = snap([env("ce", 4)], [queue("q", "ce")], jobs, now=NOW, consumables=(once,))
    assert estimate_starts(s, [], ten_seconds).starts == {"a": NOW}


def test_fair_share_alternates_shares_of_equal_weight() -> None:
    jobs = [job(f"a{i}", "q", seq=i, share="A") for i in range(3)] + [
        job(f"b{i}", "q", seq=10 + i, share="B") for i in range(3)
    ]
    s = snap(
        [env("ce", 1)],
        [queue("q", "ce", policy="fs")],
        jobs,
        now=NOW,
        policies=(Policy("fs", share_decay_seconds=3600),),
    )
    est = estimate_starts(s, [], ten_seconds)
    order = sorted(est.starts, key=lambda k: est.starts[k])
    assert est.complete and len(order) == 6
    assert [k[0] for k in order] in (list("ababab"), list("bababa"))


def test_the_simulation_stops_at_its_step_bound() -> None:
    s = snap([env("ce", 1)], [queue("q", "ce")], [job(f"j{i}", "q", seq=i) for i in range(10)], now=NOW)
    est = estimate_starts(s, [], ten_seconds, max_steps=3)
    assert not est.complete
    assert len(est.starts) == 4


def test_run_times_are_a_decayed_mean_bounded_by_the_timeout() -> None:
    rt = RunTimes.empty(default_seconds=600)
    assert rt.expected("d") == 600
    assert rt.expected("d", timeout_seconds=60) == 60
    rt = rt.observe("d", 100).observe("d", 200)
    assert rt.expected("d") == 130
    assert rt.expected("d", timeout_seconds=50) == 50
    # A definition never seen: the mean over every definition, not the default.
    rt = rt.observe("e", 10)
    assert rt.expected("other") == 130 + 0.3 * (10 - 130)
    assert rt.expected("other", timeout_seconds=20) == 20


@given(
    capacity=st.integers(1, 8),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=25),
    runs=st.lists(st.integers(1, 50), min_size=1, max_size=25),
    running=st.integers(0, 3),
)
def test_never_over_capacity_and_never_before_now(
    capacity: int, sizes: list[int], runs: list[int], running: int
) -> None:
    sizes = [min(v, capacity) for v in sizes]
    jobs = [job(f"j{i}", "q", vcpus=float(v), seq=i) for i, v in enumerate(sizes)]
    run_of = {f"j{i}": float(runs[i % len(runs)]) for i in range(len(sizes))}
    held = min(running, capacity)
    s = snap([env("ce", capacity, used=Resources(float(held), 0, 0))], [queue("q", "ce")], jobs, now=NOW)
    est = estimate_starts(s, [Running("r", NOW + 7, "ce", Resources(float(held), 0, 0))], lambda j: run_of[j.key])
    assert est.complete
    intervals = [(est.starts[k], est.starts[k] + run_of[k], sizes[int(k[1:])]) for k in est.starts]
    intervals.append((NOW, NOW + 7, held))
    for start, _, _ in intervals:
        assert start >= NOW
        in_use = sum(v for a, b, v in intervals if a <= start < b)
        assert in_use <= capacity
    # FIFO: a queue never lets a later job start before an earlier one.
    keys = [j.key for j in jobs if j.key in est.starts]
    assert [est.starts[k] for k in keys] == sorted(est.starts[k] for k in keys)
    # Jobs that fit the environment all get an estimate (nothing else is waiting for them).
    assert set(est.starts) == {j.key for j in jobs}
