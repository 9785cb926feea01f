"""Status fields kubatch declares are written (on the real control plane): a job's shareIdentifier
and effective schedulingPriority, and a fair-share queue's per-share effective weightFactor and
active job count (which `kubatch queue` shows in its WEIGHT column)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def test_share_and_priority_and_weight_factors_are_written(batch: Batch) -> None:
    ce = batch.environment(cpu=1, state="DISABLED")  # nothing runs: every job stays active
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {
            "fairsharePolicy": {
                "shareDecaySeconds": 0,
                "shareDistribution": [
                    {"shareIdentifier": "teamA", "weightFactor": 0.25},
                    {"shareIdentifier": "proj*", "weightFactor": 2.0},
                ],
            }
        },
    )
    q = batch.queue([ce], policy=policy)
    batch.container_definition("work", schedulingPriority=10)
    batch.job("a", q, "work", shareIdentifier="teamA")
    batch.job("x", q, "work", shareIdentifier="proj-x", schedulingPriorityOverride=50)
    batch.job("y", q, "work", shareIdentifier="proj-y")
    batch.job("o", q, "work", shareIdentifier="other")
    for name in ("a", "x", "y", "o"):
        batch.wait_status(name, "RUNNABLE", timeout=60)
    st = batch.status("x")
    assert (st.get("shareIdentifier"), st.get("schedulingPriority")) == ("proj-x", 50), st
    st = batch.status("a")
    assert (st.get("shareIdentifier"), st.get("schedulingPriority")) == ("teamA", 10), st

    def shares() -> dict[str, Any] | None:
        rows = (batch.kget("jobqueue", q).get("status") or {}).get("shareUsage") or []
        by = {r["shareIdentifier"]: r for r in rows}
        return by if set(by) == {"teamA", "proj-x", "proj-y", "other"} else None

    by = batch.wait_for(shares, "the queue's share rows", timeout=60)
    # teamA its own 0.25; proj* 2.0 times its two active shares; a share the policy does not name 1.
    assert {s: r.get("weightFactor") for s, r in by.items()} == {
        "teamA": 0.25,
        "proj-x": 4.0,
        "proj-y": 4.0,
        "other": 1.0,
    }, by
    assert all(r.get("activeJobs") == 1 for r in by.values()), by
