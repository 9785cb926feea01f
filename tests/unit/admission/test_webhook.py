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
    objects = {f"{GROUP_PATH}/namespaces/ns/jobdefinitions/d": _view().definitions["ns/d"]}
    starting = Admission(FakeKube(objects), View(), asyncio.Event())  # type: ignore[arg-type]
    await validate_batchjobs(body=_job(jobQueue="nope"), memo=kopf.Memo(admission=starting), warnings=warnings)
    assert "not synced" in warnings[0]
    warnings = []
    memo = kopf.Memo(admission=_admission(FakeKube({}, fail=True)))
    await validate_batchjobs(body=_job(jobQueue="nope"), memo=memo, warnings=warnings)
    assert "skipped" in warnings[0] and "controller" in warnings[0]


async def test_handler_refuses_before_the_admission_is_set_up() -> None:
    with pytest.raises(kopf.AdmissionError, match="starting"):
        await validate_batchjobs(body=_job(), memo=kopf.Memo(), warnings=[])


# ---- access: SubjectAccessReviews on behalf of the requesting user -------------------------------------

ALICE = {"username": "alice", "uid": "u-1", "groups": ["team", "system:authenticated"], "extra": {"scopes": ["a"]}}


class Authorizer(FakeKube):
    """A FakeKube that also answers SubjectAccessReviews from a set of (user, verb, resource, name)."""

    def __init__(self, objects: dict[str, Any], grants: set[tuple[str, str, str, str]], fail: bool = False) -> None:
        super().__init__(objects)
        self.grants = grants
        self.reviews: list[dict[str, Any]] = []
        self.fail_reviews = fail

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        if method != "POST":
            return await super().request(method, path, **kw)
        assert path == admission.ACCESS_PATH
        if self.fail_reviews:
            raise ApiError(403, {"message": "forbidden"}, method, path)
        spec = kw["body"]["spec"]
        self.reviews.append(spec)
        attrs = spec["resourceAttributes"]
        wanted = (spec["user"], attrs["verb"], attrs["resource"], attrs.get("name", ""))
        return {"status": {"allowed": wanted in self.grants or (*wanted[:3], "") in self.grants}}


def _sa_view() -> View:
    view = _view()
    props = {"image": "b", "serviceAccountName": "builder", "secrets": [{"name": "T", "valueFrom": "api:token"}]}
    view.definitions["ns/sa"] = {"metadata": {"name": "sa"}, "spec": {"containerProperties": props}}
    return view


async def test_a_job_using_nothing_asks_nothing() -> None:
    kube = Authorizer(NS, set())
    assert await _admission(kube).access("BatchJob", _job(), None, ALICE) == []
    assert kube.reviews == []


async def test_reviews_are_made_for_the_requesting_user() -> None:
    kube = Authorizer(NS, {("alice", "create", "pods", ""), ("alice", "get", "secrets", "api")})
    assert await _admission(kube, _sa_view()).access("BatchJob", _job(jobDefinition="sa"), None, ALICE) == []
    by_verb = {r["resourceAttributes"]["verb"]: r for r in kube.reviews}
    assert set(by_verb) == {"create", "get"}  # `use` was not needed: create pods allows the account
    review = by_verb["get"]
    assert (review["user"], review["uid"], review["extra"]) == ("alice", "u-1", {"scopes": ["a"]})
    assert sorted(review["groups"]) == ["system:authenticated", "team"]
    assert review["resourceAttributes"] == {
        "namespace": "ns",
        "verb": "get",
        "group": "",
        "resource": "secrets",
        "name": "api",
    }


async def test_use_on_the_service_account_is_asked_when_create_pods_is_denied() -> None:
    grants = {("alice", "use", "serviceaccounts", "builder"), ("alice", "get", "secrets", "api")}
    kube = Authorizer(NS, grants)
    assert await _admission(kube, _sa_view()).access("BatchJob", _job(jobDefinition="sa"), None, ALICE) == []
    assert len(kube.reviews) == 3
    denied = Authorizer(NS, set())
    violations = await _admission(denied, _sa_view()).access("BatchJob", _job(jobDefinition="sa"), None, ALICE)
    assert [str(v) for v in violations] == [
        'spec.jobDefinition: user "alice" may not use ServiceAccount "builder" in namespace "ns" '
        '(job definition "sa:1", containerProperties.serviceAccountName; '
        "needs create pods, or use serviceaccounts/builder)",
        'spec.jobDefinition: user "alice" may not read Secret "api" in namespace "ns" '
        '(job definition "sa:1", containerProperties.secrets[0].valueFrom; needs get secrets/api)',
    ]


async def test_allowed_answers_are_cached_briefly_and_denials_never() -> None:
    now = [100.0]
    kube = Authorizer(NS, {("alice", "create", "pods", "")})
    reviewer = admission.AccessReviewer(kube, ttl=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    create, secret = admission.Permission("create", "pods"), admission.Permission("get", "secrets", "x")
    assert await reviewer.answers(ALICE, "ns", [create, secret]) == {create: True, secret: False}
    assert await reviewer.answers(ALICE, "ns", [create, secret]) == {create: True, secret: False}
    assert len(kube.reviews) == 3  # create pods once, the denied secret twice
    assert await reviewer.answers(ALICE, "other", [create]) == {create: True}  # per namespace
    assert await reviewer.answers({**ALICE, "groups": ["x"]}, "ns", [create]) == {create: True}  # per groups
    assert len(kube.reviews) == 5
    now[0] += 5.1
    await reviewer.answers(ALICE, "ns", [create])
    assert len(kube.reviews) == 6
    assert reviewer.reviews == 6


async def test_system_masters_are_not_asked_about() -> None:
    kube = Authorizer(NS, set())
    masters = {"username": "admin", "groups": ["system:masters", "system:authenticated"]}
    assert await _admission(kube, _sa_view()).access("BatchJob", _job(jobDefinition="sa"), None, masters) == []
    assert kube.reviews == []


async def test_the_handler_refuses_when_the_reviews_fail() -> None:
    kube = Authorizer(NS, set(), fail=True)
    memo = kopf.Memo(admission=_admission(kube, _sa_view()))
    with pytest.raises(kopf.AdmissionError) as err:
        await validate_batchjobs(body=_job(jobDefinition="sa"), memo=memo, warnings=[], userinfo=ALICE)
    assert 'could not check what user "alice" may use' in str(err.value)
    # A job that uses nothing needs no review.
    await validate_batchjobs(body=_job(), memo=memo, warnings=[], userinfo=ALICE)


async def test_the_handler_refuses_what_the_user_may_not_use() -> None:
    memo = kopf.Memo(admission=_admission(Authorizer(NS, {("alice", "get", "secrets", "api")}), _sa_view()))
    with pytest.raises(kopf.AdmissionError) as err:
        await validate_batchjobs(body=_job(jobDefinition="sa"), memo=memo, warnings=[], userinfo=ALICE)
    assert str(err.value).startswith('spec.jobDefinition: user "alice" may not use ServiceAccount "builder"')


async def test_a_definition_missing_from_the_view_is_fetched_for_the_access_check() -> None:
    view = _sa_view()
    objects = {**NS, f"{GROUP_PATH}/namespaces/ns/jobdefinitions/fresh": view.definitions["ns/sa"]}
    violations = await _admission(Authorizer(objects, set())).access(
        "BatchJob", _job(jobDefinition="fresh"), None, ALICE
    )
    assert {v.field for v in violations} == {"spec.jobDefinition"} and len(violations) == 2


async def test_definitions_are_checked_for_their_author_on_what_changes() -> None:
    kube = Authorizer(NS, set())
    a = _admission(kube)
    spec = {"containerProperties": {"image": "b", "serviceAccountName": "builder"}}
    jd = {"metadata": {"name": "x", "namespace": "ns"}, "spec": spec}
    (v,) = await a.access("JobDefinition", jd, None, ALICE)
    assert v.field == "spec.containerProperties.serviceAccountName"
    assert await a.access("JobDefinition", {**jd, "spec": {**spec, "deregistered": True}}, jd, ALICE) == []
    memo = kopf.Memo(admission=a)
    with pytest.raises(kopf.AdmissionError, match="may not use ServiceAccount"):
        await admission.validate_jobdefinitions(body=jd, memo=memo, warnings=[], userinfo=ALICE)


async def test_reviews_are_counted_for_prometheus() -> None:
    from prometheus_client import generate_latest

    from kubatch.observability.metrics import Metrics

    kube = Authorizer(NS, {("alice", "create", "pods", "")})
    reviewer = admission.AccessReviewer(kube)  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.add_collector(lambda: admission.access_metrics(reviewer))
    await reviewer.answers(ALICE, "ns", [admission.Permission("create", "pods")])
    await reviewer.answers(ALICE, "ns", [admission.Permission("create", "pods")])  # cached
    text = generate_latest(metrics.registry).decode()
    assert "kubatch_admission_access_reviews_total 1.0" in text
    assert "kubatch_admission_access_review_seconds_total" in text


OPERATOR = {"username": "system:serviceaccount:kubatch:kubatch", "groups": ["system:serviceaccounts"]}
SCHEDULE_REF = {
    "apiVersion": "kubatch.dev/v1alpha1",
    "kind": "JobSchedule",
    "name": "s",
    "uid": "u",
    "controller": True,
}


async def test_runs_the_operator_submits_for_a_schedule_are_not_checked_again() -> None:
    kube = Authorizer(NS, set())
    a = _admission(kube, _sa_view())
    a.identity = OPERATOR["username"]
    run = _job(jobDefinition="sa")
    run["metadata"]["ownerReferences"] = [SCHEDULE_REF]
    assert await a.access("BatchJob", run, None, OPERATOR) == []
    assert kube.reviews == []
    # Anyone else, or the operator without a schedule behind the job, is checked.
    assert len(await a.access("BatchJob", run, None, ALICE)) == 2
    assert len(await a.access("BatchJob", _job(jobDefinition="sa"), None, OPERATOR)) == 2


async def test_a_schedule_author_is_checked_for_the_template() -> None:
    kube = Authorizer(NS, {("alice", "get", "secrets", "api")})
    memo = kopf.Memo(admission=_admission(kube, _sa_view()))
    template = {"jobQueue": "q", "jobDefinition": "sa"}
    schedule = {
        "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": template}},
    }
    with pytest.raises(kopf.AdmissionError) as err:
        await admission.validate_jobschedules(body=kopf.Body(schedule), memo=memo, userinfo=ALICE)
    assert str(err.value).startswith(
        'spec.jobTemplate.spec.jobDefinition: user "alice" may not use ServiceAccount "builder" in namespace "ns"'
    )
    granted = Authorizer(NS, {("alice", "create", "pods", ""), ("alice", "get", "secrets", "api")})
    ok = kopf.Memo(admission=_admission(granted, _sa_view()))
    await admission.validate_jobschedules(body=kopf.Body(schedule), memo=ok, userinfo=ALICE)


async def test_whoami() -> None:
    class Kube(FakeKube):
        async def request(self, method: str, path: str, **kw: Any) -> Any:
            assert (method, path) == ("POST", admission.WHOAMI_PATH)
            return {"status": {"userInfo": {"username": "system:serviceaccount:kubatch:kubatch"}}}

    assert await _admission(Kube({})).whoami() == "system:serviceaccount:kubatch:kubatch"
    assert await _admission(FakeKube({}, fail=True)).whoami() is None
