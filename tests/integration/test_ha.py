"""High availability: two replicas, exactly one dispatching (a coordination.k8s.io Lease); the
standby takes over after the leader is killed, every job finishes and no pod is created twice."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def stopped_at_the_end(pid: int) -> Iterator[None]:
    try:
        yield
    finally:
        time.sleep(1)  # the last pods' events reach the recorder
        procs.stop_pid(pid, signal.SIGTERM)


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
    try:
        assert lease_holder(batch) == "kubatch-test"
        names = [batch.job(f"ha-{i}", q, "work", duration="2s") for i in range(12)]
        batch.wait_for(lambda: len(recorder.uids) >= 4, "the leader started work")
        # The leader dies. No one starts the shared operator again until the block ends (it would take
        # its Lease straight back); the standby stops first, cleanly, and hands the Lease back at once.
        with operator_down(cluster, signal.SIGKILL), stopped_at_the_end(standby.pid):
            killed_at = time.monotonic()
            identity = f"standby-{batch.tag}"
            try:
                batch.wait_for(lambda: lease_holder(batch) == identity, "standby holds the lease", timeout=40)
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
        recorder.stop()
        procs.stop_pid(standby.pid, signal.SIGTERM)
    duplicated = {pod: uids for pod, uids in recorder.uids.items() if len(uids) > 1}
    assert not duplicated, f"a pod was created twice: {duplicated}"
    assert set(recorder.uids) == {f"ha-{i}-a1" for i in range(12)}
