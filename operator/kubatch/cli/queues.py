"""`kubatch queue NAME`: a JobQueue's state, the front of the queue and why its head waits, the
capacity its jobs hold (per compute environment and per share) and the active shares, as AWS's
GetJobQueueSnapshot gives them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from kubatch.cli.children import STATES
from kubatch.cli.client import JSON, Target, connection_options, get_object, output_option, resource_path
from kubatch.cli.render import age, counts, dump, key_values, starts_in, table, terminal_width
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.arrays import IndexSet


def normalize_front(entries: Sequence[Mapping[str, Any]]) -> list[JSON]:
    """Front entries as {position, namespace, job, shareIdentifier, status, statusReason, since,
    earliestTimeAtPosition, estimatedStartAt} (``since``: RUNNABLE since), accepting both ``jobName``/``arrayIndex``/
    ``runnableAt`` and ``name``/``queuedAt`` spellings."""
    out: list[JSON] = []
    for i, e in enumerate(entries):
        name = str(e.get("jobName") or e.get("name") or "")
        index = e.get("arrayIndex")
        if index is not None and ":" not in name:
            name = f"{name}:{index}"
        out.append(
            {
                "position": e.get("position", i),
                "namespace": e.get("namespace") or "",
                "job": name,
                "shareIdentifier": e.get("shareIdentifier") or "",
                "status": e.get("status") or "RUNNABLE",
                "statusReason": e.get("statusReason") or "",
                "since": e.get("runnableAt") or e.get("queuedAt"),
                "earliestTimeAtPosition": e.get("earliestTimeAtPosition"),
                "estimatedStartAt": e.get("estimatedStartAt"),
            }
        )
    return out


def runnable_front(jobs: Iterable[Mapping[str, Any]], queue: str, limit: int) -> list[JSON]:
    """The queue's RUNNABLE jobs and array children, oldest runnableAt first (when the operator
    publishes no ``front``)."""
    found: list[tuple[str, str, str, int, JSON]] = []
    for job in jobs:
        meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
        if spec.get("jobQueue") != queue:
            continue
        since = str(
            status.get("runnableAt")
            or status.get("queuedAt")
            or status.get("createdAt")
            or meta.get("creationTimestamp")
            or ""
        )
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        base = {
            "namespace": ns,
            "status": "RUNNABLE",
            "statusReason": status.get("statusReason") or "",
            "since": since or None,
        }
        if status.get("status") == "RUNNABLE":
            found.append((since, ns, name, -1, {**base, "job": name}))
        runnable = ((status.get("arrayProperties") or {}).get("indexes") or {}).get("RUNNABLE")
        try:
            children = IndexSet.parse(runnable).first(limit) if runnable else IndexSet()
        except ValueError:
            children = IndexSet()
        for i in children:
            found.append((since, ns, name, i, {**base, "job": f"{name}:{i}", "statusReason": ""}))
    found.sort(key=lambda t: t[:4])
    return [{"position": p, **entry} for p, (*_, entry) in enumerate(found[:limit])]


def front_table(front: Sequence[Mapping[str, Any]], width: int | None, now: datetime | None = None) -> str:
    """POS, JOB, STATUS, WAITING (since RUNNABLE), AT-POSITION (since at this position), STARTS (the
    start estimate, when any entry has one), SHARE (when any entry has one), REASON."""
    shares = any(f.get("shareIdentifier") for f in front)
    estimates = any(f.get("estimatedStartAt") for f in front)
    rows = [
        [
            f.get("position"),
            f"{f['namespace']}/{f['job']}" if f.get("namespace") else f.get("job"),
            f.get("status"),
            age(f.get("since"), now) if f.get("since") else "",
            age(f.get("earliestTimeAtPosition"), now) if f.get("earliestTimeAtPosition") else "",
            *([starts_in(f.get("estimatedStartAt"), now) or "?"] if estimates else []),
            *([f.get("shareIdentifier") or ""] if shares else []),
            f.get("statusReason"),
        ]
        for f in front
    ]
    headers = [
        "POS",
        "JOB",
        "STATUS",
        "WAITING",
        "AT-POSITION",
        *(["STARTS"] if estimates else []),
        *(["SHARE"] if shares else []),
        "REASON",
    ]
    return table(headers, rows, max_width=width, flex=("JOB", "REASON", "SHARE"))


def capacity_text(usage: Sequence[Mapping[str, Any]] | None) -> str:
    """``2 vCPU, 512 MiB, 0 GPU`` of AWS-style ``capacityUsage`` items."""
    return ", ".join(f"{_num(u.get('quantity'))} {u.get('capacityUnit')}" for u in usage or [])


def _units(usage: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {str(u.get("capacityUnit")): u.get("quantity") for u in usage or []}


def share_table(
    shares: Sequence[Mapping[str, Any]], width: int | None, capacity: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The shareUsage rows, with the memory and GPUs each share holds (``capacity``: the queue's
    ``fairshareUtilization.topCapacityUtilization``)."""
    held = {str(c.get("shareIdentifier")): _units(c.get("capacityUsage")) for c in capacity}
    rows = [
        [
            s.get("shareIdentifier"),
            _num(s.get("usage")),
            _num(s.get("weightFactor")),
            _num(s.get("runningVcpus", s.get("runningvCpus"))),
            _num(held.get(str(s.get("shareIdentifier")), {}).get("MiB", 0 if held else None)),
            _num(held.get(str(s.get("shareIdentifier")), {}).get("GPU", 0 if held else None)),
            s.get("activeJobs", ""),
        ]
        for s in shares
    ]
    headers = ["SHARE", "USAGE", "WEIGHT", "RUNNING-VCPUS", "MEMORY-MIB", "GPUS", "ACTIVE-JOBS"]
    return table(headers, rows, max_width=width, flex=("SHARE",))


def quota_share_table(queue: Mapping[str, Any], width: int | None) -> str:
    """The quota shares of a quota-managed queue: their limits and sharing, what they hold and
    borrow (``queueUtilization.quotaShareUtilization``) and their first RUNNABLE job
    (``frontOfQuotaShares``)."""
    spec, status = queue.get("spec") or {}, queue.get("status") or {}
    util = ((status.get("queueUtilization") or {}).get("quotaShareUtilization") or {}).get("topCapacityUtilization")
    held = {str(u.get("quotaShareName")): u for u in util or []}
    fronts = (status.get("frontOfQuotaShares") or {}).get("quotaShares") or {}
    rows = []
    for entry in spec.get("quotaShares") or []:
        name = str(entry.get("quotaShareName"))
        sharing = entry.get("resourceSharingConfiguration") or {}
        strategy = str(sharing.get("strategy") or "RESERVE")
        if strategy == "LEND_AND_BORROW":
            strategy += f" {sharing.get('borrowLimit', 100)}%"
        limits = ", ".join(f"{c.get('maxCapacity')} {c.get('capacityUnit')}" for c in entry.get("capacityLimits") or [])
        use = held.get(name) or {}
        front = (fronts.get(name) or [{}])[0]
        waiting = front.get("name", "")
        if front.get("statusReason"):
            waiting += f" ({front['statusReason'].split(' - ', 1)[0]})"
        rows.append(
            [
                name,
                limits,
                strategy,
                "ENABLED" if (entry.get("preemptionConfiguration") or {}).get("inSharePreemption") == "ENABLED" else "",
                capacity_text(use.get("capacityUsage")) or "0",
                capacity_text(use.get("borrowedCapacity")),
                waiting,
            ]
        )
    headers = ["QUOTA-SHARE", "LIMIT", "SHARING", "IN-SHARE-PREEMPTION", "IN-USE", "BORROWED", "FIRST-RUNNABLE"]
    return table(headers, rows, max_width=width, flex=("QUOTA-SHARE", "FIRST-RUNNABLE"))


def _num(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scheduling(spec: Mapping[str, Any]) -> str:
    policy = spec.get("schedulingPolicy")
    if not policy:
        return "FIFO"
    if spec.get("quotaShares"):
        return f"quota shares ({policy})"
    return f"fair share ({policy})"


def queue_text(
    queue: Mapping[str, Any],
    front: Sequence[Mapping[str, Any]],
    *,
    head_reason: str | None = None,
    width: int | None = 80,
    now: datetime | None = None,
    fallback: bool = False,
) -> str:
    """The text of `kubatch queue NAME`."""
    meta, spec, status = queue.get("metadata") or {}, queue.get("spec") or {}, queue.get("status") or {}
    util = status.get("queueUtilization") or {}
    fairshare = util.get("fairshareUtilization") or {}
    per_env = util.get("computeEnvironmentUsage") or []
    in_use = capacity_text(util.get("totalCapacityUsage"))
    if in_use and len(per_env) > 1:
        by_env = (f"{e.get('computeEnvironment')}: {capacity_text(e.get('capacityUsage'))}" for e in per_env)
        in_use += " (" + "; ".join(by_env) + ")"
    ces = ", ".join(
        f"{c.get('computeEnvironment')}"
        for c in sorted(spec.get("computeEnvironmentOrder") or [], key=lambda c: c.get("order", 0))
    )
    parts = [
        key_values(
            [
                ("Name", meta.get("name")),
                ("Status", status.get("status") or "-"),
                ("Reason", status.get("statusReason")),
                ("State", spec.get("state") or "ENABLED"),
                ("Priority", spec.get("priority")),
                ("Compute envs", ces),
                ("Scheduling", _scheduling(spec)),
                ("Jobs", counts(status.get("jobCounts"), STATES) or "none"),
                ("In use", in_use or None),
                ("Updated", age(status["lastUpdatedAt"], now) + " ago" if status.get("lastUpdatedAt") else None),
            ]
        )
    ]
    if front:
        head = front[0]
        reason = head.get("statusReason") or head_reason
        label = f"{head['namespace']}/{head['job']}" if head.get("namespace") else head.get("job")
        parts.append(f"Head: {label} waits: {reason or 'no reason recorded (next to be placed)'}")
        title = "RUNNABLE jobs (no front published by the operator):" if fallback else "Front of the queue:"
        parts.append(title + "\n" + front_table(front, width, now))
    else:
        parts.append("No RUNNABLE jobs.")
    if spec.get("quotaShares"):
        parts.append("Quota shares:\n" + quota_share_table(queue, width))
    if fairshare or status.get("shareUsage"):
        active = fairshare.get("activeShareCount")
        title = "Share usage" + (f" ({active} active share{'' if active == 1 else 's'})" if active is not None else "")
        rows = status.get("shareUsage") or []
        held = fairshare.get("topCapacityUtilization") or []
        parts.append(title + (":\n" + share_table(rows, width, held) if rows else ": none"))
    return "\n".join(parts)


@click.command("queue")
@connection_options
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Front entries to show.")
@output_option("table", "wide", "json", "yaml")
def queue(kubeconfig: str | None, namespace: str | None, name: str, limit: int, output: str) -> None:
    """Show a job queue, its front and why the head job waits."""
    target = Target.resolve(kubeconfig, namespace)

    async def fetch(kube: Kube) -> tuple[JSON, list[JSON], str | None, bool]:
        jq = await get_object(kube, "jobqueues", name)
        published = (jq.get("status") or {}).get("front")
        if published is not None:
            front = normalize_front(published)[:limit]
            head_reason = await _head_reason(kube, front[0]) if front and not front[0]["statusReason"] else None
            return jq, front, head_reason, False
        try:
            jobs, _ = await kube.list_all(resource_path("batchjobs"))
        except ApiError as e:
            if e.status != 403:
                raise
            jobs, _ = await kube.list_all(resource_path("batchjobs", target.namespace))
        return jq, runnable_front(jobs, name, limit), None, True

    jq, front, head_reason, fallback = target.run(fetch)
    if output in ("json", "yaml"):
        click.echo(dump({"name": name, "status": jq.get("status") or {}, "front": front}, output))
        return
    width = None if output == "wide" else terminal_width()
    click.echo(queue_text(jq, front, head_reason=head_reason, width=width, fallback=fallback))


async def _head_reason(kube: Kube, head: Mapping[str, Any]) -> str | None:
    """The head job's statusReason, read from its BatchJob (front entries may not carry it)."""
    if not head.get("namespace"):
        return None
    name = str(head["job"]).split(":")[0]
    try:
        job = await kube.get(resource_path("batchjobs", head["namespace"], name))
    except ApiError:
        return None
    reason = (job.get("status") or {}).get("statusReason")
    return str(reason) if reason else None
