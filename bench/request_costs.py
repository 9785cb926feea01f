"""What one API request of each kind costs the API server, in CPU milliseconds.

    python -m bench.request_costs [--n 1500]

Brings up the bench cluster with no operator, then sends N requests of each kind a job or a pod
needs (BatchJob create, BatchJob status patches as kubatch writes them, Pod create, Pod status
patch, Event create) with 32 in parallel, reading the API server's CPU time around each batch.
This is what turns "kubatch writes X per job" into "the API server spends Y ms per job", and so
bounds the throughput ratio on a machine where the API server is the bottleneck. Writes
`results/request_costs.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from bench.baseline import Work, pod_manifest  # noqa: E402
from bench.harness import Harness, job_manifest, submit  # noqa: E402
from bench.probes import cpu_seconds  # noqa: E402
from bench.report import Result, Row, environment, table, write  # noqa: E402
from bench.trackers import GROUP_PATH  # noqa: E402

T0 = "2026-01-01T00:00:00Z"


def runnable() -> dict[str, Any]:
    return {"status": {"status": "RUNNABLE", "createdAt": T0, "queuedAt": T0, "jobDefinition": "work:1"}}


def succeeded(name: str) -> dict[str, Any]:
    attempt = {
        "container": {"exitCode": 0, "podName": f"{name}-a1", "nodeName": "n1", "reason": "Completed"},
        "startedAt": T0,
        "stoppedAt": T0,
        "statusReason": "Essential container in task exited",
    }
    return {
        "status": {
            "status": "SUCCEEDED",
            "startedAt": T0,
            "stoppedAt": T0,
            "attempts": [attempt],
            "statusReason": "Essential container in task exited",
        }
    }


async def measure(h: Harness, n: int) -> dict[str, float]:
    assert h.info is not None
    pid = h.info.pids["kube-apiserver"]
    ns = await h.namespace("cost")
    sem = asyncio.Semaphore(32)
    costs: dict[str, float] = {}

    async def each(label: str, call: Callable[[int], Awaitable[Any]]) -> None:
        async def one(i: int) -> None:
            async with sem:
                await call(i)

        c0 = cpu_seconds(pid)
        await asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.sleep(1.0)  # the watch fan-out of the last writes
        costs[label] = round(1000 * (cpu_seconds(pid) - c0) / n, 3)
        print(f"  {label:36s} {costs[label]:6.2f} ms", flush=True)

    names = [f"j{i:05d}" for i in range(n)]
    c0 = cpu_seconds(pid)
    await submit(h.k, ns, [job_manifest(ns, name, "q", "work", "1s") for name in names], concurrency=32)
    await asyncio.sleep(1.0)
    costs["BatchJob create"] = round(1000 * (cpu_seconds(pid) - c0) / n, 3)
    print(f"  {'BatchJob create':36s} {costs['BatchJob create']:6.2f} ms", flush=True)
    status = f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{{}}/status"
    await each("BatchJob status patch (RUNNABLE)", lambda i: h.k.merge_patch(status.format(names[i]), runnable()))
    await each(
        "BatchJob status patch (SUCCEEDED)", lambda i: h.k.merge_patch(status.format(names[i]), succeeded(names[i]))
    )
    pods = f"/api/v1/namespaces/{ns}/pods"
    await each(
        "Pod create (no node can take it)",
        lambda i: h.k.create(pods, pod_manifest("p", Work(f"{i:05d}", "q", 1, "1s", ("none",)), "none")),
    )
    ready = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Bench"}]}}
    await each(
        "Pod status patch",
        lambda i: h.k.request(
            "PATCH", f"{pods}/p-{i:05d}/status", body=ready, content_type="application/strategic-merge-patch+json"
        ),
    )
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "j.", "namespace": ns},
        "involvedObject": {"kind": "BatchJob", "name": "j", "namespace": ns},
        "reason": "JobSucceeded",
        "message": "j is SUCCEEDED",
        "type": "Normal",
        "source": {"component": "bench"},
        "count": 1,
        "firstTimestamp": T0,
        "lastTimestamp": T0,
    }
    await each("Event create", lambda i: h.k.create(f"/api/v1/namespaces/{ns}/events", event))
    return costs


async def main(n: int) -> None:
    h = Harness(REPO)
    started = time.monotonic()
    try:
        await h.up()
        await h.stop_operator(kill=True)  # only the requests themselves
        assert h.info is not None
        costs = await measure(h, n)
        result = Result(
            "request_costs",
            [Row(k, v, None, "ms CPU") for k, v in costs.items()],
            {"requests_per_kind": n, "parallel": 32, "apiserver_cpu_ms": costs},
            ["API server CPU per request, watch fan-out to the cluster's own watchers included"],
        )
        print(table(result))
        print(f"  -> {write(result, environment(REPO, h.info.k8s_version, {'load_profile': True}), False)}")
    finally:
        await h.down()
    print(f"total {time.monotonic() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1500, help="requests of each kind")
    asyncio.run(main(parser.parse_args().n))
