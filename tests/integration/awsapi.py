"""The AWS Batch API server for integration tests, and AWS clients pointed at it.

``in_process`` runs the API's aiohttp application on a free loopback port from a thread of the
test process, with the cluster's admin kubeconfig as the server's own credentials (it impersonates
each key's identity). ``keys`` creates access keys with the real `kubatch api keys create`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from aiohttp import web
from botocore.config import Config
from click.testing import CliRunner

from kubatch.awsapi.app import build
from kubatch.awsapi.server import ApiConfig
from kubatch.cli.main import cli
from kubatch.cluster.client import Kube


@dataclass(frozen=True)
class Key:
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


@contextmanager
def in_process(kubeconfig: str, keys_namespace: str, config: ApiConfig | None = None) -> Iterator[str]:
    """Serve the API on 127.0.0.1 (plain HTTP) from a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        kube = await Kube.connect(kubeconfig)
        server, impersonators = build(kube, config or ApiConfig(), keys_namespace)
        runner = web.AppRunner(server.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.update(kube=kube, runner=runner, impersonators=impersonators, port=runner.addresses[0][1])
        ready.set()

    async def stop() -> None:
        await state["runner"].cleanup()
        await state["impersonators"].close()
        await state["kube"].close()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as e:
            state["error"] = e
            ready.set()
            return
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30) or "error" in state:
        raise AssertionError(f"the API server did not start: {state.get('error')}")
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def create_key(kubeconfig: str, keys_namespace: str, namespace: str, *identity: str) -> Key:
    """``kubatch api keys create --namespace NS <identity>``; the two lines it prints, read."""
    result = CliRunner().invoke(
        cli,
        ["--kubeconfig", kubeconfig, "api", "keys", "create", "--keys-namespace", keys_namespace,
         "--namespace", namespace, *identity],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    key_id = re.fullmatch(r"AWS_ACCESS_KEY_ID=(\S+)", lines[0])
    secret = re.fullmatch(r"AWS_SECRET_ACCESS_KEY=(\S+)", lines[1])
    assert key_id and secret, result.stdout
    return Key(key_id.group(1), secret.group(1))


def client(url: str, key: Key, *, verify: bool | str | None = None, **config: Any) -> Any:
    """boto3's AWS Batch client on the API, signing with ``key``; no retries (tests see every error).
    ``verify``: the CA bundle of a TLS server (False: no verification)."""
    return boto3.client(
        "batch",
        endpoint_url=url,
        region_name=config.pop("region_name", "us-east-1"),
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        verify=verify,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )
