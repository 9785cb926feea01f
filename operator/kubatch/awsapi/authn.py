"""The front door: a request's SigV4 signature checked with its access key's secret, and the key's
identity as the request's principal.

In order, as AWS answers: no signature, ``MissingAuthenticationTokenException``; an incomplete one,
``IncompleteSignatureException``; a key that does not exist, ``UnrecognizedClientException``; then
the date, scope and signature, ``InvalidSignatureException``. The principal carries a Kubernetes
client acting as the key's identity (``impersonation``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from kubatch.awsapi import sigv4
from kubatch.awsapi.errors import UnrecognizedClient
from kubatch.awsapi.impersonation import Impersonators
from kubatch.awsapi.keystore import KeyStore
from kubatch.awsapi.server import ApiConfig, Principal, Request


def utc_now() -> datetime:
    return datetime.now(UTC)


class KeyAuthenticator:
    """``server.Authenticator`` over the key Secrets."""

    def __init__(
        self,
        keys: KeyStore,
        impersonators: Impersonators,
        config: ApiConfig,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.keys = keys
        self.impersonators = impersonators
        self.config = config
        self.clock = clock

    async def __call__(self, request: Request) -> Principal:
        headers = request.headers
        auth = sigv4.parse(headers)
        key = await self.keys.get(auth.access_key_id)
        if key is None:
            raise UnrecognizedClient()
        sigv4.verify(
            auth,
            secret=key.secret_access_key,
            method=request.method,
            raw_path=request.raw_path,
            raw_query=request.query,
            headers=headers,
            body=request.body,
            now=self.clock(),
            region=self.config.region,
        )
        kube = await self.impersonators.client(key.identity)
        return Principal(key.access_key_id, key.namespace, key.identity.describe(), kube)
