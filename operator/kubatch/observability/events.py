"""Kubernetes Events for kubatch objects (the Kubernetes face of AWS Batch's state-change events).

Events are posted from a bounded queue by a few workers so that a burst of state changes never
slows dispatching; when the queue is full the oldest pending events are dropped and counted,
as client-go's broadcaster does under pressure.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubatch.cluster.client import ApiError, Kube

log = logging.getLogger(__name__)

COMPONENT = "kubatch-operator"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    """Queue Events about objects and post them in the background."""

    def __init__(
        self, kube: Kube, *, max_pending: int = 10000, workers: int = 4, per_second: float = 0.0, burst: int = 500
    ) -> None:
        self.kube = kube
        # A token bucket (0 = no limit): events are best-effort and must not starve the API server
        # of the writes that move jobs; the queue absorbs bursts and drops the oldest past max_pending.
        self.per_second = per_second
        self.burst = float(burst)
        self._tokens = float(burst)
        self._refilled = 0.0
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.max_pending = max_pending
        self.workers = workers
        self.posted = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._host = socket.gethostname()

    def record(self, obj: Mapping[str, Any], reason: str, message: str, *, type_: str = "Normal") -> None:
        md = obj.get("metadata", {})
        ns = md.get("namespace") or "default"
        name = md.get("name", "")
        ts = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": name,
                "namespace": md.get("namespace"),
                "uid": md.get("uid"),
                "resourceVersion": md.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
            "action": reason,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "eventTime": _micro(),
            "count": 1,
        }
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append((ns, event))
        self._wake.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def _worker(self) -> None:
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.per_second > 0:
                await self._take_token()
                if not self.pending:
                    continue
            ns, event = self.pending.popleft()
            try:
                await self.kube.create(f"/api/v1/namespaces/{ns}/events", event)
                self.posted += 1
            except ApiError as e:
                if e.status != 404:  # a namespace being deleted is not worth a warning
                    log.debug("event not posted: %s", e)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("event not posted: %r", e)

    async def _take_token(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._refilled:
                self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.per_second)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self.per_second)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until queued events are posted, e.g. before shutdown."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
