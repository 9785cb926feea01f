"""The webhook layer (kubatch.controllers.admission): options, configuration, world building from a
view with API fall-back, and the handlers' allow/deny/warn behaviour."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import kopf
import pytest

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.controllers import admission
from kubatch.controllers.admission import Admission, WebhookOptions, validate_batchjobs, webhook_configuration

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"


def test_options_from_env() -> None:
    assert WebhookOptions.from_env({}) is None
    opts = WebhookOptions.from_env(
        {
            "KUBATCH_WEBHOOK_PORT": "9443",
            "KUBATCH_WEBHOOK_CERT_DIR": "/certs",
            "KUBATCH_WEBHOOK_CONFIGURE": "dev",
            "KUBATCH_WEBHOOK_SELECTOR": "a/b=c",
        }
    )
    assert opts is not None
    assert (opts.port, opts.addr, opts.configure, opts.selector) == (9443, "0.0.0.0", "dev", ("a/b", "c"))
    assert opts.certfile == Path("/certs/tls.crt") and opts.pkeyfile == Path("/certs/tls.key")
    assert opts.ca_file == Path("/certs/ca.crt")
    with pytest.raises(ValueError, match="KUBATCH_WEBHOOK_CERT_DIR"):
        WebhookOptions.from_env({"KUBATCH_WEBHOOK_PORT": "9443"})
    with pytest.raises(ValueError, match="KUBATCH_WEBHOOK_PORT"):
        WebhookOptions.from_env({"KUBATCH_WEBHOOK_PORT": "http", "KUBATCH_WEBHOOK_CERT_DIR": "/c"})
    with pytest.raises(ValueError, match="KUBATCH_WEBHOOK_SELECTOR"):
        WebhookOptions.from_env(
            {"KUBATCH_WEBHOOK_PORT": "1", "KUBATCH_WEBHOOK_CERT_DIR": "/c", "KUBATCH_WEBHOOK_SELECTOR": "x"}
        )


def test_configuration() -> None:
    cfg = webhook_configuration("dev", "https://127.0.0.1:9443/", b"CA", ("sel", "on"))
    hooks = {h["name"]: h for h in cfg["webhooks"]}
    assert set(hooks) == {
        "batchjobs.kubatch.dev",
        "jobqueues.kubatch.dev",
        "jobqueues-delete.kubatch.dev",
        "jobdefinitions.kubatch.dev",
        "jobschedules.kubatch.dev",
    }
    jobs = hooks["batchjobs.kubatch.dev"]
    assert jobs["clientConfig"] == {
        "url": "https://127.0.0.1:9443/validate-batchjobs",
        "caBundle": base64.b64encode(b"CA").decode(),
    }
    assert jobs["rules"][0]["operations"] == ["CREATE"]
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Ignore"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["timeoutSeconds"] == 5
    assert jobs["namespaceSelector"] == {"matchLabels": {"sel": "on"}}
    assert hooks["jobqueues.kubatch.dev"]["objectSelector"] == {"matchLabels": {"sel": "on"}}
    assert hooks["jobqueues.kubatch.dev"]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    deletes = hooks["jobqueues-delete.kubatch.dev"]
    assert deletes["rules"][0]["operations"] == ["DELETE"] and deletes["rules"][0]["resources"] == ["jobqueues"]
    assert deletes["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-jobqueues-delete"
    assert deletes["objectSelector"] == {"matchLabels": {"sel": "on"}}
    plain = webhook_configuration("dev", "https://h:1", b"CA")
    assert all("namespaceSelector" not in h and "objectSelector" not in h for h in plain["webhooks"])


def test_handler_ids_are_the_configured_paths() -> None:
    registry = kopf.OperatorRegistry()
    admission._registered = False
    try:
        admission.register(registry)
    finally:
        admission._registered = False
    ids = sorted(h.id for h in registry._webhooks.get_all_handlers())
    assert ids == sorted(w.id for w in admission.WEBHOOKS)


async def test_only_a_disabled_queue_can_be_deleted() -> None:
    enabled = kopf.Body({"metadata": {"name": "q"}, "spec": {"state": "ENABLED", "priority": 1}})
    with pytest.raises(kopf.AdmissionError, match='job queue "q" is ENABLED: a job queue can be deleted only once'):
        await admission.validate_jobqueue_delete(body=enabled)
    unset = kopf.Body({"metadata": {"name": "q"}, "spec": {"priority": 1}})  # ENABLED is the default
    with pytest.raises(kopf.AdmissionError):
        await admission.validate_jobqueue_delete(body=unset)
    disabled = kopf.Body({"metadata": {"name": "q"}, "spec": {"state": "DISABLED", "priority": 1}})
    await admission.validate_jobqueue_delete(body=disabled)


class FakeKube:
    """Answers GETs from a dict of path -> object (missing -> 404); records the paths asked."""

    def __init__(self, objects: dict[str, Any], fail: bool = False) -> None:
        self.objects = objects
        self.fail = fail
        self.asked: list[str] = []

    async def request(self, method: str, path: str, **_: Any) -> Any:
        self.asked.append(path)
        if self.fail:
            raise ApiError(500, {"message": "boom"}, method, path)
        if path in self.objects:
            return self.objects[path]
        if path.endswith("/controllerrevisions"):
            return {"items": []}
        raise ApiError(404, {"reason": "NotFound"}, method, path)


def _view() -> View:
    view = View()
    view.queues["q"] = {"metadata": {"name": "q"}, "spec": {"computeEnvironmentOrder": [{"computeEnvironment": "ce"}]}}
    view.envs["ce"] = {"metadata": {"name": "ce"}, "spec": {}}
    view.definitions["ns/d"] = {"metadata": {"name": "d"}, "spec": {"containerProperties": {"image": "b"}}}
    return view


def _job(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j", "namespace": "ns"}, "spec": {"jobQueue": "q", "jobDefinition": "d", **spec}}


NS = {"/api/v1/namespaces/ns": {"metadata": {"name": "ns", "labels": {"team": "a"}}}}


def _admission(kube: FakeKube, view: View | None = None) -> Admission:
    synced = asyncio.Event()
    synced.set()
    return Admission(kube, view or _view(), synced)  # type: ignore[arg-type]


async def test_view_answers_without_api_calls_for_a_valid_job() -> None:
    kube = FakeKube(NS)
    assert await _admission(kube).check("BatchJob", _job(), None) == []
    assert kube.asked == ["/api/v1/namespaces/ns"]


async def test_an_object_missing_from_the_view_is_fetched() -> None:
    queue = {"metadata": {"name": "new"}, "spec": {"computeEnvironmentOrder": [{"computeEnvironment": "ce"}]}}
    kube = FakeKube({**NS, f"{GROUP_PATH}/jobqueues/new": queue})
    assert await _admission(kube).check("BatchJob", _job(jobQueue="new"), None) == []


async def test_a_rejection_is_confirmed_against_the_api_server() -> None:
    """The view says DISABLED; the API server already has it ENABLED: accepted."""
    view = _view()
    view.queues["q"] = {**view.queues["q"], "spec": {**view.queues["q"]["spec"], "state": "DISABLED"}}
    fresh = {"metadata": {"name": "q"}, "spec": {"computeEnvironmentOrder": [{"computeEnvironment": "ce"}]}}
    objects = {
        **NS,
        f"{GROUP_PATH}/jobqueues/q": fresh,
        f"{GROUP_PATH}/computeenvironments/ce": {"spec": {}},
        f"{GROUP_PATH}/namespaces/ns/jobdefinitions/d": view.definitions["ns/d"],
    }
    assert await _admission(FakeKube(objects), view).check("BatchJob", _job(), None) == []
    violations = await _admission(FakeKube(NS), view).check("BatchJob", _job(), None)
    assert [v.field for v in violations] == ["spec.jobQueue", "spec.jobDefinition"]


async def test_handler_rejects_with_every_violation() -> None:
    objects = {**NS, f"{GROUP_PATH}/namespaces/ns/jobdefinitions/d": _view().definitions["ns/d"]}
    memo = kopf.Memo(admission=_admission(FakeKube(objects)))
    warnings: list[str] = []
    with pytest.raises(kopf.AdmissionError) as err:
        await validate_batchjobs(body=_job(jobQueue="nope", dependsOn=[{"jobName": "x"}]), memo=memo, warnings=warnings)
    assert str(err.value) == (
        'spec.jobQueue: job queue "nope" does not exist; '
        'spec.dependsOn[0].jobName: job "x" does not exist in namespace "ns"'
    )
    assert err.value.code == 400


async def test_handler_allows_with_a_warning_when_it_cannot_check() -> None:
    warnings: list[str] = []
    await validate_batchjobs(body=_job(jobQueue="nope"), memo=kopf.Memo(), warnings=warnings)
    assert "not synced" in warnings[0]
    warnings = []
    memo = kopf.Memo(admission=_admission(FakeKube({}, fail=True)))
    await validate_batchjobs(body=_job(jobQueue="nope"), memo=memo, warnings=warnings)
    assert "skipped" in warnings[0] and "controller" in warnings[0]
