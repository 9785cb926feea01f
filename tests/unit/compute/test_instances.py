"""The EC2 instance catalogue (kubatch.core.instances): AWS's keywords, current families with their
figures and architectures, names outside the catalogue, and the one-architecture rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.capacity import env_view
from kubatch.core.instances import (
    CATALOG,
    FAMILIES,
    KEYWORDS,
    MixedArchitectures,
    UnknownInstanceType,
    architecture_conflict,
    environment_architecture,
    expand,
    expand_or_default,
    guess_architecture,
    may_have_gpus,
    select,
)
from kubatch.scheduler import Resources

GIB = 1024


def test_keywords_as_the_2025_guide_has_them() -> None:
    assert set(KEYWORDS["default_x86_64"]) == {"m6i", "c6i", "r6i", "c7i"}
    assert set(KEYWORDS["default_arm64"]) == {"m6g", "c6g", "r6g", "c7g"}
    assert KEYWORDS["optimal"] == KEYWORDS["default_x86_64"]  # "changed to match default_x86_64"
    unset = {t.family for t in expand_or_default(None)}
    assert unset == {"m6i", "c6i", "r6i", "c7i"}  # "We will use default_x86_64 if you make no ... selection"
    assert {t.family for t in expand(["default_arm64"])} == {"m6g", "c6g", "r6g", "c7g"}
    assert all(t.arch == "arm64" for t in expand(["default_arm64"]))


@pytest.mark.parametrize(
    ("name", "vcpus", "gib", "gpus", "neuron", "arch"),
    [
        ("m7i.large", 2, 8, 0, 0, "x86_64"),
        ("c7i.48xlarge", 192, 384, 0, 0, "x86_64"),
        ("r7i.4xlarge", 16, 128, 0, 0, "x86_64"),
        ("m7g.medium", 1, 4, 0, 0, "arm64"),
        ("c7g.16xlarge", 64, 128, 0, 0, "arm64"),
        ("r7g.2xlarge", 8, 64, 0, 0, "arm64"),
        ("m6g.xlarge", 4, 16, 0, 0, "arm64"),
        ("c6g.medium", 1, 2, 0, 0, "arm64"),
        ("r6g.12xlarge", 48, 384, 0, 0, "arm64"),
        ("m6i.32xlarge", 128, 512, 0, 0, "x86_64"),
        ("c6i.large", 2, 4, 0, 0, "x86_64"),
        ("r6i.8xlarge", 32, 256, 0, 0, "x86_64"),
        ("g5.12xlarge", 48, 192, 4, 0, "x86_64"),
        ("g6.xlarge", 4, 16, 1, 0, "x86_64"),
        ("g6.48xlarge", 192, 768, 8, 0, "x86_64"),
        ("g6e.xlarge", 4, 32, 1, 0, "x86_64"),
        ("g6e.48xlarge", 192, 1536, 8, 0, "x86_64"),
        ("p4d.24xlarge", 96, 1152, 8, 0, "x86_64"),
        ("p5.48xlarge", 192, 2048, 8, 0, "x86_64"),
        ("trn1.2xlarge", 8, 32, 0, 1, "x86_64"),
        ("trn1.32xlarge", 128, 512, 0, 16, "x86_64"),
        ("inf2.xlarge", 4, 16, 0, 1, "x86_64"),
        ("inf2.48xlarge", 192, 768, 0, 12, "x86_64"),
        ("c5.9xlarge", 36, 72, 0, 0, "x86_64"),
    ],
)
def test_catalogue_figures(name: str, vcpus: int, gib: int, gpus: int, neuron: int, arch: str) -> None:
    t = CATALOG[name]
    assert (t.vcpus, t.memory_mib, t.gpus, t.neuron, t.arch) == (vcpus, gib * GIB, gpus, neuron, arch)


def test_families_are_known() -> None:
    wanted = ["m7i", "m7g", "c7i", "c7g", "r7i", "r7g", "m6g", "c6g", "r6g", "m6i", "c6i", "r6i"]
    wanted += ["g5", "g6", "g6e", "p4d", "p5", "trn1", "inf2", "m5", "c5", "r5", "p3"]
    assert set(wanted) <= FAMILIES
    assert not any(name.endswith(".metal") for name in CATALOG)  # metal sizes are not in families
    for family in FAMILIES:  # one architecture per family, and it is what AWS's naming says
        archs = {t.arch for t in CATALOG.values() if t.family == family}
        assert archs == {guess_architecture(family)}, family


def test_names_outside_the_catalogue_are_kept_for_karpenter() -> None:
    s = select(["m8g", "c7a.large"])
    assert s.unknown == ("m8g", "c7a.large")
    assert s.families == ("m8g",) and s.exact == ("c7a.large",) and s.known == ()
    with pytest.raises(UnknownInstanceType, match=r"'m8g'.*not in kubatch's catalogue"):
        expand(["m8g"])  # where kubatch must size nodes itself
    with pytest.raises(UnknownInstanceType, match="unknown instance type"):
        select(["not an instance"])
    both = select(["c6i", "m8i"])
    assert {t.family for t in both.known} == {"c6i"} and both.unknown == ("m8i",)


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("m8g", "arm64"),
        ("c6gn", "arm64"),
        ("x2gd", "arm64"),
        ("im4gn", "arm64"),
        ("t4g", "arm64"),
        ("g5g", "arm64"),
        ("a1", "arm64"),
        ("m8g.48xlarge", "arm64"),
        ("m7a", "x86_64"),
        ("m7i-flex", "x86_64"),
        ("p5en", "x86_64"),
        ("x2iezn", "x86_64"),
        ("u7i-12tb", "x86_64"),
        ("g4dn", "x86_64"),
        ("trn2", "x86_64"),
    ],
)
def test_architecture_of_unknown_names(name: str, arch: str) -> None:
    assert guess_architecture(name) == arch


def test_gpu_families() -> None:
    assert all(may_have_gpus(f) for f in ("p3", "p4de", "p5en", "p6-b200", "g4dn", "g5g", "g6f", "g3s"))
    assert not any(may_have_gpus(f) for f in ("m8g", "c7a", "trn2", "inf2", "gr6"))


def test_one_architecture_per_environment() -> None:
    assert select(["m7g", "default_arm64", "m8g"]).architecture == "arm64"
    assert select(None).architecture == "x86_64"
    with pytest.raises(MixedArchitectures, match="arm64: m7g; x86_64: m7i"):
        select(["m7i", "m7g"]).architecture  # noqa: B018
    with pytest.raises(MixedArchitectures):
        select(["default_arm64", "optimal"]).architecture  # noqa: B018


def managed(*types: str) -> dict[str, object]:
    return {"spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 64, "instanceTypes": list(types)}}}


def test_environment_architecture_and_queue_conflicts() -> None:
    assert environment_architecture(managed("c7g")) == "arm64"
    assert environment_architecture(managed()) == "x86_64"
    unmanaged = {"spec": {"type": "UNMANAGED", "nodeSelector": {"pool": "a"}}}
    assert environment_architecture(unmanaged) is None
    assert environment_architecture(unmanaged, [{"kubernetes.io/arch": "arm64"}] * 2) == "arm64"
    both = [{"kubernetes.io/arch": "arm64"}, {"kubernetes.io/arch": "amd64"}]
    assert environment_architecture(unmanaged, both) is None
    pinned = {"spec": {"type": "UNMANAGED", "nodeSelector": {"kubernetes.io/arch": "amd64"}}}
    assert environment_architecture(pinned, [{"kubernetes.io/arch": "arm64"}]) == "x86_64"
    assert architecture_conflict({"a": "x86_64", "b": None, "c": "x86_64"}) is None
    conflict = architecture_conflict({"a": "x86_64", "b": "arm64"})
    assert conflict is not None
    assert "a (x86_64), b (arm64)" in conflict and "must share the same architecture" in conflict


def test_capacity_of_an_environment_with_unknown_types() -> None:
    known = env_view("k", managed("c6i"), {}, Resources())
    assert known.max_node == Resources(128, 256 * GIB, 0) and known.status == "VALID"
    unknown = env_view("u", managed("m8g"), {}, Resources())
    assert unknown.status == "VALID" and unknown.max_node is None  # Karpenter sizes it
    assert unknown.capacity.vcpus == 64 and unknown.capacity.memory_mib >= 64 * 32 * GIB
    assert not unknown.has_gpu_instance_types
    assert env_view("g", managed("p6-b200"), {}, Resources()).has_gpu_instance_types
    assert env_view("bad", managed("not an instance"), {}, Resources()).status == "INVALID"


@given(st.lists(st.sampled_from(sorted(FAMILIES | set(KEYWORDS) | set(CATALOG))), min_size=1, max_size=5))
def test_property_known_lists_expand_to_the_catalogue(names: list[str]) -> None:
    selection = select(names)
    assert selection.unknown == ()
    assert set(selection.known) == set(expand(names))
    for t in selection.known:
        assert t.name in names or t.family in selection.families
