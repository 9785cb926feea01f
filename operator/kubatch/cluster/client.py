"""A lean asyncio Kubernetes API client over aiohttp (the HTTP stack kopf already uses).

Bodies are plain dicts in and out: the operator never pays for model (de)serialisation on the hot
path. Authentication comes from a kubeconfig (client certificates, bearer tokens, exec plugins via
kubernetes_asyncio's loader) or the in-cluster service account. HTTP 429 and 5xx answers to
idempotent calls are retried with backoff, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

log = logging.getLogger(__name__)

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
JSON = dict[str, Any]


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3);
    `default` when it is missing or unreadable, never negative."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: Any, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: {status} {self.reason}: {message}")

    @property
    def namespace_terminating(self) -> bool:
        """A create refused because its namespace is being deleted (nothing to retry there)."""
        causes = ((self.body.get("details") or {}).get("causes") or []) if isinstance(self.body, dict) else []
        return self.status == 403 and (
            any(c.get("reason") == "NamespaceTerminating" for c in causes) or "being terminated" in str(self)
        )


@dataclass
class Credentials:
    server: str
    ssl_context: ssl.SSLContext | bool
    token: str | None = None
    token_file: str | None = None


async def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """Credentials from `kubeconfig` (or $KUBECONFIG), else from the in-cluster service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path and "KUBERNETES_SERVICE_HOST" in os.environ:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        sa_ctx = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
        return Credentials(f"https://{host}:{port}", sa_ctx, token_file=f"{SA_DIR}/token")
    from kubernetes_asyncio import config as kconfig
    from kubernetes_asyncio.client import Configuration

    cfg = Configuration()
    await kconfig.load_kube_config(config_file=path, client_configuration=cfg)
    ctx: ssl.SSLContext | bool
    if cfg.verify_ssl:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        assert isinstance(ctx, ssl.SSLContext)
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    token = None
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if auth:
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    return Credentials(str(cfg.host).rstrip("/"), ctx, token=token)


class Kube:
    """Async Kubernetes API client; one instance per process, one connection pool."""

    def __init__(self, creds: Credentials, *, max_connections: int = 64, user_agent: str = "kubatch") -> None:
        self.creds = creds
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._user_agent = user_agent
        self.requests_total = 0
        self.throttled_total = 0
        self.errors_total = 0
        self.errors_by_code: Counter[str] = Counter()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, **kw: Any) -> Kube:
        return cls(await load_credentials(kubeconfig), **kw)

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self.creds.token
        if self.creds.token_file:
            with open(self.creds.token_file) as f:
                token = f.read().strip()
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(limit=self._max_connections, ssl=self.creds.ssl_context)
            self._session = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        retries: int = 6,
    ) -> Any:
        url = self.creds.server + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        data = orjson.dumps(body) if body is not None else None
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = content_type
        delay = 0.2
        for attempt in range(retries + 1):
            self.requests_total += 1
            try:
                async with self.session.request(
                    method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 300:
                        return orjson.loads(raw) if raw else None
                    try:
                        payload: Any = orjson.loads(raw)
                    except ValueError:
                        payload = raw.decode(errors="replace")
                    retryable = resp.status == 429 or resp.status >= 500
                    if resp.status == 429:
                        self.throttled_total += 1
                    if retryable and attempt < retries:
                        wait = retry_after(resp.headers.get("Retry-After"), delay)
                        log.debug("%s %s: %s, retrying in %.1fs", method, path, resp.status, wait)
                        await asyncio.sleep(min(wait, 10.0))
                        delay = min(delay * 2, 5.0)
                        continue
                    self.errors_total += 1
                    self.errors_by_code[str(resp.status)] += 1
                    raise ApiError(resp.status, payload, method, path)
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                if attempt >= retries:
                    self.errors_total += 1
                    self.errors_by_code["0"] += 1
                    raise ApiError(0, str(e), method, path) from e
                log.debug("%s %s: %s, retrying in %.1fs", method, path, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    # ---- conveniences ---------------------------------------------------------------------------
    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params or None)

    async def raw(self, path: str, *, accept: str = "*/*", timeout: float = 30.0) -> bytes:
        """A non-JSON resource as bytes (the API server's /metrics or /debug/pprof), without retries."""
        url = self.creds.server + path
        headers = {**self._headers(), "Accept": accept}
        self.requests_total += 1
        async with self.session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            if resp.status >= 300:
                raise ApiError(resp.status, body.decode(errors="replace"), "GET", path)
            return body

    async def text(self, path: str, timeout: float = 30.0) -> str:
        return (await self.raw(path, accept="text/plain", timeout=timeout)).decode()

    async def create(self, path: str, body: JSON) -> JSON:
        result: JSON = await self.request("POST", path, body=body)
        return result

    async def merge_patch(self, path: str, body: JSON) -> JSON:
        result: JSON = await self.request("PATCH", path, body=body, content_type="application/merge-patch+json")
        return result

    async def json_patch(self, path: str, ops: list[JSON]) -> JSON:
        result: JSON = await self.request("PATCH", path, body=ops, content_type="application/json-patch+json")
        return result

    async def apply(self, path: str, body: JSON, *, field_manager: str = "kubatch", force: bool = True) -> JSON:
        result: JSON = await self.request(
            "PATCH",
            path,
            body=body,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": field_manager, "force": "true" if force else "false"},
        )
        return result

    async def delete(
        self, path: str, *, grace_seconds: int | None = None, uid: str | None = None, propagation: str | None = None
    ) -> Any:
        opts: JSON = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_seconds is not None:
            opts["gracePeriodSeconds"] = grace_seconds
        if uid:
            opts["preconditions"] = {"uid": uid}
        if propagation:
            opts["propagationPolicy"] = propagation
        try:
            return await self.request("DELETE", path, body=opts)
        except ApiError as e:
            if e.status in (404, 409):  # already gone, or replaced by a newer object of that name
                return None
            raise

    async def list_all(
        self, path: str, *, label_selector: str | None = None, limit: int = 500
    ) -> tuple[list[JSON], str]:
        """Every item of a collection (paginated) and the list's resourceVersion."""
        items: list[JSON] = []
        list_rv = ""
        async for page, page_rv in self.list_pages(path, label_selector=label_selector, limit=limit):
            items.extend(page)
            list_rv = page_rv
        return items, list_rv

    async def list_pages(
        self, path: str, *, label_selector: str | None = None, limit: int = 500
    ) -> AsyncIterator[tuple[list[JSON], str]]:
        """A collection page by page (items, the list's resourceVersion): a caller that handles each
        page before the next never holds the whole collection decoded at once."""
        cont: str | None = None
        while True:
            page = await self.get(
                path, labelSelector=label_selector, limit=limit, **({"continue": cont} if cont else {})
            )
            yield page.get("items", []), str(page.get("metadata", {}).get("resourceVersion", ""))
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                return

    async def watch(
        self, path: str, *, resource_version: str, label_selector: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[JSON]:
        """Raw watch events (type, object) from `resource_version`, with bookmarks."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            "labelSelector": label_selector,
        }
        url = self.creds.server + path + "?" + urlencode({k: v for k, v in params.items() if v is not None})
        async with self.session.get(
            url,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_read=timeout_seconds + 30),
        ) as resp:
            if resp.status >= 300:
                raw = await resp.read()
                try:
                    payload: Any = orjson.loads(raw)
                except ValueError:
                    payload = raw.decode(errors="replace")
                raise ApiError(resp.status, payload, "WATCH", path)
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
