"""throughput: N one-vCPU 1 s jobs on N/10 vCPUs; kubatch vs the same pods created directly (all at
once, the issue's baseline; and with a perfect admission, the stricter one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import apiprofile
from bench.baseline import Work, run_direct
from bench.harness import Harness, job_manifest
from bench.jobs import run_kubatch
from bench.probes import counts_delta, hist_delta, hist_quantile, histogram, request_counts, scrape
from bench.profiler import PySpy
from bench.report import Result, Row, cumulative, plot_lines, quantile, summary
from bench.scenarios.common import cpu_window, setup

CYCLE = "kubatch_scheduling_cycle_seconds"


def _pair(cycles: list[tuple[float, float]]) -> str:
    p50, p99 = hist_quantile(cycles, 0.5), hist_quantile(cycles, 0.99)
    return "-" if p50 is None or p99 is None else f"{p50:.3f} / {p99:.3f}"


def profile_api(h: Harness, name: str, n: int) -> asyncio.Task[dict[str, object]] | None:
    """With --profile-apiserver: a CPU profile of the API server over the middle of a phase."""
    if not h.profile_apiserver or h.info is None:
        return None
    seconds = max(5, min(30, n // 200))
    binary = Path(h.info.bin_dir) / "kube-apiserver"

    async def later() -> dict[str, object]:
        await asyncio.sleep(seconds / 2)
        return await apiprofile.capture(h.k, binary, name, seconds)

    return asyncio.create_task(later())


async def run(h: Harness, quick: bool) -> Result:
    n = 300 if quick else 5000
    vcpus = 100 if quick else n // 10
    s = await setup(h, "tp", nodes=vcpus // 10, cpu=10)
    timeout = 60 + n * 0.2
    work = [Work(f"b{i:05d}", "q", 1, "1s", (s.ce,)) for i in range(n)]
    # The baseline: the same pods created directly, all at once.
    w = cpu_window(h)
    r0 = request_counts(await h.k.text("/metrics"))
    api_base = profile_api(h, "throughput-baseline", n)
    base = await run_direct(h.k, s.ns, work, {s.ce: vcpus}, timeout=timeout, run="flood", admission=False)
    cpu_base = w.stop()
    r1 = request_counts(await h.k.text("/metrics"))
    # The stricter one: the same pods created only when their vCPUs are free.
    strict = await run_direct(h.k, s.ns, work, {s.ce: vcpus}, timeout=timeout, run="admit", admission=True)
    r1b = request_counts(await h.k.text("/metrics"))
    manifests = [job_manifest(s.ns, f"j{i:05d}", s.queue, s.definition, "1s") for i in range(n)]
    assert h.op is not None
    spy = PySpy(h.op.pid, "throughput", rate=20) if h.profile else None
    api_kb = profile_api(h, "throughput-kubatch", n)
    w = cpu_window(h)
    cycles0 = scrape(h.op.metrics_url)
    kb = await run_kubatch(h, s.ns, manifests, timeout=timeout)
    cpu_kb = w.stop()
    cycles1 = scrape(h.op.metrics_url)
    cycles = hist_delta(histogram(cycles1, CYCLE), histogram(cycles0, CYCLE))
    cycle_count = cycles[-1][1] if cycles else 0.0
    cycle_seconds = cycles1.get(f"{CYCLE}_sum", 0.0) - cycles0.get(f"{CYCLE}_sum", 0.0)
    r2 = request_counts(await h.k.text("/metrics"))
    requests_base, requests_kb = counts_delta(r1, r0), counts_delta(r2, r1b)
    profile = spy.stop() if spy else {}
    api_profiles = {
        "baseline": await api_base if api_base else {},
        "kubatch": await api_kb if api_kb else {},
    }

    to_pod = kb.submit_to(kb.pods.created)
    base_to_pod = [t - strict.t0 for t in strict.tracker.created.values()]  # created when it can start
    done_k = list(kb.jobs.times("SUCCEEDED").values())
    done_b = list(base.tracker.finished.values())
    plot = plot_lines(
        "throughput",
        f"{n} jobs of 1 vCPU x 1 s on {vcpus} vCPUs",
        "seconds since first submit",
        "jobs finished",
        {
            "kubatch (SUCCEEDED)": cumulative(done_k, kb.t0),
            "direct pods, all at once (Succeeded)": cumulative(done_b, base.t0),
            "direct pods, perfect admission (Succeeded)": cumulative(list(strict.tracker.finished.values()), strict.t0),
        },
    )
    figures = {
        "jobs": n,
        "vcpus": vcpus,
        "nodes": vcpus // 10,
        "makespan_s": round(kb.makespan, 3),
        "baseline_makespan_s": round(base.makespan, 3),
        "ratio": round(kb.makespan / base.makespan, 3),
        "admission_baseline_makespan_s": round(strict.makespan, 3),
        "ratio_vs_admission_baseline": round(kb.makespan / strict.makespan, 3),
        "ideal_makespan_s": n / vcpus * 1.0,
        "jobs_per_s": round(n / kb.makespan, 1),
        "baseline_jobs_per_s": round(n / base.makespan, 1),
        "submit_s": round(kb.submit_end - kb.t0, 3),
        "p50_submit_to_pod_s": quantile(to_pod, 0.5),
        "p99_submit_to_pod_s": quantile(to_pod, 0.99),
        "baseline_p50_start_to_pod_s": quantile(base_to_pod, 0.5),
        "baseline_p99_start_to_pod_s": quantile(base_to_pod, 0.99),
        "submit_to_pod_s": summary(to_pod),
        "submit_to_succeeded_s": summary(kb.submit_to(kb.jobs.times("SUCCEEDED"))),
        "failed": kb.jobs.counts["FAILED"],
        "status_writes_per_job": round(sum(kb.jobs.modified.values()) / n, 2),
        "status_versions_per_job": kb.jobs.patterns(),
        "api_requests_per_job": round(sum(requests_kb.values()) / n, 2),
        "baseline_api_requests_per_job": round(sum(requests_base.values()) / n, 2),
        "api_requests_kubatch_phase": requests_kb,
        "api_requests_baseline_phase": requests_base,
        "cpu_pct_kubatch_phase": cpu_kb,
        "cpu_pct_baseline_phase": cpu_base,
        "scheduling_cycles": int(cycle_count),
        "scheduling_cycle_p50_s": hist_quantile(cycles, 0.5),
        "scheduling_cycle_p99_s": hist_quantile(cycles, 0.99),
        "scheduling_cycle_pct_core": round(100 * cycle_seconds / kb.makespan, 1),
        "operator_profile": profile,
        "apiserver_profiles": api_profiles,
        "timeline_kubatch": kb.samples,
        "timeline_baseline": base.samples,
        "plot": plot,
    }
    rows = [
        Row("makespan", figures["makespan_s"], figures["baseline_makespan_s"], "s"),
        Row("makespan vs perfect-admission pods", figures["makespan_s"], figures["admission_baseline_makespan_s"], "s"),
        Row("jobs per second", figures["jobs_per_s"], figures["baseline_jobs_per_s"], "jobs/s"),
        Row("p50 submit->pod (base: admit)", figures["p50_submit_to_pod_s"], quantile(base_to_pod, 0.5), "s"),
        Row("p99 submit->pod (base: admit)", figures["p99_submit_to_pod_s"], quantile(base_to_pod, 0.99), "s"),
        Row("submission of all jobs", figures["submit_s"], None, "s"),
        Row("API requests per job", figures["api_requests_per_job"], figures["baseline_api_requests_per_job"], "req"),
        Row("BatchJob writes per job (MODIFIED)", figures["status_writes_per_job"], None, "writes"),
        Row("operator CPU", cpu_kb.get("operator"), None, "% core"),
        Row("  of it in scheduling cycles", figures["scheduling_cycle_pct_core"], None, "% core"),
        Row("scheduling cycles", figures["scheduling_cycles"], None, "cycles"),
        Row("scheduling cycle p50 / p99", _pair(cycles), None, "s"),
        Row("kube-apiserver CPU", cpu_kb.get("kube-apiserver"), cpu_base.get("kube-apiserver"), "% core"),
        Row("etcd CPU", cpu_kb.get("etcd"), cpu_base.get("etcd"), "% core"),
    ]
    notes = [
        f"{n} jobs on {vcpus} vCPUs (ideal makespan {n / vcpus:.0f} s); baseline submit time = start of its run",
        "baseline: the same pods created directly, all at once (the API server's and scheduler's own limit)",
    ]
    return Result("throughput", rows, figures, notes)
