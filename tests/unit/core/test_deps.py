"""Dependency gates (plain, N_TO_N, SEQUENTIAL), validation and cycle detection."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.arrays import ArrayChildren, IndexSet
from kubatch.core.deps import (
    MAX_DEPENDENCIES,
    DependencyStatus,
    GateState,
    array_child_gates,
    dependency_gate,
    dependency_graph,
    find_cycle,
    validate_depends_on,
)
from kubatch.core.states import JobStatus

S = JobStatus


def _job(name: str, depends: list[dict[str, Any]], size: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"dependsOn": depends}
    if size:
        spec["arrayProperties"] = {"size": size}
    return {"metadata": {"name": name}, "spec": spec}


def test_plain_dependency() -> None:
    job = _job("b", [{"jobName": "a"}])
    assert dependency_gate(job, {"a": DependencyStatus(S.RUNNING)}).state == GateState.WAIT
    assert dependency_gate(job, {"a": DependencyStatus(S.SUCCEEDED)}).state == GateState.READY
    failed = dependency_gate(job, {"a": DependencyStatus(S.FAILED)})
    assert failed.state == GateState.FAILED
    assert failed.status_reason == "Dependent Job failed" and failed.dependency == "a"
    assert failed.message == "Dependent Job failed: a"
    # unknown dependency: wait
    assert dependency_gate(job, {}).state == GateState.WAIT
    # no dependencies: ready
    assert dependency_gate(_job("c", []), {}).state == GateState.READY


def test_job_id_key_and_failed_beats_waiting() -> None:
    job = _job("c", [{"jobId": "id-1"}, {"jobName": "x"}])
    deps = {"id-1": DependencyStatus(S.RUNNING), "x": DependencyStatus(S.FAILED)}
    gate = dependency_gate(job, deps)
    assert gate.state == GateState.FAILED and gate.dependency == "x"


def test_plain_dependency_on_array_waits_for_whole_array() -> None:
    """Workflow example: JobB (array) depends on JobA; JobE depends on the whole array JobD."""
    kids = ArrayChildren.new(10).move(IndexSet.span(0, 9), S.SUCCEEDED)
    job_e = _job("e", [{"jobName": "d"}])
    assert dependency_gate(job_e, {"d": DependencyStatus(S.PENDING, kids)}).state == GateState.WAIT
    done = kids.move(9, S.SUCCEEDED)
    assert dependency_gate(job_e, {"d": DependencyStatus(S.SUCCEEDED, done)}).state == GateState.READY


def test_n_to_n() -> None:
    """JobC:i waits for JobB:i (workflow example, N_TO_N)."""
    b_kids = ArrayChildren.new(4, S.RUNNING).move(0, S.SUCCEEDED).move(1, S.FAILED)
    deps = {"b": DependencyStatus(S.PENDING, b_kids)}
    job = _job("c", [{"jobName": "b", "type": "N_TO_N"}], size=4)
    assert dependency_gate(job, deps, index=0).state == GateState.READY
    g1 = dependency_gate(job, deps, index=1)
    assert g1.state == GateState.FAILED and g1.dependency == "b:1"
    assert dependency_gate(job, deps, index=2).state == GateState.WAIT
    # at the parent level N_TO_N does not block
    assert dependency_gate(job, deps).state == GateState.READY
    own = ArrayChildren.new(4, S.PENDING)
    gates = array_child_gates(job, deps, own)
    assert gates.ready == IndexSet.of([0]) and gates.failed == IndexSet.of([1])


def test_sequential() -> None:
    """JobD: 10 validation steps that run one after the other (JobD:0, then JobD:1, ...)."""
    job = _job("d", [{"type": "SEQUENTIAL"}], size=10)
    own = ArrayChildren.new(10, S.PENDING)
    assert dependency_gate(job, {}, index=0, own_children=own).state == GateState.READY
    assert dependency_gate(job, {}, index=1, own_children=own).state == GateState.WAIT
    gates = array_child_gates(job, {}, own)
    assert gates.ready == IndexSet.of([0]) and not gates.failed
    own = own.move(0, S.SUCCEEDED).move(1, S.SUCCEEDED)
    assert array_child_gates(job, {}, own).ready == IndexSet.of([2])
    own = own.move(2, S.FAILED)
    gates = array_child_gates(job, {}, own)
    assert not gates.ready and gates.failed == IndexSet.span(3, 10)
    g = dependency_gate(job, {}, index=7, own_children=own)
    assert g.state == GateState.FAILED and g.dependency == "d:2"


def test_sequential_combined_with_plain_dependency() -> None:
    job = _job("d", [{"jobName": "c"}, {"type": "SEQUENTIAL"}], size=3)
    own = ArrayChildren.new(3, S.PENDING)
    assert not array_child_gates(job, {"c": DependencyStatus(S.RUNNING)}, own).ready
    assert array_child_gates(job, {"c": DependencyStatus(S.SUCCEEDED)}, own).ready == IndexSet.of([0])
    assert array_child_gates(job, {"c": DependencyStatus(S.FAILED)}, own).failed == IndexSet.span(0, 3)


def test_dependency_status_from_job() -> None:
    dep = DependencyStatus.from_job(
        {
            "spec": {"arrayProperties": {"size": 3}},
            "status": {
                "status": "PENDING",
                "arrayProperties": {"indexes": {"SUCCEEDED": "0-1", "RUNNING": "2"}},
            },
        }
    )
    assert dep.status == S.PENDING and dep.children is not None
    assert dep.children.get(S.SUCCEEDED) == IndexSet.span(0, 2)
    assert DependencyStatus.from_job({"status": {"status": "FAILED"}}) == DependencyStatus(S.FAILED)


def test_validation() -> None:
    assert validate_depends_on([{"jobName": f"j{i}"} for i in range(MAX_DEPENDENCIES)], is_array=False) == []
    errors = validate_depends_on([{"jobName": f"j{i}"} for i in range(21)], is_array=False)
    assert errors and "20" in errors[0]
    assert validate_depends_on([{"type": "SEQUENTIAL"}], is_array=True) == []
    assert validate_depends_on([{"type": "SEQUENTIAL"}], is_array=False)
    assert validate_depends_on([{"type": "SEQUENTIAL", "jobName": "x"}], is_array=True)
    assert validate_depends_on([{"type": "N_TO_N", "jobName": "x"}], is_array=False)
    assert validate_depends_on([{"type": "BOGUS", "jobName": "x"}], is_array=True)
    assert validate_depends_on([{}], is_array=False)


def test_cycles() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) in (["a", "b", "c", "a"],)
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["missing"]}) is None
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    assert find_cycle(chain) is None  # iterative: no recursion limit
    chain["n5000"] = ["n0"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 5002
    jobs = [_job("x", [{"jobName": "y"}]), _job("y", [{"jobName": "x"}, {"type": "SEQUENTIAL"}])]
    assert dependency_graph(jobs) == {"x": ["y"], "y": ["x"]}
    assert find_cycle(dependency_graph(jobs)) is not None


@st.composite
def _dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(1, 12))
    graph: dict[str, list[str]] = {}
    for i in range(n):
        targets = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        graph[f"j{i}"] = [f"j{t}" for t in sorted(targets)]  # edges only to lower indexes: acyclic
    return graph


@given(_dags())
def test_property_dags_have_no_cycle(graph: dict[str, list[str]]) -> None:
    assert find_cycle(graph) is None


@given(_dags(), st.data())
def test_property_back_edge_makes_a_real_cycle(graph: dict[str, list[str]], data: st.DataObject) -> None:
    nodes = sorted(graph, key=lambda s: int(s[1:]))
    lo = data.draw(st.sampled_from(nodes))
    graph = {k: list(v) for k, v in graph.items()}
    graph[lo].append(lo)  # self-dependency at minimum; maybe more
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert b in graph[a]  # every step of the returned cycle is a real edge


_states = st.sampled_from(list(S))


@given(
    st.integers(2, 12),
    st.data(),
)
def test_property_bulk_gates_match_per_index_gates(size: int, data: st.DataObject) -> None:
    own_states = data.draw(st.lists(_states, min_size=size, max_size=size))
    dep_size = data.draw(st.integers(2, 12))
    dep_states = data.draw(st.lists(_states, min_size=dep_size, max_size=dep_size))
    dep_status = data.draw(_states)
    plain_status = data.draw(_states)
    entries = data.draw(
        st.lists(
            st.sampled_from(
                [
                    {"type": "SEQUENTIAL"},
                    {"jobName": "arr", "type": "N_TO_N"},
                    {"jobName": "plain"},
                    {"jobName": "arr"},
                ]
            ),
            max_size=3,
            unique_by=lambda e: str(sorted(e.items())),
        )
    )
    own = ArrayChildren.new(size)
    for i, s in enumerate(own_states):
        own = own.move(i, s)
    dep_kids = ArrayChildren.new(dep_size)
    for i, s in enumerate(dep_states):
        dep_kids = dep_kids.move(i, s)
    deps = {"arr": DependencyStatus(dep_status, dep_kids), "plain": DependencyStatus(plain_status)}
    job = _job("me", entries, size=size)
    bulk = array_child_gates(job, deps, own, candidates=IndexSet.span(0, size))
    for i in range(size):
        gate = dependency_gate(job, deps, index=i, own_children=own)
        expected = GateState.FAILED if i in bulk.failed else GateState.READY if i in bulk.ready else GateState.WAIT
        assert gate.state == expected, (i, gate)
