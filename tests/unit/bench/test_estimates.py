"""The bench's scoring of start-time estimates."""

from __future__ import annotations

from typing import Any

from bench.estimates import EstimateTracker, accuracy

from kubatch.core.timestamps import iso


class _NoKube:
    pass


def queue_event(ns: str, entries: list[tuple[str, float | None]]) -> dict[str, Any]:
    front = [{"namespace": ns, "name": n, **({"estimatedStartAt": iso(t)} if t else {})} for n, t in entries]
    return {"metadata": {"name": "q"}, "status": {"front": front}}


def test_the_first_estimate_of_each_job_of_the_namespace_is_kept() -> None:
    tracker = EstimateTracker(_NoKube(), "bench")  # type: ignore[arg-type]
    tracker.handle("ADDED", queue_event("bench", [("a", 1000.0), ("b", None)]))
    tracker.handle("MODIFIED", queue_event("bench", [("a", 1010.0), ("b", 1020.0)]))
    tracker.handle("MODIFIED", queue_event("other", [("c", 1000.0)]))
    assert tracker.first == {"a": 1000.0, "b": 1020.0}


def test_error_is_a_share_of_the_actual_wait_and_short_waits_are_not_scored() -> None:
    first = {"a": 110.0, "b": 130.0, "c": 100.5, "d": 200.0}
    submitted = {"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.0}
    running = {"a": 110.0, "b": 120.0, "c": 100.5}  # d never ran
    result = accuracy(first, submitted, running)
    assert result["jobs_with_estimate"] == 4
    assert result["jobs_scored"] == 2  # c waited 0.5 s
    assert result["median_relative_error"] == 0.0
    assert result["p90_relative_error"] == 0.5
    assert result["median_signed_error"] in (0.0, 0.5)  # b was said 10 s late of a 20 s wait
