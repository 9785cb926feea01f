"""Helpers for the AWS API's unit tests: botocore's model of AWS Batch, and the API's aiohttp
application served on a loopback port from a thread, so that the real boto3 client can call it."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore
from aiohttp import web

MODEL_PATH = Path(botocore.__file__).parent / "data" / "batch" / "2016-08-10" / "service-2.json.gz"


def batch_model() -> dict[str, Any]:
    """botocore's service model of AWS Batch."""
    with gzip.open(MODEL_PATH) as f:
        model: dict[str, Any] = json.load(f)
    return model


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) from a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise AssertionError("the test server did not start")
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
