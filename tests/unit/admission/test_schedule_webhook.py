"""The JobSchedule webhook handler: refuses a schedule that cannot run, with every reason."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.controllers.admission import WEBHOOKS, Admission, validate_jobschedules, webhook_configuration


class NoObjects:
    """An API server that has nothing (the template's definition does not exist: nothing to check)."""

    async def request(self, method: str, path: str, **_: Any) -> Any:
        raise ApiError(404, {"reason": "NotFound"}, method, path)


def memo() -> kopf.Memo:
    return kopf.Memo(admission=Admission(NoObjects(), View(), asyncio.Event()))  # type: ignore[arg-type]


def body(**spec: Any) -> kopf.Body:
    template = {"spec": {"jobQueue": "q", "jobDefinition": "d"}}
    return kopf.Body({"metadata": {"name": "s", "namespace": "ns"}, "spec": {"jobTemplate": template, **spec}})


async def test_a_valid_schedule_is_allowed() -> None:
    await validate_jobschedules(body=body(schedule="*/15 9-17 * * MON-FRI", timeZone="Europe/Paris"), memo=memo())
    await validate_jobschedules(body=body(schedule="@daily"), memo=memo())


async def test_an_invalid_schedule_is_refused_with_every_reason() -> None:
    with pytest.raises(kopf.AdmissionError) as e:
        await validate_jobschedules(body=body(schedule="0 0 30 2 *", timeZone="Europe/Pariss"), memo=memo())
    message = str(e.value)
    assert "spec.schedule: the schedule never runs: no month of FEB has day 30" in message
    assert "spec.timeZone: unknown time zone 'Europe/Pariss'" in message
    assert e.value.code == 400


def test_the_webhook_is_configured_for_creates_and_updates() -> None:
    (hook,) = [w for w in WEBHOOKS if w.plural == "jobschedules"]
    assert hook.id == "validate-jobschedules" and hook.operations == ("CREATE", "UPDATE") and hook.namespaced
    cfg = webhook_configuration("dev", "https://127.0.0.1:9443", b"CA", ("sel", "on"))
    (entry,) = [w for w in cfg["webhooks"] if w["rules"][0]["resources"] == ["jobschedules"]]
    assert entry["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-jobschedules"
    assert entry["namespaceSelector"] == {"matchLabels": {"sel": "on"}}
