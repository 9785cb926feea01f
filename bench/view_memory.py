"""The operator's memory per queued job, offline: what a million RUNNABLE jobs cost the view.

Usage: ``python -m bench.view_memory [--jobs N ...] [--breakdown N]``. Takes N BatchJobs in the way
the operator does when they are submitted while it runs, decoded from JSON in the shapes the API
server returns (managedFields included): the submitted job, its first status decided (RUNNABLE),
the response of that status write and the watch's event of it, with scheduling cycles between
(each job derived twice, as in the operator); and keeps what the operator keeps of each: the view
(the BatchJob informer keeps no records of its own) and the dispatcher's kept units and dispatch
orders (``Dispatcher.refresh_units``). Reports the process
RSS growth per job at each N, and with ``--breakdown`` the largest allocation sites of N jobs
(tracemalloc). No cluster: the live figures come from ``deep_queue``; this one isolates the
per-job cost and reaches sizes the local control plane cannot hold. It prints numbers; it never
asserts them.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from kubatch.cluster.view import View
from kubatch.observability.metrics import Metrics
from kubatch.runtime.dispatcher import Dispatcher

RESULTS = Path(__file__).resolve().parent / "results" / "view_memory.json"
NS = "deep-1a2b3c4d"
DEFINITION_SPEC = {
    "type": "container",
    "containerProperties": {
        "image": "busybox",
        "command": ["sleep", "3600"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
    },
}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def api_job(i: int) -> bytes:
    """Job ``i`` as the API server returns it, RUNNABLE, as bytes (decoded separately per job)."""
    created = f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}Z"
    queued = f"2026-12-04T11:{i // 60 % 60:02d}:{i % 60:02d}Z"
    uid = f"{i:08x}-5f1e-4c39-9d7a-0c8e2b4f6a1d"
    spec_fields: dict[str, Any] = {"f:jobQueue": {}, "f:jobDefinition": {}, "f:podMetadata": {}}
    fields = {"f:metadata": {}, "f:spec": spec_fields}
    obj = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {
            "name": f"d{i:06d}",
            "namespace": NS,
            "uid": uid,
            "resourceVersion": str(1_000_000 + 2 * i),
            "generation": 1,
            "creationTimestamp": created,
            "managedFields": [
                {"manager": "kubatch-bench", "operation": "Update", "time": created, "fieldsV1": fields},
                {"manager": "kubatch", "operation": "Update", "subresource": "status", "time": queued, "fieldsV1": {}},
            ],
        },
        "spec": {
            "jobQueue": "deep-1a2b",
            "jobDefinition": "work",
            "podMetadata": {"annotations": {"sim.kubatch.dev/duration": "1h"}},
        },
        "status": {
            "status": "RUNNABLE",
            "statusReason": "",
            "jobId": uid,
            "createdAt": created,
            "queuedAt": queued,
            "jobDefinition": "work:1",
        },
    }
    return json.dumps(obj).encode()


def world() -> tuple[View, Dispatcher]:
    view = View()
    view.on_definition("ADDED", {"metadata": {"namespace": NS, "name": "work", "uid": "jd"}, "spec": DEFINITION_SPEC})
    view.on_revision(
        "ADDED",
        {
            "metadata": {"namespace": NS, "name": "work-1", "labels": {"kubatch.dev/job-definition": "work"}},
            "revision": 1,
            "data": {"spec": DEFINITION_SPEC},
        },
    )
    view.on_named(
        view.envs,
        "ADDED",
        {
            "metadata": {"name": "deep-1a2b"},
            "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 1000, "instanceTypes": ["c5.large"]}},
            "status": {"status": "VALID"},
        },
    )
    view.on_queue(
        "ADDED",
        {
            "metadata": {"name": "deep-1a2b"},
            "spec": {
                "priority": 1,
                "state": "ENABLED",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "deep-1a2b"}],
            },
        },
    )
    dispatcher = Dispatcher(None, view, None, Metrics())  # type: ignore[arg-type]
    return view, dispatcher


def fill(view: View, dispatcher: Dispatcher, start: int, stop: int) -> tuple[float, float]:
    """Jobs ``start``..``stop`` taken in as they are when submitted while the operator runs, in
    pages of 1,000 with a scheduling cycle after each half: each job is derived when its RUNNABLE
    status is decided and again when the response of its status write comes. Returns the seconds
    spent in the operator's code: decoding and storing them (the view), and deriving their dispatch
    entries (the cycles' share)."""
    spent = derived = 0.0
    for first in range(start, stop, 1_000):
        page = [api_job(i) for i in range(first, min(stop, first + 1_000))]
        t0 = time.perf_counter()
        for raw in page:
            # As the operator's client decodes it: the submitted job (no status yet), then the
            # status the lifecycle decided.
            obj = orjson.loads(raw)
            decided = obj.pop("status")
            md = obj["metadata"]
            md["resourceVersion"] = str(int(md["resourceVersion"]) - 1)
            view.dirty.clear()
            view.on_job("ADDED", obj)
            view.set_status(next(iter(view.dirty)), decided)  # the key the reconciler steps: the view's
        t1 = time.perf_counter()
        dispatcher.refresh_units()
        t2 = time.perf_counter()
        for raw in page:
            # The response of the status write, then the watch's event of that write (no news).
            response = orjson.loads(raw)
            md = response["metadata"]
            view.put_job(response)
            view.settle(f"{md['namespace']}/{md['name']}", response["status"])
            view.on_job("MODIFIED", orjson.loads(raw))
        t3 = time.perf_counter()
        dispatcher.refresh_units()
        spent += (t1 - t0) + (t3 - t2)
        derived += (t2 - t1) + (time.perf_counter() - t3)
    view.take_touched()
    view.dirty.clear()  # the reconciler's loop takes them in the operator
    return spent, derived


def measure(sizes: list[int]) -> list[dict[str, float]]:
    """RSS growth per job (and the time to take each job in) at each of ``sizes``, in one process."""
    view, dispatcher = world()
    gc.collect()
    base = rss_kib()
    rows, have = [], 0
    for n in sorted(sizes):
        took, derived = fill(view, dispatcher, have, n)
        added, have = n - have, n
        gc.collect()
        grown = rss_kib() - base
        row = {
            "jobs": n,
            "rss_growth_mib": round(grown / 1024, 1),
            "kib_per_job": round(grown / n, 3),
            "take_in_us_per_job": round(took / added * 1e6, 1),
            "derive_us_per_job": round(derived / added * 1e6, 1),
        }
        assert len(dispatcher.orders) == n, "every job is kept as dispatchable"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def breakdown(n: int, top: int = 15) -> list[dict[str, Any]]:
    """The allocation sites still holding memory after ``n`` jobs, per job (largest first)."""
    view, dispatcher = world()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    fill(view, dispatcher, 0, n)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    out = []
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
        per_job = {"bytes_per_job": round(stat.size_diff / n, 1), "count_per_job": round(stat.count_diff / n, 2)}
        out.append({"where": where, **per_job})
        print(f"{out[-1]['bytes_per_job']:>8} B/job {out[-1]['count_per_job']:>6} objs/job  {where}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="*", default=[100_000, 250_000, 500_000, 1_000_000])
    parser.add_argument("--breakdown", type=int, default=0, help="jobs for the allocation sites (0: none)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = measure(args.jobs)  # first: a breakdown before it would lend it freed memory
    sites = breakdown(args.breakdown) if args.breakdown else []
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": rows, "sites": sites}, indent=2) + "\n")
        print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
