"""Finished jobs are deleted once their time to live has passed (real control plane, kwok pods).

The shared test operator sets no default time to live, so finished jobs are kept unless they (or
their definition) set `ttlSecondsAfterFinished`; a job another, unfinished job depends on is kept
until that one finished.
"""

from __future__ import annotations

import json
import time

import pytest

from kubatch.core.timestamps import parse_iso
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration

SWEEP = 5.0  # the operator's retention period


def exists(batch: Batch, name: str) -> bool:
    return batch.kubectl("get", "batchjob", name, "-n", batch.ns, check=False).returncode == 0


def test_finished_jobs_are_deleted_after_their_time_to_live(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    batch.container_definition("plain")
    batch.container_definition("short-lived", ttlSecondsAfterFinished=1)
    batch.job("own-ttl", q, "plain", duration="1s", ttlSecondsAfterFinished=2)
    batch.job("definition-ttl", q, "short-lived", duration="1s")
    batch.job("kept", q, "plain", duration="1s")
    batch.job("failed", q, "plain", duration="1s", exit_code=3, ttlSecondsAfterFinished=0)

    st = batch.wait_done("own-ttl")
    assert st["status"] == "SUCCEEDED"
    stopped = parse_iso(st["stoppedAt"]) or 0.0
    batch.wait_for(lambda: not exists(batch, "own-ttl"), "own-ttl deleted", timeout=2 + 2 * SWEEP + 30)
    # Not before its time (stoppedAt has whole seconds).
    assert time.time() >= stopped + 2 - 1
    batch.wait_for(lambda: not exists(batch, "definition-ttl"), "definition-ttl deleted", timeout=60)
    batch.wait_for(lambda: not exists(batch, "failed"), "the failed job deleted (TTL 0)", timeout=60)
    # Its pods went with it.
    batch.wait_for(lambda: not batch.pods("own-ttl"), "own-ttl's pods gone", timeout=30)
    # Without a time to live (and no default), a finished job stays.
    assert batch.wait_done("kept")["status"] == "SUCCEEDED"
    time.sleep(SWEEP + 1)  # a full sweep after "kept" finished
    assert exists(batch, "kept")


def test_a_time_to_live_can_be_set_after_the_job_finished(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=2)])
    batch.container_definition("plain")
    batch.job("later", q, "plain", duration="1s")
    assert batch.wait_done("later")["status"] == "SUCCEEDED"
    batch.kubectl(
        "patch",
        "batchjob",
        "later",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"ttlSecondsAfterFinished": 0}}),
    )
    batch.wait_for(lambda: not exists(batch, "later"), "later deleted once its TTL was set", timeout=2 * SWEEP + 30)


def test_a_dependency_is_kept_while_a_dependent_waits_for_it(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    batch.container_definition("plain")
    batch.job("up", q, "plain", duration="1s", ttlSecondsAfterFinished=0)
    batch.job("slow", q, "plain", duration="12s")
    batch.job("down", q, "plain", duration="1s", dependsOn=[{"jobName": "up"}, {"jobName": "slow"}])

    assert batch.wait_done("up")["status"] == "SUCCEEDED"
    assert batch.wait_status("slow", "RUNNING")
    # "up" expired at once, but "down" still waits (for "slow") and reads its status: it is kept.
    time.sleep(2 * SWEEP)
    assert batch.status("down")["status"] == "PENDING"
    assert exists(batch, "up")
    # Once "down" has run, nothing waits for "up" any more.
    assert batch.wait_done("down", timeout=60)["status"] == "SUCCEEDED"
    batch.wait_for(lambda: not exists(batch, "up"), "up deleted after its dependent finished", timeout=2 * SWEEP + 30)
    assert exists(batch, "slow") and exists(batch, "down")
