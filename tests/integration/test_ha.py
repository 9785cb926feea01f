"""High availability: two replicas, exactly one dispatching (a coordination.k8s.io Lease); the
standby takes over after the leader is killed, every job finishes and no pod is created twice."""

from __future__ import annotations

import contextlib
import fcntl
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster import operatorproc, procs
from tests.integration.batch import Batch
from tests.integration.helpers import operator_down
from tests.integration.test_restart import PodRecorder

# Tests that kill the shared operator run one after the other (same xdist worker).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]


def lease_holder(batch: Batch) -> str:
    lease = batch.kget("lease", "kubatch-dispatcher", "-n", "default")
    return str(lease["spec"].get("holderIdentity") or "")


def test_standby_takes_over_when_the_leader_dies(batch: Batch, cluster: Any, operator: Any) -> None:
    state = Path(cluster.state_dir)
    q = batch.queue([batch.environment(cpu=4)])
    batch.container_definition("work")
    # The shared test operator leads; a second replica joins as standby on the same Lease.
    standby = operatorproc.start(
        cluster,
        state,
        name="standby",
        extra_env={
            "KUBATCH_LEADER_IDENTITY": f"standby-{batch.tag}",
            "KUBATCH_TIME_LIMIT_SCALE": "0.01",
            "KUBATCH_START_TIMEOUT_SECONDS": str(operatorproc.TEST_START_TIMEOUT_SECONDS),
        },
    )
    recorder = PodRecorder(cluster, batch.ns)
    # Hold the shared operator's lock while its leader is dead, so that no other test session
    # restarts it meanwhile (it would take its Lease straight back).
    lock = open(state / ".operator.lock", "w")  # noqa: SIM115 - held across the test
    down = contextlib.ExitStack()  # from the leader's death until the shared operator is back
    try:
        assert lease_holder(batch) == "kubatch-test"
        names = [batch.job(f"ha-{i}", q, "work", duration="2s") for i in range(12)]
        batch.wait_for(lambda: len(recorder.uids) >= 4, "the leader started work")
        down.enter_context(operator_down(state))
        fcntl.flock(lock, fcntl.LOCK_EX)
        leader = operatorproc.read(state)
        assert leader is not None
        procs.stop_pid(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            batch.wait_for(lambda: lease_holder(batch) == f"standby-{batch.tag}", "standby holds the lease", timeout=40)
        except AssertionError as e:
            lease = batch.kget("lease", "kubatch-dispatcher", "-n", "default")
            tail = Path(standby.log).read_text(errors="replace")[-3000:]
            raise AssertionError(f"{e}\nlease: {json.dumps(lease.get('spec'))}\nstandby log:\n{tail}") from e
        takeover = time.monotonic() - killed_at
        assert takeover < 25, f"takeover took {takeover:.1f}s"
        for n in names:
            st = batch.wait_done(n, timeout=120)
            assert st["status"] == "SUCCEEDED", json.dumps(st)
            assert len(st["attempts"]) == 1
    finally:
        time.sleep(1)
        recorder.stop()
        # Hand the Lease back: a clean stop releases it, so the shared operator leads again at once.
        procs.stop_pid(standby.pid, signal.SIGTERM)
        fcntl.flock(lock, fcntl.LOCK_EX)
        operatorproc.ensure(cluster, state)
        lock.close()
        down.close()
    duplicated = {pod: uids for pod, uids in recorder.uids.items() if len(uids) > 1}
    assert not duplicated, f"a pod was created twice: {duplicated}"
    assert set(recorder.uids) == {f"ha-{i}-a1" for i in range(12)}
