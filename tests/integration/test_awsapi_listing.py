"""ListJobs' pages over more than 250 jobs, with the real boto3 client and its paginator, on the local
control plane and the shared operator: 260 jobs submitted at once (16 threads) to a queue whose only
compute environment is DISABLED, so they stay RUNNABLE; listed with a JOB_NAME filter (pages of at
most 100) and by status (pages of 120, and maxResults 250), every job exactly once, most recent first,
also when more jobs are submitted between two pages. Waiting for every job's RUNNABLE takes up to a
minute: kubatch writes a plainly queued job's first status within 60 s."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest

from tests.integration.batch import Batch
from tests.integration.test_awsapi import CONTAINER, api_url, aws, key, keys_namespace

pytestmark = pytest.mark.integration
__all__ = ["api_url", "aws", "key", "keys_namespace"]  # fixtures shared with test_awsapi

JOBS = 260


def submit_all(aws: Any, queue: str, names: Iterable[str]) -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda n: aws.submit_job(jobName=n, jobQueue=queue, jobDefinition="bulk")["jobId"], names))


def ordered(summaries: list[dict[str, Any]]) -> bool:
    """Most recent first: createdAt never increases along the listing."""
    created = [s["createdAt"] for s in summaries]
    return all(a >= b for a, b in pairwise(created))


def test_list_jobs_pages_over_250_jobs(aws: Any, batch: Batch) -> None:
    queue = batch.queue([batch.environment(cpu=4, memory="16Gi", state="DISABLED")])
    aws.register_job_definition(jobDefinitionName="bulk", type="container", containerProperties=CONTAINER)
    started = time.monotonic()
    ids = submit_all(aws, queue, [f"bulk-{i:03d}" for i in range(JOBS)])
    assert len(set(ids)) == JOBS
    submitted_in = time.monotonic() - started

    # A JOB_NAME filter (status ignored, at most 100 a page): 100 + 100 + 60, each job once.
    pages = list(
        aws.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["BULK-*"]}], PaginationConfig={"PageSize": 100}
        )
    )
    assert [len(p["jobSummaryList"]) for p in pages] == [100, 100, 60]
    flat = [s for p in pages for s in p["jobSummaryList"]]
    assert sorted(s["jobId"] for s in flat) == sorted(ids)
    assert ordered(flat)

    # Jobs submitted between two pages do not shift the listing: the cursor continues after the
    # last job of the previous page, and the new jobs (more recent) come before it.
    first = aws.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["bulk-*"]}], maxResults=50)
    late = submit_all(aws, queue, [f"bulk-late-{i}" for i in range(5)])
    seen = [s["jobId"] for s in first["jobSummaryList"]]
    token = first["nextToken"]
    while token:
        page = aws.list_jobs(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["bulk-*"]}], maxResults=50, nextToken=token
        )
        seen.extend(s["jobId"] for s in page["jobSummaryList"])
        token = page.get("nextToken")
    assert sorted(seen) == sorted(ids) and not set(late) & set(seen)

    # By status: once every job is RUNNABLE (the environment is DISABLED, so they stay there).
    everyone = set(ids) | set(late)
    deadline = time.monotonic() + 180
    while True:
        runnable = aws.list_jobs(jobQueue=queue, jobStatus="RUNNABLE")["jobSummaryList"]
        if {s["jobId"] for s in runnable} == everyone:
            break
        assert time.monotonic() < deadline, f"{len(runnable)} of {len(everyone)} jobs RUNNABLE after 180 s"
        time.sleep(1)
    pages = list(
        aws.get_paginator("list_jobs").paginate(
            jobQueue=queue, jobStatus="RUNNABLE", PaginationConfig={"PageSize": 120}
        )
    )
    assert [len(p["jobSummaryList"]) for p in pages] == [120, 120, 25]
    flat = [s for p in pages for s in p["jobSummaryList"]]
    assert len(flat) == len(everyone) and {s["jobId"] for s in flat} == everyone
    assert ordered(flat) and all(s["status"] == "RUNNABLE" for s in flat)
    big = aws.list_jobs(jobQueue=queue, jobStatus="RUNNABLE", maxResults=250)
    rest = aws.list_jobs(jobQueue=queue, jobStatus="RUNNABLE", maxResults=250, nextToken=big["nextToken"])
    assert (len(big["jobSummaryList"]), len(rest["jobSummaryList"]), rest.get("nextToken")) == (250, 15, None)
    assert [s["jobId"] for s in big["jobSummaryList"] + rest["jobSummaryList"]] == [s["jobId"] for s in flat]
    print(f"{JOBS} jobs submitted in {submitted_in:.1f} s")
