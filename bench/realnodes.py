"""Real nodes: how fast they come up, how fast a real pod starts, how many real pods per second they run.

    python -m bench.realnodes [--nodes 2] [--pods 60]

Brings up a private local cluster (`.kubatch/bench-real`) with `--nodes` real nodes (kubelet +
containerd; needs root and no other cluster with real nodes on the machine), then:

- node up: from starting the first containerd to every node Ready (images imported on the way);
- pod start latency: one pod at a time (busybox `true`), create → Running and create → Succeeded,
  as the API server's timestamps and the watch see them;
- burst: `--pods` pods of `sleep 1` created at once over the nodes, first create → last Succeeded,
  pods per second.

Writes `bench/results/realnodes.json` and prints a table; it never asserts timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from bench.report import Result, Row, environment, summary, table, write  # noqa: E402
from kubatch.devcluster.cluster import LocalCluster  # noqa: E402
from kubatch.devcluster.info import ClusterInfo  # noqa: E402
from kubatch.devcluster.realnodes import (  # noqa: E402
    BUSYBOX_TEST_IMAGE,
    REALNODE_SELECTOR,
    REALNODE_TOLERATION,
    unsupported_reason,
)

NAMESPACE = "bench-real"


def pod(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "realnodes"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": REALNODE_SELECTOR,
            "tolerations": [REALNODE_TOLERATION],
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": BUSYBOX_TEST_IMAGE,
                    "command": command,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


def kubectl(info: ClusterInfo, *args: str, input: str | None = None) -> str:
    out = subprocess.run([info.kubectl, *args], input=input, capture_output=True, text=True, env=info.env())
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def wait_phases(info: ClusterInfo, names: set[str], timeout: float = 600) -> dict[str, dict[str, float]]:
    """Watch the namespace's pods until every named one Succeeded or Failed; returns per pod the
    monotonic times its phase was first seen Running and finished."""
    seen: dict[str, dict[str, float]] = {n: {} for n in names}
    template = '{.object.metadata.name} {.object.status.phase}{"\\n"}'
    watch = ["get", "pods", "-n", NAMESPACE, "--watch", "--output-watch-events", "-o", f"jsonpath={template}"]
    proc = subprocess.Popen(
        [info.kubectl, *watch],
        stdout=subprocess.PIPE,
        text=True,
        env=info.env(),
    )
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            name, _, phase = line.strip().partition(" ")
            if name in seen:
                if phase in ("Running", "Succeeded", "Failed"):
                    seen[name].setdefault("running", now)
                if phase in ("Succeeded", "Failed"):
                    seen[name].setdefault("done", now)
            if all("done" in s for s in seen.values()) or now > deadline:
                break
    finally:
        proc.kill()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--pods", type=int, default=60)
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    reason = unsupported_reason()
    if reason:
        print(f"real nodes cannot run here: {reason}", file=sys.stderr)
        return 2
    cluster = LocalCluster(REPO, state_dir=REPO / ".kubatch" / "bench-real")
    result = Result("realnodes")
    try:
        started = time.monotonic()
        info = cluster.up(real_nodes=args.nodes)
        cluster_up = time.monotonic() - started
        node_up = cluster.real_nodes_seconds or 0.0
        kubectl(info, "create", "namespace", NAMESPACE)
        kubectl(info, "wait", "--for=jsonpath={.metadata.name}", "serviceaccount/default", "-n", NAMESPACE)

        to_running: list[float] = []
        to_done: list[float] = []
        for i in range(args.singles):
            name = f"single-{i}"
            t0 = time.monotonic()
            kubectl(info, "create", "-f", "-", input=json.dumps(pod(name, ["true"])))
            single = wait_phases(info, {name})[name]
            to_running.append(single["running"] - t0)
            to_done.append(single["done"] - t0)

        names = {f"burst-{i}" for i in range(args.pods)}
        items = [pod(n, ["sleep", "1"]) for n in sorted(names)]
        t0 = time.monotonic()
        kubectl(info, "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        phases = wait_phases(info, names)
        makespan = max(p["done"] for p in phases.values()) - t0
        failed = json.loads(kubectl(info, "get", "pods", "-n", NAMESPACE, "-l", "bench=realnodes", "-o", "json"))
        n_failed = sum(1 for p in failed["items"] if p["status"].get("phase") == "Failed")

        result.rows += [
            Row(f"cluster with {args.nodes} real nodes up (control plane included)", round(cluster_up, 2), unit="s"),
            Row(f"{args.nodes} real nodes up (DNS, containerd, images, kubelet → Ready)", round(node_up, 2), unit="s"),
            Row("pod create → Running, p50", round(summary(to_running)["p50"] or 0, 3), unit="s"),
            Row("pod create → Succeeded (`true`), p50", round(summary(to_done)["p50"] or 0, 3), unit="s"),
            Row(f"{args.pods} pods of `sleep 1` at once: makespan", round(makespan, 2), unit="s"),
            Row("real pods per second", round(args.pods / makespan, 2), unit="pods/s"),
            Row("failed pods", n_failed),
        ]
        result.figures = {
            "nodes": args.nodes,
            "cluster_up_s": cluster_up,
            "node_up_s": node_up,
            "create_to_running": summary(to_running),
            "create_to_succeeded": summary(to_done),
            "burst_pods": args.pods,
            "burst_makespan_s": makespan,
            "pods_per_second": args.pods / makespan,
        }
    finally:
        if not args.keep:
            cluster.down()
    print(table(result))
    write(result, environment(REPO, info.k8s_version), quick=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
