"""NON_REPLENISHABLE consumable resources on the real control plane: the units a job used never come
back, also when the finished jobs are deleted and after the operator is killed and started again
(the count lives in the ConsumableResource's status, not in the operator)."""

from __future__ import annotations

import fcntl
import signal
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster import operatorproc, procs
from tests.integration.batch import Batch

# The test kills the shared operator: it runs with the other restart tests (same xdist worker).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]


def restart_operator(cluster: Any) -> None:
    state = Path(cluster.state_dir)
    current = operatorproc.read(state)
    assert current is not None
    procs.stop_pid(current.pid, signal.SIGKILL)
    with open(state / ".operator.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        operatorproc.ensure(cluster, state)


def test_non_replenishable_units_never_come_back(batch: Batch, cluster: Any, operator: Any) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    tokens = batch.cluster_object(
        "ConsumableResource", batch.name("tok"), {"resourceType": "NON_REPLENISHABLE", "totalQuantity": 4}
    )
    batch.container_definition(
        "spender",
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": tokens, "quantity": 1}]},
    )

    def status() -> dict[str, Any]:
        return dict(batch.kget("consumableresource", tokens).get("status") or {})

    def amounts(available: int, consumed: int) -> dict[str, Any] | None:
        st = status()
        ok = st.get("availableQuantity") == available and st.get("consumedQuantity") == consumed
        return st if ok and st.get("inUseQuantity") == 0 else None

    # One job and an array of two use three of the four units.
    batch.job("single", q, "spender", duration="1s")
    batch.job("arr", q, "spender", duration="1s", arrayProperties={"size": 2})
    assert batch.wait_done("single")["status"] == "SUCCEEDED"
    assert batch.wait_done("arr")["status"] == "SUCCEEDED"
    st = batch.wait_for(lambda: amounts(available=1, consumed=3), "3 units used up")
    assert st["totalQuantity"] == 1

    # Deleting the finished jobs gives nothing back.
    batch.kubectl("delete", "batchjob", "single", "arr", "-n", batch.ns)
    batch.wait_for(lambda: not status().get("consumers"), "the deleted jobs' ledger entries pruned", timeout=60)
    assert amounts(available=1, consumed=3) is not None, status()

    # Nor does an operator restart: the count is read back from the resource's status.
    restart_operator(cluster)
    batch.job("last", q, "spender", duration="1s")
    batch.job("too-many", q, "spender", duration="1s")
    first = batch.wait_done("last")
    assert first["status"] == "SUCCEEDED"
    batch.wait_for(lambda: amounts(available=0, consumed=4), "the last unit used up")

    def waits_for_units() -> dict[str, Any] | None:
        st = batch.status("too-many")
        reason = st.get("statusReason") or ""
        return st if st.get("status") == "RUNNABLE" and reason.startswith("ACTION_REQUIRED") else None

    st = batch.wait_for(waits_for_units, "the fifth job held: no unit left", timeout=30)
    assert f"consumable resource {tokens}, whose total is 0" in st.get("statusReasonDetail", ""), st
    assert not batch.pods("too-many")
