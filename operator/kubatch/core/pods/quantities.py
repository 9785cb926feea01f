"""AWS Batch amounts as Kubernetes quantities and back: vCPUs -> cpu ("0.25" -> "250m"), MiB ->
memory ("2048" -> "2048Mi"), and parsing a Kubernetes quantity into a Decimal. Pure.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from kubatch.core.pods.names import PodSpecError


def decimal_of(value: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise PodSpecError(f"invalid {what} value {value!r}") from exc
    if not d.is_finite() or d < 0:
        raise PodSpecError(f"invalid {what} value {value!r}")
    return d


def cpu_quantity(vcpus: Any) -> str:
    """AWS vCPUs -> Kubernetes cpu: "1" -> "1", "0.25" -> "250m", "1.5" -> "1500m"."""
    millis = math.ceil(decimal_of(vcpus, "VCPU") * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(mib: Any) -> str:
    """AWS MiB -> Kubernetes memory: "2048" -> "2048Mi" (fractions round up)."""
    return f"{math.ceil(decimal_of(mib, 'MEMORY'))}Mi"


_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18), "Ki": Decimal(2**10),
    "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}  # fmt: skip

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("250m", "2Gi", "1e3", 2) as a Decimal in base units."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise PodSpecError(f"invalid quantity {value!r}")
    return Decimal(m.group(1)) * _SUFFIXES[m.group(2) or ""]
