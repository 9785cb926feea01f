"""When will my job start? The operator learns how long a definition's jobs run and publishes, for
each waiting job at the front of a queue, when it is expected to start: on the JobQueue's status,
in `kubatch queue` and in `kubatch describe` (real control plane, kwok pods)."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.batch import Batch
from tests.integration.test_cli import Run

pytestmark = pytest.mark.integration


def test_waiting_jobs_show_when_they_are_expected_to_start(batch: Batch, cluster: ClusterInfo) -> None:
    ce = batch.environment(cpu=1)  # one job at a time
    q = batch.queue([ce])
    batch.container_definition("steady", vcpus="1")
    batch.job("warm", q, "steady", duration="4s")
    assert batch.wait_done("warm", timeout=120)["status"] == "SUCCEEDED"
    # The operator has seen a "steady" job run about 4 s. Three more, each really 30 s long: the
    # first runs, the other two wait, one expected to start about 4 s after the other.
    for name in ("j1", "j2", "j3"):
        batch.job(name, q, "steady", duration="30s")
    batch.wait_status("j1", "RUNNING", timeout=120)

    def estimates() -> dict[str, float] | None:
        front = (batch.kget("jobqueue", q).get("status") or {}).get("front") or []
        got: dict[str, Any] = {e["name"]: parse_iso(e.get("estimatedStartAt")) for e in front}
        if set(got) == {"j2", "j3"} and all(got.values()):
            return got
        return None

    est = batch.wait_for(estimates, "start estimates of j2 and j3 on the queue's front", timeout=60)
    gap = est["j3"] - est["j2"]
    assert 2 <= gap <= 10, f"j3 is expected one learned run time (about 4 s) after j2, not {gap:.1f} s"

    run = Run(cluster.kubeconfig, batch.ns)
    code, out, err = run("queue", q)
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("POS"))
    assert "STARTS" in header.split(), out
    code, out, err = run("describe", "j3")
    assert code == 0, err
    assert "Queue position:" in out and "Expected start:" in out, out
