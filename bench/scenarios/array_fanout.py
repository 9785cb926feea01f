"""array_fanout: one array job of 10,000 children on 1,000 vCPUs (quick 300 on 100): create-call time,
children started per second, parent status writes per second; baseline: the same pods directly."""

from __future__ import annotations

import time

from bench.baseline import Work, run_direct
from bench.harness import Harness, job_manifest
from bench.profiler import PySpy
from bench.report import Result, Row, cumulative, plot_lines
from bench.scenarios.common import cpu_window, setup
from bench.trackers import GROUP_PATH, JobTracker, PodTracker, until


async def run(h: Harness, quick: bool) -> Result:
    size = 300 if quick else 10000
    vcpus = 100 if quick else size // 10
    s = await setup(h, "fan", nodes=max(1, vcpus // 50), cpu=50)
    jobs, pods = JobTracker(h.k, s.ns), PodTracker(h.k, s.ns)
    await jobs.start()
    await pods.start()
    assert h.op is not None
    spy = PySpy(h.op.pid, "array_fanout") if h.profile else None
    w = cpu_window(h)
    try:
        t0 = time.time()
        manifest = job_manifest(s.ns, "fan", s.queue, s.definition, "1s", arrayProperties={"size": size})
        await h.k.create(f"{GROUP_PATH}/namespaces/{s.ns}/batchjobs", manifest)
        accepted = time.time() - t0
        end = await until(lambda: jobs.status.get("fan") in ("SUCCEEDED", "FAILED"), 120 + size * 0.2, "array")
    finally:
        await jobs.stop()
        await pods.stop()
    cpu_kb = w.stop()
    profile = spy.stop() if spy else {}
    children = sorted(t for p, t in pods.pod_created.items() if p.startswith("fan-"))
    writes = jobs.modified["fan"]
    w = cpu_window(h)
    base = await run_direct(h.k, s.ns, [Work(f"c{i}", "q", 1, "1s", (s.ce,)) for i in range(size)], {s.ce: vcpus})
    cpu_base = w.stop()
    makespan = end - t0
    figures = {
        "size": size,
        "vcpus": vcpus,
        "create_call_s": round(accepted, 4),
        "makespan_s": round(makespan, 3),
        "baseline_makespan_s": round(base.makespan, 3),
        "ratio": round(makespan / base.makespan, 3),
        "children_started_per_s": round(len(children) / makespan, 1),
        "baseline_pods_started_per_s": round(size / base.makespan, 1),
        "first_child_s": round(children[0] - t0, 3) if children else None,
        "parent_status_writes": writes,
        "parent_status_writes_per_s": round(writes / makespan, 2),
        "final_status": jobs.status.get("fan"),
        "cpu_pct_kubatch_phase": cpu_kb,
        "cpu_pct_baseline_phase": cpu_base,
        "operator_profile": profile,
    }
    figures["plot"] = plot_lines(
        "array_fanout",
        f"array of {size} children on {vcpus} vCPUs",
        "seconds since submit",
        "pods created",
        {
            "kubatch children": cumulative(children, t0),
            "direct pods": cumulative(list(base.tracker.created.values()), base.t0),
        },
    )
    rows = [
        Row("create call accepted", figures["create_call_s"], None, "s"),
        Row("makespan", figures["makespan_s"], figures["baseline_makespan_s"], "s"),
        Row("children started", figures["children_started_per_s"], figures["baseline_pods_started_per_s"], "per s"),
        Row("first child pod", figures["first_child_s"], None, "s"),
        Row("parent status writes", writes, None, "MODIFIED"),
        Row("parent status writes rate", figures["parent_status_writes_per_s"], None, "per s"),
        Row("operator CPU", cpu_kb.get("operator"), None, "% core"),
    ]
    return Result("array_fanout", rows, figures, ["parent writes = MODIFIED watch events of the parent BatchJob"])
