"""How good are kubatch's start-time estimates? The first estimate each job got, against when it started.

``EstimateTracker`` watches the JobQueues and keeps, per job, the first ``estimatedStartAt`` its
queue's front showed for it (and when that was seen). ``accuracy`` compares those with the times
the jobs' pods were seen Running: the absolute error as a share of the job's actual wait
(submission to Running), so a job that waited 10 s and was predicted 2 s off counts 20 %.
"""

from __future__ import annotations

from typing import Any

from bench.report import quantile
from bench.trackers import GROUP_PATH, _Watched
from kubatch.cluster.client import Kube
from kubatch.core.timestamps import parse_iso

#: Waits shorter than this are not scored (a relative error of a near-zero wait means nothing).
MIN_WAIT_S = 1.0


class EstimateTracker(_Watched):
    """The first estimate seen per job of ``namespace`` (by BatchJob name, ``name:index`` for a child)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        super().__init__(kube, f"{GROUP_PATH}/jobqueues", None)
        self.namespace = namespace
        self.first: dict[str, float] = {}

    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        if typ == "DELETED":
            return
        for entry in (obj.get("status") or {}).get("front") or []:
            if entry.get("namespace") != self.namespace:
                continue
            at = parse_iso(entry.get("estimatedStartAt"))
            if at is not None:
                self.first.setdefault(str(entry.get("name")), at)


def accuracy(first: dict[str, float], submitted: dict[str, float], running: dict[str, float]) -> dict[str, object]:
    """Median and p90 of |estimate - actual start| / actual wait over the jobs that had an estimate
    and waited at least ``MIN_WAIT_S``; how many jobs had one at all."""
    errors: list[float] = []
    signed: list[float] = []
    for name, predicted in first.items():
        if name not in running or name not in submitted:
            continue
        wait = running[name] - submitted[name]
        if wait >= MIN_WAIT_S:
            errors.append(abs(predicted - running[name]) / wait)
            signed.append((predicted - running[name]) / wait)
    return {
        "jobs_with_estimate": len(first),
        "jobs_scored": len(errors),
        "median_relative_error": quantile(errors, 0.5),
        "p90_relative_error": quantile(errors, 0.9),
        # Below zero: the estimate was too early (the job started later than said).
        "median_signed_error": quantile(signed, 0.5),
    }


def percent(value: object) -> float | None:
    """A share as a percentage with one decimal (None stays None)."""
    return round(100 * value, 1) if isinstance(value, float) else None
