"""IndexSet (against a plain set model), ArrayChildren and the array parent's status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.arrays import ArrayChildren, IndexSet, array_status, child_job_id, status_summary
from kubatch.core.states import REASON_ARRAY_CHILD_FAILED, JobStatus

S = JobStatus
small_sets = st.sets(st.integers(0, 80), max_size=40)


def test_format_and_parse() -> None:
    s = IndexSet.of([*range(0, 41), 52, 60, 61])
    assert str(s) == "0-40,52,60-61"
    assert IndexSet.parse("0-40,52,60-61") == s
    assert IndexSet.parse(" 3 , 1-2 ") == IndexSet.span(1, 4)
    assert str(IndexSet()) == "" and IndexSet.parse("") == IndexSet() and IndexSet.parse(None) == IndexSet()
    assert len(s) == 44 and 52 in s and 53 not in s and -1 not in s and "1" not in s


@pytest.mark.parametrize("bad", ["a", "1-", "-1", "3-1", "1,,2", "1-2-3", "1.5"])
def test_parse_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        IndexSet.parse(bad)


def test_large_array_stays_compact() -> None:
    s = IndexSet.span(0, 10_000).remove(5000)
    assert str(s) == "0-4999,5001-9999" and len(s) == 9999
    assert s.first(3) == IndexSet.of([0, 1, 2]) and s.min() == 0 and s.max() == 9999


@given(small_sets)
def test_roundtrip(items: set[int]) -> None:
    s = IndexSet.of(items)
    assert IndexSet.parse(str(s)) == s
    assert list(s) == sorted(items)
    assert len(s) == len(items)
    assert bool(s) == bool(items)
    # ranges are canonical: sorted, disjoint, non-adjacent
    for (_, hi), (lo2, _) in zip(s.ranges, s.ranges[1:], strict=False):
        assert lo2 > hi + 1


@given(small_sets, small_sets)
def test_algebra_matches_set_model(a: set[int], b: set[int]) -> None:
    sa, sb = IndexSet.of(a), IndexSet.of(b)
    assert set(sa | sb) == a | b
    assert set(sa - sb) == a - b
    assert set(sa & sb) == a & b
    assert hash(sa | sb) == hash(IndexSet.of(a | b))


@given(small_sets, st.integers(0, 90))
def test_add_remove_contains(a: set[int], x: int) -> None:
    s = IndexSet.of(a)
    assert (x in s) == (x in a)
    assert set(s.add(x)) == a | {x}
    assert set(s.remove(x)) == a - {x}


@given(small_sets, st.integers(-10, 10), st.integers(0, 50))
def test_shift_and_first(a: set[int], delta: int, n: int) -> None:
    s = IndexSet.of(a)
    assert set(s.shift(delta)) == {x + delta for x in a if x + delta >= 0}
    assert list(s.first(n)) == sorted(a)[:n]


# parent status ----------------------------------------------------------------------------------
def _summary(**counts: int) -> dict[str, int]:
    return {s.value: counts.get(s.value, 0) for s in S}


def test_parent_status_rules() -> None:
    assert array_status(_summary(SUBMITTED=10), 10) == (S.SUBMITTED, "")
    assert array_status(_summary(SUBMITTED=9, RUNNABLE=1), 10)[0] == S.PENDING
    assert array_status(_summary(RUNNING=5, SUCCEEDED=5), 10)[0] == S.PENDING
    assert array_status(_summary(SUCCEEDED=10), 10)[0] == S.SUCCEEDED
    # a failed child fails the parent only once all children are done
    assert array_status(_summary(FAILED=1, RUNNING=9), 10)[0] == S.PENDING
    assert array_status(_summary(FAILED=1, SUCCEEDED=9), 10) == (S.FAILED, REASON_ARRAY_CHILD_FAILED)
    # monotonic: once PENDING never SUBMITTED again; terminal stays
    assert array_status(_summary(SUBMITTED=10), 10, S.PENDING)[0] == S.PENDING
    assert array_status(_summary(RUNNING=10), 10, S.FAILED)[0] == S.FAILED


@given(st.lists(st.sampled_from(list(S)), min_size=2, max_size=30))
def test_parent_only_shows_four_states(children: list[JobStatus]) -> None:
    status, _ = array_status(status_summary(children))
    assert status in {S.SUBMITTED, S.PENDING, S.SUCCEEDED, S.FAILED}
    if all(c == S.SUCCEEDED for c in children):
        assert status == S.SUCCEEDED
    elif all(c in (S.SUCCEEDED, S.FAILED) for c in children):
        assert status == S.FAILED
    elif all(c == S.SUBMITTED for c in children):
        assert status == S.SUBMITTED
    else:
        assert status == S.PENDING


def test_array_children_moves_and_status_roundtrip() -> None:
    kids = ArrayChildren.new(100)
    kids = kids.move(IndexSet.span(0, 100), S.RUNNABLE).move(IndexSet.span(0, 3), S.RUNNING).move(7, S.FAILED)
    assert kids.state_of(1) == S.RUNNING and kids.state_of(7) == S.FAILED and kids.state_of(50) == S.RUNNABLE
    stored = kids.to_status()
    assert stored["RUNNING"] == "0-2" and stored["RUNNABLE"] == "3-6,8-99" and stored["FAILED"] == "7"
    assert ArrayChildren.from_status(100, stored) == kids
    assert kids.summary()["RUNNABLE"] == 96 and sum(kids.summary().values()) == 100
    assert kids.status() == (S.PENDING, "")
    with pytest.raises(IndexError):
        kids.state_of(100)


def test_from_status_fills_unlisted_as_submitted() -> None:
    kids = ArrayChildren.from_status(5, {"RUNNING": "1"})
    assert kids.get(S.SUBMITTED) == IndexSet.of([0, 2, 3, 4])


@given(st.lists(st.tuples(st.integers(0, 19), st.sampled_from(list(S))), max_size=40))
def test_array_children_against_dict_model(moves: list[tuple[int, JobStatus]]) -> None:
    kids = ArrayChildren.new(20)
    model = dict.fromkeys(range(20), S.SUBMITTED)
    for idx, state in moves:
        kids = kids.move(idx, state)
        model[idx] = state
    assert all(kids.state_of(i) == model[i] for i in range(20))
    assert kids.summary() == status_summary(model.values())


def test_child_job_id() -> None:
    assert child_job_id("abc", 0) == "abc:0"
