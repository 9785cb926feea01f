"""The operator SIGKILLed again and again during a run: state lives in the API server only."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.integration.batch import Batch
from tests.resilience.conftest import Operator, PrivateCluster
from tests.resilience.workload import PodRecorder, Workload

pytestmark = pytest.mark.integration

N_JOBS = int(os.environ.get("KUBATCH_RESILIENCE_JOBS", "1000"))
KILL_EVERY = 4.0


@pytest.mark.timeout(900)  # ~45 s alone; a CI machine shared with other work may take many times that
def test_sigkill_every_few_seconds_during_a_run(
    batch: Batch, operator: Operator, private_cluster: PrivateCluster
) -> None:
    """1,000 short jobs run while the operator is SIGKILLed every 4 s and started again (no clean-up,
    no Lease release; it must rebuild everything from list+watch each time). Proves: every job ends
    in its right final state (SUCCEEDED; FAILED with "Essential container in task exited" when it
    exits 1 without retries; SUCCEEDED on attempt 2 when attempt 1 exits 1 under a 2-attempt
    retryStrategy) and no attempt ever runs twice: the pod watch sees every pod name with exactly one
    uid, and the API server's audit log shows exactly one successful create per expected pod name
    and no other.

    The kills start while the jobs are still being submitted (one after every 60 jobs submitted) and
    go on every 4 s until the last job ends (alone on this 2-core machine: submitted in ~10 s, all
    done in ~45 s across ~23 kills; the deadline leaves room for a CI run sharing the CPUs)."""
    work = Workload(batch, N_JOBS)
    recorder = PodRecorder(private_cluster.info, batch.ns)
    kills: list[float] = []
    started = time.monotonic()

    def kill_now_and_then() -> None:
        if time.monotonic() - (kills[-1] if kills else started) >= KILL_EVERY:
            kills.append(time.monotonic())
            operator.kill()

    chunks = 0

    def kill_every_third_chunk() -> None:
        nonlocal chunks
        chunks += 1
        if chunks % 3 == 0:  # every 60 submitted jobs, whatever the machine's speed
            kills.append(time.monotonic())
            operator.kill()

    try:
        work.submit(chunk=20, during=kill_every_third_chunk)
        submitted = time.monotonic() - started
        final = work.wait_done(720, during=kill_now_and_then, interval=0.5)
        elapsed = time.monotonic() - started
        # the kubectl watch may lag behind a busy API server: let it catch up before stopping it
        everything = private_cluster.pod_creates(batch.ns).created()
        deadline = time.monotonic() + 10
        while not everything <= set(recorder.uids) and recorder.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        watch_cut = recorder.proc.poll() is not None
    finally:
        time.sleep(1)
        recorder.stop()
    work.check(final, private_cluster.pod_creates(batch.ns), recorder)
    assert len(kills) >= N_JOBS // 60, f"only {len(kills)} kills"
    operator.kill()
    restart = operator.wait_ready()
    print(f"\n[resilience] pod watch saw {len(recorder.uids)} pods (cut by the server: {watch_cut})", file=sys.stderr)
    print(
        f"\n[resilience] {N_JOBS} jobs: submitted in {submitted:.1f}s, all done in {elapsed:.1f}s across "
        f"{len(kills)} SIGKILLs; a killed operator is ready (listed and synced) again after {restart:.2f}s",
        file=sys.stderr,
    )
