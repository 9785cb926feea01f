"""Fuzzing the other pure pieces: parameter substitution, pod building, dependency cycles."""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.deps import find_cycle
from kubatch.core.params import substitute
from kubatch.core.podspec import PodSpecError, build_pod

NAME = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
TEXT = st.text(alphabet=st.sampled_from(list("Ref::ab_-.x/ =1\u00e9")), max_size=40)


@given(TEXT, st.dictionaries(NAME, st.text(max_size=10), max_size=4))
def test_substitute_never_raises_and_only_touches_known_tokens(value: str, params: dict[str, str]) -> None:
    out = substitute(value, params)
    assert isinstance(out, str)
    if not params or "Ref::" not in value:
        assert out == value
    # undoing every substitution with a token whose value is unique gives the input back
    marked = {k: f"\x00{i}\x00" for i, k in enumerate(params)}
    back = substitute(value, marked)
    for i, k in enumerate(params):
        back = back.replace(f"\x00{i}\x00", f"Ref::{k}")
    assert back == value


@given(st.lists(st.tuples(NAME, NAME), max_size=12))
def test_substitute_is_single_pass(pairs: list[tuple[str, str]]) -> None:
    params = {k: f"Ref::{v}" for k, v in pairs}
    value = " ".join(f"Ref::{k}" for k, _ in pairs)
    out = substitute(value, params)
    assert out == " ".join(params[k] for k, _ in pairs)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=12))
json_any = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
QUANTITY = st.one_of(
    st.sampled_from(["1", "0.5", "2", "0", "-1", "abc", "1e3", "16Gi", "", "  "]), st.integers(-2, 64), json_any
)
REQ_TYPE = st.sampled_from(["VCPU", "MEMORY", "GPU", "vcpu", "DISK", ""])
container_overrides = st.fixed_dictionaries(
    {},
    optional={
        "command": st.one_of(st.lists(st.text(max_size=10), max_size=4), json_any),
        "environment": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=10), "value": st.one_of(st.text(max_size=10), json_any)}),
            max_size=3,
        ),
        "resourceRequirements": st.lists(st.fixed_dictionaries({"type": REQ_TYPE, "value": QUANTITY}), max_size=3),
        "vcpus": QUANTITY,
        "memory": QUANTITY,
        "instanceType": st.text(max_size=10),
    },
)
pod_metadata = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3),
        "annotations": st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3),
    },
)


@given(
    container_overrides,
    pod_metadata,
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    st.integers(1, 10),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_build_pod_with_random_overrides(
    overrides: dict[str, Any],
    metadata: dict[str, Any],
    parameters: dict[str, str],
    tags: dict[str, str],
    attempt: int,
    index: int | None,
) -> None:
    """Any overrides the job may carry: a Pod manifest, or PodSpecError -- never another exception.
    A built pod has a valid name, the job's labels and one container per definition container."""
    definition = {
        "type": "container",
        "parameters": {"codec": "mp4"},
        "containerProperties": {
            "image": "busybox",
            "command": ["run", "Ref::codec", "Ref::x"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    }
    job = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "fuzz-job", "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "jobQueue": "q",
            "jobDefinition": "d",
            "containerOverrides": overrides,
            "podMetadata": metadata,
            "parameters": parameters,
            "tags": tags,
            "propagateTags": True,
        },
    }
    try:
        pod = build_pod(
            job,
            definition,
            "d:1",
            job_id="uid-1",
            queue="q",
            compute_environment="ce",
            attempt=attempt,
            array_index=index,
            array_size=11 if index is not None else None,
        )
    except PodSpecError:
        return
    assert pod["kind"] == "Pod"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", pod["metadata"]["name"]), pod["metadata"]["name"]
    assert len(pod["metadata"]["name"]) <= 63
    assert pod["metadata"]["labels"]["kubatch.dev/attempt"] == str(attempt)
    assert len(pod["spec"]["containers"]) == 1


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefghij"), max_size=4), max_size=8))
def test_find_cycle_on_random_graphs(graph: dict[str, list[str]]) -> None:
    """A reported cycle is a real closed path of the graph; no report means the graph is acyclic
    (checked by a topological sort)."""
    cycle = find_cycle(graph)
    if cycle is not None:
        assert len(cycle) >= 2 and cycle[0] == cycle[-1]
        for a, b in itertools.pairwise(cycle):
            assert b in graph.get(a, []), (cycle, graph)
        return
    indegree: dict[str, int] = {}
    for node, targets in graph.items():
        indegree.setdefault(node, 0)
        for t in targets:
            indegree[t] = indegree.get(t, 0) + 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for t in graph.get(node, []):
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    assert seen == len(indegree), f"acyclic by find_cycle but not topologically sortable: {graph}"


def test_find_cycle_on_a_deep_chain() -> None:
    chain = {f"j{i}": [f"j{i + 1}"] for i in range(20_000)}
    assert find_cycle(chain) is None
    chain["j20000"] = ["j0"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 20_002
