"""A CPU profile of the API server over a window (load profile clusters serve /debug/pprof), summarised
by `go tool pprof -top` into the functions where the API server spends its time."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from bench.report import RESULTS
from kubatch.cluster.client import Kube


async def capture(kube: Kube, binary: Path, name: str, seconds: int) -> dict[str, object]:
    """Profile for `seconds`; write `results/<name>-apiserver.pprof`; return the top entries."""
    data = await kube.raw(f"/debug/pprof/profile?seconds={seconds}", timeout=seconds + 30)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-apiserver.pprof"
    out.write_bytes(data)
    return await asyncio.to_thread(summarize, binary, out)


def summarize(binary: Path, profile: Path, nodes: int = 25) -> dict[str, object]:
    go = shutil.which("go")
    if go is None:
        return {"profile": str(profile)}
    top = subprocess.run(
        [go, "tool", "pprof", "-top", "-cum", f"-nodecount={nodes}", str(binary), str(profile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {"profile": str(profile), "top_cum": top.stdout.splitlines()[:nodes + 8]}
