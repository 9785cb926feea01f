"""Node pools of compute environments: labels and taints on nodes, and the environment's status.

Every node of a compute environment carries the label `kubatch.dev/compute-environment=<name>`
and the taint `kubatch.dev/compute-environment=<name>:NoSchedule`, so only kubatch's pods (which
carry the matching nodeSelector and toleration) land there. For UNMANAGED environments the
operator adds both to the nodes selected by `spec.nodeSelector` and removes them from nodes that
leave the selection; it never creates or deletes nodes. MANAGED environments get their nodes from
a provisioner (see `kubatch.runtime.compute`).

Membership is applied by the compute controller's periodic sync, and at once for a node that
changes (`run_nudged`): a node added to a pool is capacity within one API round trip, not within
the sync period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT

log = logging.getLogger(__name__)

TAINT_EFFECT = "NoSchedule"


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def desired_pool(envs: Mapping[str, Mapping[str, Any]], node: Mapping[str, Any]) -> str | None:
    """The UNMANAGED environment a node belongs to (first by name when several select it)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for name in sorted(envs):
        spec = envs[name].get("spec") or {}
        if spec.get("type") != "UNMANAGED" or (envs[name].get("metadata") or {}).get("deletionTimestamp"):
            continue
        if selects(spec.get("nodeSelector"), labels):
            return name
    return None


def pool_patch(node: Mapping[str, Any], pool: str | None, unmanaged_envs: set[str]) -> dict[str, Any] | None:
    """The node patch (labels + taints) that puts it into ``pool``, or takes it out of the UNMANAGED
    pool it was in. Nodes labelled for anything else (a managed environment's provisioned nodes,
    an environment being deleted, someone else's) are left alone."""
    md = node.get("metadata") or {}
    labels = md.get("labels") or {}
    current = labels.get(LABEL_COMPUTE_ENVIRONMENT)
    if pool is None and current not in unmanaged_envs:
        return None
    taints = list((node.get("spec") or {}).get("taints") or [])
    ours = [t for t in taints if t.get("key") == LABEL_COMPUTE_ENVIRONMENT]
    others = [t for t in taints if t.get("key") != LABEL_COMPUTE_ENVIRONMENT]
    want_taints = others + ([{"key": LABEL_COMPUTE_ENVIRONMENT, "value": pool, "effect": TAINT_EFFECT}] if pool else [])
    if current == pool and ours == want_taints[len(others) :]:
        return None
    return {
        "metadata": {"labels": {LABEL_COMPUTE_ENVIRONMENT: pool}},
        "spec": {"taints": want_taints},
    }


class PoolController:
    """Applies pool membership to nodes for UNMANAGED compute environments."""

    def __init__(self, kube: Kube, view: View) -> None:
        self.kube = kube
        self.view = view
        self.changed_nodes: set[str] = set()  # nodes seen changing since `run_nudged` last looked
        self.nudge = asyncio.Event()
        view.listeners.append(self._on_change)

    def _on_change(self, kind: str, typ: str, obj: Mapping[str, Any]) -> None:
        if kind == "Node" and typ != "DELETED":
            self.changed_nodes.add(str((obj.get("metadata") or {}).get("name", "")))
            self.nudge.set()

    def _unmanaged(self) -> set[str]:
        return {
            n
            for n, ce in self.view.envs.items()
            if (ce.get("spec") or {}).get("type") == "UNMANAGED"
            and not (ce.get("metadata") or {}).get("deletionTimestamp")
        }

    async def sync(self) -> None:
        """Apply membership to every node; a node that fails (logged) does not hold the others up."""
        unmanaged = self._unmanaged()
        for name in list(self.view.nodes):
            try:
                await self.sync_node(name, unmanaged)
            except Exception:
                log.exception("node %s: pool membership failed (the next sync tries again)", name)

    async def sync_node(self, name: str, unmanaged: set[str]) -> None:
        """Put node ``name`` into the pool its labels select (or take it out), if it is not yet."""
        node = self.view.nodes.get(name)
        if node is None:
            return
        pool = desired_pool(self.view.envs, node)
        patch = pool_patch(node, pool, unmanaged)
        if patch is None:
            return
        try:
            updated = await self.kube.merge_patch(f"/api/v1/nodes/{name}", patch)
            self.view.on_node("MODIFIED", updated)
            log.info("node %s: pool %s", name, pool or "(none)")
        except ApiError as e:
            if e.status != 404:
                raise

    async def run_nudged(self, ready: asyncio.Event, is_leader: Callable[[], bool]) -> None:
        """Apply membership to each node as soon as it changes (while leading)."""
        await ready.wait()
        while True:
            await self.nudge.wait()
            self.nudge.clear()
            names, self.changed_nodes = self.changed_nodes, set()
            if not is_leader():
                continue
            unmanaged = self._unmanaged()
            for name in sorted(names):
                try:
                    await self.sync_node(name, unmanaged)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("node %s: pool membership failed (the periodic sync tries again)", name)
