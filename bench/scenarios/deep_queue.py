"""deep_queue: thousands of RUNNABLE jobs waiting (full 100,000; quick 2,000) while capacity is
freed in steps (a node added per step, jobs run for an hour): dispatch rate per step at growing
depths, operator RSS and CPU, scheduling cycle p50/p99. Baseline: a plain client creating a step's
pods directly. At each depth the operator is then restarted with a node of free capacity waiting:
start → ready (every informer listed) → first and last pod of that step, and its RSS afresh.

A depth counts as queued when the JobQueue's status says so (`jobCounts.RUNNABLE`, from the
operator's view): under a burst a job's own first status is deferred (it reads as SUBMITTED
meanwhile), so waiting for every job's RUNNABLE would measure that window, not the queue. At full
size the capacity step then waits for those writes to drain (`kubatch_status_writes_pending` = 0),
so that dispatch is measured in the steady state of a deep queue, not during its submission burst;
the quick run does not wait (the writes may wait up to a minute) and measures dispatch under it.

Sizes: quick 500 / 1,000 / 2,000; full 10,000 / 50,000 / 100,000; `BENCH_DEEP_QUEUE_SIZE=million`
(full runs only) 100,000 / 200,000 / 500,000 / 1,000,000, and `BENCH_DEEP_QUEUE_DEPTHS=100000,200000`
any list (the API server and etcd settings such depths need: docs/operations.md)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from bench.baseline import Work, pod_manifest
from bench.harness import CE_LABEL, CONCURRENCY, Harness, job_manifest, submit
from bench.probes import cpu_seconds, hist_delta, hist_quantile, histogram, rss_mib, scrape
from bench.report import Result, Row, plot_lines
from bench.trackers import GROUP_PATH, PodTracker, until, until_probed
from kubatch.devcluster.nodes import kwok_node

CYCLE = "kubatch_scheduling_cycle_seconds"
SIZES = {
    "quick": [500, 1000, 2000],
    "full": [10_000, 50_000, 100_000],
    "million": [100_000, 200_000, 500_000, 1_000_000],
}


def depths(quick: bool) -> list[int]:
    """The depths of this run: the quick or full size, or those BENCH_DEEP_QUEUE_SIZE /
    BENCH_DEEP_QUEUE_DEPTHS ask for (full runs only)."""
    listed = os.environ.get("BENCH_DEEP_QUEUE_DEPTHS", "").strip()
    size = os.environ.get("BENCH_DEEP_QUEUE_SIZE", "").strip()
    if quick or not (listed or size):
        return SIZES["quick" if quick else "full"]
    if listed:
        return sorted(int(d) for d in listed.split(","))
    return SIZES[size]


async def _baseline_rate(h: Harness, ns: str, step: int) -> float:
    """Pods per second a plain client reaches creating `step` pods onto a free node."""
    pool = f"deepbase-{uuid.uuid4().hex[:4]}"
    taint = {"key": CE_LABEL, "value": pool, "effect": "NoSchedule"}
    node = kwok_node(pool, cpu=step, memory="256Gi", pods=step + 10, labels={CE_LABEL: pool}, taints=[taint])
    await h.k.create("/api/v1/nodes", node)
    h.nodes.append(pool)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await h.k.create(
                f"/api/v1/namespaces/{ns}/pods", pod_manifest(pool, Work(f"p{i}", "q", 1, "1h", (pool,)), pool)
            )

    t0 = time.time()
    await asyncio.gather(*(one(i) for i in range(step)))
    return step / (time.time() - t0)


async def _queued(h: Harness, queue: str, want: int, timeout: float) -> float:
    """Wait until the queue's status counts `want` RUNNABLE jobs; returns the wall time it did."""

    async def counted() -> bool:
        status = (await h.k.get(f"{GROUP_PATH}/jobqueues/{queue}")).get("status") or {}
        return int((status.get("jobCounts") or {}).get("RUNNABLE", 0)) >= want

    return await until_probed(counted, timeout, f"{want} RUNNABLE in {queue}")


async def _drained(metrics_url: str, timeout: float) -> float:
    """Wait until the operator has no status write waiting; returns the wall time it had none."""

    async def drained() -> bool:
        return scrape(metrics_url).get("kubatch_status_writes_pending", 0.0) == 0

    return await until_probed(drained, timeout, "the status writes to drain", every=0.5)


async def run(h: Harness, quick: bool) -> Result:
    step = 50 if quick else 200
    tag = uuid.uuid4().hex[:4]
    ce = await h.environment(f"deep-{tag}", nodes=0, cpu=step)
    q = await h.queue(f"deep-{tag}", [ce])
    ns = await h.namespace("deep")
    jd = await h.definition(ns, "work")
    assert h.op is not None
    metrics_url = h.op.metrics_url
    pods = PodTracker(h.k, ns)
    await pods.start()
    rows, points = [], []
    submitted = 0
    try:
        for depth in depths(quick):
            t_sub = time.time()
            c0 = cpu_seconds(h.op.pid)
            manifests = [job_manifest(ns, f"d{i:06d}", q, jd, "1h") for i in range(submitted, depth)]
            await submit(h.k, ns, manifests)
            submitted = depth
            waiting = submitted - len(pods.created)
            t_runnable = await _queued(h, q, waiting, 120 + depth * 0.05)
            t_written = t_runnable if quick else await _drained(metrics_url, 300 + depth * 0.01)
            h0 = histogram(scrape(metrics_url), CYCLE)
            have = len(pods.created)
            t_node = time.time()
            node = (await h.add_nodes(ce, 1, step, pods=step + 10))[0]
            await until(lambda n=have + step: len(pods.created) >= n, 300, f"{step} dispatches")  # type: ignore[misc]
            new = sorted(t for k, t in pods.created.items() if t >= t_node)
            cycles = hist_delta(histogram(scrape(metrics_url), CYCLE), h0)
            cpu = 100 * (cpu_seconds(h.op.pid) - c0) / (time.time() - t_sub)
            base = await _baseline_rate(h, ns, step)
            rss_at_depth = rss_mib(h.op.pid)
            # What the control plane holds at this depth (docs/operations.md sizes it from these).
            assert h.info is not None
            plane = {f"{name}_rss_mib": round(rss_mib(h.info.pids[name]), 1) for name in ("kube-apiserver", "etcd")}
            etcd_db = sum(f.stat().st_size for f in (Path(h.info.state_dir) / "etcd").rglob("db"))
            # Restart with the queue this deep and a node of free capacity waiting for it.
            await h.stop_operator()
            have2 = len(pods.created)
            await h.add_nodes(ce, 1, step, pods=step + 10)
            t_start = time.time()
            await h.start_operator(timeout=300 + depth * 0.002)
            t_ready = time.time()
            await until(lambda n=have2 + 1: len(pods.created) >= n, 300 + depth * 0.002, "first dispatch after restart")  # type: ignore[misc]
            await until(lambda n=have2 + step: len(pods.created) >= n, 300, f"{step} dispatches after restart")  # type: ignore[misc]
            # From when each pod was seen: the warm start dispatches before the operator is ready.
            restarted = sorted(t for t in pods.created.values() if t >= t_start)
            t_first, t_last = restarted[0], restarted[min(step, len(restarted)) - 1]
            metrics_url = h.op.metrics_url
            point = {
                "depth": waiting,
                "node": node,
                "submit_to_runnable_s": round(t_runnable - t_sub, 2),
                "runnable_per_s": round(len(manifests) / (t_runnable - t_sub), 1),
                "submit_to_statuses_written_s": None if quick else round(t_written - t_sub, 2),
                "node_to_first_pod_s": round(new[0] - t_node, 3),
                "dispatch_per_s": round(len(new) / max(1e-6, new[-1] - new[0]), 1) if len(new) > 1 else None,
                "node_to_last_pod_s": round(new[-1] - t_node, 3),
                "baseline_pods_per_s": round(base, 1),
                "cycle_p50_s": hist_quantile(cycles, 0.5),
                "cycle_p99_s": hist_quantile(cycles, 0.99),
                "cycles": cycles[-1][1] if cycles else 0,
                "operator_rss_mib": round(rss_at_depth, 1),
                "operator_cpu_pct": round(cpu, 1),
                "restart_to_ready_s": round(t_ready - t_start, 2),
                "restart_to_first_dispatch_s": round(t_first - t_start, 2),
                "restart_to_last_dispatch_s": round(t_last - t_start, 2),
                "operator_rss_after_restart_mib": round(rss_mib(h.op.pid), 1),
                **plane,
                "etcd_db_mib": round(etcd_db / 2**20, 1),
            }
            points.append(point)
            print(f"   depth {waiting}: {point}", flush=True)
            rows += [
                Row(f"depth {waiting}: dispatch rate", point["dispatch_per_s"], point["baseline_pods_per_s"], "pods/s"),
                Row(f"depth {waiting}: node -> last pod", point["node_to_last_pod_s"], step / base, "s"),
                Row(f"depth {waiting}: cycle p50 / p99", point["cycle_p50_s"], point["cycle_p99_s"], "s"),
                Row(f"depth {waiting}: operator RSS", point["operator_rss_mib"], None, "MiB"),
                Row(f"depth {waiting}: operator CPU", point["operator_cpu_pct"], None, "% core"),
                Row(
                    f"depth {waiting}: restart -> ready / first pod",
                    point["restart_to_ready_s"],
                    point["restart_to_first_dispatch_s"],
                    "s",
                ),
                Row(f"depth {waiting}: RSS after restart", point["operator_rss_after_restart_mib"], None, "MiB"),
                Row(
                    f"depth {waiting}: kube-apiserver / etcd RSS",
                    point["kube-apiserver_rss_mib"],
                    point["etcd_rss_mib"],
                    "MiB",
                ),
            ]
    finally:
        await pods.stop()
    plot = plot_lines(
        "deep_queue",
        f"dispatch of {step} pods vs queue depth",
        "RUNNABLE jobs",
        "pods per second",
        {
            "kubatch dispatch": [(p["depth"], p["dispatch_per_s"] or 0) for p in points],  # type: ignore[misc]
            "direct creates": [(p["depth"], p["baseline_pods_per_s"]) for p in points],  # type: ignore[misc]
        },
    )
    notes = [
        f"largest depth measured: {points[-1]['depth'] if points else 0}",
        "cycle p99 column shows p99 (baseline col); restart row: ready (col 1), first pod (col 2)",
    ]
    return Result("deep_queue", rows, {"step_vcpus": step, "points": points, "plot": plot}, notes)
