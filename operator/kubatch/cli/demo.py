"""`kubatch dev demo`: the local cluster, the operator, a realistic mix of jobs, shown live.

Brings the local cluster up (building it the first time), installs the CRDs, starts the operator
(a background process, reused while the code is unchanged), applies `deploy/demo/` (managed kwok
pools, a fair-share policy, a license pool, queues, definitions, and a pipeline of an array with
N_TO_N dependencies, a GPU job, a multi-node job and two teams sharing a queue), follows the jobs
until they finish and ends with a summary. On a cluster with real nodes (`make demo REAL_NODES=1`)
an array also runs as real containers, and the demo shows their output with `kubatch logs -f`
(started at submission, read while they run: finished pods are deleted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml

from kubatch.devcluster import operatorproc
from kubatch.devcluster.cluster import ClusterInfo, LocalCluster

NAMESPACE = "kubatch-demo"
#: Applied only on a cluster with real nodes; its queue is the one tests use for real nodes too.
REAL_FILE = "30-real-containers.yaml"
REAL_QUEUE = "realnodes"
TERMINAL = ("SUCCEEDED", "FAILED")


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").timestamp()


def _kubectl(info: ClusterInfo, *args: str, input: str | None = None) -> str:
    out = subprocess.run([info.kubectl, *args], input=input, capture_output=True, text=True, env=info.env())
    if out.returncode != 0:
        raise click.ClickException(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def job_rows(jobs: list[Mapping[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """NAME, QUEUE, STATUS, PROGRESS, REASON for the live table."""
    rows = []
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
        st = job.get("status") or {}
        summary = (st.get("arrayProperties") or {}).get("statusSummary") or {}
        if summary:
            size = sum(summary.values())
            progress = f"{summary.get('SUCCEEDED', 0)}/{size} ok, {summary.get('RUNNING', 0)} running"
            if summary.get("FAILED"):
                progress += f", {summary['FAILED']} failed"
        elif st.get("nodeProperties"):
            nodes = st["nodeProperties"].get("nodes") or []
            running = sum(1 for n in nodes if n.get("status") == "RUNNING")
            progress = (
                f"{len(nodes)} nodes" if st.get("status") in TERMINAL else f"{running}/{len(nodes)} nodes running"
            )
        else:
            progress = f"attempt {len(st.get('attempts') or []) + (0 if st.get('status') in TERMINAL else 1)}"
        rows.append(
            (
                job["metadata"]["name"],
                str(job["spec"].get("jobQueue", "")),
                str(st.get("status") or "SUBMITTED"),
                progress,
                str(st.get("statusReason") or "")[:40],
            )
        )
    return rows


def render(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def summary(jobs: list[Mapping[str, Any]], queues: list[Mapping[str, Any]]) -> str:
    rows = []
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
        st = job.get("status") or {}
        created, started, stopped = _ts(st.get("createdAt")), _ts(st.get("startedAt")), _ts(st.get("stoppedAt"))
        in_queue = f"{started - created:.0f}s" if created and started else "-"
        total = f"{stopped - created:.0f}s" if created and stopped else "-"
        size = (st.get("arrayProperties") or {}).get("size")
        kind = f"array[{size}]" if size else ("multi-node" if st.get("nodeProperties") else "container")
        attempts = st.get("attemptCount") or len(st.get("attempts") or [])
        rows.append(
            (
                job["metadata"]["name"],
                kind,
                str(st.get("status")),
                in_queue,
                total,
                str(attempts),
                str(st.get("computeEnvironment") or ""),
            )
        )
    out = render(rows, ("JOB", "KIND", "FINAL", "IN-QUEUE", "TOTAL", "ATTEMPTS", "CE"))
    for q in queues:
        usage = (q.get("status") or {}).get("shareUsage") or []
        if usage:
            out += f"\n\nShare usage in queue {q['metadata']['name']} (decayed vCPU-seconds):\n"
            out += render([(u["shareIdentifier"], f"{u.get('usage', 0):.1f}") for u in usage], ("SHARE", "USAGE"))
    return out


class RealLogs:
    """`kubatch logs -f` of each real-container job (every child of an array), started at submission
    (it waits for the container to start): finished pods are deleted, so output is read as it comes."""

    def __init__(self, info: ClusterInfo, manifest: Path) -> None:
        kubatch = str(Path(sys.executable).parent / "kubatch")
        self.followers: dict[str, subprocess.Popen[str]] = {}
        for address in _addresses(manifest):
            self.followers[address] = subprocess.Popen(
                [kubatch, "--kubeconfig", info.kubeconfig, "-n", NAMESPACE, "logs", "-f", address],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def wait(self) -> str:
        out = []
        for address, proc in sorted(self.followers.items()):
            try:
                text, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                text = "(no output within 60 s)"
            out.append(f"$ kubatch logs {address}\n{text.rstrip()}")
        return "\n".join(out)


def _addresses(manifest: Path) -> list[str]:
    """`name`, or `name:i` for each child of an array, of the BatchJobs in a manifest."""
    found = []
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "BatchJob":
            name = doc["metadata"]["name"]
            size = ((doc.get("spec") or {}).get("arrayProperties") or {}).get("size")
            found += [f"{name}:{i}" for i in range(size)] if size else [name]
    return found


def run_demo(repo: Path, timeout: float = 300.0) -> int:
    cluster = LocalCluster(repo)
    click.echo("== starting the local cluster (the first run builds it from Go modules: minutes)")
    info = cluster.up()
    click.echo("== installing the CRDs")
    _kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(repo / "crds"))
    _kubectl(info, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(repo / "crds"))
    click.echo("== starting the operator")
    op = operatorproc.ensure(info, cluster.state)
    click.echo(f"   operator pid {op.pid}, metrics {op.metrics_url}, log {op.log}")
    demo = repo / "deploy" / "demo"
    _kubectl(
        info,
        "apply",
        "-f",
        "-",
        input=_kubectl(info, "create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml"),
    )
    _kubectl(info, "delete", "batchjobs", "--all", "-n", NAMESPACE, "--wait=true")
    click.echo("== applying deploy/demo/: pools, queues, fair-share policy, licenses, definitions")
    _kubectl(info, "apply", "-f", str(demo / "00-infrastructure.yaml"))
    _kubectl(info, "apply", "-f", str(demo / "10-definitions.yaml"))
    time.sleep(1.0)  # let the operator record the definitions' first revisions
    click.echo("== submitting the jobs")
    _kubectl(info, "apply", "-f", str(demo / "20-jobs.yaml"))
    real = None
    if info.real_nodes:
        click.echo(f"== real nodes {', '.join(info.real_nodes)}: running {REAL_FILE} as real containers")
        _kubectl(info, "apply", "-f", str(demo / REAL_FILE))
        real = RealLogs(info, demo / REAL_FILE)
    tty = sys.stdout.isatty()
    deadline = time.monotonic() + timeout
    last = ""
    jobs: list[Mapping[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = json.loads(_kubectl(info, "get", "batchjobs", "-n", NAMESPACE, "-o", "json"))["items"]
        nodes = json.loads(_kubectl(info, "get", "nodes", "-l", "kubatch.dev/compute-environment", "-o", "json"))
        table = render(job_rows(jobs), ("JOB", "QUEUE", "STATUS", "PROGRESS", "REASON"))
        screen = f"{table}\n\n{len(nodes['items'])} kwok nodes in the demo pools"
        if screen != last:
            if tty:
                click.echo("\033[2J\033[H" + screen)
            else:
                click.echo(screen + "\n")
            last = screen
        if jobs and all((j.get("status") or {}).get("status") in TERMINAL for j in jobs):
            break
        time.sleep(1.0)
    queues = json.loads(_kubectl(info, "get", "jobqueues", "-o", "json"))["items"]
    click.echo("\n== summary\n" + summary(jobs, [q for q in queues if q["metadata"]["name"].startswith("demo-")]))
    if real is not None:
        click.echo("\n== real containers: their output\n" + real.wait())
    click.echo(
        f"\nExplore: export KUBECONFIG={info.kubeconfig}; {info.kubectl} get kubatch -A;"
        f" .venv/bin/kubatch -n {NAMESPACE} describe frames:3"
    )
    click.echo(
        "With the AWS tools (docs/aws-api.md): .venv/bin/kubatch api serve --listen 127.0.0.1:8080 --insecure-http"
        f" --keys-namespace {NAMESPACE} &\n"
        f"  export $(.venv/bin/kubatch api keys create --keys-namespace {NAMESPACE} --namespace {NAMESPACE}"
        " --user admin --group system:masters) AWS_DEFAULT_REGION=us-east-1   # the local admin: a demo only\n"
        "  .venv/bin/aws batch list-jobs --endpoint-url http://127.0.0.1:8080 --job-queue demo-pipeline"
        " --job-status SUCCEEDED"
    )
    ok = bool(jobs) and all((j.get("status") or {}).get("status") == "SUCCEEDED" for j in jobs)
    return 0 if ok else 1
