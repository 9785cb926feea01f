"""restart: the operator is killed (SIGKILL) with many jobs in flight (quick 150; full 20,000) and
started again: time to ready, to the first new dispatch, and until every job whose pod finished
while it was down shows SUCCEEDED. Baseline: the same cold start with one job waiting."""

from __future__ import annotations

import time

from bench.harness import Harness, job_manifest, submit
from bench.probes import rss_mib
from bench.report import Result, Row
from bench.scenarios.common import setup
from bench.trackers import JobTracker, PodTracker, until


async def run(h: Harness, quick: bool) -> Result:
    n = 150 if quick else 20000
    vcpus = max(50, n // 10)
    s = await setup(h, "restart", nodes=vcpus // 50, cpu=50)
    jobs, pods = JobTracker(h.k, s.ns), PodTracker(h.k, s.ns)
    await jobs.start()
    await pods.start()
    try:
        # Baseline: a cold start with a single job waiting.
        await h.stop_operator(kill=True)
        await submit(h.k, s.ns, [job_manifest(s.ns, "cold", s.queue, s.definition, "1s")])
        b_start = time.time()
        await h.start_operator()
        b_ready = time.time()
        await until(lambda: "cold" in pods.created, 60, "cold job dispatched")
        b_first = pods.created["cold"]
        # Many jobs in flight.
        duration = "2s" if quick else "3s"
        manifests = [job_manifest(s.ns, f"r{i:05d}", s.queue, s.definition, duration) for i in range(n)]
        await submit(h.k, s.ns, manifests)
        await until(lambda: len(pods.created) > 2 * vcpus, 120 + n * 0.05, "two waves dispatched")
        await h.stop_operator(kill=True)
        before = set(pods.created)
        in_flight = sum(1 for k in before if jobs.status.get(k) not in ("SUCCEEDED", "FAILED"))
        unfinished = n + 1 - jobs.done()  # queued or running: the state the restart must take over
        killed = time.time()
        # While it is down, the running pods finish.
        await until(lambda: all(p in ("Succeeded", "Failed") for p in pods.phase.values()), 60, "running pods finish")
        stale = {k for k in pods.finished if jobs.status.get(k) not in ("SUCCEEDED", "FAILED")}
        start = time.time()
        await h.start_operator()
        ready = time.time()
        assert h.op is not None
        rss_ready = rss_mib(h.op.pid)
        await until(lambda: max(pods.created.values()) > start, 120, "first new dispatch")
        first = min(t for t in pods.created.values() if t > start)
        reconciled = await until(
            lambda: all(jobs.status.get(k) == "SUCCEEDED" for k in stale), 300, "stale jobs reconciled"
        )
        await until(lambda: jobs.done() >= n + 1, 120 + n * 0.3, "all jobs done")
    finally:
        await jobs.stop()
        await pods.stop()
    figures = {
        "jobs": n,
        "in_flight_at_kill": in_flight,
        "unfinished_at_kill": unfinished,
        "finished_while_down": len(stale),
        "down_s": round(start - killed, 2),
        "start_to_ready_s": round(ready - start, 3),
        "start_to_first_dispatch_s": round(first - start, 3),
        "start_to_reconciled_s": round(reconciled - start, 3),
        "operator_rss_mib_at_ready": round(rss_ready, 1),
        "baseline_start_to_ready_s": round(b_ready - b_start, 3),
        "baseline_start_to_first_dispatch_s": round(b_first - b_start, 3),
        "duplicated_pods": sum(1 for k in pods.pod_created if k.endswith("-a2")),
    }
    rows = [
        Row("start -> ready", figures["start_to_ready_s"], figures["baseline_start_to_ready_s"], "s"),
        Row(
            "start -> first new dispatch",
            figures["start_to_first_dispatch_s"],
            figures["baseline_start_to_first_dispatch_s"],
            "s",
        ),
        Row(
            f"start -> {len(stale)} stale statuses fixed",
            figures["start_to_reconciled_s"],
            figures["baseline_start_to_first_dispatch_s"],
            "s",
        ),
        Row("jobs not finished at kill", figures["unfinished_at_kill"], None, "jobs"),
        Row("of which dispatched (a pod)", figures["in_flight_at_kill"], None, "jobs"),
        Row("operator RSS at ready", figures["operator_rss_mib_at_ready"], None, "MiB"),
    ]
    notes = ["baseline: the same cold start with one job queued (ratio = cost of the in-flight state)"]
    return Result("restart", rows, figures, notes)
