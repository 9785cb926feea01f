"""Scrape-time gauges read the operator's live state: the status-write backlog gauge counts the
writes waiting in the job reconciler at each scrape, as do the leadership and request gauges."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest

from kubatch.cluster.view import View
from kubatch.observability.metrics import Metrics
from kubatch.observability.views import register_view_metrics


def runtime(pending: dict[str, Any]) -> SimpleNamespace:
    dispatcher = SimpleNamespace(
        usage=dict,
        usage_rows=[],
        consumables_in_use=dict,
        consumables_consumed=dict,
        blocked_queues=set(),
    )
    kube = SimpleNamespace(errors_by_code=Counter(), requests_total=7, throttled_total=0)
    return SimpleNamespace(dispatcher=dispatcher, kube=kube, jobs=SimpleNamespace(pending=pending), is_leader=True)


def sample(metrics: Metrics, line_start: str) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not exported")


def test_the_status_write_backlog_is_exported_as_it_is_now() -> None:
    metrics, pending = Metrics(), {}
    register_view_metrics(metrics, View(), runtime(pending))
    assert sample(metrics, "kubatch_status_writes_pending") == 0.0
    pending.update({"ns/a": object(), "ns/b": object(), "ns/c": object()})
    assert sample(metrics, "kubatch_status_writes_pending") == 3.0
    pending.clear()
    assert sample(metrics, "kubatch_status_writes_pending") == 0.0
    assert sample(metrics, "kubatch_leader") == 1.0
    assert sample(metrics, "kubatch_api_requests") == 7.0


def test_jobs_per_queue_and_state_come_from_the_views_counts() -> None:
    metrics, view = Metrics(), View()
    register_view_metrics(metrics, view, runtime({}))
    md = {"namespace": "ns", "uid": "u", "resourceVersion": "1"}
    view.on_job("ADDED", {"metadata": {**md, "name": "a"}, "spec": {"jobQueue": "q"}, "status": {"status": "RUNNABLE"}})
    array = {"status": "PENDING", "arrayProperties": {"statusSummary": {"RUNNABLE": 3, "SUCCEEDED": 2}}}
    view.on_job("ADDED", {"metadata": {**md, "name": "b"}, "spec": {"jobQueue": "q"}, "status": array})
    assert sample(metrics, 'kubatch_jobs{queue="q",state="RUNNABLE"}') == 4.0
    assert sample(metrics, 'kubatch_jobs{queue="q",state="SUCCEEDED"}') == 2.0
    view.set_status("ns/a", {"status": "STARTING"})
    assert sample(metrics, 'kubatch_jobs{queue="q",state="RUNNABLE"}') == 3.0
    assert sample(metrics, 'kubatch_jobs{queue="q",state="STARTING"}') == 1.0
