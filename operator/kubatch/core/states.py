"""The AWS Batch job state machine, its statusReason strings, and attempt outcomes.

Owns: ``JobStatus`` and the allowed transitions (``transition``, ``forward_path``), the
CancelJob / TerminateJob rules (``cancel``, ``terminate``), every statusReason string kubatch
writes (the ``REASON_*`` constants and the ``*_reason`` builders), and the mapping from an
observed pod to a finished attempt record (``observe_pod`` + ``attempt_outcome``).

State machine (AWS Batch user guide, "Job states"; spec/aws-batch-semantics.md section 4.2)::

    SUBMITTED -> PENDING | RUNNABLE | FAILED
    PENDING   -> RUNNABLE | FAILED                (array parents: also -> SUCCEEDED)
    RUNNABLE  -> STARTING | FAILED
    STARTING  -> RUNNING | RUNNABLE (retry) | FAILED
    RUNNING   -> SUCCEEDED | FAILED | RUNNABLE (retry)
    SUCCEEDED, FAILED: terminal

A non-terminal status may "transition" to itself to update its statusReason (for example a
blocked RUNNABLE job); ``Transition.changed`` is then False and no state-change event is due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """AWS Batch job states, spelled as the API spells them."""

    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNABLE = "RUNNABLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


ALL_STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)
TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})
#: States in which CancelJob still takes effect (API reference: "SUBMITTED, PENDING, or RUNNABLE").
CANCELLABLE: frozenset[JobStatus] = frozenset({JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.RUNNABLE})
#: States in which the job holds capacity (a pod exists for the current attempt).
ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.STARTING, JobStatus.RUNNING})
#: The only states an array parent ever shows (user guide, "Array jobs").
ARRAY_PARENT_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.SUCCEEDED, JobStatus.FAILED}
)

_S = JobStatus
ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _S.SUBMITTED: frozenset({_S.PENDING, _S.RUNNABLE, _S.FAILED}),
    _S.PENDING: frozenset({_S.RUNNABLE, _S.FAILED}),
    _S.RUNNABLE: frozenset({_S.STARTING, _S.FAILED}),
    _S.STARTING: frozenset({_S.RUNNING, _S.RUNNABLE, _S.FAILED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.RUNNABLE}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
}
ARRAY_PARENT_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _S.SUBMITTED: frozenset({_S.PENDING, _S.FAILED, _S.SUCCEEDED}),
    _S.PENDING: frozenset({_S.SUCCEEDED, _S.FAILED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
}
#: The happy path, used by ``forward_path`` to fill in states a watcher observed too late.
_HAPPY_PATH: tuple[JobStatus, ...] = (_S.RUNNABLE, _S.STARTING, _S.RUNNING, _S.SUCCEEDED)

# --------------------------------------------------------------------------------------------
# statusReason strings
# --------------------------------------------------------------------------------------------
#: ECS wording for any finished container attempt, successful or not (API reference, observed).
REASON_ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
#: A dependency failed: the dependent goes PENDING -> FAILED (API reference, observed).
REASON_DEPENDENT_JOB_FAILED = "Dependent Job failed"
#: The attempt ran longer than timeout.attemptDurationSeconds (API reference, observed).
REASON_TIMEOUT = "Job attempt duration exceeded timeout"
#: The pod could not start (image pull, container config); matches the guide's retry example
#: ``{"onStatusReason": "Task failed to start", "action": "RETRY"}``.
REASON_TASK_FAILED_TO_START = "Task failed to start"
#: Container ``reason`` prefixes, as ECS reports them (its "Stopped tasks error codes", which the
#: user guide's retry section points to; the guide itself names ``CannotPullContainerError``).
CONTAINER_REASON_CANNOT_PULL = "CannotPullContainerError"
CONTAINER_REASON_CANNOT_CREATE = "CannotCreateContainerError"
CONTAINER_REASON_CANNOT_START = "CannotStartContainerError"
#: ECS's wording for what the task needs before its containers can be created (secrets, volumes).
CONTAINER_REASON_RESOURCE_INIT = "ResourceInitializationError"
#: A pod no node took (kube-scheduler's condition reason; ECS has no such case: it places a task
#: only on an instance that has room).
CONTAINER_REASON_UNSCHEDULABLE = "Unschedulable"
#: Container ``reason`` for an OOM kill, ECS wording (Kubernetes says ``OOMKilled``).
CONTAINER_REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"
#: Defaults when ``spec.cancel`` / ``spec.terminate`` carry no reason (AWS requires one; kubatch
#: accepts an empty object, so it needs a wording of its own).
DEFAULT_CANCEL_REASON = "Cancelled by user"
DEFAULT_TERMINATE_REASON = "Terminated by user"
#: Array parent that failed because at least one child failed (kubatch wording; AWS does not
#: document the parent's statusReason).
REASON_ARRAY_CHILD_FAILED = "Array Child Job failed"
#: Array parent whose children all succeeded (kubatch wording).
REASON_ARRAY_ALL_SUCCEEDED = "All Array Child Jobs succeeded"
#: MNP child node stopped because the main node exited (kubatch wording, user guide: "When the
#: main node exits, the job is finished and every child is stopped").
REASON_MAIN_NODE_EXITED = "Main node exited"
#: Resolution errors at submission time (kubatch wording).
REASON_JOB_DEFINITION_NOT_FOUND = "Job definition not found"
REASON_JOB_DEFINITION_INACTIVE = "Job definition is INACTIVE"
#: More than 50 tags after merging JD and job tags with propagateTags (user guide, "Propagate
#: tags": "the job's moved to the FAILED state"; the guide gives no statusReason, this is kubatch's
#: fixed wording, the count goes to statusReasonDetail).
REASON_TOO_MANY_TAGS = "Too many tags to propagate: more than 50 tags after merging job and job definition tags"

#: Blocked-queue reasons (user guide, "Jobs stuck in a RUNNABLE status"), exact strings.
REASON_CAPACITY_INSUFFICIENT = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for "
    "instance type [{instance_type}]"
)
REASON_MISCONFIGURATION_CE_MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
    "the CPU requirement of the job."
)
REASON_MISCONFIGURATION_JOB_RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
    "than that can be met by the CE(s) attached to the job queue."
)
REASON_MISCONFIGURATION_SERVICE_ROLE = (
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS - Batch service role has a permission issue."
)
REASON_ACTION_REQUIRED_CE_INVALID = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
REASON_UNDETERMINED = "UNDETERMINED - Batch job is blocked, root cause is undetermined."


def queue_disabled_reason(queue: str) -> str:
    """statusReason of a job submitted to a DISABLED queue, which the controller fails when the
    webhook did not refuse it. The user guide has no wording for the refusal; this is the API
    reference's for the state ("new jobs can't be added to the queue")."""
    return f"Job queue {queue} is DISABLED: new jobs can't be added to the queue"


def queue_deleted_reason(queue: str) -> str:
    """statusReason of a job that had not started when its queue was deleted. AWS's API reference
    says only that "All jobs in the queue are eventually terminated when you delete a job queue";
    kubatch fails the jobs that have not started with this reason and lets STARTING and RUNNING ones
    finish (the user guide: "Wait for any running jobs to complete, then delete the job queue")."""
    return f"Job queue {queue} was deleted"


def host_terminated_reason(node_name: str | None) -> str:
    """``Host EC2 (instance <node>) terminated.`` -- the lost-host wording, with the Kubernetes
    node name in place of the instance id, so that ``onStatusReason: "Host EC2*"`` still matches."""
    return f"Host EC2 (instance {node_name or 'unknown'}) terminated."


def state_time_limit_reason(reason: str) -> str:
    """statusReason after a jobStateTimeLimitActions CANCEL (user guide, exact wording)."""
    return f"Canceled by JobStateTimeLimit action due to reason: {reason}"


def capacity_insufficient_reason(instance_type: str) -> str:
    return REASON_CAPACITY_INSUFFICIENT.format(instance_type=instance_type)


# --------------------------------------------------------------------------------------------
# transitions
# --------------------------------------------------------------------------------------------
class InvalidTransition(ValueError):
    """A transition the AWS Batch state machine does not allow."""


@dataclass(frozen=True)
class Transition:
    """The result of a transition: the new status, its statusReason, and whether it changed."""

    status: JobStatus
    status_reason: str
    changed: bool


def can_transition(current: JobStatus | str, target: JobStatus | str, *, array_parent: bool = False) -> bool:
    cur, tgt = JobStatus(current), JobStatus(target)
    if cur == tgt:
        return cur not in TERMINAL
    table = ARRAY_PARENT_TRANSITIONS if array_parent else ALLOWED_TRANSITIONS
    return tgt in table.get(cur, frozenset())


def transition(
    current: JobStatus | str,
    target: JobStatus | str,
    reason: str = "",
    *,
    array_parent: bool = False,
) -> Transition:
    """Validate and perform ``current -> target``; raises ``InvalidTransition`` otherwise."""
    cur, tgt = JobStatus(current), JobStatus(target)
    if not can_transition(cur, tgt, array_parent=array_parent):
        kind = "array parent " if array_parent else ""
        raise InvalidTransition(f"{kind}job cannot go from {cur} to {tgt}")
    return Transition(status=tgt, status_reason=reason, changed=cur != tgt)


def forward_path(current: JobStatus | str, target: JobStatus | str) -> list[JobStatus]:
    """States to pass through, in order, to get from ``current`` to ``target``.

    A pod watcher may first see a pod when it is already running or finished; to record every
    state change (and emit one event per change) the runtime walks this path. Returns ``[]`` when
    ``current == target``; raises ``InvalidTransition`` when no forward path exists.
    """
    cur, tgt = JobStatus(current), JobStatus(target)
    if cur == tgt:
        return []
    if tgt in ALLOWED_TRANSITIONS[cur]:
        return [tgt]
    if cur in _HAPPY_PATH:
        start = _HAPPY_PATH.index(cur)
        end_target = JobStatus.RUNNING if tgt == JobStatus.FAILED else tgt
        if end_target in _HAPPY_PATH and _HAPPY_PATH.index(end_target) > start:
            path = list(_HAPPY_PATH[start + 1 : _HAPPY_PATH.index(end_target) + 1])
            if tgt == JobStatus.FAILED:
                path.append(JobStatus.FAILED)
            return path
    if cur in (JobStatus.SUBMITTED, JobStatus.PENDING) and tgt in _HAPPY_PATH:
        return [JobStatus.RUNNABLE, *forward_path(JobStatus.RUNNABLE, tgt)]
    raise InvalidTransition(f"no forward path from {cur} to {tgt}")


def initial_status(has_dependencies: bool, *, array_parent: bool = False) -> JobStatus:
    """Where a SUBMITTED job goes once the operator has looked at it: PENDING when it has
    dependencies (or is an array parent), RUNNABLE otherwise."""
    return JobStatus.PENDING if has_dependencies or array_parent else JobStatus.RUNNABLE


class Effect(StrEnum):
    """What a cancel/terminate request does to a job right now."""

    APPLIED = "APPLIED"  # the job is FAILED now (status/reason in the result)
    STOP_PODS = "STOP_PODS"  # stop the running pod(s), then the job is FAILED with the reason
    DEFERRED = "DEFERRED"  # PENDING job: fails once its dependencies complete
    IGNORED = "IGNORED"  # no effect (cancel on STARTING/RUNNING, or already terminal)


@dataclass(frozen=True)
class CommandResult:
    effect: Effect
    status: JobStatus
    status_reason: str


def cancel(
    current: JobStatus | str,
    reason: str | None,
    current_reason: str = "",
    *,
    dependencies_complete: bool = True,
) -> CommandResult:
    """CancelJob semantics (API reference, spec 4.3).

    SUBMITTED / RUNNABLE -> FAILED with ``reason``. PENDING -> FAILED too, but the API reference
    says "A PENDING job is canceled after all dependency jobs are completed": pass
    ``dependencies_complete=False`` to get ``DEFERRED`` while they are still running. (kubatch's
    lifecycle cancels a PENDING job at once; docs/differences.md says why.)
    STARTING / RUNNING: no effect (the call still succeeds); terminal: no-op.
    """
    cur = JobStatus(current)
    text = reason or DEFAULT_CANCEL_REASON
    if cur in TERMINAL or cur in ACTIVE:
        return CommandResult(Effect.IGNORED, cur, current_reason)
    if cur == JobStatus.PENDING and not dependencies_complete:
        return CommandResult(Effect.DEFERRED, cur, current_reason)
    return CommandResult(Effect.APPLIED, JobStatus.FAILED, text)


def terminate(
    current: JobStatus | str,
    reason: str | None,
    current_reason: str = "",
    *,
    dependencies_complete: bool = True,
) -> CommandResult:
    """TerminateJob semantics (API reference, spec 4.3): jobs not yet STARTING are cancelled
    (same rules as ``cancel``); STARTING / RUNNING jobs have their pods stopped (SIGTERM, then
    SIGKILL after the grace period) and become FAILED with ``reason``; terminal: no-op."""
    cur = JobStatus(current)
    text = reason or DEFAULT_TERMINATE_REASON
    if cur in ACTIVE:
        return CommandResult(Effect.STOP_PODS, JobStatus.FAILED, text)
    result = cancel(cur, text, current_reason, dependencies_complete=dependencies_complete)
    return result


# --------------------------------------------------------------------------------------------
# pods -> attempts
# --------------------------------------------------------------------------------------------
#: Kubernetes waiting reasons of a container whose image cannot be had; the container reason is
#: ``CannotPullContainerError: <kubelet message>``, as ECS reports a failed pull.
IMAGE_START_FAILURES: frozenset[str] = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ImageInspectError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)
#: Waiting reasons after which the pod can never start (the image reference is malformed, or the
#: pull policy forbids the pull of an image the node lacks): the attempt fails at once.
DEFINITIVE_START_FAILURES: frozenset[str] = frozenset({"InvalidImageName", "ErrImageNeverPull"})
#: Waiting reasons of a container that cannot be created or started, with the ECS error code each
#: maps to: a missing Secret or ConfigMap (``CreateContainerConfigError``) is what ECS calls a
#: resource that cannot be initialised (``ResourceInitializationError: unable to pull secrets``).
CONFIG_START_FAILURES: Mapping[str, str] = {
    "CreateContainerConfigError": CONTAINER_REASON_RESOURCE_INIT,
    "CreateContainerError": CONTAINER_REASON_CANNOT_CREATE,
    "RunContainerError": CONTAINER_REASON_CANNOT_START,
    "PreStartHookError": CONTAINER_REASON_CANNOT_START,
}
#: Every waiting reason that is a visible start problem. All but the definitive ones are retried by
#: the kubelet (a pull backing off may succeed, a missing Secret may be created): the attempt fails
#: once they outlast the start bound (``start_block``, ``core.lifecycle``).
START_FAILURES: frozenset[str] = IMAGE_START_FAILURES | frozenset(CONFIG_START_FAILURES)
#: A pod that shows no problem yet has not started (containers being created: a slow image pull, a
#: volume that cannot be mounted, which only the pod's Events show as ``FailedMount``; a MANAGED
#: environment's pod waiting for its new node) is given this many start bounds.
SLOW_START_FACTOR = 3
#: Pod-level reasons that mean the node went away under the pod.
NODE_LOSS_POD_REASONS: frozenset[str] = frozenset({"NodeLost", "Shutdown", "Terminated", "NodeShutdown"})
#: Kubernetes container reasons that carry no information (AWS leaves ``reason`` empty there).
_GENERIC_CONTAINER_REASONS: frozenset[str] = frozenset({"Completed", "Error"})


@dataclass(frozen=True)
class ContainerObservation:
    name: str
    exit_code: int | None = None  # set once terminated
    reason: str | None = None  # terminated.reason
    message: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    running: bool = False


@dataclass(frozen=True)
class PodObservation:
    """What the pods watcher saw of one attempt's pod (plain data, see ``observe_pod``)."""

    pod_name: str
    node_name: str | None = None
    phase: str | None = None  # Pending | Running | Succeeded | Failed | Unknown
    containers: tuple[ContainerObservation, ...] = ()
    init_containers: tuple[ContainerObservation, ...] = ()
    pod_reason: str | None = None  # status.reason, e.g. Evicted
    pod_message: str | None = None
    started_at: str | None = None  # status.startTime
    deleted: bool = False  # the pod is being deleted / is gone, not by kubatch
    node_vanished: bool = False  # its node disappeared
    created_at: str | None = None  # metadata.creationTimestamp
    scheduled_at: str | None = None  # when the PodScheduled condition became True (bound to a node)
    unschedulable: str | None = None  # the scheduler's message while PodScheduled is False (Unschedulable)


@dataclass(frozen=True)
class AttemptOutcome:
    """A finished attempt. ``record()`` is the ``status.attempts[]`` entry of api.md."""

    succeeded: bool
    exit_code: int | None
    reason: str
    status_reason: str
    pod_name: str
    node_name: str | None
    started_at: str | None
    stopped_at: str | None
    timed_out: bool = False
    terminated: bool = False
    start_failure: bool = False
    host_lost: bool = False

    def record(self) -> dict[str, Any]:
        container: dict[str, Any] = {"reason": self.reason, "podName": self.pod_name}
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.node_name:
            container["nodeName"] = self.node_name
        rec: dict[str, Any] = {"container": container, "statusReason": self.status_reason}
        if self.started_at:
            rec["startedAt"] = self.started_at
        if self.stopped_at:
            rec["stoppedAt"] = self.stopped_at
        return rec


def _container_obs(status: Mapping[str, Any]) -> ContainerObservation:
    state = status.get("state") or {}
    term = state.get("terminated")
    waiting = state.get("waiting")
    running = state.get("running")
    if term is not None:
        code = term.get("exitCode")
        return ContainerObservation(
            name=str(status.get("name", "")),
            exit_code=int(code) if code is not None else None,
            reason=term.get("reason"),
            message=term.get("message"),
            started_at=term.get("startedAt"),
            finished_at=term.get("finishedAt"),
        )
    if waiting is not None:
        return ContainerObservation(
            name=str(status.get("name", "")),
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message"),
        )
    return ContainerObservation(
        name=str(status.get("name", "")),
        started_at=(running or {}).get("startedAt"),
        running=running is not None,
    )


def observe_pod(pod: Mapping[str, Any], *, node_exists: bool = True) -> PodObservation:
    """Build a ``PodObservation`` from a Pod dict as the API server returns it.

    Container statuses are ordered as the containers appear in ``spec`` (so the first container
    decides the attempt's exit code when several fail)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    order = [c.get("name") for c in spec.get("containers") or []]
    statuses = [_container_obs(s) for s in status.get("containerStatuses") or []]
    statuses.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
    inits = tuple(_container_obs(s) for s in status.get("initContainerStatuses") or [])
    node = spec.get("nodeName")
    scheduled_at = unschedulable = None
    for cond in status.get("conditions") or []:
        if cond.get("type") != "PodScheduled":
            continue
        if cond.get("status") == "True":
            scheduled_at = cond.get("lastTransitionTime")
        elif cond.get("reason") == "Unschedulable":
            unschedulable = str(cond.get("message") or "no node can take the pod")
    return PodObservation(
        pod_name=str(meta.get("name", "")),
        node_name=node,
        phase=status.get("phase"),
        containers=tuple(statuses),
        init_containers=inits,
        pod_reason=status.get("reason"),
        pod_message=status.get("message"),
        started_at=status.get("startTime"),
        deleted=meta.get("deletionTimestamp") is not None,
        node_vanished=bool(node) and not node_exists,
        created_at=meta.get("creationTimestamp"),
        scheduled_at=scheduled_at,
        unschedulable=None if node else unschedulable,
    )


def observed_status(obs: PodObservation) -> JobStatus:
    """The job status the pod implies while it lives: STARTING until the pod phase is Running
    (init containers and image pulls count as STARTING), RUNNING after; a finished pod maps to
    SUCCEEDED / FAILED (the retry decision may still turn FAILED into RUNNABLE)."""
    if obs.phase == "Succeeded":
        return JobStatus.SUCCEEDED
    if obs.phase == "Failed":
        return JobStatus.FAILED
    if obs.phase == "Running":
        return JobStatus.RUNNING
    return JobStatus.STARTING


def _container_reason(c: ContainerObservation) -> str:
    if c.reason == "OOMKilled":
        return CONTAINER_REASON_OOM
    if c.reason is None or c.reason in _GENERIC_CONTAINER_REASONS:
        return ""
    return c.reason if not c.message else f"{c.reason}: {c.message}"


@dataclass(frozen=True)
class StartBlock:
    """What keeps a pod that has not started from running.

    ``reason`` is the container reason its attempt records if it fails for it (ECS wording, with
    the Kubernetes message). ``definitive``: it can never start, the attempt fails at once.
    ``visible``: a problem shows (a pull error, a container that cannot be created, a pod no node
    takes), and the attempt fails once it outlasts the start bound; otherwise the pod is merely
    slow (containers being created, a node being brought up) and gets ``SLOW_START_FACTOR`` bounds.
    """

    reason: str
    definitive: bool = False
    visible: bool = True


def _with_message(kind: str, message: str | None) -> str:
    return f"{kind}: {message}" if message else kind


def start_block(obs: PodObservation, *, awaiting_node: bool = False) -> StartBlock | None:
    """Why the pod of ``obs`` (phase Pending) has not started, or None when it is on its way by its
    own doing (an init container is running: the job's own code, which AWS leaves unbounded in
    STARTING) or has started. ``awaiting_node``: the pod waits for a node its MANAGED environment
    is bringing up (slow, not a problem)."""
    if obs.phase not in (None, "Pending"):
        return None
    if any(c.running for c in obs.init_containers) or any(c.running or c.exit_code is not None for c in obs.containers):
        return None
    for c in (*obs.init_containers, *obs.containers):
        reason = c.waiting_reason
        if reason is None:
            continue
        if reason in IMAGE_START_FAILURES:
            return StartBlock(
                _with_message(CONTAINER_REASON_CANNOT_PULL, c.waiting_message or reason),
                definitive=reason in DEFINITIVE_START_FAILURES,
            )
        if reason in CONFIG_START_FAILURES:
            return StartBlock(_with_message(CONFIG_START_FAILURES[reason], c.waiting_message or reason))
    if not obs.node_name:
        message = obs.unschedulable or "the pod is not bound to a node"
        return StartBlock(
            _with_message(CONTAINER_REASON_UNSCHEDULABLE, message),
            visible=obs.unschedulable is not None and not awaiting_node,
        )
    waiting = next((c for c in (*obs.init_containers, *obs.containers) if c.waiting_reason), None)
    what = waiting.waiting_reason if waiting else "ContainerCreating"
    detail = (waiting.waiting_message if waiting else None) or "containers not created"
    return StartBlock(_with_message(CONTAINER_REASON_RESOURCE_INIT, f"{what}: {detail}"), visible=False)


def start_clock(obs: PodObservation) -> str | None:
    """Since when the start bound counts for the pod of ``obs``: its binding to a node (else its
    start, else its creation), or the end of its last init container when later; None while an init
    container runs (``start_block``)."""
    if any(c.running for c in obs.init_containers):
        return None
    origin = (obs.scheduled_at or obs.started_at or obs.created_at) if obs.node_name else obs.created_at
    inits = [c.finished_at for c in obs.init_containers if c.finished_at]
    stamps = [s for s in (origin, *inits) if s]
    return max(stamps) if stamps else None


def _last_finish(containers: Sequence[ContainerObservation]) -> str | None:
    stamps = [c.finished_at for c in containers if c.finished_at]
    return max(stamps) if stamps else None


def attempt_outcome(
    obs: PodObservation,
    *,
    timed_out: bool = False,
    terminate_reason: str | None = None,
    now: str | None = None,
    start_failure: StartBlock | None = None,
) -> AttemptOutcome | None:
    """Map an observed pod to a finished attempt, or ``None`` while the attempt is still going.

    Precedence: a pod that Succeeded is a success whatever else happened; otherwise a
    terminate/cancel request (``terminate_reason``) gives that reason; a timeout gives
    ``REASON_TIMEOUT``; a pod that failed on its own gives ``Essential container in task exited``
    (``OutOfMemoryError: Container killed due to memory usage`` for an OOM kill, as AWS)
    with the first non-zero exit code (spec order) and its reason, even if it is being deleted
    afterwards; a vanished node, an external deletion of an unfinished pod or a node-shutdown pod
    reason give ``Host EC2 (instance <node>) terminated.``; a pod that cannot start gives ``Task
    failed to start``: at once when it never can (``StartBlock.definitive``: an invalid image name,
    a missing image the pull policy forbids pulling), or when the caller says it outlasted its start
    bound (``start_failure``, see ``start_block``). ``now`` is the stoppedAt used when no container
    reports a finish time.
    """
    containers = obs.containers
    finished = all(c.exit_code is not None for c in containers) and bool(containers)
    stopped = _last_finish(containers) or now
    started = next((c.started_at for c in containers if c.started_at), None) or obs.started_at
    failed_c = next((c for c in containers if c.exit_code not in (None, 0)), None)
    exit_code = failed_c.exit_code if failed_c else (0 if finished else None)
    # A process other than the container's PID 1 can be OOM-killed while PID 1 goes on and exits 0:
    # the attempt succeeds (the exit code decides) and still records the OOM kill.
    oom_c = next((c for c in containers if c.reason == "OOMKilled"), None)
    reason = _container_reason(failed_c) if failed_c else (_container_reason(oom_c) if oom_c else "")

    def out(succeeded: bool, status_reason: str, **flags: bool) -> AttemptOutcome:
        return AttemptOutcome(
            succeeded=succeeded,
            exit_code=exit_code,
            reason=reason,
            status_reason=status_reason,
            pod_name=obs.pod_name,
            node_name=obs.node_name,
            started_at=started,
            stopped_at=stopped,
            **flags,
        )

    if obs.phase == "Succeeded" or (finished and failed_c is None and obs.phase != "Failed"):
        return out(True, REASON_ESSENTIAL_CONTAINER_EXITED)
    if terminate_reason is not None:
        return out(False, terminate_reason, terminated=True)
    if timed_out:
        return out(False, REASON_TIMEOUT, timed_out=True)
    node_loss = obs.pod_reason in NODE_LOSS_POD_REASONS
    if (obs.phase == "Failed" or (finished and failed_c is not None)) and not node_loss:
        # finished on its own: a later deletion (cleanup) or node loss does not change that
        if failed_c is None and obs.pod_reason:
            reason = obs.pod_reason if not obs.pod_message else f"{obs.pod_reason}: {obs.pod_message}"
        # AWS names an OOM kill in the job's statusReason too, not only in the container's reason.
        return out(False, CONTAINER_REASON_OOM if reason == CONTAINER_REASON_OOM else REASON_ESSENTIAL_CONTAINER_EXITED)
    if obs.node_vanished or obs.deleted or node_loss:
        return out(False, host_terminated_reason(obs.node_name), host_lost=True)
    block = start_failure
    if block is None:
        block = start_block(obs)
        if block is not None and not block.definitive:
            block = None
    if block is not None:
        return AttemptOutcome(
            succeeded=False,
            exit_code=None,
            reason=block.reason,
            status_reason=REASON_TASK_FAILED_TO_START,
            pod_name=obs.pod_name,
            node_name=obs.node_name,
            started_at=None,
            stopped_at=now,
            start_failure=True,
        )
    return None
