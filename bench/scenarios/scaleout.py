"""scaleout (MANAGED environments, kwok provisioner): 0 -> 100 kwok nodes under a burst of 1,000
jobs (quick 30 under 300), and a 16-node (quick 8) multi-node-parallel job from submit to every node
RUNNING. Baseline: a plain client creating the same nodes (and, for the MNP job, its pods) directly."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.baseline import Work, pod_manifest
from bench.harness import CE_LABEL, Harness, job_manifest, submit
from bench.report import Result, Row
from bench.trackers import PodTracker, until

ITYPE, ITYPE_VCPUS = "m5.2xlarge", 8


def managed(max_vcpus: int) -> dict[str, Any]:
    return {
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": max_vcpus,
            "instanceTypes": [ITYPE],
            "allocationStrategy": "BEST_FIT",
            "provisioner": "kwok",
        },
    }


async def ready_nodes(h: Harness, selector: str) -> int:
    nodes = await h.k.get("/api/v1/nodes", labelSelector=selector)
    return sum(
        1
        for n in nodes["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or [])
    )


async def wait_nodes(h: Harness, selector: str, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while await ready_nodes(h, selector) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} nodes ({selector}) not Ready after {timeout:.0f}s")
        await asyncio.sleep(0.25)
    return time.time()


async def direct_nodes(h: Harness, count: int) -> tuple[float, str]:
    """Seconds for a plain client to create `count` kwok nodes and see them Ready; their pool name."""
    pool = f"sobase-{uuid.uuid4().hex[:4]}"
    t0 = time.time()
    await h.add_nodes(pool, count, ITYPE_VCPUS, memory="32Gi", pods=110)
    end = await wait_nodes(h, f"bench.kubatch.dev/pool={pool}", count, 300)
    return end - t0, pool


async def run(h: Harness, quick: bool) -> Result:
    if not (h.repo / "operator" / "kubatch" / "cluster" / "provisioners" / "kwok.py").exists():
        return Result("scaleout", skipped="no kwok provisioner (operator/kubatch/cluster/provisioners/kwok.py)")
    n_nodes, n_jobs, mnp = (30, 300, 8) if quick else (100, 1000, 16)
    tag = uuid.uuid4().hex[:4]
    ce = f"so-{tag}"
    await h.apply_cluster("computeenvironments", managed(n_nodes * ITYPE_VCPUS), ce)
    q = await h.queue(f"so-{tag}", [ce])
    ns = await h.namespace("scaleout")
    jd = await h.definition(ns, "work")
    t0 = time.time()
    await submit(h.k, ns, [job_manifest(ns, f"s{i:04d}", q, jd, "60s") for i in range(n_jobs)])
    end = await wait_nodes(h, f"{CE_LABEL}={ce}", n_nodes, 600)
    scale_s = end - t0
    base_s, _ = await direct_nodes(h, n_nodes)

    # An MNP job on a fresh environment (every node of it must be bought).
    ce2 = f"mnp-{tag}"
    await h.apply_cluster("computeenvironments", managed(mnp * ITYPE_VCPUS), ce2)
    q2 = await h.queue(f"mnp-{tag}", [ce2])
    container = {
        "image": "busybox:1.36",
        "command": ["sh", "-c", "true"],
        "resourceRequirements": [{"type": "VCPU", "value": str(ITYPE_VCPUS - 1)}, {"type": "MEMORY", "value": "1024"}],
    }
    spec = {
        "type": "multinode",
        "nodeProperties": {
            "numNodes": mnp,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
    }
    await h.definition(ns, "mnp", spec=spec)
    pods = PodTracker(h.k, ns, selector="kubatch.dev/job-name=mnp", key_label=None)
    await pods.start()
    try:
        t1 = time.time()
        await submit(h.k, ns, [job_manifest(ns, "mnp", q2, "mnp", "120s")])
        mnp_end = await until(lambda: sum(p == "Running" for p in pods.phase.values()) >= mnp, 600, "MNP running")
    finally:
        await pods.stop()
    # Baseline: as many nodes and pods made directly.
    b0 = time.time()
    _, pool = await direct_nodes(h, mnp)
    base_pods = PodTracker(h.k, ns, selector="bench.kubatch.dev/run=mnpbase", key_label=None)
    await base_pods.start()
    try:
        for i in range(mnp):
            w = Work(f"n{i}", "q", ITYPE_VCPUS - 1, "120s", (pool,))
            m = pod_manifest("mnpbase", w, pool)
            m["spec"]["nodeSelector"] = {"bench.kubatch.dev/pool": pool}
            m["spec"]["tolerations"] = []
            await h.k.create(f"/api/v1/namespaces/{ns}/pods", m)
        b_end = await until(lambda: sum(p == "Running" for p in base_pods.phase.values()) >= mnp, 300, "base MNP")
    finally:
        await base_pods.stop()
    figures = {
        "nodes": n_nodes,
        "jobs": n_jobs,
        "instance_type": ITYPE,
        "scale_out_s": round(scale_s, 2),
        "baseline_direct_nodes_s": round(base_s, 2),
        "mnp_nodes": mnp,
        "mnp_submit_to_all_running_s": round(mnp_end - t1, 2),
        "baseline_mnp_nodes_and_pods_s": round(b_end - b0, 2),
    }
    rows = [
        Row(
            f"0 -> {n_nodes} nodes Ready ({n_jobs} jobs)",
            figures["scale_out_s"],
            figures["baseline_direct_nodes_s"],
            "s",
        ),
        Row(
            f"{mnp}-node MNP submit -> all RUNNING",
            figures["mnp_submit_to_all_running_s"],
            figures["baseline_mnp_nodes_and_pods_s"],
            "s",
        ),
    ]
    return Result("scaleout", rows, figures, [f"MANAGED, provisioner kwok, {ITYPE}; baseline = direct node creates"])
