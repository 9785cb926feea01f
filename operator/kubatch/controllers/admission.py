"""The validating admission webhook: cross-object checks (``kubatch.core.admission``) served by kopf.

Handlers (their ids are the URL paths, e.g. ``https://<service>/validate-batchjobs``):
``validate-batchjobs`` (BatchJob CREATE), ``validate-jobqueues`` (JobQueue CREATE, UPDATE),
``validate-jobqueues-delete`` (JobQueue DELETE: only a DISABLED queue goes),
``validate-jobdefinitions`` (JobDefinition CREATE, UPDATE), ``validate-jobschedules`` (JobSchedule
CREATE, UPDATE: the schedule parses and can run, the time zone exists; needs no view).

The world the rules look at comes from the runtime's cluster view; an object a request names that the
view does not hold yet (it may lag an object created a moment ago) is fetched from the API server, and
before anything is rejected every named object is fetched again from the API server, so a rejection
never rests on a stale cache. When the checks cannot run (view not synced, API errors, time running
out) the request is allowed with a warning: the controller re-checks at reconcile time, and the
webhook configuration uses ``failurePolicy: Ignore`` for the same reason.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kopf

from kubatch.api.constants import GROUP, VERSION
from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import LABEL_JOB_DEFINITION, View
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

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Kind = Literal["BatchJob", "JobQueue", "JobDefinition"]
GROUP_PATH = f"/apis/{GROUP}/{VERSION}"
CONFIGURATION_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CHECK_TIMEOUT = 3.5  # seconds; the API server gives the webhook 5
NAMESPACE_TTL = 5.0  # seconds a namespace's labels are cached (a rejection always re-reads them)
NOT_CHECKED = "kubatch admission: cross-object checks skipped ({}); the controller checks the object when it reconciles"


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


class Admission:
    """Builds the rules' world from the view (and the API server where needed) and runs the rules."""

    def __init__(self, kube: Kube, view: View, synced: asyncio.Event) -> None:
        self.kube = kube
        self.view = view
        self.synced = synced
        self._labels: dict[str, tuple[float, dict[str, str] | None]] = {}

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
    kind: Kind, body: Mapping[str, Any], old: Mapping[str, Any] | None, memo: kopf.Memo, warnings: list[str]
) -> list[Violation]:
    """Run the checks; any failure of the checker itself allows the request with a warning."""
    admission: Admission | None = memo.get("admission")
    if admission is None or not admission.synced.is_set():
        warnings.append(NOT_CHECKED.format("the operator's cluster view is not synced yet"))
        return []
    try:
        return await asyncio.wait_for(admission.check(kind, body, old), timeout=CHECK_TIMEOUT)
    except Exception as e:  # never reject because the checker failed: the controller re-checks
        log.warning("admission check of %s skipped: %r", kind, e)
        warnings.append(NOT_CHECKED.format(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__))
        return []


def _reject(violations: list[Violation]) -> None:
    if violations:
        raise kopf.AdmissionError(join(violations), code=400)


async def validate_batchjobs(*, body: kopf.Body, memo: kopf.Memo, warnings: list[str], **_: Any) -> None:
    """BatchJob CREATE: queue, definition, dependencies, shares, consumables, overrides, privileges."""
    _reject(await _violations("BatchJob", dict(body), None, memo, warnings))


async def validate_jobqueues(
    *, body: kopf.Body, memo: kopf.Memo, warnings: list[str], old: kopf.Body | None = None, **_: Any
) -> None:
    """JobQueue CREATE/UPDATE: compute environments and scheduling policy exist."""
    _reject(await _violations("JobQueue", dict(body), dict(old) if old is not None else None, memo, warnings))


async def validate_jobdefinitions(
    *, body: kopf.Body, memo: kopf.Memo, warnings: list[str], old: kopf.Body | None = None, **_: Any
) -> None:
    """JobDefinition CREATE/UPDATE: consumable resources exist; multi-node ranges have images."""
    _reject(await _violations("JobDefinition", dict(body), dict(old) if old is not None else None, memo, warnings))


async def validate_jobschedules(*, body: kopf.Body, **_: Any) -> None:
    """JobSchedule CREATE/UPDATE: the schedule parses and can run, and its time zone exists (pure:
    checked also before the view is synced)."""
    _reject(validate_job_schedule(dict(body)))


async def validate_jobqueue_delete(*, body: kopf.Body, **_: Any) -> None:
    """JobQueue DELETE: only a DISABLED queue can be deleted (AWS Batch DeleteJobQueue: "You must
    first disable submissions for a queue"). Needs nothing but the queue itself (the request's
    oldObject), so it never waits for the view."""
    refusal = queue_deletion_refusal(dict(body))
    if refusal:
        raise kopf.AdmissionError(refusal, code=400)


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


async def setup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    kube: Kube,
    view: View,
    synced: asyncio.Event,
    options: WebhookOptions,
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
    if options.configure:
        ca_file = options.ca_file or options.certfile
        body = webhook_configuration(
            options.configure, f"https://127.0.0.1:{options.port}", ca_file.read_bytes(), options.selector
        )
        await kube.apply(f"{CONFIGURATION_PATH}/{options.configure}", body, field_manager="kubatch-webhook")
        log.info("validating webhook configuration %s -> port %d", options.configure, options.port)
