"""What the API server keeps between requests: single-flight caches."""

from __future__ import annotations

import asyncio

import pytest

from kubatch.awsapi.state import TtlCache


async def test_concurrent_misses_share_one_load() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(clock=lambda: now[0])
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 7

    waiting = [asyncio.create_task(cache.get("q", load, lambda v: 5.0)) for _ in range(16)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [7] * 16
    assert loads == 1
    assert await cache.get("q", load, lambda v: 5.0) == 7 and loads == 1  # kept
    now[0] = 5.1
    assert await cache.get("q", load, lambda v: 5.0) == 7 and loads == 2  # expired: read again
    cache.drop(lambda key: key == "q")
    assert await cache.get("q", load, lambda v: 5.0) == 7 and loads == 3


async def test_a_failed_load_fails_its_waiters_and_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("API server down")

    results = await asyncio.gather(*(cache.get("k", failing, lambda v: 5.0) for _ in range(3)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await cache.get("k", failing, lambda v: 5.0)
    assert calls == 2


async def test_a_zero_ttl_answer_is_not_kept_and_size_is_bounded() -> None:
    cache: TtlCache[int, bool] = TtlCache(size=2)
    loads = 0

    async def load() -> bool:
        nonlocal loads
        loads += 1
        return False

    await cache.get(1, load, lambda exists: 5.0 if exists else 0.0)
    await cache.get(1, load, lambda exists: 5.0 if exists else 0.0)
    assert loads == 2
    for key in (1, 2, 3):
        await cache.get(key, load, lambda v: 5.0)
    assert len(cache._entries) == 2


async def test_a_waiter_loads_itself_when_the_loading_caller_is_cancelled() -> None:
    cache: TtlCache[str, int] = TtlCache()
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(10)
        return 1

    async def fast() -> int:
        return 2

    first = asyncio.create_task(cache.get("k", slow, lambda v: 5.0))
    await started.wait()
    second = asyncio.create_task(cache.get("k", fast, lambda v: 5.0))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first
