"""Scrape-time gauges computed from the in-memory view (no per-job label values)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from kubatch.cluster.view import View
from kubatch.core.capacity import env_view
from kubatch.observability.metrics import Metrics, gauge
from kubatch.scheduler import Resources

JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def register_view_metrics(metrics: Metrics, view: View, runtime: Any) -> None:
    """Gauges: jobs per queue/state, CE capacity and use, share use, consumables, the status-write
    backlog, leadership."""

    def collect() -> Iterator[Metric]:
        # Kept by the view as jobs change (a scrape does not go over every job).
        counts = {(queue, state): n for queue, c in view.job_counts.items() for state, n in c.items() if n}
        for queue in view.queues:
            for state in JOB_STATES:
                counts.setdefault((queue, state), 0)
        yield gauge(
            "kubatch_jobs",
            "Jobs (array children counted singly) by queue and state.",
            ["queue", "state"],
            {k: float(v) for k, v in counts.items()},
        )
        dispatcher = runtime.dispatcher
        used = dispatcher.usage()
        desired: dict[tuple[str, ...], float] = {}
        used_v: dict[tuple[str, ...], float] = {}
        max_v: dict[tuple[str, ...], float] = {}
        gpus_used: dict[tuple[str, ...], float] = {}
        gpus_max: dict[tuple[str, ...], float] = {}
        for name, ce in view.envs.items():
            env = env_view(name, ce, view.nodes, used.get(name, Resources()))
            desired[(name,)] = float((ce.get("status") or {}).get("desiredvCpus") or 0)
            used_v[(name,)] = env.used.vcpus
            max_v[(name,)] = env.capacity.vcpus
            gpus_used[(name,)] = float(env.used.gpus)
            gpus_max[(name,)] = float(env.capacity.gpus)
        yield gauge("kubatch_compute_environment_desired_vcpus", "desiredvCpus.", ["compute_environment"], desired)
        yield gauge(
            "kubatch_compute_environment_used_vcpus",
            "vCPUs requested by STARTING/RUNNING pods.",
            ["compute_environment"],
            used_v,
        )
        yield gauge("kubatch_compute_environment_max_vcpus", "Capacity in vCPUs.", ["compute_environment"], max_v)
        yield gauge("kubatch_compute_environment_used_gpus", "GPUs requested.", ["compute_environment"], gpus_used)
        yield gauge("kubatch_compute_environment_max_gpus", "Capacity in GPUs.", ["compute_environment"], gpus_max)
        shares: dict[tuple[str, ...], float] = defaultdict(float)
        for queue, q in view.queues.items():
            policy = view.policies.get(str((q.get("spec") or {}).get("schedulingPolicy") or ""))
            for entry in ((policy or {}).get("spec") or {}).get("fairsharePolicy", {}).get("shareDistribution") or []:
                ident = str(entry.get("shareIdentifier", ""))
                if ident and not ident.endswith("*"):
                    shares[(queue, ident)] += 0.0
        for su in dispatcher.usage_rows:
            shares[(su.queue, su.share)] += su.running_vcpus
        yield gauge(
            "kubatch_share_running_vcpus", "vCPUs held by each fair-share identifier.", ["queue", "share"], shares
        )
        in_use = dispatcher.consumables_in_use()
        consumed = dispatcher.consumables_consumed()
        yield gauge(
            "kubatch_consumable_in_use",
            "Consumable resource units in use.",
            ["resource"],
            {(k,): float(in_use.get(k, 0)) for k in view.consumables},
        )
        yield gauge(
            "kubatch_consumable_available",
            "Consumable resource units available.",
            ["resource"],
            {
                (k,): float(
                    max(0, int((c.get("spec") or {}).get("totalQuantity") or 0) - consumed.get(k, 0) - in_use.get(k, 0))
                )
                for k, c in view.consumables.items()
            },
        )
        yield gauge(
            "kubatch_queue_blocked",
            "1 when the queue's head job is blocked.",
            ["queue"],
            {(q,): 1.0 if q in dispatcher.blocked_queues else 0.0 for q in view.queues},
        )
        yield gauge(
            "kubatch_status_writes_pending",
            "BatchJob status writes waiting in their coalescing window (a backlog under a burst).",
            [],
            {(): float(len(runtime.jobs.pending))},
        )
        yield gauge(
            "kubatch_leader",
            "1 on the replica that holds the dispatcher Lease.",
            [],
            {(): 1.0 if runtime.is_leader else 0.0},
        )
        errors = CounterMetricFamily(
            "kubatch_api_errors", "Failed API calls by HTTP status (0: no answer).", labels=["code"]
        )
        by_code = runtime.kube.errors_by_code
        for code in sorted(set(by_code) | {"0", "404", "409", "429", "500"}):
            errors.add_metric([code], float(by_code.get(code, 0)))
        yield errors
        yield gauge(
            "kubatch_api_requests",
            "API requests sent (counter semantics).",
            [],
            {(): float(runtime.kube.requests_total)},
        )
        yield gauge(
            "kubatch_api_throttled",
            "HTTP 429 answers received (counter semantics).",
            [],
            {(): float(runtime.kube.throttled_total)},
        )

    metrics.add_collector(collect)
