"""Results: the environment block, one JSON file per benchmark, a printed table, optional plots."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One line of a table: a metric for kubatch, its baseline and their ratio."""

    metric: str
    value: Any  # a number, a string, or None
    baseline: Any = None
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        if isinstance(self.value, int | float) and isinstance(self.baseline, int | float) and self.baseline:
            return float(self.value) / float(self.baseline)
        return None


@dataclass
class Result:
    """What one benchmark reports."""

    name: str
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (q in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "p50": quantile(values, 0.5),
        "p99": quantile(values, 0.99),
        "mean": statistics.fmean(values) if values else None,
        "max": max(values) if values else None,
    }


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(repo: Path, k8s_version: str = "", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from kubatch import __version__ as kubatch_version

    return {
        "kubatch": kubatch_version,
        "git_commit": _git(repo, "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain")),
        "kubernetes": k8s_version,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(result: Result) -> str:
    title = f"== {result.name} =="
    if result.skipped:
        return f"{title}\n  SKIPPED: {result.skipped}"
    lines = [title, f"  {'metric':<40} {'kubatch':>12} {'baseline':>12} {'ratio':>7}  unit"]
    for r in result.rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(f"  {r.metric:<40} {_fmt(r.value):>12} {_fmt(r.baseline):>12} {ratio:>7}  {r.unit}")
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


def results_dir(quick: bool) -> Path:
    """Where a run's results go: a quick run is a smoke test of the harness, so its figures never
    replace the full-size ones."""
    return RESULTS / "quick" if quick else RESULTS


def write(result: Result, env: Mapping[str, Any], quick: bool) -> Path:
    folder = results_dir(quick)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.name}.json"
    body = {
        "benchmark": result.name,
        "mode": "quick" if quick else "full",
        "environment": dict(env),
        "skipped": result.skipped,
        "figures": result.figures,
        "table": [
            {"metric": r.metric, "kubatch": r.value, "baseline": r.baseline, "ratio": r.ratio, "unit": r.unit}
            for r in result.rows
        ],
        "notes": result.notes,
    }
    path.write_text(json.dumps(body, indent=2, default=str))
    return path


def plot_lines(
    name: str, title: str, xlabel: str, ylabel: str, series: Mapping[str, Sequence[tuple[float, float]]]
) -> str:
    """A PNG with one line per series; returns its path, or "" when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib missing: no plot)", file=sys.stderr)
        return ""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def cumulative(times: Sequence[float], t0: float) -> list[tuple[float, float]]:
    """(seconds since t0, count so far) for a cumulative-completion curve."""
    return [(t - t0, i + 1) for i, t in enumerate(sorted(times))]
