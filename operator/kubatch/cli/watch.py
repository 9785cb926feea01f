"""`kubatch watch`: a live BatchJob table, optionally until every listed job has finished."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click

from kubatch.cli.children import TERMINAL
from kubatch.cli.client import JSON, CliError, Target, connection_options, output_option, resource_path
from kubatch.cli.filters import JobFilter
from kubatch.cli.jobs import build_filter, filter_options, jobs_table
from kubatch.cli.render import terminal_width
from kubatch.cluster.client import ApiError, Kube

CLEAR = "\x1b[H\x1b[2J"
Key = tuple[str, str]


class WatchView:
    """The watched jobs, updated from list results and watch events."""

    def __init__(self, flt: JobFilter) -> None:
        self.filter = flt
        self.jobs: dict[Key, Mapping[str, Any]] = {}

    @staticmethod
    def key(job: Mapping[str, Any]) -> Key:
        meta = job.get("metadata") or {}
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))

    def load(self, jobs: Iterable[Mapping[str, Any]]) -> None:
        self.jobs = {self.key(j): j for j in jobs}

    def apply(self, event_type: str, job: Mapping[str, Any]) -> bool:
        """Apply an ADDED/MODIFIED/DELETED event; True when a shown job changed."""
        key = self.key(job)
        before = self.jobs.get(key)
        if event_type == "DELETED":
            self.jobs.pop(key, None)
        elif event_type in ("ADDED", "MODIFIED"):
            self.jobs[key] = job
        else:
            return False
        return any(j is not None and self.filter.matches(j) for j in (before, job))

    def visible(self) -> list[Mapping[str, Any]]:
        return self.filter.apply(self.jobs.values())

    def outcome(self) -> bool | None:
        """None while a shown job is unfinished (or none is shown); else whether all SUCCEEDED."""
        shown = self.visible()
        states = [(j.get("status") or {}).get("status") for j in shown]
        if not shown or any(s not in TERMINAL for s in states):
            return None
        return all(s == "SUCCEEDED" for s in states)


def row_line(job: Mapping[str, Any], *, wide: bool, namespaced: bool, width: int) -> str:
    """One job as a table row without header (the appended-lines mode: JOB-NAME only with ``wide``,
    so that every line has the same columns)."""
    return jobs_table([job], wide=wide, namespaced=namespaced, width=width, job_names=wide).splitlines()[-1]


@click.command("watch")
@connection_options
@filter_options
@click.option("--until-done", is_flag=True, help="Exit when every listed job finished: 0 if all SUCCEEDED, else 1.")
@output_option("table", "wide")
def watch(
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
    until_done: bool,
    output: str,
) -> None:
    """Watch BatchJobs live (same filters as `list`); Ctrl-C stops."""
    view = WatchView(build_filter(names, queue, statuses, definition, created_after, created_before, share))
    target = Target.resolve(kubeconfig, namespace)
    ns = None if all_namespaces else target.namespace
    path = resource_path("batchjobs", ns)
    tty = sys.stdout.isatty()
    wide = output == "wide"

    def render_all() -> None:
        width = terminal_width()
        shown = view.visible()
        names = None if tty else wide  # appended lines keep the first table's columns
        text = (
            jobs_table(shown, wide=wide, namespaced=ns is not None, width=width, job_names=names)
            if shown
            else "No batchjobs."
        )
        if tty:
            stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
            click.echo(f"{CLEAR}kubatch watch ({ns or 'all namespaces'})  {stamp}\n{text}")
        else:
            click.echo(text)

    async def run(kube: Kube) -> bool | None:
        items, rv = await kube.list_all(path)
        view.load(items)
        render_all()
        if until_done and not view.visible():
            raise CliError("no batchjobs match the filters")
        while True:
            if until_done and (done := view.outcome()) is not None:
                return done
            try:
                async for event in kube.watch(path, resource_version=rv):
                    obj: JSON = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise ApiError(int(obj.get("code") or 410), obj, "WATCH", path)
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if view.apply(str(event.get("type")), obj):
                        if tty:
                            render_all()
                        else:
                            click.echo(row_line(obj, wide=wide, namespaced=ns is not None, width=terminal_width()))
                    if until_done and (done := view.outcome()) is not None:
                        return done
            except ApiError as e:
                if e.status != 410:
                    raise
                items, rv = await kube.list_all(path)  # our resourceVersion expired: start over
                view.load(items)
                render_all()

    try:
        result = target.run(run)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130 if until_done else 0) from None
    if until_done and result is False:
        raise click.exceptions.Exit(1)
