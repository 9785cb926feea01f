"""A loop that calls one sync function every few seconds while this replica leads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    period: float,
    sync: Callable[[], Awaitable[None]],
    *,
    ready: asyncio.Event,
    is_leader: Callable[[], bool],
    log: logging.Logger,
    what: str,
) -> None:
    """Wait for ``ready``, then run ``sync`` every ``period`` seconds when leading; an error is
    logged and retried on the next round, never fatal."""
    await ready.wait()
    while True:
        if is_leader():
            try:
                await sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", what)
        await asyncio.sleep(period)
