"""Micro-benchmark of the pure scheduler: ``plan()`` over 100,000 RUNNABLE jobs.

Usage: ``python bench/scheduler_micro.py [--quick]``. Builds a snapshot with 100,000 RUNNABLE jobs
in 50 queues (half FIFO, half fair share) on 20 compute environments with 100 share identifiers,
times a full ``plan()`` several times (p50/p99, ms per cycle) and the replan after an incremental
change (one job added; one job finished); then the same with the jobs kept in
:class:`~kubatch.scheduler.orders.DispatchOrders` between cycles, as the operator keeps them
(building them once, a cycle over them, keeping them current through a change), prints a table and writes
``bench/results/scheduler_micro.json`` (``--quick``: ``bench/results/quick/``). A full run also
appends its figures to ``bench/results/scheduler_micro.history.jsonl``: the planner's cost tracked
over time, one line per run with the date and commit. It prints numbers; it never asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kubatch.scheduler import (
    ComputeEnv,
    Consumable,
    Job,
    Plan,
    Policy,
    Queue,
    Resources,
    ShareUsage,
    Snapshot,
    TimeLimitAction,
    plan,
)
from kubatch.scheduler.orders import DispatchOrders

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HISTORY = RESULTS_DIR / "scheduler_micro.history.jsonl"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS_DIR, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def history_line(results: Mapping[str, object], rows: Mapping[str, Mapping[str, float]]) -> dict[str, object]:
    """One run in the history: when, which code, how big, what a cycle cost."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "workload": results["workload"],
        "full_cycle_p50_ms": rows["full_cycle"]["p50_ms"],
        "full_cycle_p99_ms": rows["full_cycle"]["p99_ms"],
        "replan_after_job_added_p50_ms": rows["replan_after_job_added"]["p50_ms"],
        "replan_after_job_finished_p50_ms": rows["replan_after_job_finished"]["p50_ms"],
        "kept_orders_cycle_p50_ms": rows["kept_orders_cycle"]["p50_ms"],
        "kept_orders_cycle_p99_ms": rows["kept_orders_cycle"]["p99_ms"],
    }


def build_snapshot(n_jobs: int, n_queues: int, n_envs: int, n_shares: int, seed: int = 7) -> Snapshot:
    """A busy cluster: environments mostly used, a few hundred slots free, deep queues."""
    rng = random.Random(seed)
    envs = []
    for i in range(n_envs):
        gpu = i >= n_envs - 2
        cap = Resources(512.0, 512 * 4096, 32 if gpu else 0)
        used = Resources(480.0, 480 * 4096, 24 if gpu else 0)
        envs.append(
            ComputeEnv(
                name=f"ce-{i:02d}",
                capacity=cap,
                used=used,
                max_node=Resources(64.0, 256 * 1024, 8 if gpu else 0),
                has_gpu_instance_types=gpu,
                spot=i % 5 == 4,
            )
        )
    policies = (
        Policy(
            "fs-decay",
            share_decay_seconds=3600,
            compute_reservation=10,
            weights=(("share-000", 0.5), ("team1*", 2.0)),
        ),
        Policy("fs-now", share_decay_seconds=0, weights=(("share-001", 0.25),)),
    )
    queues = []
    for qi in range(n_queues):
        k = 1 + qi % 3
        order = tuple(envs[(qi + j * 7) % n_envs].name for j in range(k))
        policy = None if qi % 2 == 0 else policies[qi % 4 // 2].name
        queues.append(
            Queue(
                name=f"q-{qi:02d}",
                priority=rng.randrange(0, 10),
                ce_order=order,
                policy=policy,
                time_limit_actions=(TimeLimitAction("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 600),),
            )
        )
    shares = [f"share-{s:03d}" if s % 10 else f"team1-{s:03d}" for s in range(n_shares)]
    jobs = []
    for i in range(n_jobs):
        q = queues[i % n_queues]
        jobs.append(
            Job(
                key=f"ns/job-{i:06d}",
                queue=q.name,
                needs=Resources(rng.choice((0.25, 0.5, 1.0, 2.0, 4.0)), rng.choice((512, 1024, 4096)), 0),
                order=(1_700_000_000.0 + i * 0.01, f"job-{i:06d}"),
                share=shares[rng.randrange(n_shares)] if q.policy else None,
                priority=rng.randrange(0, 3),
                retried=rng.random() < 0.001,
                runnable_since=1_700_000_000.0 + i * 0.01,
                consumables=(("licenses", 1),) if i % 1000 == 0 else (),
            )
        )
    usage = tuple(
        ShareUsage(q.name, s, usage=rng.random() * 3600.0, running_vcpus=rng.random() * 4)
        for q in queues
        if q.policy
        for s in shares
    )
    return Snapshot(
        now=1_700_001_000.0,
        envs=tuple(envs),
        queues=tuple(queues),
        jobs=tuple(jobs),
        policies=policies,
        share_usage=usage,
        consumables=(Consumable("licenses", 10, 4),),
    )


def timed(fn: Callable[[], Plan], reps: int) -> tuple[list[float], Plan]:
    """Run ``fn`` ``reps`` times; milliseconds per call and the last plan."""
    out: list[float] = []
    result = fn()
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out, result


def summary(samples: list[float]) -> dict[str, float]:
    """p50/p99/min/max of ``samples`` (ms)."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "min_ms": round(ordered[0], 2),
        "max_ms": round(ordered[-1], 2),
        "reps": len(ordered),
    }


def main() -> None:
    """Build the snapshot, time the scenarios, print a table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    reps = 5 if args.quick else 25
    n_jobs, n_queues, n_envs, n_shares = 100_000, 50, 20, 100

    t0 = time.perf_counter()
    snap = build_snapshot(n_jobs, n_queues, n_envs, n_shares)
    build_ms = (time.perf_counter() - t0) * 1000.0

    full, first = timed(lambda: plan(snap), reps)

    extra = replace(snap.jobs[0], key="ns/job-new", order=(1_800_000_000.0, "job-new"))
    added = replace(snap, jobs=(*snap.jobs, extra))
    add_samples, _ = timed(lambda: plan(added), reps)

    placed_key, placed_env = first.placements[0] if first.placements else (snap.jobs[0].key, "ce-00")
    finished_env = next(e for e in snap.envs if e.name == placed_env)
    freed = replace(finished_env, used=finished_env.used.sub(Resources(4.0, 4096, 0)))
    finished = replace(
        snap,
        envs=tuple(freed if e.name == placed_env else e for e in snap.envs),
        jobs=tuple(j for j in snap.jobs if j.key != placed_key),
    )
    fin_samples, _ = timed(lambda: plan(finished), reps)

    # The operator's way: the jobs kept in dispatch order between cycles, changed job by job.
    fair = [q.name for q in snap.queues if q.policy]
    t0 = time.perf_counter()
    orders = DispatchOrders(snap.jobs, fair_queues=fair)
    orders_build_ms = (time.perf_counter() - t0) * 1000.0
    bare = replace(snap, jobs=())
    kept, kept_plan = timed(lambda: plan(bare, orders), reps)
    if kept_plan != first:
        raise SystemExit("plan over the kept orders differs from the plan over the snapshot")

    def after_change() -> Plan:
        orders.add(extra)
        orders.discard(placed_key)
        try:
            return plan(replace(finished, jobs=()), orders)
        finally:
            orders.discard(extra.key)
            orders.add(next(j for j in snap.jobs if j.key == placed_key))

    kept_change, _ = timed(after_change, reps)
    rows = {
        "full_cycle": summary(full),
        "replan_after_job_added": summary(add_samples),
        "replan_after_job_finished": summary(fin_samples),
        "kept_orders_cycle": summary(kept),
        "kept_orders_change_and_replan": summary(kept_change),
    }
    results = {
        "benchmark": "scheduler_micro",
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "workload": {
            "runnable_jobs": n_jobs,
            "queues": n_queues,
            "fair_share_queues": sum(1 for q in snap.queues if q.policy),
            "compute_environments": n_envs,
            "shares": n_shares,
            "snapshot_build_ms": round(build_ms, 1),
            "orders_build_ms": round(orders_build_ms, 1),
        },
        "plan": {
            "placements": len(first.placements),
            "blocked_heads": len(first.blocked),
            "cancellations": len(first.cancellations),
            "queues_with_front": len(first.queue_front),
        },
        "timings": rows,
    }
    print(f"scheduler_micro: {n_jobs} RUNNABLE jobs, {n_queues} queues, {n_envs} CEs, {n_shares} shares")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{len(first.placements)} placements, {len(first.blocked)} blocked heads per cycle"
    )
    print(f"{'scenario':<28}{'p50 ms':>10}{'p99 ms':>10}{'min ms':>10}{'max ms':>10}{'reps':>6}")
    for name, row in rows.items():
        print(
            f"{name:<28}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}"
            f"{row['min_ms']:>10.1f}{row['max_ms']:>10.1f}{row['reps']:>6}"
        )
    out = RESULTS_DIR / "quick" if args.quick else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduler_micro.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'scheduler_micro.json'}")
    if not args.quick:
        with HISTORY.open("a") as f:
            f.write(json.dumps(history_line(results, rows)) + "\n")
        print(f"appended to {HISTORY}")


if __name__ == "__main__":
    main()
