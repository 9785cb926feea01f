"""Scaling decisions of MANAGED compute environments: examples and properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.instances import CATALOG, InstanceType
from kubatch.core.scaling import NodeInfo, Request, ScalingSpec, decide, pack

M5 = ("m5.large", "m5.xlarge")
CPU1 = Request(vcpus=1, memory_mib=256)
NOTHING = Request()


def spec(
    types: tuple[str, ...] = M5, *, min_vcpus: int = 0, max_vcpus: int = 8, strategy: str = "BEST_FIT_PROGRESSIVE",
    idle: float = 30.0, scale_out: bool = True,
) -> ScalingSpec:
    return ScalingSpec.from_resources(
        {"minvCpus": min_vcpus, "maxvCpus": max_vcpus, "instanceTypes": list(types), "allocationStrategy": strategy},
        default_idle_seconds=idle, scale_out=scale_out,
    )


def node(name: str, itype: str = "m5.xlarge", *, pods: int = 0, used: Request = NOTHING, idle_since: float = 0.0,
         ready: bool = True, created: float = 0.0, outdated: bool = False) -> NodeInfo:
    t = CATALOG[itype]
    return NodeInfo(name, itype, t.vcpus, t.memory_mib, t.gpus, ready=ready, created=created, used=used, pods=pods,
                    idle_since=None if pods else idle_since, outdated=outdated)


def vcpus(names: tuple[str, ...]) -> int:
    return sum(CATALOG[n].vcpus for n in names)


# ---- examples ------------------------------------------------------------------------------------
def test_six_one_vcpu_pods_get_an_xlarge_and_a_large() -> None:
    d = decide(spec(), [], [CPU1] * 6, now=0)
    assert sorted(d.add) == ["m5.large", "m5.xlarge"]
    assert d.desired_vcpus == 6 and not d.remove and d.waiting == 0


def test_pending_pods_that_fit_on_existing_nodes_buy_nothing() -> None:
    d = decide(spec(), [node("a", pods=1, used=CPU1)], [CPU1] * 3, now=0)
    assert d.add == () and d.desired_vcpus == 4


def test_booting_nodes_count_as_capacity() -> None:
    d = decide(spec(), [node("a", ready=False, created=0)], [CPU1] * 4, now=5)
    assert d.add == () and d.failed == ()


def test_best_fit_never_exceeds_max_and_progressive_by_one_node() -> None:
    best = decide(spec(strategy="BEST_FIT", max_vcpus=6), [node("a", pods=4, used=Request(vcpus=4))], [CPU1] * 4, 0)
    assert vcpus(best.add) == 2 and best.waiting == 2
    prog = decide(spec(max_vcpus=6, types=("m5.xlarge",)), [node("a", pods=4, used=Request(vcpus=4))], [CPU1] * 4, 0)
    assert prog.add == ("m5.xlarge",) and prog.desired_vcpus == 8
    full = [node(n, pods=4, used=Request(vcpus=4)) for n in "ab"]
    again = decide(spec(max_vcpus=6, types=("m5.xlarge",)), full, [CPU1] * 4, 0)
    assert again.add == () and again.waiting == 4


def test_spot_strategies_behave_like_progressive() -> None:
    for strategy in ("SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"):
        busy = [node("a", pods=4, used=Request(vcpus=4))]
        d = decide(spec(max_vcpus=6, types=("m5.xlarge",), strategy=strategy), busy, [CPU1] * 4, 0)
        assert d.add == ("m5.xlarge",)


def test_gpu_pods_only_on_gpu_types_and_cpu_pods_never() -> None:
    types = ("m5.large", "p3.2xlarge")
    d = decide(spec(types, max_vcpus=64), [], [Request(gpus=1, vcpus=1), CPU1], 0)
    assert sorted(d.add) == ["m5.large", "p3.2xlarge"]
    only_gpu = decide(spec(("p3.2xlarge",), max_vcpus=64), [], [CPU1], 0)
    assert only_gpu.add == () and only_gpu.unplaceable == 1
    no_gpu = decide(spec(M5), [], [Request(gpus=1, vcpus=1)], 0)
    assert no_gpu.add == () and no_gpu.unplaceable == 1


def test_pod_larger_than_every_type_is_unplaceable() -> None:
    d = decide(spec(), [], [Request(vcpus=16)], 0)
    assert d.add == () and d.unplaceable == 1


def test_cheapest_type_that_holds_everything() -> None:
    d = decide(spec(("optimal",), max_vcpus=64), [], [Request(vcpus=0.5, memory_mib=3000)], 0)
    assert d.add == ("c6i.large",)  # optimal = default_x86_64 (m6i, c6i, r6i, c7i)
    mem = decide(spec(("optimal",), max_vcpus=64), [], [Request(vcpus=1, memory_mib=12000)], 0)
    assert mem.add == ("r6i.large",)


def test_min_vcpus_kept_and_topped_up() -> None:
    d = decide(spec(min_vcpus=4), [], [], 0)
    assert vcpus(d.add) >= 4 and d.desired_vcpus == 4
    idle = decide(spec(min_vcpus=4), [node("a", idle_since=0)], [], now=1000)
    assert idle.remove == () and idle.add == ()


def test_idle_nodes_removed_after_the_idle_time_only() -> None:
    nodes = [node("a", idle_since=100), node("b", pods=1, used=CPU1)]
    assert decide(spec(idle=30), nodes, [], now=120).remove == ()
    d = decide(spec(idle=30), nodes, [], now=131)
    assert d.remove == ("a",) and d.desired_vcpus == 4


def test_idle_node_claimed_by_a_pending_pod_stays() -> None:
    d = decide(spec(idle=0), [node("a", idle_since=0)], [CPU1], now=100)
    assert d.remove == () and d.add == ()


def test_idle_nodes_shrink_to_min_without_pending_pods() -> None:
    nodes = [node("a", idle_since=0), node("b", idle_since=0), node("c", pods=1)]
    d = decide(spec(min_vcpus=4, max_vcpus=16), nodes, [], now=100)
    assert d.add == () and len(d.remove) == 2 and "c" not in d.remove


def test_pods_already_placed_get_nodes_whatever_the_state() -> None:
    """A DISABLED environment takes no new jobs, but its pending pods belong to jobs placed before
    (STARTING, which AWS lets finish): the scaler serves them as on any environment (the state is
    not an input of the decision), keeping the idle node they fit on and buying the rest."""
    nodes = [node("a", idle_since=0)]
    d = decide(spec(max_vcpus=16), nodes, [CPU1] * 6, now=100)
    assert "a" not in d.remove and d.add


def test_outdated_nodes_cordoned_while_busy_removed_when_idle() -> None:
    nodes = [node("old1", "m5.2xlarge", pods=1, outdated=True), node("old2", "m5.2xlarge", outdated=True)]
    d = decide(spec(min_vcpus=2, max_vcpus=32), nodes, [CPU1], now=0)
    assert d.cordon == ("old1",) and d.remove == ("old2",)
    assert d.add  # the pending pod goes to a new node of the current spec


def test_nodes_never_ready_fail_and_are_removed() -> None:
    d = decide(spec(), [node("a", ready=False, created=0)], [], now=61)
    assert d.failed == ("a",) and d.remove == ("a",)


def test_invalid_environment_does_not_scale_out() -> None:
    d = decide(spec(scale_out=False, min_vcpus=4), [], [CPU1], now=0)
    assert d.add == () and d.waiting == 1


def test_idle_nodes_above_max_go_at_once() -> None:
    nodes = [node("a", idle_since=99), node("b", pods=4, used=Request(vcpus=4)), node("c", pods=4)]
    d = decide(spec(max_vcpus=8, idle=30), nodes, [], now=100)
    assert d.remove == ("a",)


# ---- properties ----------------------------------------------------------------------------------
ALL_TYPES = sorted(CATALOG)
requests = st.builds(
    Request,
    gpus=st.sampled_from([0, 0, 0, 1, 2]),
    vcpus=st.sampled_from([0.25, 0.5, 1, 2, 3, 4, 7, 12]),
    memory_mib=st.sampled_from([64, 512, 2048, 8192, 30000]),
)
type_lists = st.lists(st.sampled_from([*ALL_TYPES, "m5", "c5", "optimal", "g5"]), min_size=1, max_size=4)
strategies = st.sampled_from(["BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED"])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ScalingSpec, list[NodeInfo], list[Request], float]:
    types = tuple(draw(type_lists))
    max_vcpus = draw(st.integers(0, 96))
    min_vcpus = draw(st.integers(0, max_vcpus))
    s = spec(types, min_vcpus=min_vcpus, max_vcpus=max_vcpus, strategy=draw(strategies),
             idle=draw(st.sampled_from([0, 30, 300])))
    allowed = [t.name for t in s.instance_types]
    nodes = []
    for i in range(draw(st.integers(0, 6))):
        itype = draw(st.sampled_from([*allowed, "m5.24xlarge"]))
        busy = draw(st.integers(0, 3))
        nodes.append(node(f"n{i}", itype, pods=busy, used=Request(vcpus=min(busy, CATALOG[itype].vcpus)),
                          idle_since=draw(st.sampled_from([0, 50, 99])), ready=draw(st.booleans()),
                          created=draw(st.sampled_from([0, 90])), outdated=itype not in allowed))
    pending = draw(st.lists(requests, max_size=30))
    return s, nodes, pending, 100.0


def largest(s: ScalingSpec) -> int:
    return max(t.vcpus for t in s.instance_types)


@given(scenarios())
def test_never_above_max_plus_one_node(case: tuple[ScalingSpec, list[NodeInfo], list[Request], float]) -> None:
    s, nodes, pending, now = case
    d = decide(s, nodes, pending, now)
    kept = sum(n.vcpus for n in nodes if n.name not in d.remove)
    if d.add:
        limit = s.max_vcpus if s.strategy == "BEST_FIT" else s.max_vcpus + largest(s)
        assert kept + vcpus(d.add) <= limit
    assert d.desired_vcpus <= s.max_vcpus + largest(s)


@given(scenarios())
def test_never_below_min(case: tuple[ScalingSpec, list[NodeInfo], list[Request], float]) -> None:
    s, nodes, pending, now = case
    d = decide(s, nodes, pending, now)
    # Draining nodes of an earlier spec count: the pool's size is what it holds, whatever the type.
    kept = sum(n.vcpus for n in nodes if n.name not in d.remove)
    total = kept + vcpus(d.add)
    # The top-up uses CPU types (GPU types only where there are no others).
    top_up_types = [t for t in s.instance_types if t.gpus == 0] or list(s.instance_types)
    smallest = min(t.vcpus for t in top_up_types)
    # BEST_FIT may stop short of minvCpus only where one more node would break maxvCpus.
    assert total >= s.min_vcpus or (s.strategy == "BEST_FIT" and total + smallest > s.max_vcpus)
    assert d.desired_vcpus >= s.min_vcpus
    # Scale-in alone never takes the pool below minvCpus.
    # (Only outdated and failed nodes go regardless: top-up replaces them.)
    if not any(n.outdated or n.name in d.failed for n in nodes if n.name in d.remove):
        before = sum(n.vcpus for n in nodes)
        assert kept >= min(s.min_vcpus, before)


@given(scenarios())
def test_busy_nodes_are_never_removed(case: tuple[ScalingSpec, list[NodeInfo], list[Request], float]) -> None:
    s, nodes, pending, now = case
    d = decide(s, nodes, pending, now)
    for n in nodes:
        if n.busy and n.name in d.remove:
            assert n.name in d.failed  # only a node that never became Ready


@given(scenarios())
def test_deterministic_and_order_independent(case: tuple[ScalingSpec, list[NodeInfo], list[Request], float]) -> None:
    s, nodes, pending, now = case
    d = decide(s, nodes, pending, now)
    assert d == decide(s, list(reversed(nodes)), list(reversed(pending)), now)


@given(st.lists(requests, max_size=40), type_lists, st.integers(0, 200), st.booleans())
def test_packing_respects_gpu_classes_and_node_sizes(
    reqs: list[Request], names: list[str], max_vcpus: int, progressive: bool
) -> None:
    types: list[InstanceType] = list(spec(tuple(names)).instance_types)
    p = pack(reqs, types, total_vcpus=0, max_vcpus=max_vcpus, progressive=progressive)
    placed = 0
    for t, on in p.nodes:
        assert all((r.gpus > 0) == (t.gpus > 0) for r in on)
        assert sum(r.vcpus for r in on) <= t.vcpus + 1e-9
        assert sum(r.memory_mib for r in on) <= t.memory_mib
        assert sum(r.gpus for r in on) <= t.gpus
        assert on  # no empty node is bought for pods
        placed += len(on)
    assert placed + p.unplaceable + p.waiting == len(reqs)


def test_gang_pods_get_distinct_nodes() -> None:
    """Multi-node job pods carry required anti-affinity: one per node, never beside a live sibling."""
    gang = Request(vcpus=1, memory_mib=256, spread="job-1")
    busy = NodeInfo("a", "m5.xlarge", 4, 16384, pods=1, used=gang, spread_keys=frozenset({"job-1"}))
    d = decide(spec(types=("m5.xlarge",), max_vcpus=16), [busy], [gang, gang], now=0)
    assert len(d.add) == 2, "the free room on node a cannot take a sibling, and the two new pods need two nodes"
    # Pods of different gangs (or plain pods) may still share.
    other = Request(vcpus=1, memory_mib=256, spread="job-2")
    d = decide(spec(types=("m5.xlarge",), max_vcpus=16), [busy], [other, CPU1], now=0)
    assert d.add == ()
