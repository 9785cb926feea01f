"""Helpers for the AWS API's unit tests: botocore's model of AWS Batch and a check that an answer
conforms to one of its shapes, and the API's aiohttp application served on a loopback port from a
thread, so that the real boto3 client can call it."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore
from aiohttp import web
from botocore.model import Shape, StructureShape

MODEL_PATH = Path(botocore.__file__).parent / "data" / "batch" / "2016-08-10" / "service-2.json.gz"


def batch_model() -> dict[str, Any]:
    """botocore's service model of AWS Batch."""
    with gzip.open(MODEL_PATH) as f:
        model: dict[str, Any] = json.load(f)
    return model


def conforms(
    value: Any,
    shape: Shape,
    path: str = "$",
    *,
    required: bool = False,
    map_values: bool = False,
    doubles: bool = False,
    enum_values: Mapping[str, set[str]] | None = None,
) -> None:
    """Every member of ``value`` exists in ``shape`` (recursively) with its type, an enum's string
    one of its values. Options: ``required``, the required members are present; ``map_values``, a
    map's values are checked too; ``doubles``, a double is a float; ``enum_values``, values allowed
    besides AWS's, by enum shape name."""

    def check(item: Any, member: Shape, where: str) -> None:
        conforms(
            item, member, where, required=required, map_values=map_values, doubles=doubles, enum_values=enum_values
        )

    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), f"{path}: expected an object"
        for key, item in value.items():
            assert key in shape.members, f"{path}.{key} is not a member of {shape.name}"
            check(item, shape.members[key], f"{path}.{key}")
        if required:
            for member in shape.required_members:
                assert member in value, f"{path}.{member} is required by {shape.name}"
    elif shape.type_name == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            check(item, shape.member, f"{path}[{i}]")  # type: ignore[attr-defined]
    elif shape.type_name == "map":
        assert isinstance(value, dict), path
        if map_values:
            for key, item in value.items():
                check(item, shape.value, f"{path}.{key}")  # type: ignore[attr-defined]
    elif shape.type_name in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r}"
    elif shape.type_name == "double" and doubles:
        assert isinstance(value, float), f"{path}: {value!r}"
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), path
    elif shape.type_name == "string":
        assert isinstance(value, str), path
        if shape.enum:
            allowed = shape.enum if enum_values is None else set(shape.enum) | enum_values.get(shape.name, set())
            assert value in allowed, f"{path}: {value} not in {allowed}"


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
