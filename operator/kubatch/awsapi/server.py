"""The aiohttp application of the AWS Batch API: each request is authenticated (``Authenticator``:
the key's identity, and a Kubernetes client acting as it), recognised (``protocol``), handed to its
operation's handler and answered in AWS's shape, errors included (``errors``).

A handler is ``async (Context, Call) -> dict``; an operation without one is answered with a
ClientException saying kubatch does not support it. Every answer carries ``x-amzn-RequestId``.
What is logged: operation, access key id, status, duration, and an error's code and message, never
a header or a body (they hold signatures and secrets); failures of kubatch itself with their trace.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from kubatch.awsapi.environments import EnvironmentDefaults
from kubatch.awsapi.errors import AwsError, NotSupported, ServerException, from_kube
from kubatch.awsapi.protocol import JSON, Call, encode, parse_call
from kubatch.awsapi.state import ServerState
from kubatch.cluster.client import ApiError, Kube

log = logging.getLogger(__name__)

#: Largest request body read (AWS limits SubmitJob to 30 KiB; the rest are smaller still).
MAX_BODY = 1024 * 1024
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class ApiConfig:
    """What the API answers with: the region and account of its ARNs; and what it puts into the
    compute environments it creates that AWS's request does not carry (``environments``)."""

    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    environments: EnvironmentDefaults = field(default_factory=EnvironmentDefaults)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: its access key, the key's namespace, the identity's name for
    messages (``user "alice"``, ``ServiceAccount team-a/builder``), and a Kubernetes client that
    makes its calls as that identity."""

    access_key_id: str
    namespace: str
    identity: str
    kube: Kube


@dataclass(frozen=True)
class Request:
    """A request as the authenticator sees it: everything the signature covers."""

    method: str
    raw_path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Authenticator(Protocol):
    async def __call__(self, request: Request) -> Principal: ...


@dataclass(frozen=True)
class Context:
    """What a handler works with: the caller, the server's own client (for lookups the caller's
    identity need not be allowed, such as whether a job queue exists), the configuration, and what
    the server keeps between requests (``state``: caches)."""

    principal: Principal
    kube: Kube
    config: ApiConfig
    state: ServerState = field(default_factory=ServerState)

    @property
    def namespace(self) -> str:
        return self.principal.namespace

    @property
    def user(self) -> Kube:
        """The Kubernetes client acting as the caller."""
        return self.principal.kube


Handler = Callable[[Context, Call], Awaitable[JSON]]


@dataclass
class ApiServer:
    """Authenticates, dispatches and answers."""

    kube: Kube
    authenticate: Authenticator
    handlers: Mapping[str, Handler]
    config: ApiConfig = field(default_factory=ApiConfig)
    state: ServerState = field(default_factory=ServerState)
    requests_total: int = 0
    errors_total: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def healthz(self, http: web.Request) -> web.Response:
        """Liveness, unauthenticated: no AWS Batch operation is a GET of /healthz."""
        return web.Response(text="ok")

    async def handle(self, http: web.Request) -> web.Response:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        self.requests_total += 1
        operation, key_id = "-", "-"
        try:
            raw = await http.read()
            path, _, query = http.raw_path.partition("?")
            request = Request(http.method, path, query, tuple(http.headers.items()), raw)
            principal = await self.authenticate(request)
            key_id = principal.access_key_id
            call = parse_call(http.method, http.raw_path, raw)
            operation = call.operation
            handler = self.handlers.get(call.operation)
            if handler is None:
                raise NotSupported(call.operation, "not implemented yet (docs/aws-api.md lists what is)")
            result = await handler(Context(principal, self.kube, self.config, self.state), call)
            response = web.Response(body=encode(result), status=200, content_type="application/json")
        except AwsError as e:
            response = self._error(e)
        except ApiError as e:
            response = self._error(from_kube(e, f"batch:{operation}"))
        except Exception:
            log.exception("%s (key %s): kubatch failed", operation, key_id)
            response = self._error(ServerException("kubatch failed to handle the request"))
        response.headers["x-amzn-RequestId"] = request_id
        log.debug(
            "%s key=%s status=%d %.1fms", operation, key_id, response.status, (time.monotonic() - started) * 1000
        )
        return response

    def _error(self, e: AwsError) -> web.Response:
        self.errors_total += 1
        level = logging.WARNING if e.status >= 500 else logging.INFO
        log.log(level, "answered %d %s: %s", e.status, e.code, e.message)
        return web.Response(body=e.body(), status=e.status, headers=e.headers())
