"""Tests of the fair-share building blocks: decay, usage tracking, weights, reservation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.scheduler import Policy, ShareUsage, UsageTracker
from kubatch.scheduler.fairshare import ShareWeights, accumulate, decay, reserved_fraction


def test_decay_zero_window_forgets_everything() -> None:
    assert decay(100.0, 1.0, 0) == 0.0
    assert accumulate(100.0, 8.0, 60.0, 0) == 0.0


def test_decay_is_exponential_with_the_window_as_time_constant() -> None:
    assert decay(100.0, 3600.0, 3600.0) == pytest.approx(100.0 / math.e)
    assert decay(100.0, 0.0, 3600.0) == 100.0


def test_accumulate_converges_to_rate_times_window() -> None:
    u = 0.0
    for _ in range(200):
        u = accumulate(u, 4.0, 60.0, 600.0)
    assert u == pytest.approx(4.0 * 600.0)


@given(st.floats(0, 1e6), st.floats(0, 64), st.floats(0.1, 1e4), st.floats(0.1, 1e4), st.floats(1, 1e5))
def test_accumulate_splits_over_time(usage: float, vcpus: float, t1: float, t2: float, d: float) -> None:
    once = accumulate(usage, vcpus, t1 + t2, d)
    twice = accumulate(accumulate(usage, vcpus, t1, d), vcpus, t2, d)
    assert once == pytest.approx(twice, rel=1e-9, abs=1e-6)


def test_usage_tracker_advances_and_forgets() -> None:
    t = UsageTracker().advance(0.0, {("q", "a"): 4.0}, {"q": 100.0})
    t = t.advance(100.0, {("q", "a"): 4.0}, {"q": 100.0})
    assert t.entries[("q", "a")].usage == pytest.approx(4.0 * 100.0 * (1 - math.exp(-1)))
    assert t.active_shares(100.0) == {("q", "a")}
    rows = t.share_usage({("q", "a"): 4.0, ("q", "b"): 1.0})
    assert [(r.share, r.running_vcpus) for r in rows] == [("a", 4.0), ("b", 1.0)]
    # Idle for far longer than the window: inactive, then forgotten.
    t = t.advance(100.0 + 100 * 100.0, {}, {"q": 100.0})
    assert t.active_shares(t.at or 0.0) == frozenset()
    assert ("q", "a") not in t.entries
    # Zero decay: nothing remembered once idle.
    z = UsageTracker().advance(0.0, {("q", "a"): 4.0}, {}).advance(5.0, {}, {})
    assert z.entries == {}


def test_reserved_fraction_matches_the_guide() -> None:
    assert reserved_fraction(50, 1) == 0.5
    assert reserved_fraction(50, 2) == 0.25
    assert reserved_fraction(50, 3) == 0.125
    assert reserved_fraction(25, 3) == pytest.approx(0.015625)
    assert reserved_fraction(0, 1) == 0.0


def test_share_weights_exact_prefix_default() -> None:
    policy = Policy("p", weights=(("teamA", 0.5), ("teamB*", 0.5), ("team*", 3.0)))
    w = ShareWeights(policy, ["teamA", "teamB1", "teamB2", "teamB3", "other"])
    assert w.weight("teamA") == 0.5
    assert w.weight("teamB1") == pytest.approx(1.5)  # 0.5 x 3 active matches
    assert w.weight("teamC") == 3.0  # no active match: counted as one
    assert w.weight("other") == 1.0
    assert ShareWeights(None, ["x"]).weight("x") == 1.0


def test_share_usage_row_defaults() -> None:
    assert ShareUsage("q", "s") == ShareUsage("q", "s", 0.0, 0.0)
