"""The validating admission webhook: cross-object checks (``kubatch.core.admission``) served by kopf.

Handlers (their ids are the URL paths, e.g. ``https://<service>/validate-batchjobs``):
``validate-batchjobs`` (BatchJob CREATE), ``validate-jobqueues`` (JobQueue CREATE, UPDATE),
``validate-jobqueues-delete`` (JobQueue DELETE: only a DISABLED queue goes),
``validate-jobdefinitions`` (JobDefinition CREATE, UPDATE), ``validate-jobschedules`` (JobSchedule
CREATE, UPDATE: the schedule parses and can run, the time zone exists; needs no view).

The world the rules look at comes from the runtime's cluster view; an object a request names that the
view does not hold yet (it may lag an object created a moment ago) is fetched from the API server, and
before anything is rejected every named object is fetched again from the API server, so a rejection
never rests on a stale cache. When these checks cannot run (view not synced, API errors, time
running out) the request is allowed with a warning: the controller re-checks at reconcile time.

Access (``kubatch.core.access``, kubatch's ``iam:PassRole``): what a BatchJob (or a JobDefinition)
makes its pods use beyond their own containers (a ServiceAccount, Secrets, ConfigMaps, claims,
privileges) must be allowed to the requesting user (the AdmissionReview's ``userInfo``: username,
uid, groups, extra), asked with SubjectAccessReviews (``AccessReviewer``). Unlike the cross-object
checks this fails closed: when the reviews cannot be made the request is refused, since no one can
check it later (the object does not record who created it). Allowed answers are cached for
``ACCESS_TTL`` seconds per (user, groups, uid, extra, namespace, permission); denials are never
cached, so a refusal always rests on a fresh review. Members of ``system:masters`` are not asked
about (the API server's authorizer allows them everything). The two kinds of check run side by
side, each within ``CHECK_TIMEOUT``.

The local configuration (``webhook_configuration``, development and tests) uses ``failurePolicy:
Ignore`` everywhere: the operator restarts on every code change. The Helm chart uses ``Fail`` for
BatchJobs (a job admitted without the webhook cannot be checked for access by anyone) and
``Ignore`` for the other kinds.

Environment (read when the operator starts; the webhook is off unless KUBATCH_WEBHOOK_PORT is set):

- ``KUBATCH_WEBHOOK_PORT``: serve the webhook (HTTPS) on this port.
- ``KUBATCH_WEBHOOK_ADDR``: listen address (default ``0.0.0.0``).
- ``KUBATCH_WEBHOOK_CERT_DIR``: directory with ``tls.crt`` and ``tls.key`` (required; reloaded when
  they change).
- ``KUBATCH_WEBHOOK_CONFIGURE``: local development and tests only: the operator creates or updates
  the ValidatingWebhookConfiguration of this name, pointing at ``https://127.0.0.1:<port>/<id>``. In a
  cluster the Helm chart ships the configuration (with a Service reference) and this stays unset.
- ``KUBATCH_WEBHOOK_CA_FILE``: the CA bundle put in that configuration (default ``<cert dir>/ca.crt``).
- ``KUBATCH_WEBHOOK_SELECTOR``: ``key=value``; limits that configuration to namespaces with this label
  (namespaced kinds) and objects with this label (cluster-scoped kinds).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kopf
from prometheus_client.core import CounterMetricFamily, Metric

from kubatch.api.constants import GROUP, VERSION
from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import LABEL_JOB_DEFINITION, View
from kubatch.core.access import (
    JobUse,
    Permission,
    batch_job_uses,
    definition_violations,
    describe_user,
    first_round,
    job_violations,
    new_definition_uses,
    schedule_uses,
    scheduled_by,
    still_open,
)
from kubatch.core.admission import (
    Ref,
    Violation,
    World,
    join,
    references,
    validate_batch_job,
    validate_job_definition,
    validate_job_queue,
)
from kubatch.core.deletion import queue_deletion_refusal
from kubatch.core.revisions import RevisionRecord, stored_records
from kubatch.core.schedules import validate_job_schedule
from kubatch.observability.metrics import Metrics

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Kind = Literal["BatchJob", "JobQueue", "JobDefinition"]
GROUP_PATH = f"/apis/{GROUP}/{VERSION}"
CONFIGURATION_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CHECK_TIMEOUT = 3.5  # seconds; the API server gives the webhook 5
NAMESPACE_TTL = 5.0  # seconds a namespace's labels are cached (a rejection always re-reads them)
NOT_CHECKED = "kubatch admission: cross-object checks skipped ({}); the controller checks the object when it reconciles"
AccessKind = Literal["BatchJob", "JobDefinition", "JobSchedule"]
ACCESS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
WHOAMI_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
ACCESS_TTL = 5.0  # seconds an allowed SubjectAccessReview answer is reused (denials never are)
ACCESS_CACHE_SIZE = 10_000
MASTERS = "system:masters"


@dataclass(frozen=True)
class Webhook:
    """One validating webhook: handler id (= URL path), plural, operations, scope; ``name``: the first
    part of its name in the configuration (default: the plural)."""

    id: str
    plural: str
    operations: tuple[Literal["CREATE", "UPDATE", "DELETE"], ...]
    namespaced: bool
    name: str = ""

    @property
    def configuration_name(self) -> str:
        return f"{self.name or self.plural}.{GROUP}"


WEBHOOKS: tuple[Webhook, ...] = (
    Webhook("validate-batchjobs", "batchjobs", ("CREATE",), True),
    Webhook("validate-jobqueues", "jobqueues", ("CREATE", "UPDATE"), False),
    # A JobQueue can be deleted only once it is DISABLED (AWS Batch DeleteJobQueue).
    Webhook("validate-jobqueues-delete", "jobqueues", ("DELETE",), False, name="jobqueues-delete"),
    Webhook("validate-jobdefinitions", "jobdefinitions", ("CREATE", "UPDATE"), True),
    Webhook("validate-jobschedules", "jobschedules", ("CREATE", "UPDATE"), True),
)

_PATHS: dict[str, str] = {
    "JobQueue": "jobqueues",
    "ComputeEnvironment": "computeenvironments",
    "SchedulingPolicy": "schedulingpolicies",
    "ConsumableResource": "consumableresources",
    "ServiceEnvironment": "serviceenvironments",
}


@dataclass(frozen=True)
class WebhookOptions:
    """The webhook's settings (module docstring)."""

    port: int
    addr: str
    cert_dir: Path
    configure: str | None = None
    ca_file: Path | None = None
    selector: tuple[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookOptions | None:
        """None when KUBATCH_WEBHOOK_PORT is unset; ValueError for an incomplete configuration."""
        env = os.environ if env is None else env
        port = env.get("KUBATCH_WEBHOOK_PORT", "").strip()
        if not port:
            return None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"KUBATCH_WEBHOOK_PORT: not a port number: {port!r}")
        cert_dir = env.get("KUBATCH_WEBHOOK_CERT_DIR", "").strip()
        if not cert_dir:
            raise ValueError("KUBATCH_WEBHOOK_CERT_DIR is required with KUBATCH_WEBHOOK_PORT (tls.crt, tls.key)")
        selector = None
        raw = env.get("KUBATCH_WEBHOOK_SELECTOR", "").strip()
        if raw:
            key, sep, value = raw.partition("=")
            if not sep or not key:
                raise ValueError(f"KUBATCH_WEBHOOK_SELECTOR: expected key=value, got {raw!r}")
            selector = (key, value)
        ca_file = env.get("KUBATCH_WEBHOOK_CA_FILE", "").strip()
        return cls(
            port=int(port),
            addr=env.get("KUBATCH_WEBHOOK_ADDR", "").strip() or "0.0.0.0",
            cert_dir=Path(cert_dir),
            configure=env.get("KUBATCH_WEBHOOK_CONFIGURE", "").strip() or None,
            ca_file=Path(ca_file) if ca_file else Path(cert_dir) / "ca.crt",
            selector=selector,
        )

    @property
    def certfile(self) -> Path:
        return self.cert_dir / "tls.crt"

    @property
    def pkeyfile(self) -> Path:
        return self.cert_dir / "tls.key"


def webhook_configuration(name: str, base_url: str, ca_bundle: bytes, selector: tuple[str, str] | None = None) -> JSON:
    """The ValidatingWebhookConfiguration for a webhook served at ``base_url`` (local use)."""
    webhooks: list[JSON] = []
    for hook in WEBHOOKS:
        entry: JSON = {
            "name": hook.configuration_name,
            "clientConfig": {
                "url": f"{base_url.rstrip('/')}/{hook.id}",
                "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
            },
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": [VERSION],
                    "operations": list(hook.operations),
                    "resources": [hook.plural],
                    "scope": "Namespaced" if hook.namespaced else "Cluster",
                }
            ],
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }
        if selector is not None:
            match = {"matchLabels": {selector[0]: selector[1]}}
            entry["namespaceSelector" if hook.namespaced else "objectSelector"] = match
        webhooks.append(entry)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubatch"}},
        "webhooks": webhooks,
    }


def revision_records(
    revisions: Iterable[Mapping[str, Any]], definition: Mapping[str, Any] | None
) -> list[RevisionRecord]:
    """ControllerRevisions of one definition as revision records: those ``definition`` registered
    (retired ones, kept for the jobs of a deleted definition, are INACTIVE); deregistration is
    applied later, by ``kubatch.core.admission.definition_records``."""
    return stored_records(revisions, definition)


class Unsure(Exception):
    """The checks could not be completed (the API server did not answer as expected)."""


UserKey = tuple[str, str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]


def user_key(userinfo: Mapping[str, Any]) -> UserKey:
    """Everything of a user the authorizer may look at, hashable."""
    extra = userinfo.get("extra") or {}
    return (
        str(userinfo.get("username") or ""),
        str(userinfo.get("uid") or ""),
        tuple(sorted(str(g) for g in userinfo.get("groups") or [])),
        tuple(sorted((str(k), tuple(str(x) for x in v or [])) for k, v in extra.items())),
    )


def access_review(userinfo: Mapping[str, Any], namespace: str, permission: Permission) -> JSON:
    """The SubjectAccessReview asking whether ``userinfo`` has ``permission`` in ``namespace``."""
    username, uid, groups, extra = user_key(userinfo)
    spec: JSON = {
        "user": username,
        "groups": list(groups),
        "resourceAttributes": {
            "namespace": namespace,
            "verb": permission.verb,
            "group": permission.group,
            "resource": permission.resource,
            **({"name": permission.name} if permission.name else {}),
        },
    }
    if uid:
        spec["uid"] = uid
    if extra:
        spec["extra"] = {k: list(v) for k, v in extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class AccessReviewer:
    """Asks the API server what a user may do (SubjectAccessReviews), reusing allowed answers for
    ``ttl`` seconds. ``reviews`` and ``review_seconds`` count the reviews made and their time."""

    def __init__(self, kube: Kube, ttl: float = ACCESS_TTL, clock: Any = time.monotonic) -> None:
        self.kube = kube
        self.ttl = ttl
        self.clock = clock
        self._allowed: dict[tuple[UserKey, str, Permission], float] = {}
        self.reviews = 0
        self.review_seconds = 0.0

    async def answers(
        self, userinfo: Mapping[str, Any], namespace: str, permissions: Iterable[Permission]
    ) -> dict[Permission, bool]:
        """Whether the user has each permission in ``namespace``; ``Unsure`` when a review fails."""
        wanted = set(permissions)
        key = user_key(userinfo)
        if MASTERS in key[2]:
            return dict.fromkeys(wanted, True)
        now = self.clock()
        out: dict[Permission, bool] = {}
        ask: list[Permission] = []
        for permission in wanted:
            expiry = self._allowed.get((key, namespace, permission))
            if expiry is not None and now < expiry:
                out[permission] = True
            else:
                ask.append(permission)
        results = await asyncio.gather(*(self._review(userinfo, namespace, p) for p in ask))
        now = self.clock()
        if len(self._allowed) > ACCESS_CACHE_SIZE:
            self._allowed.clear()
        for permission, allowed in zip(ask, results, strict=True):
            out[permission] = allowed
            if allowed:
                self._allowed[(key, namespace, permission)] = now + self.ttl
        return out

    async def _review(self, userinfo: Mapping[str, Any], namespace: str, permission: Permission) -> bool:
        started = time.monotonic()
        try:
            result = await self.kube.request(
                "POST", ACCESS_PATH, body=access_review(userinfo, namespace, permission), timeout=1.5, retries=1
            )
        except ApiError as e:
            raise Unsure(f"SubjectAccessReview for {permission}: {e}") from e
        finally:
            self.reviews += 1
            self.review_seconds += time.monotonic() - started
        status = (result or {}).get("status") or {}
        return status.get("allowed") is True and status.get("denied") is not True


class Admission:
    """Builds the rules' world from the view (and the API server where needed) and runs the rules."""

    def __init__(self, kube: Kube, view: View, synced: asyncio.Event, reviewer: AccessReviewer | None = None) -> None:
        self.kube = kube
        self.view = view
        self.synced = synced
        self.reviewer = reviewer or AccessReviewer(kube)
        #: The operator's own user name (``whoami``): its BatchJobs for JobSchedules are not checked.
        self.identity: str | None = None
        self._labels: dict[str, tuple[float, dict[str, str] | None]] = {}

    async def access(
        self, kind: AccessKind, obj: Mapping[str, Any], old: Mapping[str, Any] | None, userinfo: Mapping[str, Any]
    ) -> list[Violation]:
        """What ``obj`` uses that the user may not use (``kubatch.core.access``); ``Unsure`` when the
        definition or a review cannot be had."""
        ns = str((obj.get("metadata") or {}).get("namespace") or "")
        user = describe_user(userinfo)
        job_uses: list[JobUse] = []
        if kind == "BatchJob":
            if self.identity and userinfo.get("username") == self.identity and scheduled_by(obj):
                return []  # a run of a JobSchedule, whose author was checked (kubatch.core.access)
            world = World(namespace=ns)
            await self._definition(obj, world)
            job_uses = batch_job_uses(obj, world)
            uses = [u.use for u in job_uses]
        elif kind == "JobSchedule":
            world = World(namespace=ns)
            template = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
            await self._definition({"metadata": obj.get("metadata") or {}, "spec": template}, world)
            job_uses = schedule_uses(obj, world, old)
            uses = [u.use for u in job_uses]
        else:
            old_spec = (old.get("spec") or {}) if old is not None else None
            uses = new_definition_uses(obj.get("spec") or {}, old_spec)
        if not uses:
            return []
        answers = await self.reviewer.answers(userinfo, ns, first_round(uses))
        more = still_open(uses, answers)
        if more:
            answers |= await self.reviewer.answers(userinfo, ns, more)
        if kind == "JobDefinition":
            return definition_violations(uses, answers, user, ns)
        return job_violations(job_uses, answers, user, ns)

    async def whoami(self) -> str | None:
        """The operator's own user name (a SelfSubjectReview), None when it cannot be had."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            review = await self.kube.request("POST", WHOAMI_PATH, body=body, timeout=5, retries=2)
        except ApiError as e:
            log.warning(
                "the webhook does not know the operator's user name (%s): runs of JobSchedules are checked as its own",
                e,
            )
            return None
        name = (((review or {}).get("status") or {}).get("userInfo") or {}).get("username")
        return str(name) if name else None

    async def _definition(self, job: Mapping[str, Any], world: World) -> None:
        """The job's definition and revisions into ``world``: from the view when it is synced and
        holds them, else from the API server."""
        refs = [r for r in references("BatchJob", job, world) if r[0] == "JobDefinition"]
        for ref in refs:
            if not (self.synced.is_set() and self._from_view(ref, world)):
                await self._from_api(ref, world)

    async def check(self, kind: Kind, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Violation]:
        """The violations of ``obj``, confirmed against the API server before any is returned."""
        violations = await self._check(kind, obj, old, fresh=False)
        if violations:
            violations = await self._check(kind, obj, old, fresh=True)
        return violations

    async def _check(
        self, kind: Kind, obj: Mapping[str, Any], old: Mapping[str, Any] | None, *, fresh: bool
    ) -> list[Violation]:
        ns = str((obj.get("metadata") or {}).get("namespace") or "")
        world = World(namespace=ns)
        if kind == "BatchJob":
            world.namespace_labels = await self._namespace_labels(ns, fresh=fresh)
        await self._fill(kind, obj, world, fresh=fresh)
        if kind == "BatchJob":
            self._add_reachable_jobs(obj, world)
            return validate_batch_job(obj, world)
        if kind == "JobQueue":
            return validate_job_queue(obj, world, old)
        return validate_job_definition(obj, world, old)

    async def _fill(self, kind: Kind, obj: Mapping[str, Any], world: World, *, fresh: bool) -> None:
        """Put every object the rules will look at into ``world``: from the view, else (or, when
        ``fresh``, always) from the API server. References are followed a few levels (queue ->
        its environments; definition -> its consumable resources)."""
        tried: set[Ref] = set()
        for _ in range(4):
            todo = [r for r in references(kind, obj, world) if r not in tried]
            if not todo:
                return
            tried.update(todo)
            remote = [r for r in todo if fresh or not self._from_view(r, world)]
            await asyncio.gather(*(self._from_api(r, world) for r in remote))

    def _from_view(self, ref: Ref, world: World) -> bool:
        kind, name = ref
        if kind == "JobDefinition":
            key = f"{world.namespace}/{name}"
            definition = self.view.definitions.get(key)
            stored = self.view.revisions.get(key)
            if definition is None and not stored:
                return False
            if definition is not None:
                world.definitions[name] = definition
            world.revisions[name] = revision_records((stored or {}).values(), definition)
            return True
        if kind == "BatchJob":
            job = self.view.jobs.get(f"{world.namespace}/{name}")
            if job is None:
                return False
            world.jobs[name] = job
            return True
        found = {
            "JobQueue": self.view.queues,
            "ComputeEnvironment": self.view.envs,
            "SchedulingPolicy": self.view.policies,
            "ConsumableResource": self.view.consumables,
            "ServiceEnvironment": self.view.service_envs,
        }[kind].get(name)
        if found is None:
            return False
        world.store(kind)[name] = found
        return True

    async def _from_api(self, ref: Ref, world: World) -> None:
        kind, name = ref
        ns = world.namespace
        if kind == "JobDefinition":
            definition, revisions = await asyncio.gather(
                self._get(f"{GROUP_PATH}/namespaces/{ns}/jobdefinitions/{name}"),
                self._get(
                    f"/apis/apps/v1/namespaces/{ns}/controllerrevisions",
                    labelSelector=f"{LABEL_JOB_DEFINITION}={name}",
                ),
            )
            world.definitions.pop(name, None)
            if definition is not None:
                world.definitions[name] = definition
            world.revisions[name] = revision_records((revisions or {}).get("items") or [], definition)
            return
        path = (
            f"{GROUP_PATH}/namespaces/{ns}/batchjobs/{name}"
            if kind == "BatchJob"
            else f"{GROUP_PATH}/{_PATHS[kind]}/{name}"
        )
        found = await self._get(path)
        store = world.store(kind)
        store.pop(name, None)
        if found is not None:
            store[name] = found

    async def _get(self, path: str, **params: str) -> JSON | None:
        """GET with a short deadline; None for 404; ``Unsure`` for any other failure."""
        try:
            result: JSON = await self.kube.request("GET", path, params=params or None, timeout=1.5, retries=1)
        except ApiError as e:
            if e.status == 404:
                return None
            raise Unsure(str(e)) from e
        return result

    def _add_reachable_jobs(self, job: Mapping[str, Any], world: World) -> None:
        """The jobs the new job reaches through dependsOn (a cycle through it can only use those)."""
        stack = list(world.jobs.values())
        seen = set(world.jobs)
        while stack:
            current = stack.pop()
            for entry in (current.get("spec") or {}).get("dependsOn") or []:
                name = entry.get("jobName") if isinstance(entry, Mapping) else None
                if not isinstance(name, str) or not name or name in seen:
                    continue
                seen.add(name)
                found = self.view.jobs.get(f"{world.namespace}/{name}")
                if found is not None:
                    world.jobs[name] = found
                    stack.append(found)

    async def _namespace_labels(self, ns: str, *, fresh: bool) -> dict[str, str] | None:
        now = time.monotonic()
        cached = self._labels.get(ns)
        if cached is not None and not fresh and now - cached[0] < NAMESPACE_TTL:
            return cached[1]
        namespace = await self._get(f"/api/v1/namespaces/{ns}")
        labels = dict(((namespace or {}).get("metadata") or {}).get("labels") or {}) if namespace else None
        if len(self._labels) > 1000:
            self._labels.clear()
        self._labels[ns] = (now, labels)
        return labels


async def _violations(
    kind: Kind,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    memo: kopf.Memo,
    warnings: list[str],
    userinfo: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Run the cross-object checks (a failure of the checker allows the request with a warning) and,
    beside them, the access checks (a failure refuses it)."""
    admission: Admission | None = memo.get("admission")
    if admission is None:
        return [Violation("metadata", "kubatch admission is starting: try again in a few seconds")]
    checks = [_cross_object(admission, kind, body, old, warnings)]
    if kind == "BatchJob" or kind == "JobDefinition":
        checks.append(_access(admission, kind, body, old, userinfo or {}))
    return [v for found in await asyncio.gather(*checks) for v in found]


async def _cross_object(
    admission: Admission, kind: Kind, body: Mapping[str, Any], old: Mapping[str, Any] | None, warnings: list[str]
) -> list[Violation]:
    if not admission.synced.is_set():
        warnings.append(NOT_CHECKED.format("the operator's cluster view is not synced yet"))
        return []
    try:
        return await asyncio.wait_for(admission.check(kind, body, old), timeout=CHECK_TIMEOUT)
    except Exception as e:  # never reject because the checker failed: the controller re-checks
        log.warning("admission check of %s skipped: %r", kind, e)
        warnings.append(NOT_CHECKED.format(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__))
        return []


async def _access(
    admission: Admission,
    kind: AccessKind,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    userinfo: Mapping[str, Any],
) -> list[Violation]:
    try:
        return await asyncio.wait_for(admission.access(kind, body, old, userinfo), timeout=CHECK_TIMEOUT)
    except Exception as e:  # fail closed: no one can check who created the object later
        log.warning("access check of %s failed: %r", kind, e)
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return [
            Violation(
                "spec",
                f'kubatch admission could not check what user "{describe_user(userinfo)}" may use ({reason}); '
                "try again",
            )
        ]


def _reject(violations: list[Violation]) -> None:
    if violations:
        raise kopf.AdmissionError(join(violations), code=400)


async def validate_batchjobs(
    *, body: kopf.Body, memo: kopf.Memo, warnings: list[str], userinfo: Mapping[str, Any] | None = None, **_: Any
) -> None:
    """BatchJob CREATE: queue, definition, dependencies, shares, consumables, overrides, privileges,
    and what the submitter may use."""
    _reject(await _violations("BatchJob", dict(body), None, memo, warnings, userinfo))


async def validate_jobqueues(
    *, body: kopf.Body, memo: kopf.Memo, warnings: list[str], old: kopf.Body | None = None, **_: Any
) -> None:
    """JobQueue CREATE/UPDATE: compute environments and scheduling policy exist."""
    _reject(await _violations("JobQueue", dict(body), dict(old) if old is not None else None, memo, warnings))


async def validate_jobdefinitions(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    warnings: list[str],
    old: kopf.Body | None = None,
    userinfo: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    """JobDefinition CREATE/UPDATE: consumable resources exist; multi-node ranges have images; what
    the definition uses is allowed to its author."""
    previous = dict(old) if old is not None else None
    _reject(await _violations("JobDefinition", dict(body), previous, memo, warnings, userinfo))


async def validate_jobqueue_delete(*, body: kopf.Body, **_: Any) -> None:
    """JobQueue DELETE: only a DISABLED queue can be deleted (AWS Batch DeleteJobQueue: "You must
    first disable submissions for a queue"). Needs nothing but the queue itself (the request's
    oldObject), so it never waits for the view."""
    refusal = queue_deletion_refusal(dict(body))
    if refusal:
        raise kopf.AdmissionError(refusal, code=400)


async def validate_jobschedules(
    *,
    body: kopf.Body,
    memo: kopf.Memo | None = None,
    old: kopf.Body | None = None,
    userinfo: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    """JobSchedule CREATE/UPDATE: the schedule parses and can run, and its time zone exists (pure:
    checked also before the view is synced); its author may use what its runs would use."""
    found = validate_job_schedule(dict(body))
    admission: Admission | None = (memo or kopf.Memo()).get("admission")
    if admission is None:
        found.append(Violation("metadata", "kubatch admission is starting: try again in a few seconds"))
    else:
        previous = dict(old) if old is not None else None
        found += await _access(admission, "JobSchedule", dict(body), previous, userinfo or {})
    _reject(found)


_registered = False


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Register the validating handlers (only when the webhook is served: kopf refuses to start with
    admission handlers and no server)."""
    global _registered
    if _registered:
        return
    on = kopf.on.validate
    hooks = {hook.id: hook for hook in WEBHOOKS}

    def kw(hook_id: str) -> dict[str, Any]:
        hook = hooks[hook_id]
        return {"id": hook.id, "operations": list(hook.operations), "registry": registry}

    on(GROUP, VERSION, "batchjobs", **kw("validate-batchjobs"))(validate_batchjobs)
    on(GROUP, VERSION, "jobqueues", **kw("validate-jobqueues"))(validate_jobqueues)
    on(GROUP, VERSION, "jobqueues", **kw("validate-jobqueues-delete"))(validate_jobqueue_delete)
    on(GROUP, VERSION, "jobdefinitions", **kw("validate-jobdefinitions"))(validate_jobdefinitions)
    on(GROUP, VERSION, "jobschedules", **kw("validate-jobschedules"))(validate_jobschedules)
    _registered = True


def access_metrics(reviewer: AccessReviewer) -> Iterator[Metric]:
    """The reviews made and their time, as counters read at scrape time."""
    reviews = CounterMetricFamily(
        "kubatch_admission_access_reviews", "SubjectAccessReviews made by the webhook (cached answers not counted)."
    )
    reviews.add_metric([], reviewer.reviews)
    seconds = CounterMetricFamily(
        "kubatch_admission_access_review_seconds", "Time spent waiting for SubjectAccessReviews."
    )
    seconds.add_metric([], reviewer.review_seconds)
    yield reviews
    yield seconds


async def setup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    kube: Kube,
    view: View,
    synced: asyncio.Event,
    options: WebhookOptions,
    metrics: Metrics | None = None,
) -> None:
    """Serve the webhook (from the startup handler) and, for local use, configure the API server."""
    settings.admission.server = kopf.WebhookServer(
        addr=options.addr,
        port=options.port,
        certfile=str(options.certfile),
        pkeyfile=str(options.pkeyfile),
        cafile=str(options.ca_file) if options.ca_file and options.ca_file.exists() else None,
    )
    settings.admission.managed = None  # the chart (or `configure` below) owns the configuration
    memo.admission = Admission(kube, view, synced)
    memo.admission.identity = await memo.admission.whoami()
    if metrics is not None:
        reviewer = memo.admission.reviewer
        metrics.add_collector(lambda: access_metrics(reviewer))
    if options.configure:
        ca_file = options.ca_file or options.certfile
        body = webhook_configuration(
            options.configure, f"https://127.0.0.1:{options.port}", ca_file.read_bytes(), options.selector
        )
        await kube.apply(f"{CONFIGURATION_PATH}/{options.configure}", body, field_manager="kubatch-webhook")
        log.info("validating webhook configuration %s -> port %d", options.configure, options.port)
