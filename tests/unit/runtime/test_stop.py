"""A stopping operator ends its loops: a loop woken by the view's change events ends on cancellation
even when the cancellation comes with an event, and a task that never ends is logged and left
behind within ``TASKS_END_SECONDS`` instead of holding the stop (and the Lease) forever."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kubatch.cluster.client import Credentials, Kube
from kubatch.runtime import app
from kubatch.runtime.app import Options, Runtime


def runtime() -> Runtime:
    return Runtime(Kube(Credentials("https://127.0.0.1:1", False)), Options.from_env())


async def test_the_dispatcher_loop_ends_when_cancelled_as_a_change_comes_in() -> None:
    rt = runtime()
    rt.dispatcher.ready.set()
    rt.dispatcher.is_leader = lambda: False  # no cycles: it only waits for changes
    task = asyncio.create_task(rt.dispatcher.run(), name="dispatcher")
    rt.tasks.append(task)
    for _ in range(20):  # the loop waits for the view's next change
        await asyncio.sleep(0.01)
    rt.view.changed.set()
    await asyncio.sleep(0)  # the waiter is released; the loop has not resumed
    await asyncio.wait_for(rt._end_tasks(), timeout=10)
    assert task.cancelled()


async def test_a_task_that_does_not_end_is_logged_and_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app, "TASKS_END_SECONDS", 0.2)
    rt = runtime()

    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await let_go.wait()
            except asyncio.CancelledError:
                continue

    async def plain() -> None:
        await asyncio.sleep(3600)

    rt.tasks += [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(plain(), name="plain")]
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="kubatch.runtime.app"):
        await asyncio.wait_for(rt._end_tasks(), timeout=5)
    assert rt.tasks[1].cancelled()
    assert not rt.tasks[0].done()
    [logged] = [r.getMessage() for r in caplog.records]
    assert logged.startswith("stopping: task stubborn did not end on cancellation (waits at stubborn:")
    let_go.set()
    await rt.tasks[0]
