"""Reading processes and the operator: CPU and RSS from /proc, Prometheus text from /metrics."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")
_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class CpuWindow:
    """CPU use of named processes between `start()` and `stop()`, in % of one core."""

    pids: Mapping[str, int]
    _t0: float = 0.0
    _c0: dict[str, float] | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {n: cpu_seconds(p) for n, p in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self._t0)
        c0 = self._c0 or {}
        return {n: round(100 * (cpu_seconds(p) - c0.get(n, 0.0)) / wall, 1) for n, p in self.pids.items()}


def scrape(url: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{labels}': value}."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                continue
    return out


def histogram(samples: Mapping[str, float], name: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) buckets of an unlabelled histogram."""
    buckets = []
    for key, value in samples.items():
        if key.startswith(f"{name}_bucket{{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    return sorted(buckets)


def hist_delta(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    prior = dict(before)
    return [(le, c - prior.get(le, 0.0)) for le, c in after]


def hist_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Quantile by linear interpolation inside the bucket (as PromQL's histogram_quantile)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            span = c - prev_c
            return prev_le + (le - prev_le) * ((rank - prev_c) / span if span else 1.0)
        prev_le, prev_c = le, c
    return prev_le


def parse_labels(labels: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))


def request_counts(text: str) -> dict[str, float]:
    """`apiserver_request_total` summed by 'VERB resource[/subresource]' (and the code when not 2xx)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) != "apiserver_request_total":
            continue
        lab = parse_labels(m.group(2) or "")
        key = f"{lab.get('verb', '?')} {lab.get('resource', '?')}"
        if lab.get("subresource"):
            key += "/" + lab["subresource"]
        if not lab.get("code", "200").startswith("2"):
            key += f" ({lab['code']})"
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def counts_delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, int]:
    """Requests made between two `request_counts` (only those that moved, biggest first)."""
    moved = {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0) >= 1}
    return dict(sorted(moved.items(), key=lambda kv: -kv[1]))
