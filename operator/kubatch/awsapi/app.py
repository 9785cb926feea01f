"""The API assembled (the operations kubatch implements, the key store, the front door, the
server) and served: ``serve`` runs it until cancelled, over TLS, or plain HTTP on loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from kubatch.awsapi import (
    consumable_job_ops,
    definition_ops,
    environment_ops,
    job_ops,
    quota_ops,
    resource_ops,
    service_ops,
    tag_ops,
    tls,
)
from kubatch.awsapi.authn import KeyAuthenticator
from kubatch.awsapi.impersonation import Impersonators
from kubatch.awsapi.keystore import KeyStore
from kubatch.awsapi.server import ApiConfig, ApiServer, Handler
from kubatch.cluster.client import Kube

HANDLERS: Mapping[str, Handler] = {
    **job_ops.HANDLERS,
    **definition_ops.HANDLERS,
    **resource_ops.HANDLERS,
    **environment_ops.HANDLERS,
    **consumable_job_ops.HANDLERS,
    **service_ops.HANDLERS,
    **quota_ops.HANDLERS,
    **tag_ops.HANDLERS,
}


def build(kube: Kube, config: ApiConfig, keys_namespace: str) -> tuple[ApiServer, Impersonators]:
    """The server over ``kube`` (the server's own client) and its impersonating clients (to close)."""
    impersonators = Impersonators(kube)
    authn = KeyAuthenticator(KeyStore(kube, namespace=keys_namespace), impersonators, config)
    return ApiServer(kube, authn, HANDLERS, config), impersonators


log = logging.getLogger(__name__)


async def serve(
    *,
    host: str,
    port: int,
    kubeconfig: str | None,
    config: ApiConfig,
    keys_namespace: str,
    cert_dir: Path | None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the API on ``host:port`` until cancelled: TLS from ``cert_dir`` (``tls.crt``,
    ``tls.key``), or plain HTTP when it is None (the caller checked the address is loopback)."""
    kube = await Kube.connect(kubeconfig)
    server, impersonators = build(kube, config, keys_namespace)
    app = server.app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context: ssl.SSLContext | None = tls.server_context(cert_dir) if cert_dir is not None else None
    reloader = asyncio.create_task(tls.reload_forever(context, cert_dir)) if context and cert_dir else None
    try:
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        scheme = "https" if context else "http"
        log.info(
            "AWS Batch API on %s://%s:%d (region %s, account %s, keys in namespace %s)",
            scheme, host, port, config.region, config.account, keys_namespace,
        )  # fmt: skip
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        if reloader is not None:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
        await runner.cleanup()
        await impersonators.close()
        await kube.close()
