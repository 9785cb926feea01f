"""`Kube.request` against a fake API server: 429/5xx retries honouring Retry-After, counters, limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from kubatch.cluster.client import ApiError, retry_after
from tests.unit.cluster.fakeapi import FakeApi, Reply


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's back-off sleeps, recorded instead of slept (aiohttp's own sleep(0) yields pass)."""
    waited: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float, *args: Any) -> None:
        if seconds > 0:
            waited.append(seconds)
        else:
            await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return waited


async def test_429_is_retried_after_retry_after(sleeps: list[float]) -> None:
    """Two 429s with Retry-After: 2 and 1, then success: the call returns the body, waits exactly
    what the server asked, and counts 3 requests of which 2 were throttled."""
    api = FakeApi()
    api.replies = [
        Reply(429, {"kind": "Status", "reason": "TooManyRequests"}, {"Retry-After": "2"}),
        Reply(429, {"kind": "Status", "reason": "TooManyRequests"}, {"Retry-After": "1"}),
        Reply(200, {"ok": True}),
    ]
    async with api.serve() as kube:
        assert await kube.request("POST", "/replies", body={"a": 1}) == {"ok": True}
        assert sleeps == [2.0, 1.0]
        assert (kube.requests_total, kube.throttled_total, kube.errors_total) == (3, 2, 0)
    assert [m for m, _, _ in api.log] == ["POST"] * 3


async def test_retry_after_is_capped_and_http_dates_are_understood(sleeps: list[float]) -> None:
    """A huge Retry-After is capped at 10 s; an HTTP-date Retry-After (RFC 9110) is honoured instead
    of crashing the call with a ValueError (the bug fixed in client.py)."""
    api = FakeApi()
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    api.replies = [
        Reply(429, {}, {"Retry-After": "3600"}),
        Reply(503, {}, {"Retry-After": soon}),
        Reply(429, {}, {"Retry-After": "not a number"}),
        Reply(200, {"done": 1}),
    ]
    async with api.serve() as kube:
        assert await kube.request("GET", "/replies") == {"done": 1}
    assert sleeps[0] == 10.0
    assert 1.0 <= sleeps[1] <= 3.0
    assert sleeps[2] == pytest.approx(0.8)  # the exponential back-off (0.2, 0.4, 0.8) when unreadable


async def test_throttled_until_retries_run_out(sleeps: list[float]) -> None:
    """Throttled on every try: ApiError(429) after retries + 1 requests, with back-off between."""
    api = FakeApi()
    api.replies = [Reply(429, {"kind": "Status", "reason": "TooManyRequests", "message": "slow down"})] * 4
    async with api.serve() as kube:
        with pytest.raises(ApiError) as err:
            await kube.request("GET", "/replies", retries=3)
        assert err.value.status == 429 and err.value.reason == "TooManyRequests"
        assert (kube.requests_total, kube.throttled_total, kube.errors_total) == (4, 4, 1)
    assert sleeps == [0.2, 0.4, 0.8]


async def test_5xx_retried_4xx_not(sleeps: list[float]) -> None:
    """500 then success is retried; a 404 or 409 is final at once (no retry, no sleep)."""
    api = FakeApi()
    api.replies = [Reply(500, {"reason": "InternalError"}), Reply(200, {"x": 1}), Reply(404, {"reason": "NotFound"})]
    async with api.serve() as kube:
        assert await kube.get("/replies") == {"x": 1}
        with pytest.raises(ApiError) as err:
            await kube.get("/replies")
        assert err.value.status == 404
        assert kube.requests_total == 3
    assert sleeps == [0.2]


async def test_connection_refused_is_retried_then_reported(sleeps: list[float]) -> None:
    """Nobody listening: retried with back-off, then ApiError(0), never a raw aiohttp error."""
    api = FakeApi()
    async with api.serve() as kube:
        kube.creds.server = "http://127.0.0.1:1"
        with pytest.raises(ApiError) as err:
            await kube.get("/replies")
        assert err.value.status == 0
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0.5),
        ("", 0.5),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", 0.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float) -> None:
    assert retry_after(value, 0.5) == expected
