"""Service jobs: queued by kubatch, run by another controller (AWS Batch SubmitServiceJob; pure, no I/O).

A service job is a BatchJob with ``spec.serviceJobType`` and ``spec.serviceRequestPayload``. It
waits RUNNABLE in a service job queue until the queue's ServiceEnvironment has room for it
(:mod:`kubatch.scheduler.service` decides), then kubatch creates its *workload* from the payload and
the workload's own controller runs it. For the built-in type ``KUBERNETES_JOB`` the workload is a
``batch/v1`` Job run by the cluster's Job controller. This module owns:

* the workload types (:data:`WORKLOAD_TYPES`): what kind of object a service type creates, how many
  instances it holds, and how its status reads as a job state. ``KUBERNETES_JOB`` is built in;
  further types (a custom resource with a ``suspend`` field, say) are declared by the operator's
  configuration and made into workload types by :mod:`kubatch.core.workload_types`;
* the workload of an attempt (:func:`build_workload`): the payload (JSON or YAML text, at most
  10 KiB: :func:`payload_problem`) with kubatch's name ``<job>-a<attempt>``, namespace, labels
  (``kubatch.dev/service-job``, job id, queue, service environment, attempt; also on the pod
  template), owner (the BatchJob) and ``spec.suspend: false``; ``timeoutConfig.attemptDurationSeconds``
  becomes ``spec.activeDeadlineSeconds`` unless the payload's is shorter;
* the state machine (:func:`reconcile_service`), a function of (written status, workloads)::

      SUBMITTED -> RUNNABLE -> SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED
                      ^-------------------- retry ------------------------------'

  RUNNABLE -> SCHEDULED when the attempt's workload exists (the dispatcher created it); then, from
  the workload's status (batch/v1 Job: ``status.active`` pods -> STARTING, ``status.ready`` pods ->
  RUNNING, the Complete / Failed condition -> the attempt ended). States only move forward: a
  state that was passed unseen is recorded on the way (one event each). The statusReason of an
  ended attempt is the workload's, prefixed as AWS prefixes SageMaker's:
  ``Received status from Kubernetes: <condition reason>: <message>``. A workload that vanished
  ends its attempt with ``Received status from Kubernetes: Job <name> was deleted``; a payload the
  API server refuses ends it with the API server's reason and message (the dispatcher reports it:
  ``ServiceContext.create_failure``);
* retries: ``retryStrategy.attempts`` (1 to 10) counts every placement into RUNNABLE, the first
  included; ``evaluateOnExit`` entries are matched on the attempt's statusReason only (the first
  match decides; none matching retries while attempts remain: ``core.retry.decide_retry``). A
  retried job goes back to RUNNABLE and its next attempt gets a new workload (``-a<n+1>``); the
  finished workload stays (owned by the BatchJob, deleted with it). Attempts are recorded with
  ``serviceResourceId`` ``{name: JobUid, value: <the Job's uid>}``, startedAt (the workload's start),
  stoppedAt and statusReason;
* cancel and terminate: ``spec.cancel`` fails a job not yet SCHEDULED (no effect after, as
  CancelJob on a STARTING job); ``spec.terminate`` does the same and, for a SCHEDULED, STARTING or
  RUNNING job, deletes its workload (propagation Background: its pods get their grace period) and
  fails the job with the reason. A terminated or cancelled job is never retried;
* adoption: a suspended workload labelled ``kubatch.dev/job-queue`` (a ``batch/v1`` Job someone
  created) becomes a service job of that queue (:func:`adoption_job`): a BatchJob of the workload's
  name, owned by the workload (deleting the Job deletes it), whose annotation
  ``kubatch.dev/workload`` names it and whose one attempt is that workload. It is RUNNABLE while the
  workload is suspended (a suspended workload holds no capacity) and SCHEDULED once kubatch has
  unsuspended it (:func:`unsuspend_patch`); it has no retries (its payload is only a reference).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubatch.api.batch_job import MAX_SERVICE_PAYLOAD_BYTES
from kubatch.api.constants import API_VERSION
from kubatch.core.job_ids import job_id as batch_job_id
from kubatch.core.lifecycle import JobEvent
from kubatch.core.podspec import owner_reference, pod_name
from kubatch.core.retry import decide_retry
from kubatch.core.states import DEFAULT_CANCEL_REASON, DEFAULT_TERMINATE_REASON
from kubatch.core.timestamps import iso

JSON = Mapping[str, Any]

#: On a workload and its pod template: the BatchJob's name (the informer selects workloads by it).
LABEL_SERVICE_JOB = "kubatch.dev/service-job"
LABEL_JOB_ID = "kubatch.dev/job-id"
LABEL_JOB_QUEUE = "kubatch.dev/job-queue"
LABEL_SERVICE_ENVIRONMENT = "kubatch.dev/service-environment"
LABEL_ATTEMPT = "kubatch.dev/attempt"
#: The capacity unit of instances of any type (a workload that selects no instance type).
NUM_INSTANCES = "NUM_INSTANCES"
#: The node label whose value, selected by a workload's pod template, is its capacity unit under
#: quota management.
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
#: The statusReason of a job whose workload is being stopped by a preemption starts with this (AWS).
PREEMPTION_PREFIX = "PREEMPTION_IN_PROGRESS: "
#: How many preempted attempts status.preemptionSummary keeps.
PREEMPTION_WINDOW = 5
#: On a Job to adopt into a quota-managed queue: the quota share it runs in (spec.quotaShareName).
LABEL_QUOTA_SHARE = "kubatch.dev/quota-share"
#: On an adopted workload's BatchJob: the name of the workload it adopted.
ANNOTATION_WORKLOAD = "kubatch.dev/workload"

# The states of a service job, in order.
SUBMITTED = "SUBMITTED"
RUNNABLE = "RUNNABLE"
SCHEDULED = "SCHEDULED"
STARTING = "STARTING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
#: The forward path; FAILED may follow any state before SUCCEEDED.
PATH: tuple[str, ...] = (SUBMITTED, RUNNABLE, SCHEDULED, STARTING, RUNNING, SUCCEEDED)
TERMINAL = frozenset({SUCCEEDED, FAILED})
#: States whose workload holds capacity in its service environment.
HOLDING = frozenset({SCHEDULED, STARTING, RUNNING})
#: Events of these states say only that a job moved on: posted at the `all` level only.
ROUTINE_EVENTS = frozenset({"JobSubmitted", "JobRunnable", "JobScheduled", "JobStarting", "JobRunning"})


class PayloadError(ValueError):
    """The payload cannot be the workload of its service type."""


# --------------------------------------------------------------------------------------------------
# workload types


@dataclass(frozen=True)
class Observation:
    """What a workload's status says: the state it has reached (SCHEDULED, STARTING, RUNNING,
    SUCCEEDED or FAILED) and, once ended, the service's reason (without the prefix) and times."""

    state: str
    reason: str = ""
    started_at: str | None = None
    stopped_at: str | None = None


def spec_template(workload: JSON) -> list[Any]:
    """The pod template of a workload that has one at ``spec.template`` (a batch/v1 Job)."""
    spec = workload.get("spec")
    return [spec.get("template")] if isinstance(spec, Mapping) else []


@dataclass(frozen=True)
class WorkloadType:
    """How one serviceEnvironmentType is run: the kind kubatch creates from the payload, how many
    instances a workload holds, how its status reads, and the words its attempts are recorded with."""

    name: str
    api_version: str
    kind: str
    plural: str
    #: Who "Received status from <service>: " names in statusReasons.
    service: str
    #: serviceResourceId.name of the attempts: what identifies the workload.
    resource_id_name: str
    instances: Callable[[JSON], int]
    observe: Callable[[JSON], Observation]
    #: Fits kubatch's fields into the workload (suspend, time limit).
    prepare: Callable[[dict[str, Any], int | None], None]
    #: Whether a workload is suspended (created but held back: it holds no capacity).
    suspended: Callable[[JSON], bool]
    #: The workload's pod templates (kubatch labels them; the first one's instance type is its unit).
    pod_templates: Callable[[JSON], list[Any]] = field(default=lambda w: spec_template(w))
    #: Where the workload's suspend field is (a boolean).
    suspend_path: tuple[str, ...] = ("spec", "suspend")

    def suspend_patch(self, value: bool) -> dict[str, Any]:
        """A merge patch setting the workload's suspend field to ``value``."""
        out: Any = value
        for part in reversed(self.suspend_path):
            out = {part: out}
        return out  # type: ignore[no-any-return]

    def collection_path(self, namespace: str) -> str:
        return f"{self._group_path()}/namespaces/{namespace}/{self.plural}"

    def cluster_path(self) -> str:
        """The workloads of every namespace (what an informer lists and watches)."""
        return f"{self._group_path()}/{self.plural}"

    def _group_path(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def status_reason(self, reason: str) -> str:
        return f"Received status from {self.service}: {reason}"


def job_instances(workload: JSON) -> int:
    """A batch/v1 Job's instances: the pods it may run at once, ``spec.parallelism`` (default 1),
    at most ``spec.completions`` when that is set."""
    spec = workload.get("spec") or {}
    parallelism = spec.get("parallelism")
    count = 1 if parallelism is None else int(parallelism)
    completions = spec.get("completions")
    if completions is not None:
        count = min(count, int(completions))
    return max(0, count)


def _condition(workload: JSON, kind: str) -> Mapping[str, Any] | None:
    for c in (workload.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c  # type: ignore[no-any-return]
    return None


def _reason(condition: Mapping[str, Any], fallback: str) -> str:
    reason = str(condition.get("reason") or fallback)
    message = str(condition.get("message") or "").strip()
    return f"{reason}: {message}" if message else reason


def observe_job(workload: JSON) -> Observation:
    """A batch/v1 Job's state: Complete -> SUCCEEDED, Failed -> FAILED (their reason and message),
    a ready pod -> RUNNING, an active pod -> STARTING, else SCHEDULED (the Job controller has not
    started a pod yet, or is between pods)."""
    st = workload.get("status") or {}
    started = st.get("startTime")
    done = _condition(workload, "Complete")
    if done is not None:
        stopped = st.get("completionTime") or done.get("lastTransitionTime")
        return Observation(SUCCEEDED, _reason(done, "Complete"), started, stopped)
    failed = _condition(workload, "Failed")
    if failed is not None:
        return Observation(FAILED, _reason(failed, "Failed"), started, failed.get("lastTransitionTime"))
    if int(st.get("ready") or 0) > 0:
        return Observation(RUNNING, started_at=started)
    if int(st.get("active") or 0) > 0:
        return Observation(STARTING, started_at=started)
    return Observation(SCHEDULED, started_at=started)


def prepare_job(workload: dict[str, Any], timeout: int | None) -> None:
    """kubatch's part of a batch/v1 Job: it starts at once (spec.suspend false) and is stopped by
    the Job controller after ``timeout`` seconds (spec.activeDeadlineSeconds, unless shorter)."""
    spec = workload.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise PayloadError("serviceRequestPayload: spec must be an object")
    spec["suspend"] = False
    if timeout is not None:
        own = spec.get("activeDeadlineSeconds")
        spec["activeDeadlineSeconds"] = timeout if not isinstance(own, int) else min(own, timeout)


def job_suspended(workload: JSON) -> bool:
    return (workload.get("spec") or {}).get("suspend") is True


KUBERNETES_JOB = WorkloadType(
    name="KUBERNETES_JOB",
    api_version="batch/v1",
    kind="Job",
    plural="jobs",
    service="Kubernetes",
    resource_id_name="JobUid",
    instances=job_instances,
    observe=observe_job,
    prepare=prepare_job,
    suspended=job_suspended,
)

#: The known service types; configuration adds more (kubatch.core.workload_types.register).
WORKLOAD_TYPES: dict[str, WorkloadType] = {KUBERNETES_JOB.name: KUBERNETES_JOB}


def workload_type(name: str | None) -> WorkloadType | None:
    return WORKLOAD_TYPES.get(str(name or ""))


def type_of(workload: JSON) -> WorkloadType | None:
    """The type whose kind ``workload`` is."""
    for wtype in WORKLOAD_TYPES.values():
        if workload.get("kind") == wtype.kind and workload.get("apiVersion") == wtype.api_version:
            return wtype
    return None


def environment_validity(se: JSON) -> tuple[str, str]:
    """A service environment's status and statusReason: VALID, or INVALID when no workload type of
    its serviceEnvironmentType is known (it returns to VALID by itself once one is)."""
    kind = str((se.get("spec") or {}).get("serviceEnvironmentType") or "")
    if kind not in WORKLOAD_TYPES:
        known = ", ".join(sorted(WORKLOAD_TYPES))
        return "INVALID", f"CLIENT_ERROR - serviceEnvironmentType {kind} is not known to kubatch (known: {known})"
    return "VALID", ""


def environment_limits(se: JSON) -> dict[str, int]:
    """A service environment's capacity limits by capacityUnit (NUM_INSTANCES, instance types)."""
    out: dict[str, int] = {}
    for entry in (se.get("spec") or {}).get("capacityLimits") or []:
        out[str(entry.get("capacityUnit") or NUM_INSTANCES)] = int(entry.get("maxCapacity") or 0)
    return out


def instances_limit(se: JSON) -> int:
    """The limit a queue without quota shares is held to: the NUM_INSTANCES entry, else the sum of
    the entries (an environment of instance types only)."""
    limits = environment_limits(se)
    return limits[NUM_INSTANCES] if NUM_INSTANCES in limits else sum(limits.values())


def is_service_job(job: JSON) -> bool:
    return bool((job.get("spec") or {}).get("serviceJobType"))


# --------------------------------------------------------------------------------------------------
# payloads and workloads


def payload_problem(payload: Any) -> str | None:
    """Why a serviceRequestPayload cannot be accepted (admission), or None: at most 10 KiB of UTF-8,
    and a JSON (or YAML) object. What the object says is the service's to judge."""
    if not isinstance(payload, str):
        return "must be a JSON string"
    size = len(payload.encode("utf-8"))
    if size > MAX_SERVICE_PAYLOAD_BYTES:
        return f"is {size} bytes; a service request payload is at most {MAX_SERVICE_PAYLOAD_BYTES} bytes (10 KiB)"
    try:
        parse_payload(payload)
    except PayloadError as e:
        return str(e)
    return None


def parse_payload(payload: str) -> dict[str, Any]:
    """The payload as an object: JSON, else YAML (JSON is YAML too, YAML is friendlier by hand)."""
    try:
        value = json.loads(payload)
    except ValueError:
        try:
            value = yaml.safe_load(payload)
        except yaml.YAMLError as e:
            raise PayloadError(f"is neither JSON nor YAML: {e}") from None
    if not isinstance(value, dict):
        raise PayloadError("must be an object (a workload manifest)")
    return value


def workload_number(status: JSON | None) -> int:
    """The number of the next workload of a job (``<job>-a<n>``): its attempts and its preempted
    attempts so far, plus one. A preempted attempt is not in ``status.attempts`` (it uses none of
    retryStrategy.attempts) but had a workload of its own."""
    st = status or {}
    preempted = int((st.get("preemptionSummary") or {}).get("preemptedAttemptCount") or 0)
    return len(st.get("attempts") or []) + preempted + 1


def preempting(status: JSON | None) -> bool:
    """Whether a preemption of the job's current attempt is in progress (written in its status:
    SCHEDULED, STARTING or RUNNING with a ``PREEMPTION_IN_PROGRESS: ...`` statusReason)."""
    st = status or {}
    return st.get("status") in HOLDING and str(st.get("statusReason") or "").startswith(PREEMPTION_PREFIX)


def unit_of(job: JSON) -> str:
    """The capacity unit a job's capacityUsage is written in: NUM_INSTANCES, or under quota
    management (a job naming a quota share) the instance type its workload selects."""
    if not (job.get("spec") or {}).get("quotaShareName") or adopted_workload(job) is not None:
        return NUM_INSTANCES
    return workload_unit(job)


def workload_unit(job: JSON) -> str:
    """The capacity unit of a service job under quota management: the instance type its payload's
    pod template selects (nodeSelector ``node.kubernetes.io/instance-type``), else NUM_INSTANCES."""
    spec = job.get("spec") or {}
    wtype = workload_type(spec.get("serviceJobType")) or KUBERNETES_JOB
    try:
        payload = parse_payload(str(spec.get("serviceRequestPayload") or ""))
        templates = wtype.pod_templates(payload)
    except (PayloadError, AttributeError, TypeError):
        return NUM_INSTANCES
    template = templates[0] if templates else None
    pod = (template or {}).get("spec") if isinstance(template, dict) else None
    selector = (pod or {}).get("nodeSelector") if isinstance(pod, dict) else None
    value = selector.get(INSTANCE_TYPE_LABEL) if isinstance(selector, dict) else None
    return str(value) if isinstance(value, str) and value else NUM_INSTANCES


def workload_name(job_name: str, attempt: int, job: JSON | None = None) -> str:
    """The workload of an attempt: ``<job>-a<attempt>`` (long names shortened with a hash); for an
    adopted workload's job, the workload it adopted."""
    adopted = adopted_workload(job) if job is not None else None
    return adopted or pod_name(job_name, attempt)


def adopted_workload(job: JSON) -> str | None:
    """The workload a BatchJob adopted (its ``kubatch.dev/workload`` annotation), or None."""
    name = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_WORKLOAD)
    return str(name) if name else None


def adoption_job(workload: JSON, wtype: WorkloadType) -> dict[str, Any]:
    """The BatchJob that adopts a suspended workload labelled ``kubatch.dev/job-queue``: named as
    the workload, owned by it, its payload a reference to it (the workload is not copied)."""
    md = workload.get("metadata") or {}
    name = str(md.get("name", ""))
    queue = str((md.get("labels") or {}).get(LABEL_JOB_QUEUE, ""))
    share = str((md.get("labels") or {}).get(LABEL_QUOTA_SHARE, ""))
    reference = {"apiVersion": wtype.api_version, "kind": wtype.kind, "metadata": {"name": name}}
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": {
            "name": name,
            "namespace": md.get("namespace"),
            "annotations": {ANNOTATION_WORKLOAD: name},
            "ownerReferences": [
                {
                    "apiVersion": wtype.api_version,
                    "kind": wtype.kind,
                    "name": name,
                    "uid": md.get("uid"),
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "jobQueue": queue,
            "serviceJobType": wtype.name,
            "serviceRequestPayload": json.dumps(reference, separators=(",", ":")),
            **({"quotaShareName": share} if share else {}),
        },
    }


def adoption_labels(job: JSON) -> dict[str, str]:
    """The labels an adopted workload gets once its BatchJob exists (it is then a service job's)."""
    md = job.get("metadata") or {}
    return {LABEL_SERVICE_JOB: str(md.get("name", "")), LABEL_JOB_ID: str(md.get("uid", ""))}


def unsuspend_patch(service_environment: str, attempt: int, wtype: WorkloadType | None = None) -> dict[str, Any]:
    """The merge patch that starts an adopted workload: labelled with where it is placed, unsuspended."""
    labels = {LABEL_SERVICE_ENVIRONMENT: service_environment, LABEL_ATTEMPT: str(attempt)}
    patch: dict[str, Any] = {"metadata": {"labels": labels}}
    unsuspend = (wtype or KUBERNETES_JOB).suspend_patch(False)
    for key, value in unsuspend.items():
        patch[key] = {**patch[key], **value} if key in patch and isinstance(value, dict) else value
    return patch


def payload_instances(job: JSON, wtype: WorkloadType) -> int:
    """The instances a service job's workload will hold (1 when the payload cannot be read: the
    attempt then fails when its workload is created)."""
    try:
        return wtype.instances(parse_payload(str((job.get("spec") or {}).get("serviceRequestPayload") or "")))
    except (PayloadError, TypeError, ValueError):
        return 1


def build_workload(job: JSON, wtype: WorkloadType, attempt: int, *, service_environment: str) -> dict[str, Any]:
    """The workload of ``job``'s attempt ``attempt`` (module docstring); ``PayloadError`` when the
    payload cannot be one."""
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    workload = copy.deepcopy(parse_payload(str(spec.get("serviceRequestPayload") or "")))
    for key, want in (("apiVersion", wtype.api_version), ("kind", wtype.kind)):
        have = workload.get(key)
        if have is not None and have != want:
            raise PayloadError(f"a {wtype.name} payload is a {wtype.api_version} {wtype.kind}, not {key} {have!r}")
        workload[key] = want
    workload.pop("status", None)
    md = workload.get("metadata") or {}
    if not isinstance(md, dict):
        raise PayloadError("metadata must be an object")
    name = str(meta.get("name", ""))
    job_id = batch_job_id(job)  # the API's jobId label, else the uid (kubatch.core.job_ids)
    ours = {
        LABEL_SERVICE_JOB: name,
        LABEL_JOB_ID: job_id,
        LABEL_JOB_QUEUE: str(spec.get("jobQueue", "")),
        LABEL_SERVICE_ENVIRONMENT: service_environment,
        LABEL_ATTEMPT: str(attempt),
    }
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        raise PayloadError("metadata.labels must be an object")
    annotations = md.get("annotations") or {}
    metadata: dict[str, Any] = {
        "name": workload_name(name, attempt),
        "namespace": meta.get("namespace"),
        "labels": {**labels, **ours},
        "ownerReferences": [owner_reference(job)],
    }
    if annotations:
        metadata["annotations"] = annotations
    workload["metadata"] = metadata
    timeout = (spec.get("timeoutConfig") or {}).get("attemptDurationSeconds")
    wtype.prepare(workload, int(timeout) if timeout else None)
    for template in wtype.pod_templates(workload):
        if isinstance(template, dict):
            tmd = template.setdefault("metadata", {})
            if isinstance(tmd, dict):
                tmd["labels"] = {**(tmd.get("labels") or {}), **ours}
    return workload


# --------------------------------------------------------------------------------------------------
# the state machine


@dataclass(frozen=True)
class ServiceContext:
    """Everything outside the job that one step may look at."""

    now: float
    #: Why the job's queue cannot take a new job (a new job fails with it).
    queue_missing: str | None = None
    #: The job's queue is gone: a job not yet SCHEDULED fails with this reason.
    queue_deleted: str | None = None
    #: The scheduler's reason why this RUNNABLE job (a queue head) waits, and kubatch's detail.
    blocked_reason: str | None = None
    blocked_detail: str | None = None
    #: The scheduler cancelled this head (a jobStateTimeLimitActions entry): the job fails with it.
    forced_cancel: str | None = None
    #: Creating the current attempt's workload failed for good (statusReason of that attempt).
    create_failure: str | None = None
    #: The scheduler preempts this SCHEDULED, STARTING or RUNNING job: its statusReason
    #: (``PREEMPTION_IN_PROGRESS: ...``).
    preempt: str | None = None


@dataclass(frozen=True)
class DeleteWorkload:
    name: str
    uid: str | None
    #: Background (terminate: the Job goes at once, its pods after their grace period) or Foreground
    #: (preemption: the Job stays until its pods are gone, so the next attempt never runs beside them).
    propagation: str = "Background"


@dataclass
class ServiceDecision:
    """What the runtime should do: write ``status`` (None: unchanged), post ``events``, delete
    ``delete`` (after the status is written), suspend the (adopted) workloads named in ``suspend``
    (after the status is written). ``flush``: write the status at once (a preemption starts: the
    workload is stopped only once its status says so)."""

    status: dict[str, Any] | None = None
    events: list[JobEvent] = field(default_factory=list)
    delete: list[DeleteWorkload] = field(default_factory=list)
    suspend: list[str] = field(default_factory=list)
    flush: bool = False
    #: A preemption starts with this step (its deletes wait for the status to be written).
    preemption_started: bool = False


def _finished(workload: JSON, wtype: WorkloadType) -> bool:
    return wtype.observe(workload).state in TERMINAL


class _Step:
    def __init__(self, job: JSON, wtype: WorkloadType, ctx: ServiceContext) -> None:
        self.job = job
        self.name = str(job["metadata"]["name"])
        self.label = str((job.get("spec") or {}).get("jobName") or self.name)
        self.spec: Mapping[str, Any] = job.get("spec") or {}
        self.old = dict(job.get("status") or {})
        self.status: dict[str, Any] = copy.deepcopy(self.old)
        self.wtype = wtype
        self.ctx = ctx
        self.now = iso(ctx.now)
        self.d = ServiceDecision()

    @property
    def state(self) -> str:
        return str(self.status.get("status") or SUBMITTED)

    def reason(self, reason: str, detail: str = "") -> None:
        self.status["statusReason"] = reason
        if detail:
            self.status["statusReasonDetail"] = detail
        else:
            self.status.pop("statusReasonDetail", None)

    def move(self, target: str, reason: str = "", detail: str = "") -> None:
        """Walk forward to ``target`` (one event per state passed), then set the reason."""
        cur = self.state
        if cur == target:
            self.reason(reason, detail)
            return
        if target == FAILED or cur not in PATH or target not in PATH or PATH.index(target) < PATH.index(cur):
            path = [target]
        else:
            path = list(PATH[PATH.index(cur) + 1 : PATH.index(target) + 1])
        for st in path:
            text = f"{self.label} is {st}"
            if st == target and reason:
                text = f"{self.label}: {reason}" + (f" ({detail})" if detail else "")
            kind = "Warning" if st == FAILED else "Normal"
            self.d.events.append(JobEvent(kind, "Job" + st.capitalize(), text))
            if st == RUNNING and not self.status.get("startedAt"):
                self.status["startedAt"] = self.now
        self.status["status"] = target
        self.reason(reason, detail)
        if target in TERMINAL:
            self.status["stoppedAt"] = self.now
        if target == RUNNABLE:
            self.status["queuedAt"] = self.now
            for key in ("scheduledAt", "capacityUsage"):
                self.status.pop(key, None)
        if target in TERMINAL:
            self.status.pop("capacityUsage", None)

    def finish(self) -> ServiceDecision:
        if self.status != self.old:
            self.d.status = self.status
        return self.d


def _attempts(step: _Step) -> list[dict[str, Any]]:
    return list(step.status.get("attempts") or [])


def _end_attempt(
    step: _Step,
    attempt: int,
    reason: str,
    *,
    succeeded: bool = False,
    workload: JSON | None = None,
    obs: Observation | None = None,
    stopped: bool = False,
) -> None:
    """Record attempt ``attempt`` as ended with ``reason``; the job SUCCEEDED, is retried (RUNNABLE)
    or FAILED. ``stopped``: cancelled or terminated, never retried."""
    record: dict[str, Any] = {"statusReason": reason}
    if workload is not None:
        uid = (workload.get("metadata") or {}).get("uid")
        if uid:
            record["serviceResourceId"] = {"name": step.wtype.resource_id_name, "value": str(uid)}
    started = (obs.started_at if obs is not None else None) or step.status.get("scheduledAt")
    if started:
        record["startedAt"] = started
    record["stoppedAt"] = (obs.stopped_at if obs is not None else None) or step.now
    attempts = _attempts(step)
    if len(attempts) < attempt:
        attempts.append(record)
    step.status["attempts"] = attempts
    step.status["attemptCount"] = len(attempts)
    if succeeded:
        step.move(SUCCEEDED, reason)
        return
    # An adopted workload is the job's only attempt: there is nothing to make a second one from.
    stopped = stopped or adopted_workload(step.job) is not None
    decision = decide_retry(step.spec.get("retryStrategy"), attempt, None, None, reason, terminated=stopped)
    if decision.retry:
        text = f"{step.label}: attempt {attempt} failed ({reason}): {decision.explanation}"
        step.d.events.append(JobEvent("Normal", "JobRetry", text))
        if step.state == RUNNABLE:  # its workload could not be created: queued again all the same
            step.status["queuedAt"] = step.now
            step.reason("")
        else:
            step.move(RUNNABLE)
    else:
        step.move(FAILED, reason)


def _preemption_event(step: _Step, kind: str, text: str) -> None:
    step.d.events.append(
        JobEvent("Warning" if kind == "PreemptionStarted" else "Normal", kind, f"{step.label}: {text}")
    )


def _start_preemption(step: _Step, name: str, workload: JSON, reason: str) -> ServiceDecision:
    """The scheduler preempts the job: its status says so first (written at once), then its workload
    is stopped: deleted with propagation Foreground (its pods get their grace period, and the Job
    stays until they are gone), or, adopted, suspended (the Job controller stops its pods)."""
    step.reason(reason)
    _preemption_event(step, "PreemptionStarted", reason)
    _stop_workload(step, name, workload)
    step.d.flush = step.d.preemption_started = True
    return step.finish()


def _stop_workload(step: _Step, name: str, workload: JSON) -> None:
    md = workload.get("metadata") or {}
    if adopted_workload(step.job) is not None:
        if not step.wtype.suspended(workload):
            step.d.suspend.append(name)
    elif not md.get("deletionTimestamp"):
        step.d.delete.append(DeleteWorkload(name, md.get("uid"), propagation="Foreground"))


def _stopped(step: _Step, workload: JSON | None) -> bool:
    """The preempted attempt's workload holds nothing any more: gone, or (adopted) suspended with no
    active pod."""
    if workload is None:
        return True
    if adopted_workload(step.job) is None:
        return False
    st = workload.get("status") or {}
    return step.wtype.suspended(workload) and not int(st.get("active") or 0) and not int(st.get("ready") or 0)


def _follow_preemption(step: _Step, name: str, workload: JSON | None) -> ServiceDecision:
    """A preemption is in progress (its status is written): the workload is stopped again if it
    must be (a restart in between), and once it holds nothing the attempt is recorded in
    preemptionSummary and the job is RUNNABLE again, or FAILED when it was preempted more often than
    preemptionRetriesBeforeTermination allows. A workload that completed meanwhile wins."""
    reason = str(step.status.get("statusReason") or "")
    if workload is not None:
        obs = step.wtype.observe(workload)
        if obs.state == SUCCEEDED:
            if step.state != RUNNING:
                step.move(RUNNING)
            attempt = len(_attempts(step)) + 1
            _end_attempt(
                step, attempt, step.wtype.status_reason(obs.reason), succeeded=True, workload=workload, obs=obs
            )
            return step.finish()
        if not _stopped(step, workload):
            _stop_workload(step, name, workload)
            return step.finish()
    record: dict[str, Any] = {"statusReason": reason}
    resource = (step.status.get("latestAttempt") or {}).get("serviceResourceId")
    if resource:
        record["serviceResourceId"] = resource
    if step.status.get("scheduledAt"):
        record["startedAt"] = step.status["scheduledAt"]
    record["stoppedAt"] = step.now
    summary = dict(step.status.get("preemptionSummary") or {})
    count = int(summary.get("preemptedAttemptCount") or 0) + 1
    recent = [*list(summary.get("recentPreemptedAttempts") or []), record][-PREEMPTION_WINDOW:]
    step.status["preemptionSummary"] = {"preemptedAttemptCount": count, "recentPreemptedAttempts": recent}
    step.d.flush = True  # the job no longer holds capacity: say so at once
    limit = (step.spec.get("preemptionConfiguration") or {}).get("preemptionRetriesBeforeTermination")
    if limit is not None and count > int(limit):
        text = reason.removeprefix(PREEMPTION_PREFIX)
        text += f" (preempted {count} time(s); preemptionRetriesBeforeTermination {limit})"
        _preemption_event(step, "PreemptionCompleted", f"preempted attempt stopped; {text}")
        step.move(FAILED, "Preempted: " + text)
        return step.finish()
    _preemption_event(step, "PreemptionCompleted", f"preempted attempt stopped ({count} preemption(s)); RUNNABLE again")
    step.move(RUNNABLE)
    return step.finish()


def reconcile_service(
    job: JSON, workloads: Mapping[str, JSON], wtype: WorkloadType, ctx: ServiceContext
) -> ServiceDecision:
    """One step of service job ``job`` given its workloads (by name): see the module docstring."""
    step = _Step(job, wtype, ctx)
    if not step.status.get("status"):
        meta = job.get("metadata") or {}
        step.status.update(
            {
                "status": SUBMITTED,
                "statusReason": "",
                "jobId": batch_job_id(job),
                "createdAt": str(meta.get("creationTimestamp") or step.now),
            }
        )
        if step.spec.get("shareIdentifier"):
            step.status["shareIdentifier"] = str(step.spec["shareIdentifier"])
        if step.spec.get("quotaShareName"):
            step.status["quotaShareName"] = str(step.spec["quotaShareName"])
        if ctx.queue_missing:
            step.move(FAILED, ctx.queue_missing)
            return step.finish()
    if step.spec.get("schedulingPriority") is not None:
        # Updatable after submission (AWS UpdateServiceJob): the status follows the spec.
        step.status["schedulingPriority"] = int(step.spec["schedulingPriority"])
    attempt = len(_attempts(step)) + 1
    number = workload_number(step.status)
    name = workload_name(step.name, number, job)
    workload = workloads.get(name)
    if workload is not None and step.state in (SUBMITTED, RUNNABLE) and wtype.suspended(workload):
        workload = None  # adopted and not started yet: it waits in the queue
    terminate = step.spec.get("terminate")
    if step.state in TERMINAL:
        # A terminated job's workload goes (again, if an earlier delete did not get through).
        if terminate is not None:
            for w in workloads.values():
                if not (w.get("metadata") or {}).get("deletionTimestamp") and not _finished(w, wtype):
                    step.d.delete.append(DeleteWorkload(str(w["metadata"]["name"]), w["metadata"].get("uid")))
        return step.finish()
    cancel = step.spec.get("cancel")
    if cancel is None and ctx.queue_deleted:
        cancel = {"reason": ctx.queue_deleted}
    early = step.state in (SUBMITTED, RUNNABLE) and workload is None
    if terminate is not None and early:
        step.move(FAILED, str(terminate.get("reason") or DEFAULT_TERMINATE_REASON))
        return step.finish()
    if cancel is not None and early:
        step.move(FAILED, str(cancel.get("reason") or DEFAULT_CANCEL_REASON))
        return step.finish()
    if step.state == SUBMITTED:
        step.move(RUNNABLE)
    if step.state == RUNNABLE:
        if workload is None:
            if ctx.create_failure:
                _end_attempt(step, attempt, ctx.create_failure)
            elif ctx.forced_cancel:
                step.move(FAILED, ctx.forced_cancel)
            elif (step.status.get("statusReason") or "", step.status.get("statusReasonDetail") or "") != (
                ctx.blocked_reason or "",
                ctx.blocked_detail or "",
            ):
                step.reason(ctx.blocked_reason or "", ctx.blocked_detail or "")
            return step.finish()
        labels = (workload.get("metadata") or {}).get("labels") or {}
        step.status["serviceEnvironment"] = str(labels.get(LABEL_SERVICE_ENVIRONMENT, ""))
        step.status["scheduledAt"] = step.now
        step.status["capacityUsage"] = [{"capacityUnit": unit_of(step.job), "quantity": wtype.instances(workload)}]
        uid = (workload.get("metadata") or {}).get("uid")
        if uid:
            step.status["latestAttempt"] = {"serviceResourceId": {"name": wtype.resource_id_name, "value": str(uid)}}
        step.status["attemptCount"] = attempt
        step.move(SCHEDULED)
    # SCHEDULED, STARTING or RUNNING: follow the workload.
    if preempting(step.status):
        if terminate is None:
            return _follow_preemption(step, name, workload)
        if workload is None:  # terminated while its preempted workload went
            reason = str(terminate.get("reason") or DEFAULT_TERMINATE_REASON)
            _end_attempt(step, attempt, reason, stopped=True)
            return step.finish()
    if ctx.preempt and workload is not None and terminate is None and not _finished(workload, wtype):
        return _start_preemption(step, name, workload, ctx.preempt)
    if workload is None:
        _end_attempt(step, attempt, wtype.status_reason(f"{wtype.kind} {name} was deleted"))
        return step.finish()
    if terminate is not None:
        reason = str(terminate.get("reason") or DEFAULT_TERMINATE_REASON)
        if not (workload.get("metadata") or {}).get("deletionTimestamp"):
            step.d.delete.append(DeleteWorkload(name, (workload.get("metadata") or {}).get("uid")))
        _end_attempt(step, attempt, reason, workload=workload, obs=wtype.observe(workload), stopped=True)
        return step.finish()
    obs = wtype.observe(workload)
    if obs.state in TERMINAL:
        if obs.state == SUCCEEDED and step.state != RUNNING:
            step.move(RUNNING)
        _end_attempt(
            step, attempt, wtype.status_reason(obs.reason), succeeded=obs.state == SUCCEEDED, workload=workload, obs=obs
        )
        return step.finish()
    if PATH.index(obs.state) > PATH.index(step.state):
        step.move(obs.state)
    return step.finish()
