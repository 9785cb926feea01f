"""What one API server keeps between requests, so that a burst of calls costs the Kubernetes API
server little more than the creates it asks for.

- ``TtlCache``: answers kept for a few seconds, and **single flight**: concurrent misses of one key
  share one read (without it, sixteen SubmitJobs arriving as an entry expired made sixteen GETs of
  the same JobQueue). Used for access keys (``keystore``), whether a job queue exists and the
  ACTIVE job definition a submission names (``job_ops``).
- ``ServerState``: the caches of one server (``server.Context.state``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values kept ``ttl(value)`` seconds (0: not kept), at most ``size`` of them (the oldest go
    first); a key being loaded is loaded once for every caller that asks meanwhile."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        self.loads = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]], ttl: Callable[[V], float]) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            if self.clock() < entry[0]:
                return entry[1]
            del self._entries[key]
        while (pending := self._loading.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    continue  # the caller that loaded it went away: load it here
                raise
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        self.loads += 1
        try:
            value = await load()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(e)
                future.exception()  # retrieved: no warning when nobody else waited
            raise
        else:
            future.set_result(value)
            keep = ttl(value)
            if keep > 0:
                self._entries[key] = (self.clock() + keep, value)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return value
        finally:
            self._loading.pop(key, None)

    def drop(self, matches: Callable[[K], bool]) -> None:
        """Forget the keys ``matches`` selects (loads under way finish as they are)."""
        for key in [k for k in self._entries if matches(k)]:
            del self._entries[key]


@dataclass
class ServerState:
    """One API server's caches: whether a job queue exists (by name), the ACTIVE job definitions
    read for submissions (by identity, namespace and name)."""

    queues: TtlCache[str, bool] = field(default_factory=TtlCache)
    definitions: TtlCache[tuple[str, str, str], Any] = field(default_factory=TtlCache)
