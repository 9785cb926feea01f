"""Compute environment controller: pools, provisioning and status, in one periodic loop.

UNMANAGED environments are VALID once they exist (their capacity is whatever nodes their
nodeSelector picks; see `pools`). MANAGED environments need a provisioner; their status follows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.instances import UnknownInstanceType, expand_or_default
from kubatch.runtime.pools import PoolController

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"


def desired_status(ce: Mapping[str, Any]) -> dict[str, Any]:
    spec = ce.get("spec") or {}
    if spec.get("type") == "UNMANAGED":
        return {"status": "VALID", "statusReason": ""}
    cr = spec.get("computeResources") or {}
    try:
        expand_or_default(cr.get("instanceTypes"))
    except UnknownInstanceType as e:
        return {"status": "INVALID", "statusReason": f"CLIENT_ERROR - {e}"}
    return {"status": "VALID", "statusReason": ""}


class ComputeController:
    """Keeps node pools and compute environment status current."""

    def __init__(self, kube: Kube, view: View, *, period: float = 2.0, is_leader: Any = None) -> None:
        self.kube = kube
        self.view = view
        self.pools = PoolController(kube, view)
        self.period = period
        self.is_leader = is_leader or (lambda: True)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            if self.is_leader():
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("compute environment sync failed")
            await asyncio.sleep(self.period)

    async def sync(self) -> None:
        await self.pools.sync()
        for name, ce in list(self.view.envs.items()):
            want = desired_status(ce)
            have = ce.get("status") or {}
            if all(have.get(k) == v for k, v in want.items()):
                continue
            try:
                updated = await self.kube.merge_patch(
                    f"{GROUP_PATH}/computeenvironments/{name}/status", {"status": want}
                )
                self.view.on_named(self.view.envs, "MODIFIED", updated)
            except ApiError as e:
                if e.status != 404:
                    raise
