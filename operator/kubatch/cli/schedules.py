"""`kubatch schedules`: the JobSchedules, with when each runs next (computed from the spec, as the
operator does: ``kubatch.core.schedules``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from kubatch.cli.client import JSON, Target, connection_options, output_option, resource_path
from kubatch.cli.render import age, dump, human_duration, table, terminal_width
from kubatch.cluster.client import Kube
from kubatch.core.cron import CronError
from kubatch.core.schedules import format_time, read_spec

BASE_COLUMNS = ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "NEXT RUN")
WIDE_COLUMNS = ("NEXT RUN AT", "QUEUE", "DEFINITION", "CONCURRENCY", "LAST SUCCESS", "REASON")


def next_run(schedule: Mapping[str, Any], now: datetime) -> tuple[datetime | None, str]:
    """When the schedule runs next, and how to show it: ``in 5m``, ``suspended`` or ``invalid``."""
    try:
        spec = read_spec(schedule.get("spec") or {})
    except CronError:
        return None, "invalid"
    if spec.suspend:
        return None, "suspended"
    when = spec.cron.next_after(now, spec.tz)
    if when is None:
        return None, "never"
    return when, f"in {human_duration((when - now).total_seconds())}"


def schedule_row(schedule: Mapping[str, Any], *, wide: bool, namespaced: bool, now: datetime) -> list[object]:
    meta, spec, status = schedule.get("metadata") or {}, schedule.get("spec") or {}, schedule.get("status") or {}
    template = (spec.get("jobTemplate") or {}).get("spec") or {}
    last = status.get("lastScheduleTime")
    row: list[object] = [] if namespaced else [meta.get("namespace")]
    row += [
        meta.get("name"),
        spec.get("schedule"),
        spec.get("timeZone") or "UTC",
        "true" if spec.get("suspend") else "false",
        len(status.get("active") or []),
        f"{age(last, now)} ago" if last else "never",
        next_run(schedule, now)[1],
    ]
    if wide:
        success = status.get("lastSuccessfulTime")
        when = next_run(schedule, now)[0]
        row += [
            format_time(when) if when else "",
            template.get("jobQueue"),
            template.get("jobDefinition"),
            spec.get("concurrencyPolicy") or "Allow",
            f"{age(success, now)} ago" if success else "",
            status.get("statusReason") or "",
        ]
    return row


def schedules_table(
    schedules: Sequence[Mapping[str, Any]],
    *,
    wide: bool = False,
    namespaced: bool = True,
    width: int | None = None,
    now: datetime | None = None,
) -> str:
    """The JobSchedule table; without ``wide`` it fits ``width`` (default 80) by truncating NAME."""
    now = now or datetime.now(UTC)
    headers = ([] if namespaced else ["NAMESPACE"]) + list(BASE_COLUMNS) + (list(WIDE_COLUMNS) if wide else [])
    rows = [schedule_row(s, wide=wide, namespaced=namespaced, now=now) for s in schedules]
    limit = None if wide else (width or 80)
    return table(headers, rows, max_width=limit, flex=("NAMESPACE", "NAME", "SCHEDULE", "NEXT RUN"))


@click.command("schedules")
@connection_options
@click.option("-A", "--all-namespaces", is_flag=True, help="Schedules of every namespace.")
@output_option("table", "wide", "json", "yaml")
def schedules(kubeconfig: str | None, namespace: str | None, all_namespaces: bool, output: str) -> None:
    """List JobSchedules (jobs submitted on a cron schedule) with when each runs next."""
    target = Target.resolve(kubeconfig, namespace)
    ns = None if all_namespaces else target.namespace

    async def fetch(kube: Kube) -> list[JSON]:
        items, _ = await kube.list_all(resource_path("jobschedules", ns))
        return items

    items = sorted(
        target.run(fetch), key=lambda s: ((s.get("metadata") or {}).get("namespace", ""), s["metadata"]["name"])
    )
    now = datetime.now(UTC)
    if output in ("json", "yaml"):
        for item in items:
            when = next_run(item, now)[0]
            item.setdefault("status", {})["nextScheduleTime"] = format_time(when) if when else None
        click.echo(dump({"apiVersion": "v1", "kind": "List", "items": items}, output))
    elif not items:
        click.echo(f"No jobschedules found{'' if ns is None else f' in namespace {ns!r}'}.", err=True)
    else:
        click.echo(schedules_table(items, wide=output == "wide", namespaced=ns is not None, width=terminal_width()))
