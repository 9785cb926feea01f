"""EC2 instance types that managed compute environments are sized from (vCPUs, memory, GPUs).

Families resolve to every size of the family (as AWS Batch treats `c5`), `optimal` to the
m5/c5/r5 families (AWS: "c4/m4/r4 or c5/m5/r5 depending on the Region"), `default_x86_64` to
m6i/c6i/r6i. Memory is in MiB. Pure data and lookups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


_SIZES = {
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "12xlarge": 48,
    "16xlarge": 64,
    "24xlarge": 96,
}
_GIB_PER_VCPU = {"m5": 4, "c5": 2, "r5": 8, "m6i": 4, "c6i": 2, "r6i": 8}


def _general() -> list[InstanceType]:
    out = []
    for family, gib in _GIB_PER_VCPU.items():
        for size, vcpus in _SIZES.items():
            if family.startswith("c5") and size in ("8xlarge", "16xlarge"):
                continue  # c5 skips these sizes (it has 9xlarge/18xlarge instead)
            out.append(InstanceType(f"{family}.{size}", vcpus, vcpus * gib * 1024))
    out += [InstanceType("c5.9xlarge", 36, 72 * 1024), InstanceType("c5.18xlarge", 72, 144 * 1024)]
    return out


_GPU = [
    InstanceType("p3.2xlarge", 8, 61 * 1024, 1),
    InstanceType("p3.8xlarge", 32, 244 * 1024, 4),
    InstanceType("p3.16xlarge", 64, 488 * 1024, 8),
    InstanceType("p4d.24xlarge", 96, 1152 * 1024, 8),
    InstanceType("g5.xlarge", 4, 16 * 1024, 1),
    InstanceType("g5.2xlarge", 8, 32 * 1024, 1),
    InstanceType("g5.4xlarge", 16, 64 * 1024, 1),
    InstanceType("g5.8xlarge", 32, 128 * 1024, 1),
    InstanceType("g5.12xlarge", 48, 192 * 1024, 4),
    InstanceType("g5.16xlarge", 64, 256 * 1024, 1),
    InstanceType("g5.24xlarge", 96, 384 * 1024, 4),
    InstanceType("g5.48xlarge", 192, 768 * 1024, 8),
]

CATALOG: dict[str, InstanceType] = {t.name: t for t in (*_general(), *_GPU)}
KEYWORDS: dict[str, tuple[str, ...]] = {
    "optimal": ("m5", "c5", "r5"),
    "default_x86_64": ("m6i", "c6i", "r6i"),
}


class UnknownInstanceType(ValueError):
    """An instanceTypes entry that names no known type, family or keyword."""


def expand(names: Iterable[str]) -> list[InstanceType]:
    """The instance types an `instanceTypes` list allows (families and keywords expanded)."""
    families: set[str] = set()
    exact: set[str] = set()
    for raw in names:
        name = raw.strip()
        if name in KEYWORDS:
            families.update(KEYWORDS[name])
        elif name in CATALOG:
            exact.add(name)
        elif any(t.family == name for t in CATALOG.values()):
            families.add(name)
        else:
            raise UnknownInstanceType(f"unknown instance type {name!r}")
    types = [t for t in CATALOG.values() if t.name in exact or t.family in families]
    return sorted(types, key=lambda t: (t.gpus, t.vcpus, t.memory_mib, t.name))


def expand_or_default(names: Iterable[str] | None) -> list[InstanceType]:
    listed = list(names or [])
    return expand(listed or ["optimal"])
