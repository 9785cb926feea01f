"""scheduler_micro: runs `bench/scheduler_micro.py` (the pure planner on 100,000 jobs) and includes its
JSON; the baseline column is the previous full run in `results/scheduler_micro.history.jsonl`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.harness import Harness
from bench.report import RESULTS, Result, Row, results_dir

SCRIPT = Path(__file__).resolve().parents[1] / "scheduler_micro.py"


def previous_run() -> dict[str, Any]:
    """The last full run recorded in the history (empty when there is none)."""
    history = RESULTS / "scheduler_micro.history.jsonl"
    lines = history.read_text().splitlines() if history.exists() else []
    return dict(json.loads(lines[-1])) if lines else {}


async def run(h: Harness, quick: bool) -> Result:
    before = previous_run()
    args = [sys.executable, str(SCRIPT), *(["--quick"] if quick else [])]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        return Result("scheduler_micro", skipped=f"scheduler_micro.py failed: {err.decode()[-500:]}")
    data = json.loads((results_dir(quick) / "scheduler_micro.json").read_text())
    t = data.get("timings", {})
    full = (t.get("full_cycle") or {}).get("p50_ms")
    rows = [
        Row("full plan() p50 (100k jobs) vs last run", full, before.get("full_cycle_p50_ms"), "ms"),
        Row(
            "full plan() p99 vs last run",
            (t.get("full_cycle") or {}).get("p99_ms"),
            before.get("full_cycle_p99_ms"),
            "ms",
        ),
    ]
    for key, val in t.items():
        if key != "full_cycle" and isinstance(val, dict) and "p50_ms" in val:
            rows.append(Row(f"{key} p50 (vs full)", val["p50_ms"], full, "ms"))
    notes = [f"last run: {before.get('date', 'none')} at {before.get('commit', '-')}"]
    return Result("scheduler_micro", rows, {"scheduler_micro": data, "stdout": out.decode()[-2000:]}, notes)
