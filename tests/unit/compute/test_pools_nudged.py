"""A node that changes gets its UNMANAGED pool membership at once (PoolController.run_nudged), not at
the compute controller's next periodic sync."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubatch.cluster.view import View
from kubatch.runtime.pools import PoolController


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.nodes: dict[str, dict[str, Any]] = {}

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = path.rsplit("/", 1)[1]
        self.patches.append((name, body))
        node = copy.deepcopy(self.nodes[name])
        node["metadata"]["labels"].update(body["metadata"]["labels"])
        node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)
        node.setdefault("spec", {})["taints"] = body["spec"]["taints"]
        self.nodes[name] = node
        return copy.deepcopy(node)


def node(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(labels), "resourceVersion": "1"}, "spec": {}}


async def test_a_new_node_joins_its_pool_as_soon_as_it_is_seen() -> None:
    kube = FakeKube()
    view = View()
    view.on_named(
        view.envs, "ADDED", {"metadata": {"name": "pool"}, "spec": {"type": "UNMANAGED", "nodeSelector": {"p": "x"}}}
    )
    pools = PoolController(kube, view)  # type: ignore[arg-type]
    ready = asyncio.Event()
    ready.set()
    leading = True
    task = asyncio.create_task(pools.run_nudged(ready, lambda: leading))
    try:
        for name, labels in (("n1", {"p": "x"}), ("n2", {"p": "other"})):
            kube.nodes[name] = node(name, labels)
            view.on_node("ADDED", copy.deepcopy(kube.nodes[name]))
        async with asyncio.timeout(5):
            while not kube.patches:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert [n for n, _ in kube.patches] == ["n1"]
        assert kube.patches[0][1]["metadata"]["labels"] == {"kubatch.dev/compute-environment": "pool"}
        labels = view.nodes["n1"]["metadata"]["labels"]
        assert labels["kubatch.dev/compute-environment"] == "pool"
        # Its own echo (and a heartbeat) change nothing more.
        view.on_node("MODIFIED", copy.deepcopy(kube.nodes["n1"]))
        await asyncio.sleep(0.05)
        assert len(kube.patches) == 1
        # A standby replica leaves nodes alone.
        leading = False
        kube.nodes["n3"] = node("n3", {"p": "x"})
        view.on_node("ADDED", copy.deepcopy(kube.nodes["n3"]))
        await asyncio.sleep(0.05)
        assert len(kube.patches) == 1
    finally:
        task.cancel()


async def test_a_node_that_fails_does_not_hold_the_others_up() -> None:
    class Failing(FakeKube):
        async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            if path.endswith("/n1"):
                from kubatch.cluster.client import ApiError

                raise ApiError(500, {"reason": "InternalError"}, "PATCH", path)
            return await super().merge_patch(path, body)

    kube = Failing()
    view = View()
    view.on_named(
        view.envs, "ADDED", {"metadata": {"name": "pool"}, "spec": {"type": "UNMANAGED", "nodeSelector": {"p": "x"}}}
    )
    for name in ("n1", "n2"):
        kube.nodes[name] = node(name, {"p": "x"})
        view.on_node("ADDED", copy.deepcopy(kube.nodes[name]))
    await PoolController(kube, view).sync()  # type: ignore[arg-type]
    assert [n for n, _ in kube.patches] == ["n2"]
    assert view.nodes["n2"]["metadata"]["labels"]["kubatch.dev/compute-environment"] == "pool"
