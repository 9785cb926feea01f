"""A scripted fake Kubernetes API server on aiohttp, for unit tests of the client and informer I/O."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from kubatch.cluster.client import Credentials, Kube


@dataclass
class Reply:
    """One scripted answer: status, JSON body and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def pod(name: str, uid: str, rv: int, *, job: str = "j", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": str(rv),
            "labels": {"kubatch.dev/job-name": job},
        },
        "status": {"phase": phase},
    }


class FakeApi:
    """`/api/v1/pods`: lists answer from `objects` (in pages of `limit`, with `continue`); each watch
    takes the next entry of `watches` (a status code to answer with, or events to stream before
    closing); `/replies` answers from `replies` in order (then 200 {}). Every request is recorded in
    `log` as (method, path, query)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.list_rv = 1
        self.watches: list[int | list[dict[str, Any]]] = []
        self.replies: list[Reply] = []
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.watch_calls = 0
        self.list_calls = 0

    async def pods(self, request: web.Request) -> web.StreamResponse:
        self.log.append((request.method, request.path, dict(request.query)))
        if request.query.get("watch") != "1":
            self.list_calls += 1
            items = list(self.objects.values())
            start = int(request.query.get("continue") or 0)
            limit = int(request.query.get("limit") or 0) or len(items) or 1
            page: dict[str, Any] = {"resourceVersion": str(self.list_rv)}
            if start + limit < len(items):
                page["continue"] = str(start + limit)
            return web.json_response({"metadata": page, "items": items[start : start + limit]})
        self.watch_calls += 1
        script = self.watches.pop(0) if self.watches else None
        if isinstance(script, int):
            return web.json_response(
                {"kind": "Status", "code": script, "reason": "Expired", "message": "too old"}, status=script
            )
        resp = web.StreamResponse()
        await resp.prepare(request)
        if script is None:
            await asyncio.sleep(3600)  # an idle watch, until the client goes away
        for ev in script or []:
            await resp.write(json.dumps(ev).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def replies_handler(self, request: web.Request) -> web.Response:
        self.log.append((request.method, request.path, dict(request.query)))
        reply = self.replies.pop(0) if self.replies else Reply(body={})
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Kube]:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self.pods)
        app.router.add_route("*", "/replies", self.replies_handler)
        server = TestServer(app)
        await server.start_server()
        kube = Kube(Credentials(str(server.make_url("")).rstrip("/"), False))
        try:
            yield kube
        finally:
            await kube.close()
            await server.close()
