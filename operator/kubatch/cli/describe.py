"""`kubatch describe NAME | NAME:INDEX | NAME#NODE`: a job's details (DescribeJobs)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click

from kubatch.cli.children import STATES, JobAddress, child_view, node_view, parse_address
from kubatch.cli.client import JSON, CliError, Target, connection_options, get_object, get_pod, output_option
from kubatch.cli.render import (
    dump,
    human_duration,
    key_values,
    local_time,
    parse_time,
    starts_in,
    table,
    terminal_width,
)
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.job_ids import job_id


def _duration(start: object, stop: object, now: datetime) -> str:
    t0 = parse_time(start)
    if t0 is None:
        return ""
    t1 = parse_time(stop)
    return human_duration(((t1 or now) - t0).total_seconds()) + ("" if t1 else "+")


def pod_line(name: str | None, pod: Mapping[str, Any] | None) -> str:
    """``<pod> (Running on node-1)``, or a note that it is gone."""
    if not name:
        return "-"
    if pod is None:
        return f"{name} (not found: deleted, or not created yet)"
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    phase = status.get("phase") or "Unknown"
    node = spec.get("nodeName")
    return f"{name} ({phase}{f' on {node}' if node else ''})"


def attempts_table(status: Mapping[str, Any], width: int, now: datetime) -> str:
    rows = []
    for i, a in enumerate(status.get("attempts") or [], start=1):
        c = a.get("container") or {}
        reason = "; ".join(r for r in (a.get("statusReason"), c.get("reason")) if r)
        exit_code = c.get("exitCode")
        rows.append(
            [
                i,
                "" if exit_code is None else exit_code,
                c.get("podName") or "",
                c.get("nodeName") or "",
                local_time(a.get("startedAt")),
                _duration(a.get("startedAt"), a.get("stoppedAt"), now),
                reason,
            ]
        )
    headers = ["#", "EXIT", "POD", "NODE", "STARTED", "RAN", "REASON"]
    return table(headers, rows, max_width=width, flex=("POD", "NODE", "REASON"))


def dependencies_table(job: Mapping[str, Any], width: int) -> str:
    """spec.dependsOn, with the status kubatch resolved for each (status.dependsOn)."""
    resolved = {(d.get("jobName"), d.get("type")): d for d in (job.get("status") or {}).get("dependsOn") or []}
    rows = []
    for dep in (job.get("spec") or {}).get("dependsOn") or []:
        key = (dep.get("jobName"), dep.get("type"))
        r = resolved.get(key, {})
        name = dep.get("jobName") or "(own children)"
        rows.append([name, dep.get("type") or "", r.get("status") or "", r.get("jobId") or ""])
    return table(["JOB", "TYPE", "STATUS", "JOBID"], rows, max_width=width, flex=("JOBID", "JOB"))


def array_section(ap: Mapping[str, Any]) -> str:
    summary = ap.get("statusSummary") or {}
    lines = [f"  Size: {ap.get('size')}"]
    if summary:
        lines.append("  " + " ".join(f"{s}={summary.get(s, 0)}" for s in STATES))
    for s in STATES:
        ranges = (ap.get("indexes") or {}).get(s)
        if ranges:
            lines.append(f"  {s + ':':<10} {ranges}")
    return "\n".join(lines)


def nodes_table(np: Mapping[str, Any], width: int) -> str:
    rows = [
        [
            f"{n.get('nodeIndex')}{' (main)' if n.get('nodeIndex') == np.get('mainNode') else ''}",
            n.get("status") or "",
            "" if n.get("exitCode") is None else n.get("exitCode"),
            n.get("podName") or "",
            n.get("nodeName") or "",
        ]
        for n in np.get("nodes") or []
    ]
    return table(["NODE", "STATUS", "EXIT", "POD", "HOST"], rows, max_width=width, flex=("POD", "HOST"))


async def front_entry(kube: Kube, job: Mapping[str, Any]) -> JSON | None:
    """The entry of a RUNNABLE job in its queue's front (position, start estimate), if it is there."""
    meta, spec = job.get("metadata") or {}, job.get("spec") or {}
    # A job whose first status is not written yet (SUBMITTED: kubatch defers it under a burst) is in
    # its queue's front as soon as the operator has it RUNNABLE.
    state = (job.get("status") or {}).get("status", "SUBMITTED")
    if state not in ("RUNNABLE", "SUBMITTED") or not spec.get("jobQueue"):
        return None
    try:
        queue = await get_object(kube, "jobqueues", str(spec["jobQueue"]), None)
    except (CliError, ApiError):
        return None  # the queue is gone, or the user may not read it: describe the job anyway
    for entry in (queue.get("status") or {}).get("front") or []:
        if entry.get("namespace") == meta.get("namespace") and entry.get("name") == meta.get("name"):
            return dict(entry)
    return None


def describe_job(
    job: Mapping[str, Any], *, width: int = 80, now: datetime | None = None, front: Mapping[str, Any] | None = None
) -> str:
    """The text of `describe NAME`; ``front``: the job's entry in its queue's front, if there."""
    now = now or datetime.now(UTC)
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    definition = status.get("jobDefinition") or spec.get("jobDefinition")
    if status.get("jobDefinition") and spec.get("jobDefinition") != status.get("jobDefinition"):
        definition = f"{status['jobDefinition']} (submitted as {spec.get('jobDefinition')})"
    runnable = status.get("runnableAt") or status.get("queuedAt")
    sections = [
        key_values(
            [
                ("Name", meta.get("name")),
                ("Job name", spec.get("jobName")),
                ("Namespace", meta.get("namespace")),
                ("JobId", job_id(job)),
                ("Queue", spec.get("jobQueue")),
                ("Definition", definition),
                ("Status", status.get("status") or "SUBMITTED"),
                ("Reason", status.get("statusReason")),
                ("Reason detail", status.get("statusReasonDetail")),
                ("Compute env", status.get("computeEnvironment")),
                ("Share", status.get("shareIdentifier") or spec.get("shareIdentifier")),
                ("Priority", status.get("schedulingPriority")),
                ("Created", local_time(status.get("createdAt") or meta.get("creationTimestamp"))),
                ("Runnable since", local_time(runnable) if runnable else None),
                ("Queue position", (front or {}).get("position")),
                ("Expected start", _expected_start(front, now)),
                ("Started", local_time(status.get("startedAt")) if status.get("startedAt") else None),
                ("Stopped", local_time(status.get("stoppedAt")) if status.get("stoppedAt") else None),
                ("Cancel", (spec.get("cancel") or {}).get("reason")),
                ("Terminate", (spec.get("terminate") or {}).get("reason")),
            ]
        )
    ]
    if status.get("attempts"):
        sections.append("Attempts:\n" + _indent(attempts_table(status, width - 2, now)))
    elif status.get("attemptCount"):
        sections.append(f"Attempts: {status['attemptCount']} started, none finished")
    if spec.get("dependsOn"):
        sections.append("Dependencies:\n" + _indent(dependencies_table(job, width - 2)))
    ap = status.get("arrayProperties") or (spec.get("arrayProperties") and {"size": spec["arrayProperties"]["size"]})
    if ap:
        sections.append("Array:\n" + array_section(ap))
    np = status.get("nodeProperties")
    if np:
        head = f"Nodes: {np.get('numNodes')} (main node {np.get('mainNode')})"
        sections.append(head + ("\n" + _indent(nodes_table(np, width - 2)) if np.get("nodes") else ""))
    return "\n".join(sections)


def _expected_start(front: Mapping[str, Any] | None, now: datetime) -> str | None:
    if not front or not front.get("estimatedStartAt"):
        return None
    return f"{local_time(front['estimatedStartAt'])} ({starts_in(front['estimatedStartAt'], now)})"


def describe_part(view: Mapping[str, Any], pod: Mapping[str, Any] | None) -> str:
    """The text of `describe NAME:INDEX` or `describe NAME#NODE` from a child or node view."""
    array, nodes = view.get("arrayProperties") or {}, view.get("nodeProperties") or {}
    exit_code = view.get("exitCode")
    return key_values(
        [
            ("Name", view.get("jobName")),
            ("Namespace", view.get("namespace")),
            ("JobId", view.get("jobId")),
            ("Queue", view.get("jobQueue")),
            ("Definition", view.get("jobDefinition")),
            ("Status", view.get("status") or "unknown"),
            ("Reason", view.get("statusReason")),
            ("Compute env", view.get("computeEnvironment")),
            ("Array index", f"{array['index']} of 0-{array['size'] - 1}" if array else None),
            ("Node", f"{nodes['nodeIndex']}{' (main node)' if nodes.get('isMainNode') else ''}" if nodes else None),
            ("Attempt", view.get("attempt") or "none started"),
            ("Exit code", None if exit_code is None else exit_code),
            ("Host", view.get("nodeName") or ((pod or {}).get("spec") or {}).get("nodeName")),
            ("Pod", pod_line(view.get("podName"), pod)),
        ]
    )


def _indent(text: str, by: int = 2) -> str:
    return "\n".join(" " * by + line if line else line for line in text.splitlines())


def part_view(job: Mapping[str, Any], address: JobAddress) -> JSON:
    """The child or node view of ``address`` (ValueError when it does not exist)."""
    if address.index is not None:
        return child_view(job, address.index)
    assert address.node is not None
    return node_view(job, address.node)


@click.command("describe")
@connection_options
@click.argument("address", metavar="NAME|NAME:INDEX|NAME#NODE")
@output_option("table", "json", "yaml")
def describe(kubeconfig: str | None, namespace: str | None, address: str, output: str) -> None:
    """Show a job, an array child (NAME:INDEX) or a multi-node node (NAME#NODE)."""
    try:
        addr = parse_address(address)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="ADDRESS") from e
    target = Target.resolve(kubeconfig, namespace)

    async def fetch(kube: Kube) -> tuple[JSON, JSON | None, JSON | None, JSON | None]:
        job = await get_object(kube, "batchjobs", addr.name, target.namespace)
        if addr.index is None and addr.node is None:
            return job, None, None, await front_entry(kube, job)
        try:
            view = part_view(job, addr)
        except ValueError as e:
            raise CliError(str(e)) from e
        pod = await get_pod(kube, target.namespace, view["podName"]) if view.get("podName") else None
        return job, view, pod, None

    job, view, pod, front = target.run(fetch)
    if view is None:
        click.echo(dump(job, output) if output != "table" else describe_job(job, width=terminal_width(), front=front))
    elif output != "table":
        click.echo(dump({**view, "pod": pod_line(view.get("podName"), pod)}, output))
    else:
        click.echo(describe_part(view, pod))
