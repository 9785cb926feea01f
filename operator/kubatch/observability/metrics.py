"""Prometheus metrics of the operator, served on their own port.

Counters and histograms are updated as things happen; gauges (jobs per queue and state, capacity,
share usage, consumables) are computed at scrape time from the in-memory view by a collector, so
they cost nothing between scrapes. No label ever carries a per-job value.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PCounter
from prometheus_client import Gauge as PGauge
from prometheus_client import Histogram as PHistogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubatch.core.timestamps import parse_iso

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """All of kubatch's metrics, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.transitions = PCounter(
            "kubatch_job_state_transitions",
            "Job state changes, by queue and new state.",
            ["queue", "state"],
            registry=r,
        )
        self.retries = PCounter("kubatch_job_retries", "Attempts that failed and were retried.", ["queue"], registry=r)
        self.attempts = PCounter("kubatch_job_attempts", "Attempts started (pods created).", ["queue"], registry=r)
        self.runnable_seconds = PHistogram(
            "kubatch_job_runnable_seconds",
            "Time jobs spent RUNNABLE before starting.",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.submit_to_start = PHistogram(
            "kubatch_job_submit_to_start_seconds",
            "Time from submission to the first RUNNING.",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cycle_seconds = PHistogram(
            "kubatch_scheduling_cycle_seconds",
            "Duration of one scheduling cycle (plan only).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.events_shed = PCounter(
            "kubatch_events_shed",
            "Normal job Events not posted because the operator was busy (their status says the same).",
            ["reason"],
            registry=r,
        )
        self.pods_created = PCounter("kubatch_pods_created", "Pods created by the operator.", registry=r)
        self.jobs_expired = PCounter(
            "kubatch_jobs_expired",
            "Finished BatchJobs deleted because their time to live (ttlSecondsAfterFinished) passed.",
            registry=r,
        )
        self.head_estimated_wait = PGauge(
            "kubatch_queue_head_estimated_wait_seconds",
            "Seconds until the first RUNNABLE job of a queue is expected to start (latest start-time estimate).",
            ["queue"],
            registry=r,
        )
        self.estimate_seconds = PHistogram(
            "kubatch_start_estimate_seconds",
            "Duration of one start-time estimate (a forward simulation of every queue's front).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.service_preemptions = PCounter(
            "kubatch_service_job_preemptions",
            "Service jobs preempted, per job queue, quota share and kind (cross-share, in-share, limit).",
            ["queue", "quota_share", "kind"],
            registry=r,
        )
        self.queue_blocked_events = PCounter(
            "kubatch_queue_blocked", "Times a queue became blocked, by reason code.", ["queue", "reason"], registry=r
        )

    def known_queue(self, queue: str) -> None:
        """Export zeros for a queue's counters, so rates exist before the first event."""
        self.transitions.labels(queue, "SUCCEEDED")
        self.transitions.labels(queue, "FAILED")
        self.retries.labels(queue)
        self.attempts.labels(queue)

    def observe_transition(self, queue: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """Account one status write. Writes are coalesced, so a write may skip states: what is
        measured is read from timestamps (queuedAt, startedAt), not from which states it names."""
        before, after = old.get("status"), new.get("status")
        if before == after or not after:
            return
        self.transitions.labels(queue, after).inc()
        waiting = before in (None, "SUBMITTED", "PENDING", "RUNNABLE")
        if (
            waiting
            and after in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED")
            and (new.get("attempts") or after != "FAILED")
        ):
            queued = parse_iso(new.get("queuedAt"))
            left = parse_iso(new.get("startedAt")) if not old.get("startedAt") else None
            left = left if left is not None else time.time()
            if queued is not None:
                self.runnable_seconds.labels(queue).observe(max(0.0, left - queued))
        if new.get("startedAt") and not old.get("startedAt"):
            created = parse_iso(new.get("createdAt"))
            started = parse_iso(new.get("startedAt"))
            if created is not None and started is not None:
                self.submit_to_start.labels(queue).observe(max(0.0, started - created))
        attempts_before = len(old.get("attempts") or [])
        attempts_after = len(new.get("attempts") or [])
        if after in ("RUNNABLE", "STARTING", "RUNNING") and attempts_after > attempts_before:
            self.retries.labels(queue).inc(attempts_after - attempts_before)

    def add_collector(self, collect: Callable[[], Iterator[Metric]]) -> None:
        class _C(Collector):
            def collect(self) -> Iterator[Metric]:
                return collect()

        self.registry.register(_C())


def gauge(name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], float]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        g.add_metric(list(key), value)
    return g


def quota_share_metrics(plans: Mapping[str, Any]) -> Iterator[Metric]:
    """Scrape-time gauges of the quota shares, from the last plan of each quota-managed queue
    (``scheduler.quota.QuotaPlan``): instances held and borrowed per queue, share and unit."""
    usage: dict[tuple[str, ...], float] = {}
    borrowed: dict[tuple[str, ...], float] = {}
    for queue, plan in plans.items():
        for share, units in plan.usage.items():
            for unit, n in (units or {"NUM_INSTANCES": 0}).items():
                usage[(queue, share, unit)] = float(n)
                borrowed[(queue, share, unit)] = float(plan.borrowed.get(share, {}).get(unit, 0))
    labels = ["queue", "quota_share", "capacity_unit"]
    yield gauge(
        "kubatch_quota_share_usage",
        "Instances held by a quota share's SCHEDULED, STARTING and RUNNING service jobs.",
        labels,
        usage,
    )
    yield gauge(
        "kubatch_quota_share_borrowed",
        "Of those, instances above the quota share's own maxCapacity (borrowed from lending shares).",
        labels,
        borrowed,
    )


def count_jobs(jobs: Mapping[str, Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """Jobs (array children counted one by one) per (queue, state)."""
    counts: Counter[tuple[str, str]] = Counter()
    for job in jobs.values():
        st = job.get("status") or {}
        queue = str((job.get("spec") or {}).get("jobQueue", ""))
        summary = (st.get("arrayProperties") or {}).get("statusSummary")
        if summary:
            for state, n in summary.items():
                counts[(queue, state)] += int(n)
        else:
            counts[(queue, str(st.get("status") or "SUBMITTED"))] += 1
    return counts
