"""Run the benchmarks:

    python -m bench.run [--quick] [--only NAME ...] [--profile] [--profile-apiserver]
                        [--operator-env KEY=VALUE ...] [--keep]

Brings up a private cluster in `.kubatch/bench` (load profile) and one operator, runs each
scenario (kubatch and its baseline side by side), prints its table, writes
`bench/results/<name>.json`, and tears the cluster down at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from bench.harness import Harness  # noqa: E402
from bench.report import Result, environment, table, write  # noqa: E402

SCENARIOS = (
    "single_job",
    "throughput",
    "mix",
    "array_fanout",
    "deep_queue",
    "restart",
    "scaleout",
    "scheduler_micro",
    "aws_api",
    "service_jobs",
)


def other_clusters() -> list[str]:
    """Local clusters of this checkout running beside the benchmark's own (the shared test cluster,
    the resilience one): they share the CPUs and skew both phases of every scenario."""
    from kubatch.devcluster.cluster import LocalCluster, pid_alive

    found = []
    for state in (REPO / ".kubatch", REPO / ".kubatch" / "resilience"):
        info = LocalCluster(REPO, state_dir=state).read_info() if (state / "cluster.json").exists() else None
        if info is not None and any(pid_alive(pid) for pid in info.pids.values()):
            found.append(str(state))
    return found


async def main(
    names: list[str],
    quick: bool,
    profile: bool,
    keep: bool,
    profile_apiserver: bool = False,
    operator_env: dict[str, str] | None = None,
) -> int:
    h = Harness(REPO)
    h.profile = profile
    h.profile_apiserver = profile_apiserver
    h.operator_env = dict(operator_env or {})
    failures = 0
    started = time.monotonic()
    for state in other_clusters():
        print(f"warning: a local cluster runs from {state} (make cluster-down): it shares the CPUs", file=sys.stderr)
    try:
        await h.up()
        assert h.info is not None
        env = environment(REPO, h.info.k8s_version, {"load_profile": True, "operator_env": h.operator_env})
        for name in names:
            module = importlib.import_module(f"bench.scenarios.{name}")
            t0 = time.monotonic()
            print(f"-- {name} ({'quick' if quick else 'full'}) ...", file=sys.stderr, flush=True)
            if await h.ensure_operator():
                print("  (the operator had exited and was started again)", file=sys.stderr, flush=True)
            try:
                result: Result = await module.run(h, quick)
            except Exception as e:  # report and carry on with the next scenario
                traceback.print_exc()
                result = Result(name, skipped=f"FAILED: {type(e).__name__}: {e}")
                failures += 1
            result.figures.setdefault("wall_s", round(time.monotonic() - t0, 1))
            print(table(result), flush=True)
            print(f"  -> {write(result, env, quick)} ({time.monotonic() - t0:.0f}s)", flush=True)
            # Quick sizes leave little to delete: the next scenario does not wait for it.
            settled = await h.cleanup_cluster_objects(settle_timeout=0 if quick else 900)
            if not quick:
                print(f"  (clean-up settled in {settled:.0f}s)", file=sys.stderr, flush=True)
    finally:
        if keep:
            await h.close()
        else:
            await h.down()
    print(f"total {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 1 if failures else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during throughput")
    parser.add_argument(
        "--profile-apiserver", action="store_true", help="CPU-profile the API server during throughput (pprof)"
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an operator setting for this run, e.g. KUBATCH_STATUS_COALESCE_MAX_SECONDS=30 (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # so that a killed run still tears its cluster down
    names = args.only or list(SCENARIOS)
    operator_env = dict(item.split("=", 1) for item in args.operator_env)
    sys.exit(asyncio.run(main(names, args.quick, args.profile, args.keep, args.profile_apiserver, operator_env)))


if __name__ == "__main__":
    cli()
