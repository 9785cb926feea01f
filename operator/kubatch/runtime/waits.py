"""Waiting for an event with a time limit, without losing the task's cancellation; where a task waits.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result when the cancellation of the
waiting task arrives in the same loop iteration as that result, and the cancellation is gone: a
loop that waits on an event set by every watch event (the view's ``changed``) then runs on after
its task was cancelled, and the operator's stop waits for it forever. ``asyncio.timeout`` counts
cancellations (``Task.uncancel``) and has no such race; every loop here waits through it."""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds have passed; True when it is set.

    A cancellation of the calling task always propagates, whatever else happens at the time."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


def where_waits(task: asyncio.Task[Any]) -> str:
    """Where ``task`` is suspended, as ``function:line`` of its coroutine (Python gives a suspended
    task's own frame, not the coroutines it awaits), for a log line."""
    return " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in task.get_stack())
