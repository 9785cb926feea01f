"""wait_set: the time limit, and a cancellation that arrives with the event is never lost."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from kubatch.runtime.waits import wait_set


async def _loop_ended_on_cancel(wait: Callable[[asyncio.Event], Awaitable[object]]) -> bool:
    """A loop woken by an event, cancelled in the loop iteration in which the event is set (as the
    dispatcher is when the operator stops while watch events come in): does its task end?"""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait(event)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)  # the loop waits
    event.set()
    await asyncio.sleep(0)  # the event's waiter is released; the loop has not resumed yet
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    task.cancel()
    if not done:
        await asyncio.wait({task}, timeout=1.0)
    return bool(done) and task.cancelled()


async def _wait_for(event: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=5)


async def test_a_cancellation_in_the_iteration_that_sets_the_event_ends_the_loop() -> None:
    assert await _loop_ended_on_cancel(lambda e: wait_set(e, 5))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for keeps the cancellation from 3.12")
async def test_the_race_is_real_with_asyncio_wait_for_on_this_python() -> None:
    # The scenario above is the one that loses a cancellation with asyncio.wait_for: without
    # wait_set the operator's loops would not end.
    assert not await _loop_ended_on_cancel(_wait_for)


async def test_times_out_when_the_event_is_not_set() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_set(asyncio.Event(), 0.05) is False
    assert loop.time() - started >= 0.05


async def test_returns_at_once_when_set_and_when_set_while_waiting() -> None:
    event = asyncio.Event()
    event.set()
    assert await wait_set(event, 0) is True
    event.clear()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5) is True


async def test_a_cancellation_while_waiting_propagates() -> None:
    task = asyncio.create_task(wait_set(asyncio.Event(), 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
