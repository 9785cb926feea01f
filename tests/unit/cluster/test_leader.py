"""Leader election's requests: a holder renews with one PUT on its last copy of the Lease.

Proves: acquiring creates the Lease; renewing while holding it costs one PUT (no GET) carrying the
resourceVersion our last write returned; after a conflict (someone else wrote the Lease) the next
round reads it again and backs off while another holder's Lease is fresh; `is_leader` holds only
within the renew deadline of the last successful renewal.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.cluster.leader import LeaderElector


class FakeKube:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.calls: list[str] = []
        self.rv = 0

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.lease = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": str(self.rv)}}
        return self.lease

    async def request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, timeout: float, retries: int
    ) -> dict[str, Any]:
        # Every try is bounded well inside the renew deadline and left to the loop to repeat.
        assert retries == 0 and timeout <= 5.0
        self.calls.append(method)
        if method == "GET":
            if self.lease is None:
                raise ApiError(404, "not found", method, path)
            return self.lease
        assert body is not None
        if method == "POST":
            return self._store(body)
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "conflict", method, path)
        return self._store(body)


def test_renewal_is_one_put_and_a_conflict_means_reading_again() -> None:
    kube = FakeKube()
    elector = LeaderElector(kube, "ns", identity="me")  # type: ignore[arg-type]

    async def scenario() -> None:
        assert await elector.try_acquire_or_renew()
        assert kube.calls == ["GET", "POST"]
        kube.calls.clear()
        assert await elector.try_acquire_or_renew()
        assert await elector.try_acquire_or_renew()
        assert kube.calls == ["PUT", "PUT"]
        # another replica took the Lease over (a fresh renewal of its own)
        assert kube.lease is not None
        kube._store({**kube.lease, "spec": {**kube.lease["spec"], "holderIdentity": "other"}})
        kube.calls.clear()
        assert not await elector.try_acquire_or_renew()
        assert kube.calls == ["PUT", "GET"]

    asyncio.run(scenario())


def test_leadership_lapses_at_the_renew_deadline() -> None:
    elector = LeaderElector(FakeKube(), "ns", identity="me", lease_seconds=15, renew_deadline=10)  # type: ignore[arg-type]
    elector._leader = True
    elector._renewed_at = time.monotonic() - 9
    assert elector.is_leader
    elector._renewed_at = time.monotonic() - 11
    assert not elector.is_leader


def test_an_api_error_tells_a_terminating_namespace() -> None:
    """The API server's NamespaceTerminating cause (or its message) marks a create not worth retrying."""
    body = {
        "reason": "Forbidden",
        "message": 'pods "p" is forbidden: unable to create new content in namespace ns because it is being terminated',
        "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]},
    }
    assert ApiError(403, body, "POST", "/x").namespace_terminating
    assert ApiError(403, {"message": body["message"]}, "POST", "/x").namespace_terminating
    assert not ApiError(403, {"reason": "Forbidden", "message": "RBAC says no"}, "POST", "/x").namespace_terminating
    assert not ApiError(409, body, "POST", "/x").namespace_terminating


def test_a_standby_takes_over_an_expired_lease_and_waits_on_a_fresh_one() -> None:
    kube = FakeKube()
    holder = LeaderElector(kube, "ns", identity="old", lease_seconds=15)  # type: ignore[arg-type]
    standby = LeaderElector(kube, "ns", identity="new", lease_seconds=15)  # type: ignore[arg-type]

    async def scenario() -> None:
        assert await holder.try_acquire_or_renew()
        assert not await standby.try_acquire_or_renew()
        assert kube.lease is not None
        # the holder died 16 s ago: its last renewal is older than the lease duration
        stale = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 16))
        kube._store({**kube.lease, "spec": {**kube.lease["spec"], "renewTime": stale}})
        kube.calls.clear()
        assert await standby.try_acquire_or_renew()
        assert kube.calls == ["GET", "PUT"]
        assert kube.lease["spec"]["holderIdentity"] == "new"
        assert kube.lease["spec"]["leaseTransitions"] == 1
        # the old holder's cached copy is stale: its renewal conflicts and it backs off
        assert not await holder.try_acquire_or_renew()

    asyncio.run(scenario())
