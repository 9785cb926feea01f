"""The access keys on the API server: looked up per request (``get``, cached briefly) and managed by
``kubatch api keys`` (``create``, ``list_keys``, ``delete``, ``rotate``).

``get`` reads the key's Secret by name (one GET; the server needs ``get secrets`` in the keys
namespace only; concurrent requests of one key share it) and keeps the answer ``ttl`` seconds (5 by
default), a missing key 1 second: a deleted or rotated key stops working within ``ttl``, a new one
works at once. A Secret that is not a well-formed key is treated as no key (and logged by name,
never by content).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from kubatch.awsapi.keys import (
    ACCESS_KEY_ID_PATTERN,
    LABEL_API_KEY,
    AccessKey,
    Identity,
    from_secret,
    generate,
    secret_name,
    to_secret,
)
from kubatch.awsapi.state import TtlCache
from kubatch.cluster.client import ApiError, Kube

log = logging.getLogger(__name__)

DEFAULT_KEYS_NAMESPACE = "kubatch-system"
KEY_TTL = 5.0
MISSING_TTL = 1.0
CACHE_SIZE = 10_000


def secrets_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


@dataclass
class KeyStore:
    kube: Kube
    namespace: str = DEFAULT_KEYS_NAMESPACE
    ttl: float = KEY_TTL
    clock: Callable[[], float] = time.monotonic
    _cache: TtlCache[str, AccessKey | None] = field(init=False)

    def __post_init__(self) -> None:
        self._cache = TtlCache(CACHE_SIZE, self.clock)

    async def get(self, access_key_id: str) -> AccessKey | None:
        """The key, or None when there is no such key (or the id cannot be one: it is never put in a
        path unchecked). Concurrent requests of one key read it once."""
        if not ACCESS_KEY_ID_PATTERN.match(access_key_id):
            return None
        return await self._cache.get(
            access_key_id, partial(self._read, access_key_id), lambda key: self.ttl if key else MISSING_TTL
        )

    async def _read(self, access_key_id: str) -> AccessKey | None:
        if not ACCESS_KEY_ID_PATTERN.match(access_key_id):
            return None
        try:
            secret = await self.kube.get(secrets_path(self.namespace, secret_name(access_key_id)))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        if (secret.get("metadata", {}).get("labels") or {}).get(LABEL_API_KEY) != "true":
            return None
        try:
            key = from_secret(secret)
        except ValueError as e:
            log.warning("access key Secret %s/%s is malformed: %s", self.namespace, secret_name(access_key_id), e)
            return None
        return key if key.access_key_id == access_key_id else None

    # ---- management (kubatch api keys) -------------------------------------------------------------

    async def create(self, namespace: str, identity: Identity) -> AccessKey:
        key = generate(namespace, identity)
        await self.kube.create(secrets_path(self.namespace), to_secret(key, self.namespace))
        return key

    async def list_keys(self) -> list[AccessKey]:
        """Every well-formed key, by namespace and id."""
        page = await self.kube.get(secrets_path(self.namespace), labelSelector=f"{LABEL_API_KEY}=true")
        keys = []
        for secret in page.get("items") or []:
            try:
                keys.append(from_secret(secret))
            except ValueError as e:
                log.warning("skipping malformed access key Secret %s: %s", secret["metadata"]["name"], e)
        return sorted(keys, key=lambda k: (k.namespace, k.access_key_id))

    async def delete(self, access_key_id: str) -> bool:
        """Whether the key existed."""
        if await self._read(access_key_id) is None:
            return False
        await self.kube.delete(secrets_path(self.namespace, secret_name(access_key_id)))
        self._cache.drop(lambda k: k == access_key_id)
        return True

    async def rotate(self, access_key_id: str) -> AccessKey | None:
        """A new key (new id and secret) for the same namespace and identity; the old one is deleted.
        None when there is no such key."""
        old = await self._read(access_key_id)
        if old is None:
            return None
        new = await self.create(old.namespace, old.identity)
        await self.delete(access_key_id)
        return new
