"""Sampling the operator with py-spy (optional): raw folded stacks, and a summary by kubatch function."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.report import RESULTS


class PySpy:
    """`py-spy record` on one pid until `stop()`; a no-op when py-spy is not installed."""

    def __init__(self, pid: int, name: str, rate: int = 50) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = RESULTS / f"{name}-operator.folded"
        self.proc: subprocess.Popen[bytes] | None = None
        if Path(exe).exists():
            RESULTS.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                [exe, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(self.out), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, object]:
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return summarize(self.out) if self.out.exists() else {}


def summarize(path: Path, top: int = 15) -> dict[str, object]:
    """Self and inclusive sample shares per function (`file:function`) of a folded-stack file."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {}

    def pct(c: Counter[str], only_kubatch: bool) -> list[tuple[str, float]]:
        rows = [(f, round(100 * n / total, 1)) for f, n in c.most_common() if not only_kubatch or "kubatch/" in f]
        return rows[:top]

    return {
        "samples": total,
        "file": str(path),
        "self_pct": pct(self_t, False),
        "inclusive_pct_kubatch": pct(incl, True),
    }


def _frame(raw: str) -> str:
    """'func (path/to/file.py:12)' -> 'file-relative-path:func'."""
    func, _, where = raw.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "operator/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{where}:{func}"
