"""throughput: N one-vCPU 1 s jobs on N/10 vCPUs; kubatch vs the same pods created directly (all at
once, the issue's baseline; and with a perfect admission, the stricter one); then, on the same
nodes, its peers (bench/peers.py): the jobs as plain batch/v1 Jobs (the job controller, no
queueing) and through Kueue (skipped with its reason when Kueue cannot build or start here)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import apiprofile, peers
from bench.baseline import Work, run_direct
from bench.estimates import accuracy, percent
from bench.harness import Harness, job_manifest
from bench.jobs import run_kubatch
from bench.probes import counts_delta, hist_delta, hist_quantile, histogram, request_counts, scrape
from bench.profiler import PySpy
from bench.report import Result, Row, cumulative, plot_lines, quantile, summary
from bench.scenarios.common import Setup, cpu_window, setup

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
    w = cpu_window(h)
    strict = await run_direct(h.k, s.ns, work, {s.ce: vcpus}, timeout=timeout, run="admit", admission=True)
    cpu_strict = w.stop()
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
    # kubatch's tail (its last status writes and Events) stays out of the peers' figures.
    settled_kb = await peers.settle(h.k)
    r2s = request_counts(await h.k.text("/metrics"))
    others = await peer_phases(h, s, work, vcpus, timeout)

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
            **{f"{PEER_NAMES[k]} (Complete)": cumulative(v, t0) for k, (t0, v) in others.curves.items()},
        },
    )
    figures: dict[str, Any] = {
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
        "api_requests_per_job_settled": round(sum(counts_delta(r2s, r1b).values()) / n, 2),
        "settled_after_kubatch_s": round(settled_kb, 1),
        "api_requests_kubatch_phase": requests_kb,
        "api_requests_baseline_phase": requests_base,
        "cpu_pct_kubatch_phase": cpu_kb,
        "cpu_pct_baseline_phase": cpu_base,
        "cpu_pct_admission_baseline_phase": cpu_strict,
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
    systems = {
        "kubatch": peers.peer_figures(n, kb.makespan, to_pod, requests_kb, cpu_kb, ["operator"]),
        "raw_pods": peers.peer_figures(
            n,
            base.makespan,
            [t - base.t0 for t in base.tracker.created.values()],
            requests_base,
            cpu_base,
            ["bench-client"],
        ),
        "raw_pods_admission": peers.peer_figures(
            n, strict.makespan, base_to_pod, counts_delta(r1b, r1), cpu_strict, ["bench-client"]
        ),
        **others.figures,
    }
    figures["systems"] = systems
    figures["peers_skipped"] = others.skipped
    for key in ("batch_jobs", "kueue"):
        peer = systems.get(key)
        figures[f"{key}_makespan_s"] = peer["makespan_s"] if peer else None
        figures[f"ratio_vs_{key}"] = round(kb.makespan / peer["makespan_s"], 3) if peer else None
    if "kueue" in systems:
        figures["kueue_version"] = systems["kueue"]["version"]
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
    est = accuracy(kb.estimates, kb.submitted, kb.pods.running)
    figures["start_estimates"] = est
    rows.append(Row("start estimate median error", percent(est["median_relative_error"]), None, "% of wait"))
    rows.append(Row("start estimate p90 error", percent(est["p90_relative_error"]), None, "% of wait"))
    rows.append(Row("start estimate median bias", percent(est["median_signed_error"]), None, "% of wait"))
    for key, peer in others.figures.items():
        label = PEER_NAMES[key]
        rows += [
            Row(f"makespan vs {label}", figures["makespan_s"], peer["makespan_s"], "s"),
            Row(f"jobs per second vs {label}", figures["jobs_per_s"], peer["jobs_per_s"], "jobs/s"),
            Row(f"p50 submit->pod vs {label}", figures["p50_submit_to_pod_s"], peer["p50_submit_to_pod_s"], "s"),
            Row(f"p99 submit->pod vs {label}", figures["p99_submit_to_pod_s"], peer["p99_submit_to_pod_s"], "s"),
            Row(
                f"API requests per job vs {label}", figures["api_requests_per_job"], peer["api_requests_per_job"], "req"
            ),
            Row(f"controller CPU vs {label}", cpu_kb.get("operator"), peer["controller_cpu_pct"], "% core"),
        ]
    notes = [
        f"{n} jobs on {vcpus} vCPUs (ideal makespan {n / vcpus:.0f} s); baseline submit time = start of its run",
        "baseline: the same pods created directly, all at once (the API server's and scheduler's own limit)",
        *[f"{PEER_NAMES[k]} skipped: {why}" for k, why in others.skipped.items()],
        "controller CPU: kubatch's operator; raw pods: the bench client; batch/v1 Jobs: kube-controller-manager;"
        " Kueue: Kueue + kube-controller-manager (which runs its Jobs)",
        *peers.comparison({PEER_NAMES.get(k, k): v for k, v in systems.items()}),
        "start estimate error = |first estimatedStartAt - pod Running| / (pod Running - submit), "
        f"over {est['jobs_scored']} of {est['jobs_with_estimate']} jobs with an estimate (waits >= 1 s)",
    ]
    return Result("throughput", rows, figures, notes)


PEER_NAMES = {
    "kubatch": "kubatch",
    "raw_pods": "raw pods, all at once",
    "raw_pods_admission": "raw pods, perfect admission",
    "batch_jobs": "batch/v1 Jobs",
    "kueue": "Kueue",
}


class Peers:
    """What the peer phases found: figures per peer, why a peer was skipped, finish curves."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}
        self.curves: dict[str, tuple[float, list[float]]] = {}


async def _peer_phase(
    h: Harness,
    key: str,
    ns: str,
    work: list[Work],
    ce: str,
    timeout: float,
    controllers: list[str],
    out: Peers,
    *,
    queue: str | None = None,
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    n = len(work)
    w = cpu_window(h)
    r0 = request_counts(await h.k.text("/metrics"))
    run = await peers.run_jobs(h.k, ns, work, ce, run=key.replace("_", "-"), queue=queue, timeout=timeout, alive=alive)
    cpu = w.stop()
    r1 = request_counts(await h.k.text("/metrics"))
    settled = await peers.settle(h.k)
    r2 = request_counts(await h.k.text("/metrics"))
    fig = peers.peer_figures(n, run.makespan, run.submit_to_pod(), counts_delta(r1, r0), cpu, controllers)
    fig.update(
        submit_s=round(run.submit_end - run.t0, 3),
        failed=run.failed,
        finished_unseen=run.deleted_unseen,
        api_requests_per_job_settled=round(sum(counts_delta(r2, r0).values()) / n, 2),
        settled_s=round(settled, 1),
        steps=peers.step_latencies(run.stamps, peers.KUEUE_STEPS if queue else peers.JOB_STEPS),
        timeline=run.samples,
    )
    out.figures[key] = fig
    out.curves[key] = (run.t0, list(run.finished.values()))
    return fig


async def peer_phases(h: Harness, s: Setup, work: list[Work], vcpus: int, timeout: float) -> Peers:
    """The peers on the same nodes, one after the other: batch/v1 Jobs, then Kueue. A peer that
    cannot run here, or fails, is recorded as skipped with its reason; kubatch's figures stand."""
    out = Peers()
    try:
        ns = await h.namespace("tpjobs")
        await _peer_phase(h, "batch_jobs", ns, work, s.ce, timeout, ["kube-controller-manager"], out)
    except Exception as e:  # the scenario's other figures stand
        out.skipped["batch_jobs"] = f"FAILED: {type(e).__name__}: {e}"
    try:
        kueue = await peers.start_kueue(h)
    except peers.PeerUnavailable as e:
        out.skipped["kueue"] = str(e)
        print(f"  Kueue phase skipped: {e}", file=sys.stderr, flush=True)
        return out
    try:
        ns = await h.namespace("tpkueue")
        # Memory quota = the nodes' memory (256 GiB each): never what limits.
        objects = peers.kueue_queues(f"bench-{ns}", ns, vcpus, 256 * max(1, vcpus // 10))
        await peers.kueue_queues_up(h.k, objects, kueue)
        try:
            fig = await _peer_phase(
                h,
                "kueue",
                ns,
                work,
                s.ce,
                2 * timeout,
                ["kueue", "kube-controller-manager"],
                out,
                queue=f"bench-{ns}",
                alive=kueue.alive,
            )
            fig.update(
                version=kueue.version, binary=kueue.binary, ready_s=kueue.started_s, settings=peers.kueue_settings()
            )
        finally:
            await peers.kueue_queues_down(h.k, ns, objects)
    except Exception as e:
        out.skipped["kueue"] = f"FAILED: {type(e).__name__}: {e} (log: {kueue.log})"
    finally:
        await peers.stop_kueue(h, kueue)
    return out
