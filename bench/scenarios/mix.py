"""mix: Kueue's baseline mix scaled down: 1-, 5- and 20-vCPU jobs of 200 ms / 500 ms / 1 s in three
queues sharing two environments; makespan and time-to-start per class vs the same work as pods."""

from __future__ import annotations

import uuid

from bench.baseline import Work, run_direct
from bench.estimates import accuracy, percent
from bench.harness import Harness, job_manifest
from bench.jobs import run_kubatch
from bench.report import Result, Row, quantile
from bench.scenarios.common import cpu_window

CLASSES = (("small", 1, "200ms", 0.2), ("medium", 5, "500ms", 0.5), ("large", 20, "1s", 1.0))


async def run(h: Harness, quick: bool) -> Result:
    counts = {"small": 100, "medium": 20, "large": 5} if quick else {"small": 800, "medium": 160, "large": 40}
    nodes = 4 if quick else 10
    tag = uuid.uuid4().hex[:4]
    envs = [await h.environment(f"mix{x}-{tag}", nodes=nodes, cpu=20) for x in "ab"]
    ns = await h.namespace("mix")
    queues, defs, work, manifests = {}, {}, [], []
    for i, (cls, vcpus, duration, _) in enumerate(CLASSES):
        order = envs if i % 2 == 0 else envs[::-1]
        queues[cls] = await h.queue(f"mix-{cls}-{tag}", order)
        defs[cls] = await h.definition(ns, f"mix-{cls}", vcpus=vcpus)
        for j in range(counts[cls]):
            key = f"{cls}-{j:04d}"
            work.append(Work(key, cls, vcpus, duration, tuple(order)))
            manifests.append(job_manifest(ns, key, queues[cls], defs[cls], duration))
    # Submission interleaves the classes, as independent users would.
    manifests.sort(key=lambda m: int(m["metadata"]["name"].split("-")[1]))
    work.sort(key=lambda w: int(w.key.split("-")[1]))
    cap = {e: nodes * 20 for e in envs}
    w = cpu_window(h)
    base = await run_direct(h.k, ns, work, cap, timeout=600)
    cpu_base = w.stop()
    w = cpu_window(h)
    kb = await run_kubatch(h, ns, manifests, timeout=600)
    cpu_kb = w.stop()
    vcpu_s = sum(counts[c] * v * d for c, v, _, d in CLASSES)
    figures: dict[str, object] = {
        "counts": counts,
        "vcpus": sum(cap.values()),
        "ideal_makespan_s": round(vcpu_s / sum(cap.values()), 2),
        "makespan_s": round(kb.makespan, 3),
        "baseline_makespan_s": round(base.makespan, 3),
        "ratio": round(kb.makespan / base.makespan, 3),
        "cpu_pct_kubatch_phase": cpu_kb,
        "cpu_pct_baseline_phase": cpu_base,
    }
    rows = [Row("makespan", figures["makespan_s"], figures["baseline_makespan_s"], "s")]
    for cls, *_ in CLASSES:
        k = [kb.pods.running[n] - t for n, t in kb.submitted.items() if n.startswith(cls) and n in kb.pods.running]
        b = [t - base.t0 for n, t in base.tracker.running.items() if n.startswith(cls)]
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            figures[f"{cls}_{label}_time_to_start_s"] = quantile(k, q)
            figures[f"{cls}_baseline_{label}_time_to_start_s"] = quantile(b, q)
            rows.append(Row(f"{cls} {label} time to start", quantile(k, q), quantile(b, q), "s"))
    est = accuracy(kb.estimates, kb.submitted, kb.pods.running)
    figures["start_estimates"] = est
    # Per class: each class's first estimates rest on its own definition's learned run time.
    figures["start_estimates_by_class"] = {
        cls: accuracy({n: t for n, t in kb.estimates.items() if n.startswith(cls)}, kb.submitted, kb.pods.running)
        for cls, *_ in CLASSES
    }
    rows.append(Row("start estimate median error", percent(est["median_relative_error"]), None, "% of wait"))
    rows.append(Row("start estimate p90 error", percent(est["p90_relative_error"]), None, "% of wait"))
    rows.append(Row("start estimate median bias", percent(est["median_signed_error"]), None, "% of wait"))
    notes = [
        "time to start = submit -> pod Running (baseline: run start -> Running)",
        "start estimate error = |first estimatedStartAt - pod Running| / (pod Running - submit), "
        f"over {est['jobs_scored']} of {est['jobs_with_estimate']} jobs with an estimate (waits >= 1 s)",
    ]
    return Result("mix", rows, figures, notes)
