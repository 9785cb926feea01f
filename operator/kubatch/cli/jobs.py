"""`kubatch list`, `cancel`, `terminate`, and the BatchJob table shared with `watch`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from kubatch.cli.children import STATES, child_view, current_attempt, parse_address
from kubatch.cli.client import (
    JSON,
    F,
    Target,
    connection_options,
    describe_api_error,
    output_option,
    resource_path,
)
from kubatch.cli.filters import JobFilter, parse_statuses, parse_time_spec
from kubatch.cli.render import age, dump, table, terminal_width
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.job_ids import job_id

BASE_COLUMNS = ("NAME", "QUEUE", "STATUS", "REASON", "ATTEMPTS", "AGE")
WIDE_COLUMNS = ("DEFINITION", "CE", "JOBID", "ARRAY")
#: The AWS name (spec.jobName), after NAME: always with -o wide, else when a listed job has one.
JOB_NAME_COLUMN = "JOB-NAME"


def array_summary(job: Mapping[str, Any]) -> str:
    """``10 RUNNING=2 SUCCEEDED=7 FAILED=1`` for an array job, ``""`` otherwise."""
    ap = (job.get("status") or {}).get("arrayProperties") or {}
    size = ap.get("size") or ((job.get("spec") or {}).get("arrayProperties") or {}).get("size")
    if not size:
        return ""
    summary = ap.get("statusSummary") or {}
    parts = [f"{s}={summary[s]}" for s in STATES if summary.get(s)]
    return " ".join([str(size), *parts])


def job_row(
    job: Mapping[str, Any], *, wide: bool, namespaced: bool, now: datetime | None = None, job_names: bool = False
) -> list[object]:
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    attempts = current_attempt(status)
    row: list[object] = [] if namespaced else [meta.get("namespace")]
    row.append(meta.get("name"))
    if job_names:
        row.append(spec.get("jobName") or "")
    row += [
        spec.get("jobQueue"),
        status.get("status") or "SUBMITTED",
        status.get("statusReason") or "",
        attempts or "",
        age(status.get("createdAt") or meta.get("creationTimestamp"), now),
    ]
    if wide:
        row += [
            status.get("jobDefinition") or spec.get("jobDefinition"),
            status.get("computeEnvironment") or "",
            job_id(job),
            array_summary(job),
        ]
    return row


def jobs_table(
    jobs: Sequence[Mapping[str, Any]],
    *,
    wide: bool = False,
    namespaced: bool = True,
    width: int | None = None,
    now: datetime | None = None,
    job_names: bool | None = None,
) -> str:
    """The BatchJob table; without ``wide`` it fits ``width`` (default 80) by truncating REASON then NAME.
    JOB-NAME (``spec.jobName``, the AWS name) follows NAME when ``job_names``; by default with
    ``wide`` or when a listed job has one."""
    if job_names is None:
        job_names = wide or any((j.get("spec") or {}).get("jobName") for j in jobs)
    headers = ([] if namespaced else ["NAMESPACE"]) + [BASE_COLUMNS[0]]
    headers += [JOB_NAME_COLUMN] if job_names else []
    headers += list(BASE_COLUMNS[1:]) + (list(WIDE_COLUMNS) if wide else [])
    rows = [job_row(j, wide=wide, namespaced=namespaced, now=now, job_names=job_names) for j in jobs]
    limit = None if wide else (width or 80)
    return table(headers, rows, max_width=limit, flex=("NAMESPACE", "NAME", JOB_NAME_COLUMN, "REASON"))


def filter_options(f: F) -> F:
    """The filters of `list` and `watch`."""
    for opt in reversed(
        [
            click.argument("names", nargs=-1, metavar="[NAME|PREFIX*]..."),
            click.option("-A", "--all-namespaces", is_flag=True, help="Jobs of every namespace."),
            click.option("--queue", help="Only jobs of this JobQueue."),
            click.option("--status", "statuses", multiple=True, help="Only jobs in this state (repeatable, or a,b)."),
            click.option("--definition", help="Only jobs of this definition (NAME, NAME:REV or PREFIX*)."),
            click.option("--created-after", metavar="TIME", help="RFC 3339 time or a duration ago (1h, 30m)."),
            click.option("--created-before", metavar="TIME", help="RFC 3339 time or a duration ago."),
            click.option("--share", help="Only jobs with this share identifier."),
        ]
    ):
        f = opt(f)
    return f


def build_filter(
    names: Iterable[str],
    queue: str | None,
    statuses: Iterable[str],
    definition: str | None,
    created_after: str | None,
    created_before: str | None,
    share: str | None,
) -> JobFilter:
    """A JobFilter from command-line values; bad values are usage errors (exit 2). As ListJobs, a
    name, definition or creation-time filter makes ``--status`` ignored: a note says so on stderr."""
    try:
        flt = JobFilter(
            names=tuple(names),
            queue=queue,
            statuses=parse_statuses(statuses),
            definition=definition,
            created_after=parse_time_spec(created_after) if created_after else None,
            created_before=parse_time_spec(created_before) if created_before else None,
            share=share,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if flt.status_ignored:
        click.echo(
            "note: --status is ignored with a NAME, --definition, --created-after or --created-before "
            "filter (as AWS Batch ListJobs ignores jobStatus with filters)",
            err=True,
        )
    return flt


@click.command("list")
@connection_options
@filter_options
@output_option("table", "wide", "json", "yaml")
def list_jobs(
    kubeconfig: str | None,
    namespace: str | None,
    names: tuple[str, ...],
    all_namespaces: bool,
    queue: str | None,
    statuses: tuple[str, ...],
    definition: str | None,
    created_after: str | None,
    created_before: str | None,
    share: str | None,
    output: str,
) -> None:
    """List BatchJobs (as ListJobs): NAME filters match exactly, PREFIX* by prefix (so does
    --definition NAME*), case-insensitive, on the job's AWS name (spec.jobName) or its object name.
    As in ListJobs, --status is ignored when a NAME, --definition or --created-* filter is given;
    --queue and --share combine with it."""
    flt = build_filter(names, queue, statuses, definition, created_after, created_before, share)
    target = Target.resolve(kubeconfig, namespace)
    ns = None if all_namespaces else target.namespace

    async def fetch(kube: Kube) -> list[JSON]:
        items, _ = await kube.list_all(resource_path("batchjobs", ns))
        return items

    jobs = flt.apply(target.run(fetch))
    if output in ("json", "yaml"):
        click.echo(dump({"apiVersion": "v1", "kind": "List", "items": jobs}, output))
    elif not jobs:
        click.echo(f"No batchjobs found{'' if ns is None else f' in namespace {ns!r}'}.", err=True)
    else:
        click.echo(jobs_table(jobs, wide=output == "wide", namespaced=ns is not None, width=terminal_width()))


def _stop_command(field: str, verb: str, past: str, doc: str) -> click.Command:
    @click.command(verb)
    @connection_options
    @click.argument("names", nargs=-1, required=True, metavar="NAME|NAME:INDEX...")
    @click.option("--reason", default=f"{past.capitalize()} by user", show_default=True, help="The statusReason.")
    def command(kubeconfig: str | None, namespace: str | None, names: tuple[str, ...], reason: str) -> None:
        addresses = []
        for name in names:
            try:
                address = parse_address(name)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="NAME") from e
            if address.node is not None:
                raise click.BadParameter(f"{name}: a node of a multi-node job cannot be {past}, only the whole job")
            addresses.append(address)
        target = Target.resolve(kubeconfig, namespace)

        async def stop(kube: Kube) -> int:
            failures = 0
            for address in addresses:
                body: dict[str, Any]
                if address.index is None:
                    body = {"spec": {field: {"reason": reason}}}
                else:  # one array child: an entry of spec.cancelChildren / spec.terminateChildren
                    body = {"spec": {f"{field}Children": {str(address.index): {"reason": reason}}}}
                try:
                    job = await kube.merge_patch(resource_path("batchjobs", target.namespace, address.name), body)
                except ApiError as e:
                    failures += 1
                    if e.status == 404 and isinstance(e.body, dict) and e.body.get("details"):
                        msg = f'batchjob "{address.name}" not found in namespace "{target.namespace}"'
                    else:
                        msg = f'batchjob "{address}": {describe_api_error(e)}'
                    click.echo(f"error: {msg}", err=True)
                    continue
                if address.index is None:
                    state = (job.get("status") or {}).get("status") or "SUBMITTED"
                else:
                    state = child_view(job, address.index).get("status") or "SUBMITTED"
                click.echo(f"batchjob/{address} {verb} requested (status {state})")
                if field == "cancel" and state in ("SCHEDULED", "STARTING", "RUNNING"):
                    click.echo(f"note: cancel does not stop a {state} job; use `kubatch terminate {address}`", err=True)
            return failures

        if target.run(stop):
            raise click.exceptions.Exit(1)

    command.help = doc
    return command


cancel = _stop_command(
    "cancel",
    "cancel",
    "cancelled",
    "Cancel jobs (CancelJob): jobs not yet STARTING fail with the reason; running ones continue. "
    "NAME:INDEX cancels one array child (spec.cancelChildren).",
)
terminate = _stop_command(
    "terminate",
    "terminate",
    "terminated",
    "Terminate jobs (TerminateJob): like cancel, and STARTING/RUNNING jobs are stopped. "
    "NAME:INDEX terminates one array child (spec.terminateChildren).",
)
