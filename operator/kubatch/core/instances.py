"""EC2 instance types that managed compute environments are sized from (vCPUs, memory, GPUs,
Neuron devices, architecture). Pure data and lookups.

`instanceTypes` entries are exact types (`c6i.2xlarge`), families (`c6i`: every size of the family,
as AWS Batch treats them; metal sizes are not in the catalogue, as AWS leaves them out of
families) or AWS's keywords: `default_x86_64` (m6i, c6i, r6i, c7i), `default_arm64` (m6g, c6g,
r6g, c7g) and `optimal`, which since 11/01/2025 means the same as `default_x86_64` ("the behavior
of optimal is going to be changed to match default_x86_64"). No entry means `default_x86_64` ("We
will use default_x86_64 if you make no instance type selection").

The catalogue knows the families kubatch sizes nodes from (`FAMILIES`). A name outside it that is
shaped like an EC2 type or family (`m8g`, `c7a.large`) is *unknown*, not an error: `select` keeps
it, so that Karpenter, which knows every EC2 type, can launch it; only where kubatch itself must
size nodes (the kwok provisioner) is it refused (`expand`). The architecture of an unknown name is
read from AWS's naming (Graviton families carry a `g` after the generation: m7g, c6gn, x2gd, t4g;
and a1), whether it may have GPUs from AWS's GPU families (p3 to p6, g3 to g6).

All instance types of a compute environment share one architecture (AWS: "you can't mix x86 and
ARM instances in the same compute environment"); `Selection.architecture` raises
`MixedArchitectures` otherwise. Memory is in MiB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Architecture = Literal["x86_64", "arm64"]
#: AWS's architecture names -> the values of the `kubernetes.io/arch` node label.
KUBERNETES_ARCH: dict[str, str] = {"x86_64": "amd64", "arm64": "arm64"}
ARCH_FROM_KUBERNETES: dict[str, Architecture] = {"amd64": "x86_64", "arm64": "arm64"}
#: The extended resource of AWS Trainium and Inferentia devices (the Neuron device plugin's).
NEURON_RESOURCE = "aws.amazon.com/neuron"


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    arch: Architecture = "x86_64"
    neuron: int = 0
    """Neuron devices (Trainium or Inferentia chips), as `aws.amazon.com/neuron`."""

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


GIB = 1024
_SIZES = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "12xlarge": 48,
    "16xlarge": 64,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}
_GIB_PER_VCPU = {"m": 4, "c": 2, "r": 8}


def _family(family: str, sizes: Iterable[str], arch: Architecture = "x86_64") -> list[InstanceType]:
    """General-purpose (m, 4 GiB/vCPU), compute (c, 2) and memory (r, 8) families."""
    gib = _GIB_PER_VCPU[family[0]]
    return [InstanceType(f"{family}.{s}", _SIZES[s], _SIZES[s] * gib * GIB, arch=arch) for s in sizes]


_STANDARD = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_GEN6_X86 = (*_STANDARD, "32xlarge")
_GEN7_X86 = (*_STANDARD, "48xlarge")
_GRAVITON = ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
_C5 = ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")  # and 9xlarge, 18xlarge


def _cpu_families() -> list[InstanceType]:
    out: list[InstanceType] = []
    for fam in ("m5", "r5"):
        out += _family(fam, _STANDARD)
    out += [*_family("c5", _C5), InstanceType("c5.9xlarge", 36, 72 * GIB), InstanceType("c5.18xlarge", 72, 144 * GIB)]
    for fam in ("m6i", "c6i", "r6i"):
        out += _family(fam, _GEN6_X86)
    for fam in ("m7i", "c7i", "r7i"):
        out += _family(fam, _GEN7_X86)
    for fam in ("m6g", "c6g", "r6g", "m7g", "c7g", "r7g"):
        out += _family(fam, _GRAVITON, "arm64")
    return out


def _accelerated(family: str, rows: Iterable[tuple[str, int, int, int]], *, neuron: bool = False) -> list[InstanceType]:
    """(size, vCPUs, GiB, GPUs or Neuron devices) rows of one accelerated family."""
    return [
        InstanceType(
            f"{family}.{size}",
            vcpus,
            gib * GIB,
            gpus=0 if neuron else devices,
            neuron=devices if neuron else 0,
        )
        for size, vcpus, gib, devices in rows
    ]


_G_SIZES = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")
_G_GPUS = (1, 1, 1, 1, 4, 1, 4, 8)


def _g_family(family: str, gib_per_vcpu: int) -> list[InstanceType]:
    """g5 (A10G), g6 (L4): 4 GiB per vCPU; g6e (L40S): 8 GiB per vCPU."""
    return _accelerated(
        family, [(s, _SIZES[s], _SIZES[s] * gib_per_vcpu, g) for s, g in zip(_G_SIZES, _G_GPUS, strict=True)]
    )


_ACCELERATED: list[InstanceType] = [
    *_accelerated("p3", [("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)]),
    *_accelerated("p4d", [("24xlarge", 96, 1152, 8)]),
    *_accelerated("p5", [("4xlarge", 16, 256, 1), ("48xlarge", 192, 2048, 8)]),
    *_g_family("g5", 4),
    *_g_family("g6", 4),
    *_g_family("g6e", 8),
    *_accelerated("trn1", [("2xlarge", 8, 32, 1), ("32xlarge", 128, 512, 16)], neuron=True),
    *_accelerated(
        "inf2", [("xlarge", 4, 16, 1), ("8xlarge", 32, 128, 1), ("24xlarge", 96, 384, 6), ("48xlarge", 192, 768, 12)],
        neuron=True,
    ),
]

CATALOG: dict[str, InstanceType] = {t.name: t for t in (*_cpu_families(), *_ACCELERATED)}
FAMILIES: frozenset[str] = frozenset(t.family for t in CATALOG.values())
KEYWORDS: dict[str, tuple[str, ...]] = {
    "default_x86_64": ("m6i", "c6i", "r6i", "c7i"),
    "default_arm64": ("m6g", "c6g", "r6g", "c7g"),
    # "Starting on 11/01/2025 the behavior of optimal is going to be changed to match default_x86_64."
    "optimal": ("m6i", "c6i", "r6i", "c7i"),
}
DEFAULT_KEYWORD = "default_x86_64"

# An EC2 instance type (`c7a.large`, `u-6tb1.112xlarge`, `m7i-flex.xlarge`) or family (`m8g`, `p6-b200`).
_EC2_NAME = re.compile(r"^[a-z][a-z0-9-]*[0-9][a-z0-9-]*(\.[a-z0-9-]+)?$")
_GENERATION = re.compile(r"^[a-z-]*?[0-9]+")
_GPU_FAMILY = re.compile(r"^(p[3-9]|g[3-9])")


class InstanceTypeError(ValueError):
    """An instanceTypes list kubatch cannot use."""


class UnknownInstanceType(InstanceTypeError):
    """An instanceTypes entry that names no known type, family or keyword (or, where kubatch must
    size nodes itself, one outside the catalogue)."""


class MixedArchitectures(InstanceTypeError):
    """An instanceTypes list with both x86_64 and arm64 types."""


def is_instance_name(name: str) -> bool:
    """Whether ``name`` is shaped like an EC2 instance type or family."""
    return bool(_EC2_NAME.match(name))


def guess_architecture(name: str) -> Architecture:
    """The architecture of an instance type or family outside the catalogue, from AWS's naming:
    Graviton families carry a ``g`` after their generation (m7g, c6gn, x2gd, im4gn, t4g, g5g), as
    does no x86 family; and a1."""
    family = name.split(".", 1)[0]
    if family == "a1":
        return "arm64"
    m = _GENERATION.match(family)
    return "arm64" if m and "g" in family[m.end() :] else "x86_64"


def may_have_gpus(name: str) -> bool:
    """Whether an instance type or family outside the catalogue may have GPUs (AWS's GPU families:
    "p3, p4, p5, p6, g3, g3s, g4, g5, or g6")."""
    return bool(_GPU_FAMILY.match(name))


@dataclass(frozen=True)
class Selection:
    """What an `instanceTypes` list allows. ``exact`` and ``families`` are the list's entries in
    order (keywords resolved to their families); ``known`` the catalogue's types they allow;
    ``unknown`` the entries outside the catalogue (types or families)."""

    exact: tuple[str, ...]
    families: tuple[str, ...]
    known: tuple[InstanceType, ...]
    unknown: tuple[str, ...]

    @property
    def architectures(self) -> frozenset[Architecture]:
        out: set[Architecture] = {t.arch for t in self.known}
        out.update(guess_architecture(n) for n in self.unknown)
        return frozenset(out)

    @property
    def architecture(self) -> Architecture:
        """The one architecture of the list (raises MixedArchitectures)."""
        archs = self.architectures
        if len(archs) > 1:
            by_arch: dict[str, list[str]] = {}
            for name in (*self.exact, *self.families):
                arch = CATALOG[name].arch if name in CATALOG else _family_arch(name)
                by_arch.setdefault(arch, []).append(name)
            parts = "; ".join(f"{arch}: {', '.join(names)}" for arch, names in sorted(by_arch.items()))
            raise MixedArchitectures(
                f"instance types of both architectures ({parts}): the instance types of a compute "
                "environment must share the same architecture"
            )
        return next(iter(archs), "x86_64")

    @property
    def gpu_only(self) -> bool:
        """Every allowed type has GPUs (so nodes are tainted for GPU pods)."""
        return all(t.gpus for t in self.known) and all(may_have_gpus(n) for n in self.unknown)

    def require_known(self, why: str) -> None:
        """Raise UnknownInstanceType when an entry is outside the catalogue."""
        if self.unknown:
            names = ", ".join(repr(n) for n in self.unknown)
            raise UnknownInstanceType(
                f"instance type(s) {names} not in kubatch's catalogue ({why}); "
                f"known families: {', '.join(sorted(FAMILIES))}"
            )


def _family_arch(family: str) -> Architecture:
    archs = {t.arch for t in CATALOG.values() if t.family == family}
    return next(iter(archs)) if len(archs) == 1 else guess_architecture(family)


def select(names: Iterable[str] | None) -> Selection:
    """The selection an `instanceTypes` list makes (none: `default_x86_64`). Raises
    UnknownInstanceType only for an entry that is no keyword and not shaped like an EC2 name."""
    listed = [n.strip() for n in (names or [])] or [DEFAULT_KEYWORD]
    exact: list[str] = []
    families: list[str] = []
    unknown: list[str] = []
    for name in listed:
        if not (name in KEYWORDS or name in CATALOG or name in FAMILIES or is_instance_name(name)):
            raise UnknownInstanceType(f"unknown instance type {name!r}")
        if name not in CATALOG and name not in FAMILIES and name not in KEYWORDS and name not in unknown:
            unknown.append(name)
        target = exact if "." in name else families
        for entry in KEYWORDS.get(name, (name,)):
            if entry not in target:
                target.append(entry)
    known = [t for t in CATALOG.values() if t.name in exact or t.family in families]
    known.sort(key=lambda t: (t.gpus, t.neuron, t.vcpus, t.memory_mib, t.name))
    return Selection(tuple(exact), tuple(families), tuple(known), tuple(unknown))


def expand(names: Iterable[str]) -> list[InstanceType]:
    """The catalogue's instance types an `instanceTypes` list allows (families and keywords
    expanded); raises UnknownInstanceType for any entry outside the catalogue."""
    selection = select(list(names) or [DEFAULT_KEYWORD])
    selection.require_known("kubatch must know every type's size")
    return list(selection.known)


def expand_or_default(names: Iterable[str] | None) -> list[InstanceType]:
    return expand(list(names or []) or [DEFAULT_KEYWORD])


def environment_architecture(
    ce: Mapping[str, object], node_labels: Iterable[Mapping[str, str]] = ()
) -> Architecture | None:
    """The architecture of a compute environment: a MANAGED one's from its instance types (raises
    InstanceTypeError when they cannot be used); an UNMANAGED one's from its nodeSelector's
    `kubernetes.io/arch`, else from the labels of its nodes when they all agree; None when unknown."""
    spec = ce.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    if spec.get("type") != "UNMANAGED":
        cr = spec.get("computeResources")
        listed = cr.get("instanceTypes") if isinstance(cr, Mapping) else None
        return select(listed if isinstance(listed, list) else None).architecture
    selector = spec.get("nodeSelector")
    if isinstance(selector, Mapping) and selector.get("kubernetes.io/arch") in ARCH_FROM_KUBERNETES:
        return ARCH_FROM_KUBERNETES[str(selector["kubernetes.io/arch"])]
    seen: set[Architecture] = set()
    for labels in node_labels:
        arch = ARCH_FROM_KUBERNETES.get(labels.get("kubernetes.io/arch", ""))
        if arch is not None:
            seen.add(arch)
    return next(iter(seen)) if len(seen) == 1 else None


def architecture_conflict(architectures: Mapping[str, Architecture | None]) -> str | None:
    """Why a job queue's compute environments (name -> architecture, None when unknown) cannot
    serve one queue, or None: AWS's rule "All compute environments that are associated with a job
    queue must share the same architecture"."""
    known = {name: arch for name, arch in architectures.items() if arch is not None}
    if len(set(known.values())) <= 1:
        return None
    parts = ", ".join(f"{name} ({arch})" for name, arch in known.items())
    return (
        f"compute environments of different architectures: {parts}; all compute environments that are "
        "associated with a job queue must share the same architecture"
    )
