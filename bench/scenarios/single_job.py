"""single_job: submit -> pod created -> SUCCEEDED for one job (p50 over runs), and a 1,000-child
array's children per second; baseline: the same pods created directly."""

from __future__ import annotations

import time

from bench.baseline import Work, run_direct
from bench.harness import Harness, job_manifest, submit
from bench.report import Result, Row, quantile
from bench.scenarios.common import setup
from bench.trackers import JobTracker, PodTracker, until


async def run(h: Harness, quick: bool) -> Result:
    runs = 3 if quick else 20
    size = 100 if quick else 1000
    s = await setup(h, "single", nodes=size // 100, cpu=100)
    jobs, pods = JobTracker(h.k, s.ns), PodTracker(h.k, s.ns)
    await jobs.start()
    await pods.start()
    to_pod, to_done, b_pod, b_done = [], [], [], []
    try:
        for i in range(runs):
            name = f"one-{i:02d}"
            t = (await submit(h.k, s.ns, [job_manifest(s.ns, name, s.queue, s.definition, "1s")]))[name]
            await until(lambda n=name: jobs.status.get(n) == "SUCCEEDED", 60, f"{name} SUCCEEDED")  # type: ignore[misc]
            to_pod.append(pods.created[name] - t)
            to_done.append(jobs.seen[name]["SUCCEEDED"] - t)
            base = await run_direct(h.k, s.ns, [Work("x", "q", 1, "1s", (s.ce,))], {s.ce: 1}, run=f"one{i}")
            b_pod.append(base.tracker.created["x"] - base.t0)
            b_done.append(base.makespan)
        t0 = time.time()
        arr = job_manifest(s.ns, "arr", s.queue, s.definition, "1s", arrayProperties={"size": size})
        await submit(h.k, s.ns, [arr])
        await until(lambda: jobs.status.get("arr") in ("SUCCEEDED", "FAILED"), 120 + size / 5, "array done")
        child = sorted(t for p, t in pods.pod_created.items() if p.startswith("arr-"))
    finally:
        await jobs.stop()
        await pods.stop()
    base = await run_direct(h.k, s.ns, [Work(f"c{i}", "q", 1, "1s", (s.ce,)) for i in range(size)], {s.ce: size})
    bchild = sorted(base.tracker.created.values())
    rate = len(child) / max(1e-6, child[-1] - t0) if child else None
    brate = len(bchild) / max(1e-6, bchild[-1] - base.t0) if bchild else None
    figures = {
        "runs": runs,
        "p50_submit_to_pod_s": quantile(to_pod, 0.5),
        "p50_submit_to_succeeded_s": quantile(to_done, 0.5),
        "baseline_p50_create_to_pod_seen_s": quantile(b_pod, 0.5),
        "baseline_p50_create_to_succeeded_s": quantile(b_done, 0.5),
        "samples": {"to_pod": to_pod, "to_succeeded": to_done, "baseline_to_pod": b_pod, "baseline_done": b_done},
        "array_size": size,
        "array_children_per_s": rate,
        "array_submit_to_last_child_s": child[-1] - t0 if child else None,
        "baseline_pods_per_s": brate,
    }
    rows = [
        Row(
            "p50 submit->pod created", figures["p50_submit_to_pod_s"], figures["baseline_p50_create_to_pod_seen_s"], "s"
        ),
        Row(
            "p50 submit->SUCCEEDED",
            figures["p50_submit_to_succeeded_s"],
            figures["baseline_p50_create_to_succeeded_s"],
            "s",
        ),
        Row(f"array of {size}: children started", rate, brate, "pods/s"),
    ]
    notes = ["1 s jobs; baseline: a direct pod, create -> Succeeded seen by a watch"]
    return Result("single_job", rows, figures, notes)
