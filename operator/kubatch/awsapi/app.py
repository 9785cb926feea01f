"""The API assembled: the operations kubatch implements, the key store, the front door, the server."""

from __future__ import annotations

from collections.abc import Mapping

from kubatch.awsapi import definition_ops, job_ops
from kubatch.awsapi.authn import KeyAuthenticator
from kubatch.awsapi.impersonation import Impersonators
from kubatch.awsapi.keystore import KeyStore
from kubatch.awsapi.server import ApiConfig, ApiServer, Handler
from kubatch.cluster.client import Kube

HANDLERS: Mapping[str, Handler] = {**job_ops.HANDLERS, **definition_ops.HANDLERS}


def build(kube: Kube, config: ApiConfig, keys_namespace: str) -> tuple[ApiServer, Impersonators]:
    """The server over ``kube`` (the server's own client) and its impersonating clients (to close)."""
    impersonators = Impersonators(kube)
    authn = KeyAuthenticator(KeyStore(kube, namespace=keys_namespace), impersonators, config)
    return ApiServer(kube, authn, HANDLERS, config), impersonators
