"""Control-plane faults during a run: the API server restarted, etcd frozen, the API server throttling.

Each test runs a mixed workload (see workload.py) on the private cluster, breaks the control plane
while jobs are running, and checks that every job still ends in its right final state with exactly
one pod created per attempt (from the API server's audit log, which a watch gap cannot hide).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.integration.batch import Batch
from tests.resilience.conftest import Operator, PrivateCluster
from tests.resilience.workload import Workload

pytestmark = pytest.mark.integration

N_JOBS = 100


def _wait_started(work: Workload, at_least: int, timeout: float = 60) -> None:
    """Until `at_least` jobs got past RUNNABLE (the run is well under way)."""
    deadline = time.monotonic() + timeout
    while True:
        progress = work.progress()
        if sum(n for state, n in progress.items() if state in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED")) >= (
            at_least
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never got going: {dict(progress)}")
        time.sleep(0.25)


def _report(what: str, **numbers: object) -> None:
    print(f"\n[resilience] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()), file=sys.stderr)


def test_apiserver_restart_mid_run(batch: Batch, operator: Operator, private_cluster: PrivateCluster) -> None:
    """The kube-apiserver SIGKILLed mid-run and started again (same flags, same port, after 2 s down).
    Proves: every job ends in its right final state, no attempt runs twice (audit log), and the
    operator resumes on its own: its watches come back through the informers' relist path. Whether
    the restarted server answers an old resourceVersion with 410 Gone depends on how fast it came
    back (a fresh watch cache may still serve it), so the 410 relists are reported, not required;
    tests/unit covers the 410 path itself."""
    work = Workload(batch, N_JOBS, duration="3s")
    relists_before = operator.log_count(r"watch expired \(410\)")
    work.submit()
    _wait_started(work, N_JOBS // 4)
    outage = private_cluster.restart("kube-apiserver", downtime=2.0)
    resumed = time.monotonic()
    final = work.wait_done(80)
    work.check(final, private_cluster.pod_creates(batch.ns))
    relists = operator.log_count(r"watch expired \(410\)") - relists_before
    _report(
        "apiserver restart",
        jobs=N_JOBS,
        apiserver_down_to_ready_s=round(outage, 2),
        restart_to_all_done_s=round(time.monotonic() - resumed, 1),
        informer_410_relists=relists,
        operator_crashes=operator.crashes,
    )


def test_etcd_frozen_mid_run(batch: Batch, operator: Operator, private_cluster: PrivateCluster) -> None:
    """etcd frozen with SIGSTOP for 6 s mid-run (every API call that reaches storage hangs, then
    SIGCONT). Proves: the client's timeouts/retries and the informers ride it out; every job ends in
    its right final state and no attempt runs twice (audit log)."""
    work = Workload(batch, N_JOBS, duration="3s")
    work.submit()
    _wait_started(work, N_JOBS // 4)
    etcd = private_cluster.info.pids["etcd"]
    os.killpg(etcd, signal.SIGSTOP)
    try:
        time.sleep(6)
    finally:
        os.killpg(etcd, signal.SIGCONT)
    resumed = time.monotonic()
    final = work.wait_done(80)
    work.check(final, private_cluster.pod_creates(batch.ns))
    _report(
        "etcd SIGSTOP 6s",
        jobs=N_JOBS,
        resume_to_all_done_s=round(time.monotonic() - resumed, 1),
        operator_crashes=operator.crashes,
    )


def test_throttling_apiserver(batch: Batch, operator: Operator, private_cluster: PrivateCluster) -> None:
    """The API server restarted with tiny in-flight limits (--max-requests-inflight=5,
    --max-mutating-requests-inflight=2, no priority and fairness) so that a burst of submissions
    and pod creates draws HTTP 429 (Retry-After: 1). Proves: the operator's client retries them and
    every job still ends right with one pod per attempt; reports the 429s the operator received
    (its `kubatch_api_throttled` gauge, which must be > 0). The operator authenticates as an
    ordinary user: the API server never throttles system:masters."""
    work = Workload(batch, 2 * N_JOBS, duration="1s")
    throttled_flags = {
        "--max-requests-inflight": "5",
        "--max-mutating-requests-inflight": "2",
        "--enable-priority-and-fairness": "false",
    }
    private_cluster.restart("kube-apiserver", apiserver_flags=throttled_flags)
    try:
        started = time.monotonic()
        work.submit(chunk=N_JOBS)
        final = work.wait_done(80)
        elapsed = time.monotonic() - started
        throttled = operator.metrics().get("kubatch_api_throttled", 0.0)
        requests = operator.metrics().get("kubatch_api_requests", 0.0)
    finally:
        private_cluster.restart("kube-apiserver", apiserver_flags={})
    work.check(final, private_cluster.pod_creates(batch.ns))
    assert throttled > 0, "the operator was never answered 429: the burst did not test throttling"
    _report(
        "429 burst",
        jobs=work.n,
        all_done_s=round(elapsed, 1),
        operator_429s=int(throttled),
        operator_requests=int(requests),
        operator_crashes=operator.crashes,
    )
