"""Kubernetes clients that act as a key's identity (Kubernetes impersonation).

``ImpersonatingKube`` is a ``Kube`` whose every request carries ``Impersonate-User`` and one
``Impersonate-Group`` per group of the identity; it authenticates as the server (its credentials,
its connection pool, shared) and the API server authorises each request as the identity, so RBAC
decides what a key may do. The server's own account needs the ``impersonate`` verb on those users,
groups and ServiceAccounts (and nothing else for the requests it makes on a key's behalf).
``Impersonators`` keeps one client per identity.
"""

from __future__ import annotations

from collections import OrderedDict

import aiohttp

from kubatch.awsapi.keys import Identity
from kubatch.cluster.client import Kube

MAX_CLIENTS = 1024


class ImpersonatingKube(Kube):
    """A client acting as ``identity``, sharing ``base``'s credentials and connection pool."""

    def __init__(self, base: Kube, identity: Identity) -> None:
        super().__init__(base.creds, user_agent="kubatch-awsapi")
        self.base = base
        self.identity = identity

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self.base.session.connector,
                connector_owner=False,
                headers=self.identity.impersonation_headers(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session


class Impersonators:
    """One ``ImpersonatingKube`` per identity (the least recently used closed beyond a bound)."""

    def __init__(self, base: Kube, size: int = MAX_CLIENTS) -> None:
        self.base = base
        self.size = size
        self._clients: OrderedDict[Identity, ImpersonatingKube] = OrderedDict()

    async def client(self, identity: Identity) -> ImpersonatingKube:
        kube = self._clients.get(identity)
        if kube is not None:
            self._clients.move_to_end(identity)
            return kube
        kube = ImpersonatingKube(self.base, identity)
        self._clients[identity] = kube
        while len(self._clients) > self.size:
            _, old = self._clients.popitem(last=False)
            await old.close()
        return kube

    async def close(self) -> None:
        for kube in self._clients.values():
            await kube.close()
        self._clients.clear()
