"""The NON_REPLENISHABLE ledger (kubatch.runtime.consumables) against a fake API that applies merge
patches with resourceVersion preconditions, as the API server does."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.core.arrays import IndexSet
from kubatch.runtime.consumables import Charge, Ledger, consumed_quantity, started_units


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class FakeKube:
    """One ConsumableResource: merge patches of its status, conditional on resourceVersion."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.patches: list[dict[str, Any]] = []

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != self.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, {"reason": "Conflict"}, "PATCH", path)
        self.patches.append(body)
        merge(self.obj.setdefault("status", {}), body.get("status") or {})
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.obj)

    async def get(self, path: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def external_write(self) -> None:
        """Someone else changed the object (our copy is now stale)."""
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)


def setup(total: int = 10) -> tuple[FakeKube, View, Ledger]:
    obj = {
        "metadata": {"name": "lic", "resourceVersion": "1"},
        "spec": {"resourceType": "NON_REPLENISHABLE", "totalQuantity": total},
    }
    kube = FakeKube(obj)
    view = View()
    view.consumables["lic"] = copy.deepcopy(obj)
    return kube, view, Ledger(kube, view)  # type: ignore[arg-type]


def test_each_unit_is_charged_once() -> None:
    kube, view, ledger = setup()

    async def go() -> None:
        assert await ledger.charge([Charge("lic", "u1", None, 2, "ns/a"), Charge("lic", "u2", 3, 1, "ns/b:3")]) == set()
        assert consumed_quantity(view.consumables["lic"]) == 3
        assert ledger.charged("lic", "u1", None) and ledger.charged("lic", "u2", 3)
        assert not ledger.charged("lic", "u2", 4)
        # Again (a retry, or a dispatch whose pod creation failed): nothing more is charged.
        assert await ledger.charge([Charge("lic", "u1", None, 2, "ns/a"), Charge("lic", "u2", 3, 1, "ns/b:3")]) == set()
        assert await ledger.charge([Charge("lic", "u2", 4, 1, "ns/b:4"), Charge("lic", "u2", 5, 1, "ns/b:5")]) == set()
        status = view.consumables["lic"]["status"]
        assert status["consumedQuantity"] == 5
        assert status["consumers"] == {"u1": "", "u2": "3-5"}
        assert len(kube.patches) == 2

    asyncio.run(go())


def test_a_stale_copy_is_never_written_over() -> None:
    kube, view, ledger = setup()

    async def go() -> None:
        await ledger.charge([Charge("lic", "u1", None, 2, "ns/a")])
        kube.external_write()
        # Our copy is stale: the conditional patch fails, the unit is reported, the copy refreshed.
        assert await ledger.charge([Charge("lic", "u2", None, 1, "ns/b")]) == {"ns/b"}
        assert view.consumables["lic"]["metadata"]["resourceVersion"] == kube.obj["metadata"]["resourceVersion"]
        assert await ledger.charge([Charge("lic", "u2", None, 1, "ns/b")]) == set()
        assert kube.obj["status"]["consumedQuantity"] == 3

    asyncio.run(go())


def test_prune_drops_entries_of_deleted_jobs_but_keeps_the_count() -> None:
    kube, view, ledger = setup()

    async def go() -> None:
        await ledger.charge([Charge("lic", "u1", None, 2, "ns/a"), Charge("lic", "u2", None, 1, "ns/b")])
        view.jobs["ns/b"] = {"metadata": {"name": "b", "namespace": "ns", "uid": "u2"}}
        await ledger.prune()
        assert kube.obj["status"]["consumers"] == {"u2": ""}
        assert kube.obj["status"]["consumedQuantity"] == 3

    asyncio.run(go())


def test_started_units() -> None:
    single = {"spec": {}, "status": {"status": "RUNNABLE", "attempts": [{"statusReason": "x"}]}}
    assert started_units(single, {}) == (True, IndexSet())
    assert started_units({"spec": {}, "status": {"status": "RUNNABLE"}}, {}) == (False, IndexSet())
    assert started_units({"spec": {}, "status": {"status": "FAILED"}}, {}) == (False, IndexSet())  # never ran
    array = {
        "spec": {"arrayProperties": {"size": 10}},
        "status": {
            "arrayProperties": {
                "attempts": {"1": "0-2", "2": "5"},
                "indexes": {"RUNNING": "7", "FAILED": "8", "SUCCEEDED": "0-2"},
            }
        },
    }
    pods = {"p": {"metadata": {"labels": {"kubatch.dev/array-index": "9"}}}}
    assert started_units(array, pods) == (False, IndexSet.parse("0-2,5,7,9"))
