"""ListJobs-style filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubatch.cli.filters import JobFilter, parse_statuses, parse_time_spec

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def job(name: str, *, queue: str = "q", status: str | None = "RUNNABLE", created: str = "2026-01-01T10:00:00Z",
        definition: str = "d", resolved: str | None = None, share: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"jobQueue": queue, "jobDefinition": definition}
    if share:
        spec["shareIdentifier"] = share
    st: dict[str, Any] = {"status": status} if status else {}
    if resolved:
        st["jobDefinition"] = resolved
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": created}, "spec": spec, "status": st}


def names(flt: JobFilter, jobs: list[dict[str, Any]]) -> list[str]:
    return [j["metadata"]["name"] for j in flt.apply(jobs)]


def test_time_spec_accepts_durations_and_rfc3339() -> None:
    assert parse_time_spec("1h", NOW) == NOW - timedelta(hours=1)
    assert parse_time_spec("1h30m", NOW) == NOW - timedelta(minutes=90)
    assert parse_time_spec("2d", NOW) == NOW - timedelta(days=2)
    assert parse_time_spec("2026-01-01T10:00:00Z") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert parse_time_spec("2026-01-01T11:00:00+01:00") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither an RFC 3339"):
        parse_time_spec("yesterday")


def test_statuses_are_case_insensitive_and_comma_separated() -> None:
    assert parse_statuses(["running,failed", "Runnable"]) == {"RUNNING", "FAILED", "RUNNABLE"}
    with pytest.raises(ValueError, match="unknown status 'DONE'"):
        parse_statuses(["done"])


def test_name_filter_exact_or_prefix() -> None:
    jobs = [job("render-1"), job("render-2"), job("render"), job("other")]
    assert names(JobFilter(names=("render",)), jobs) == ["render"]
    assert names(JobFilter(names=("render-*",)), jobs) == ["render-1", "render-2"]
    assert names(JobFilter(names=("render-2", "other")), jobs) == ["other", "render-2"]


def test_queue_status_share_filters() -> None:
    jobs = [job("a", queue="q1", share="teamA"), job("b", queue="q2", status="FAILED"), job("c", status=None)]
    assert names(JobFilter(queue="q1"), jobs) == ["a"]
    assert names(JobFilter(statuses=frozenset({"FAILED", "SUBMITTED"})), jobs) == ["b", "c"]  # no status = SUBMITTED
    assert names(JobFilter(share="teamA"), jobs) == ["a"]


def test_definition_filter_matches_any_revision_or_one() -> None:
    jobs = [job("a", definition="d"), job("b", definition="d", resolved="d:3"), job("c", definition="e:3")]
    assert names(JobFilter(definition="d"), jobs) == ["a", "b"]
    assert names(JobFilter(definition="d:3"), jobs) == ["b"]
    assert names(JobFilter(definition="e"), jobs) == ["c"]


def test_created_filters() -> None:
    jobs = [job("old", created="2026-01-01T08:00:00Z"), job("new", created="2026-01-01T11:30:00Z")]
    assert names(JobFilter(created_after=parse_time_spec("1h", NOW)), jobs) == ["new"]
    assert names(JobFilter(created_before=parse_time_spec("1h", NOW)), jobs) == ["old"]


def test_results_are_sorted_oldest_first() -> None:
    jobs = [job("b", created="2026-01-01T11:00:00Z"), job("a", created="2026-01-01T09:00:00Z")]
    assert names(JobFilter(), jobs) == ["a", "b"]


def test_name_definition_and_time_filters_ignore_the_status_filter() -> None:
    """AWS ListJobs: "When the filter is used, jobStatus is ignored" (JOB_NAME, JOB_DEFINITION,
    BEFORE_CREATED_AT, AFTER_CREATED_AT); SHARE_IDENTIFIER and the queue combine with the status."""
    jobs = [
        job("etl-1", status="SUCCEEDED", definition="etl", created="2026-01-01T11:30:00Z"),
        job("etl-2", status="FAILED", definition="etl", share="teamA", created="2026-01-01T11:30:00Z"),
        job("report", status="SUCCEEDED", definition="rep", share="teamA", created="2026-01-01T08:00:00Z"),
    ]
    succeeded = frozenset({"SUCCEEDED"})
    assert names(JobFilter(statuses=succeeded), jobs) == ["report", "etl-1"]
    assert names(JobFilter(statuses=succeeded, names=("etl-*",)), jobs) == ["etl-1", "etl-2"]
    assert names(JobFilter(statuses=succeeded, definition="etl"), jobs) == ["etl-1", "etl-2"]
    assert names(JobFilter(statuses=succeeded, created_after=parse_time_spec("1h", NOW)), jobs) == ["etl-1", "etl-2"]
    assert names(JobFilter(statuses=succeeded, created_before=parse_time_spec("1h", NOW)), jobs) == ["report"]
    assert names(JobFilter(statuses=succeeded, share="teamA"), jobs) == ["report"]
    assert names(JobFilter(statuses=succeeded, queue="q"), jobs) == ["report", "etl-1"]
    assert JobFilter(statuses=succeeded, names=("etl-*",)).status_ignored
    assert not JobFilter(statuses=succeeded, share="teamA").status_ignored
    assert not JobFilter(names=("etl-*",)).status_ignored  # nothing to ignore


def test_name_filter_is_case_insensitive() -> None:
    jobs = [job("render-1"), job("other")]
    assert names(JobFilter(names=("Render-*",)), jobs) == ["render-1"]
    assert names(JobFilter(names=("OTHER",)), jobs) == ["other"]


def test_definition_filter_prefix() -> None:
    jobs = [job("a", definition="etl"), job("b", definition="etl-big:2"), job("c", definition="x", resolved="etl2:1"),
            job("d", definition="report")]
    assert names(JobFilter(definition="etl*"), jobs) == ["a", "b", "c"]
    assert names(JobFilter(definition="etl-*"), jobs) == ["b"]
    assert names(JobFilter(definition="etl"), jobs) == ["a"]


def test_name_filter_matches_the_aws_job_name_when_set() -> None:
    aws = job("render-frames-1a2b3c")
    aws["spec"]["jobName"] = "Render_Frames"
    jobs = [aws, job("render-other"), job("unrelated")]
    assert names(JobFilter(names=("Render_Frames",)), jobs) == ["render-frames-1a2b3c"]
    assert names(JobFilter(names=("render_frames",)), jobs) == ["render-frames-1a2b3c"]  # case-insensitive
    assert names(JobFilter(names=("Render_*",)), jobs) == ["render-frames-1a2b3c"]
    assert names(JobFilter(names=("render-*",)), jobs) == ["render-frames-1a2b3c", "render-other"]  # object name
    assert names(JobFilter(names=("render-frames-1a2b3c",)), jobs) == ["render-frames-1a2b3c"]
