"""Leader election on a coordination.k8s.io/v1 Lease, so that exactly one replica dispatches.

kopf's peering pauses peers by priority; it is not leader election. As client-go's leader
election: the holder renews the Lease every `retry_seconds` (one PUT on the copy its last write
returned; a GET only after a conflict) and stops acting as leader when it has not renewed for
`renew_deadline` seconds; a standby takes the Lease over once `lease_seconds` pass without a
renewal (optimistic concurrency on resourceVersion makes the takeover atomic). The gap between
the two deadlines is the margin that keeps two replicas from ever dispatching at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubatch.cluster.client import ApiError, Credentials, Kube

log = logging.getLogger(__name__)


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_micro(value: str | None) -> float:
    if not value:
        return 0.0
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return 0.0


def default_identity() -> str:
    """Who holds the Lease: $KUBATCH_LEADER_IDENTITY, else the pod name (a restarted container of the
    same pod takes its Lease back at once), else host and process id."""
    explicit = os.environ.get("KUBATCH_LEADER_IDENTITY") or os.environ.get("POD_NAME")
    if explicit:
        return explicit
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class LeaderElector:
    """Acquire and hold one Lease; `is_leader` tells whether this process holds it right now."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str = "kubatch-dispatcher",
        *,
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_deadline: float = 10.0,
        retry_seconds: float = 2.0,
        on_elected: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.on_elected = on_elected
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self.renew_deadline = min(renew_deadline, lease_seconds - 1)
        self.retry_seconds = retry_seconds
        # One try of a request is bounded well inside the renew deadline and never retried by the
        # client: the loop tries again `retry_seconds` later with fresh times (as client-go bounds
        # each try by its context), so a slow server cannot stall a renewal or a takeover.
        self.request_timeout = max(1.0, min(5.0, self.renew_deadline / 2))
        self._lease: dict[str, Any] | None = None  # the Lease as our last write returned it
        self.became_leader = asyncio.Event()
        self._leader = False
        self._renewed_at = 0.0
        self.transitions = 0

    @property
    def is_leader(self) -> bool:
        # Never act on a lease we could not renew in time: another replica may hold it by now.
        return self._leader and time.monotonic() - self._renewed_at < self.renew_deadline

    def _spec(self, acquire: bool, current: dict[str, Any] | None) -> dict[str, Any]:
        now = _now_micro()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": now,
        }
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int((current or {}).get("leaseTransitions", 0)) + (1 if current else 0)
        return spec

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.kube.request(method, path, body=body, timeout=self.request_timeout, retries=0)

    async def try_acquire_or_renew(self) -> bool:
        held = self._lease
        if held is not None and (held.get("spec") or {}).get("holderIdentity") == self.identity:
            # Renew on the copy our last write returned: one request, not two, under a busy server.
            body = {**held, "spec": {**held["spec"], **self._spec(False, held["spec"])}}
            try:
                self._lease = await self._request("PUT", self.path, body)
                return True
            except ApiError as e:
                self._lease = None
                if e.status not in (404, 409):
                    raise
        try:
            lease = await self._request("GET", self.path)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": self._spec(True, None),
            }
            try:
                self._lease = await self._request("POST", self.collection, body)
            except ApiError as ce:
                if ce.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec", {})
        holder = spec.get("holderIdentity")
        if holder == self.identity:
            new_spec = {**spec, **self._spec(False, spec)}
        else:
            renewed = _parse_micro(spec.get("renewTime"))
            duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
            if holder and time.time() < renewed + duration:
                return False
            new_spec = {**spec, **self._spec(True, spec)}
        body = {**lease, "spec": new_spec}
        try:
            self._lease = await self._request("PUT", self.path, body)  # resourceVersion: a CAS
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                held = await self.try_acquire_or_renew()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("leader election: %s", e)
                held = False
            if held:
                self._renewed_at = started
                if not self._leader:
                    self.transitions += 1
                    log.info("leader election: %s now leads (%s)", self.identity, self.name)
                self._leader = True
                self.became_leader.set()
                if self.on_elected is not None:
                    self.on_elected()
            elif self._leader and not self.is_leader:
                log.warning("leader election: %s lost the lease", self.identity)
                self._leader = False
                self.became_leader.clear()
            await asyncio.sleep(self.retry_seconds)

    async def release(self) -> None:
        """Give the lease up on clean shutdown so a standby takes over at once."""
        if not self._leader:
            return
        self._leader = False
        self._lease = None
        try:
            lease = await self._request("GET", self.path)
            if lease.get("spec", {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                await self._request("PUT", self.path, lease)
        except ApiError as e:
            log.warning("leader election: release failed: %s", e)


class ThreadedLeaderElector:
    """A `LeaderElector` on a thread and event loop of its own, with its own API client.

    Renewals keep their schedule however busy the operator's loop is (a scheduling cycle over
    100,000 queued jobs takes seconds of CPU) and never wait for a connection behind bulk traffic,
    as client-go keeps leader election on its own goroutine. The operator's loop reads `is_leader`
    and waits on `became_leader`, as with a `LeaderElector`."""

    def __init__(self, creds: Credentials, namespace: str, name: str = "kubatch-dispatcher") -> None:
        self._creds = creds
        self._namespace = namespace
        self._name = name
        self.became_leader = asyncio.Event()
        self.elector: LeaderElector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self.elector is not None and self.elector.is_leader

    @property
    def transitions(self) -> int:
        return self.elector.transitions if self.elector is not None else 0

    async def run(self) -> None:
        """Start the thread, then wait (cancel this task to stop waiting; `release` stops the thread)."""
        main = asyncio.get_running_loop()
        started = threading.Event()

        def elected() -> None:
            main.call_soon_threadsafe(self.became_leader.set)

        def target() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            kube = Kube(self._creds, max_connections=2, user_agent="kubatch-leader-election")
            self.elector = LeaderElector(kube, self._namespace, self._name, on_elected=elected)
            self._loop = loop
            self._task = loop.create_task(self.elector.run())
            started.set()
            try:
                loop.run_forever()
            finally:
                self._task.cancel()
                loop.run_until_complete(asyncio.gather(self._task, return_exceptions=True))
                loop.run_until_complete(kube.close())
                loop.close()

        self._thread = threading.Thread(target=target, name="kubatch-lease", daemon=True)
        self._thread.start()
        await asyncio.to_thread(started.wait)
        await asyncio.Event().wait()

    async def release(self) -> None:
        """Give the Lease up (when held) and stop the thread."""
        loop, elector, task = self._loop, self.elector, self._task
        if loop is None or elector is None or task is None or loop.is_closed():
            return

        async def give_up() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await elector.release()

        with contextlib.suppress(Exception):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(give_up(), loop))
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
