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

    async def get(self, path: str) -> dict[str, Any]:
        self.calls.append("GET")
        if self.lease is None:
            raise ApiError(404, "not found", "GET", path)
        return self.lease

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("POST")
        return self._store(body)

    async def request(self, method: str, path: str, *, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(method)
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
