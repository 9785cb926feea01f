"""One reconcile step of one BatchJob: from (job, its pods, context) to (new status, actions).

The job's status is a function of what it recorded and what its pods show, so the same step
serves normal progress, crash recovery (a pod created just before a restart is adopted) and
late watch events. The dispatcher only creates the first pod of an attempt; this step notices it
(RUNNABLE -> STARTING), follows the pod (RUNNING, finished), applies retryStrategy, timeouts,
cancel/terminate (of the job, or of single array children: ``spec.cancelChildren`` and
``spec.terminateChildren``) and dependencies, starts the other nodes of a multi-node job once the
main node runs, and keeps array children as compact per-state index sets in the parent's status.

Pure: no kopf, no I/O. The runtime executes the returned actions and writes the status.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.arrays import ArrayChildren, IndexSet
from kubatch.core.deps import DependencyStatus, GateState, array_child_gates, dependency_gate
from kubatch.core.job_ids import job_id
from kubatch.core.jobnames import job_name
from kubatch.core.podspec import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    ENV_MAIN_NODE_IP,
    MAX_PROPAGATED_TAGS,
    PodSettings,
    PodSpecError,
    build_pod,
    environment_tolerations,
    main_node_of,
    num_nodes_of,
    pod_name,
    propagated_tags,
    scheduling_priority,
)
from kubatch.core.retry import after_attempt, effective_strategy, effective_timeout
from kubatch.core.states import (
    ACTIVE,
    CANCELLABLE,
    DEFAULT_CANCEL_REASON,
    DEFAULT_TERMINATE_REASON,
    REASON_DEPENDENT_JOB_FAILED,
    REASON_MAIN_NODE_EXITED,
    REASON_TOO_MANY_TAGS,
    SLOW_START_FACTOR,
    TERMINAL,
    AttemptOutcome,
    InvalidTransition,
    JobStatus,
    PodObservation,
    attempt_outcome,
    forward_path,
    observe_pod,
    observed_status,
    start_block,
    start_clock,
)
from kubatch.core.timestamps import iso, parse_iso
from kubatch.core.updates import REASON_NODE_REPLACED

S = JobStatus


@dataclass(frozen=True)
class Definition:
    """A resolved JobDefinition revision: ``name:rev`` and its spec."""

    resolved: str
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """Everything outside the job that one step may look at."""

    now: float
    definition: Definition | None = None
    definition_error: str | None = None  # why the reference cannot be resolved (a new job fails)
    deps: Mapping[str, DependencyStatus] = field(default_factory=dict)
    nodes: frozenset[str] | None = None  # names of existing nodes; None = unknown (no node checks)
    node_uids: Mapping[str, str] = field(default_factory=dict)  # node name -> metadata.uid (attempt records)
    queue_missing: str | None = None  # why the job's queue cannot take it (a new job fails)
    # The queue of a job that already has a status is gone: what has not started fails with this
    # reason, as if cancelled (STARTING and RUNNING attempts finish).
    queue_deleted: str | None = None
    delete_finished_pods: bool = True
    settings: PodSettings = field(default_factory=PodSettings)
    blocked_reason: str | None = None  # the scheduler's reason why this RUNNABLE job (queue head) waits
    blocked_detail: str | None = None  # kubatch's detail of that reason (status.statusReasonDetail)
    forced_cancel: Mapping[int | None, str] = field(default_factory=dict)  # index (None: the job) -> reason
    # ComputeEnvironments by name: a multi-node job's other nodes get its environment's tolerations.
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Seconds a pod that shows a start problem (a pull backing off, a missing Secret, no node taking
    # it) may take to start before its attempt fails with "Task failed to start"; a pod that is only
    # slow gets SLOW_START_FACTOR times as long. None: no bound.
    start_timeout: float | None = None
    # Nodes an infrastructure update replaces -> when the attempts still running there end (epoch
    # seconds; ``core.updates``): then they end as on a lost host, retried as the strategy says.
    node_deadlines: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeletePod:
    name: str
    grace_seconds: int
    uid: str | None = None


@dataclass(frozen=True)
class JobEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    """What the runtime should do: write ``status`` (None = unchanged), create objects, delete pods,
    post events, and look at the job again at ``requeue_at`` (epoch seconds) at the latest."""

    status: dict[str, Any] | None = None
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[DeletePod] = field(default_factory=list)
    events: list[JobEvent] = field(default_factory=list)
    requeue_at: float | None = None

    def wake_at(self, t: float) -> None:
        self.requeue_at = t if self.requeue_at is None else min(self.requeue_at, t)


def event_reason(state: JobStatus) -> str:
    return "Job" + state.value.capitalize()


# Reasons of the Normal events that only say a job moved on (the status says it too, and a watch on
# BatchJobs streams every change): posted when every state change is asked for.
ROUTINE_REASONS = frozenset(event_reason(s) for s in (S.SUBMITTED, S.PENDING, S.RUNNABLE, S.STARTING, S.RUNNING))
EVENT_LEVELS = ("all", "notable", "none")


# Normal events shed while the operator is busy (a burst keeps hundreds of status writes waiting):
# they restate a success or a step that the job's status records as well. Failures, retries and
# warnings are always posted.
SHED_WHEN_BUSY = ROUTINE_REASONS | {event_reason(S.SUCCEEDED)}


def wanted_event(event: JobEvent, level: str, *, busy: bool = False) -> bool:
    """Whether ``event`` is posted at ``level``: ``all`` (one per state change, like AWS Batch's
    state-change events), ``notable`` (how each job ended, each retry, every warning) or ``none``;
    when ``busy``, the Normal events of ``SHED_WHEN_BUSY`` are not posted at any level."""
    if level == "none":
        return False
    if busy and event.type == "Normal" and event.reason in SHED_WHEN_BUSY:
        return False
    if level == "all":
        return True
    return event.type != "Normal" or event.reason not in ROUTINE_REASONS


def _is_array(job: Mapping[str, Any]) -> bool:
    return int(((job.get("spec") or {}).get("arrayProperties") or {}).get("size") or 0) >= 2


def _array_size(job: Mapping[str, Any]) -> int:
    return int(((job.get("spec") or {}).get("arrayProperties") or {}).get("size") or 0)


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _deleting(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _uid(pod: Mapping[str, Any]) -> str | None:
    uid = (pod.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


class _Step:
    """Mutable working state of one reconcile step."""

    def __init__(self, job: Mapping[str, Any], pods: Mapping[str, Mapping[str, Any]], ctx: Context) -> None:
        self.job = job
        self.name = str(job["metadata"]["name"])
        self.job_name = job_name(job)  # as AWS shows it (spec.jobName), in the Events' messages
        self.spec: Mapping[str, Any] = job.get("spec") or {}
        self.old: dict[str, Any] = dict(job.get("status") or {})
        self.status: dict[str, Any] = copy.deepcopy(self.old)
        self.pods = pods
        self.ctx = ctx
        self.d = Decision()
        self.now_iso = iso(ctx.now)

    # ---- status helpers -----------------------------------------------------------------------
    @property
    def state(self) -> JobStatus:
        return S(self.status.get("status") or S.SUBMITTED)

    def set_reason(self, reason: str, detail: str = "") -> None:
        """statusReason (AWS's text) and statusReasonDetail (kubatch's detail of it, absent if none)."""
        self.status["statusReason"] = reason
        if detail:
            self.status["statusReasonDetail"] = detail
        else:
            self.status.pop("statusReasonDetail", None)

    def set_blocked_reason(self) -> None:
        """The scheduler's reason why this RUNNABLE (or PENDING array) job waits, if it changed."""
        reason, detail = self.ctx.blocked_reason or "", self.ctx.blocked_detail or ""
        if (self.status.get("statusReason") or "", self.status.get("statusReasonDetail") or "") != (reason, detail):
            self.set_reason(reason, detail)

    def move(self, target: JobStatus, reason: str = "", detail: str = "") -> None:
        """Walk to ``target`` recording one event per intermediate state. ``detail`` (kubatch's, kept
        out of AWS's statusReason) goes to statusReasonDetail and into the target's Event."""
        cur = self.state
        try:
            path = forward_path(cur, target) if cur != target else []
        except InvalidTransition:
            path = [target]  # a status edited by hand: record where the job really is
        if not path and cur == target:
            self.set_reason(reason, detail)
            return
        if not path:
            path = [target]
        for st in path:
            msg = reason if st == target and reason else f"{self.job_name} is {st.value}"
            if st == target and reason and detail:
                msg = f"{reason} ({detail})"
            self.d.events.append(JobEvent("Warning" if st == S.FAILED else "Normal", event_reason(st), msg))
        self.status["status"] = target.value
        self.set_reason(reason, detail)
        if target == S.RUNNING and not self.status.get("startedAt"):
            self.status["startedAt"] = self.now_iso
        if target in TERMINAL:
            self.status["stoppedAt"] = self.now_iso
        if target == S.RUNNABLE:
            self.status["queuedAt"] = self.now_iso

    def delete_pod(self, pod: Mapping[str, Any], grace: int) -> None:
        name = str(pod["metadata"]["name"])
        # A pod already being deleted is only deleted again to force it (grace 0 after a longer grace).
        if _deleting(pod) and (grace > 0 or pod["metadata"].get("deletionGracePeriodSeconds") == 0):
            return
        if any(x.name == name for x in self.d.delete):
            return
        self.d.delete.append(DeletePod(name, grace, _uid(pod)))

    def finish(self) -> Decision:
        if self.status != self.old:
            self.d.status = self.status
        if (self.spec.get("jobName") or self.name) != self.name:
            # The job has an AWS name its object name cannot hold: every message says which job.
            prefix = f"{self.job_name}: "
            self.d.events = [
                e
                if e.message.startswith(f"{self.job_name} ")
                else JobEvent(e.type, e.reason, prefix + e.message)
                for e in self.d.events
            ]
        return self.d


def _strategy(step: _Step) -> Mapping[str, Any] | None:
    return effective_strategy(step.ctx.definition.spec if step.ctx.definition else None, step.spec)


def _timeout(step: _Step) -> int | None:
    return effective_timeout(step.ctx.definition.spec if step.ctx.definition else None, step.spec)


def _multinode(step: _Step) -> bool:
    return bool(step.ctx.definition and step.ctx.definition.spec.get("nodeProperties"))


def _node_exists(step: _Step, pod: Mapping[str, Any]) -> bool:
    node = (pod.get("spec") or {}).get("nodeName")
    return step.ctx.nodes is None or not node or node in step.ctx.nodes


def _vanished(pod_name_: str) -> PodObservation:
    return PodObservation(pod_name=pod_name_, deleted=True)


# ------------------------------------------------------------------------------------------------
# one attempt of one unit (a single job, or one array child)
# ------------------------------------------------------------------------------------------------
@dataclass
class _AttemptView:
    state: JobStatus  # STARTING | RUNNING while it goes on
    outcome: AttemptOutcome | None = None
    started_at: str | None = None


def _follow_attempt(
    step: _Step,
    pod: Mapping[str, Any] | None,
    name: str,
    *,
    terminate_reason: str | None,
) -> _AttemptView:
    """Observe the attempt's pod: still STARTING/RUNNING, or finished with an outcome."""
    now = step.now_iso
    if pod is None:
        if terminate_reason is not None:
            obs = PodObservation(pod_name=name)
            return _AttemptView(S.FAILED, attempt_outcome(obs, terminate_reason=terminate_reason, now=now))
        return _AttemptView(S.FAILED, attempt_outcome(_vanished(name), now=now))
    obs = observe_pod(pod, node_exists=_node_exists(step, pod))
    if terminate_reason is not None:
        step.delete_pod(pod, 0 if _finished(pod) else step.ctx.settings.termination_grace_period_seconds)
        return _AttemptView(S.FAILED, attempt_outcome(obs, terminate_reason=terminate_reason, now=now))
    if _node_replaced(step, pod):
        # Its node is being replaced and its time is up: the attempt ends as on a lost host.
        step.delete_pod(pod, step.ctx.settings.termination_grace_period_seconds)
        outcome = attempt_outcome(dataclasses.replace(obs, node_vanished=True), now=now)
        if outcome is not None and outcome.host_lost:
            outcome = dataclasses.replace(outcome, reason=REASON_NODE_REPLACED)
        return _AttemptView(S.FAILED, outcome)
    outcome = attempt_outcome(obs, now=now)
    if outcome is None and observed_status(obs) == S.STARTING:
        outcome = _start_expired(step, pod, obs)
    if outcome is not None:
        if obs.node_vanished or not _finished(pod) or step.ctx.delete_finished_pods:
            step.delete_pod(pod, 0)
        return _AttemptView(S.FAILED, outcome)
    seen = observed_status(obs)
    started = next((c.started_at for c in obs.containers if c.started_at), None) or obs.started_at
    if seen == S.RUNNING:
        timeout = _timeout(step)
        begun = parse_iso(started) or step.ctx.now
        if timeout:
            deadline = begun + timeout
            if step.ctx.now >= deadline:
                step.delete_pod(pod, step.ctx.settings.termination_grace_period_seconds)
                return _AttemptView(S.FAILED, attempt_outcome(obs, timed_out=True, now=now))
            step.d.wake_at(deadline)
        return _AttemptView(S.RUNNING, None, started)
    return _AttemptView(S.STARTING, None, None)


def _node_replaced(step: _Step, pod: Mapping[str, Any]) -> bool:
    """The unfinished pod's node is replaced by an infrastructure update and its deadline has come
    (until then the step looks again at the deadline)."""
    node = (pod.get("spec") or {}).get("nodeName")
    deadline = step.ctx.node_deadlines.get(str(node)) if node else None
    if deadline is None or _finished(pod):
        return False
    if step.ctx.now < deadline:
        step.d.wake_at(deadline)
        return False
    return True


def _awaiting_node(step: _Step, pod: Mapping[str, Any]) -> bool:
    """The pod has no node yet and its environment is MANAGED and working: a node is being brought
    up for it (in AWS that wait is capacity, spent in RUNNABLE)."""
    if (pod.get("spec") or {}).get("nodeName"):
        return False
    ce_name = ((pod.get("metadata") or {}).get("labels") or {}).get("kubatch.dev/compute-environment")
    ce = step.ctx.environments.get(str(ce_name)) if ce_name else None
    if ce is None or (ce.get("spec") or {}).get("type") == "UNMANAGED":
        return False
    return (ce.get("status") or {}).get("status") not in ("INVALID", "DELETING")


def _start_expired(step: _Step, pod: Mapping[str, Any], obs: PodObservation) -> AttemptOutcome | None:
    """A STARTING attempt whose pod has not started within its bound fails with "Task failed to
    start" (the container reason says what held it); until then the step looks again at the bound."""
    bound = step.ctx.start_timeout
    if not bound or bound <= 0:
        return None
    block = start_block(obs, awaiting_node=_awaiting_node(step, pod))
    origin = parse_iso(start_clock(obs))
    if block is None or origin is None:
        return None
    deadline = origin + bound * (1 if block.visible else SLOW_START_FACTOR)
    if step.ctx.now < deadline:
        step.d.wake_at(deadline)
        return None
    return attempt_outcome(obs, now=step.now_iso, start_failure=block)


# ------------------------------------------------------------------------------------------------
# single jobs (container and multi-node)
# ------------------------------------------------------------------------------------------------
def _attempts(step: _Step) -> list[dict[str, Any]]:
    return list(step.status.get("attempts") or [])


def _cancel_request(step: _Step) -> Mapping[str, Any] | None:
    """``spec.cancel``, or the cancel a deleted queue implies for what has not started."""
    cancel = step.spec.get("cancel")
    if cancel is None and step.ctx.queue_deleted:
        return {"reason": step.ctx.queue_deleted}
    return cancel


def _single(step: _Step) -> None:
    st = step.state
    cancel = _cancel_request(step)
    terminate = step.spec.get("terminate")
    if terminate is not None and st in CANCELLABLE:
        step.move(S.FAILED, str(terminate.get("reason") or DEFAULT_TERMINATE_REASON))
        return
    if cancel is not None and st in CANCELLABLE:
        step.move(S.FAILED, str(cancel.get("reason") or DEFAULT_CANCEL_REASON))
        return
    if st == S.SUBMITTED:
        step.move(S.PENDING if step.spec.get("dependsOn") else S.RUNNABLE)
        st = step.state
    if st == S.PENDING:
        gate = dependency_gate(step.job, step.ctx.deps)
        if gate.state == GateState.FAILED:
            step.move(S.FAILED, REASON_DEPENDENT_JOB_FAILED, f"dependency {gate.dependency} failed")
            return
        if gate.state == GateState.WAIT:
            return
        step.move(S.RUNNABLE)
        st = step.state
    attempt = len(_attempts(step)) + 1
    if _multinode(step):
        _multinode_attempt(step, attempt, terminate)
        return
    name = pod_name(step.name, attempt)
    pod = step.pods.get(name)
    if st == S.RUNNABLE:
        if pod is None:
            forced = step.ctx.forced_cancel.get(None)
            if forced:
                step.move(S.FAILED, forced)
            else:
                step.set_blocked_reason()
            return  # waiting for the dispatcher
        step.status["computeEnvironment"] = (pod["metadata"].get("labels") or {}).get(
            "kubatch.dev/compute-environment", step.status.get("computeEnvironment", "")
        )
        step.move(S.STARTING)
        st = S.STARTING
    if st not in ACTIVE:
        return
    term_reason = str(terminate.get("reason") or DEFAULT_TERMINATE_REASON) if terminate is not None else None
    view = _follow_attempt(step, pod, name, terminate_reason=term_reason)
    if view.outcome is None:
        if view.state == S.RUNNING and st != S.RUNNING:
            step.move(S.RUNNING)
            if view.started_at:
                step.status["startedAt"] = step.status.get("startedAt") or view.started_at
        return
    _record_outcome(step, view.outcome, attempt)


def _record_outcome(step: _Step, outcome: AttemptOutcome, attempt: int) -> None:
    attempts = _attempts(step)
    record = outcome.record()
    node_uid = step.ctx.node_uids.get(outcome.node_name) if outcome.node_name else None
    if node_uid:
        record["container"]["nodeUid"] = node_uid
    attempts.append(record)
    step.status["attempts"] = attempts
    step.status["attemptCount"] = len(attempts)
    if outcome.started_at and step.state == S.STARTING and outcome.succeeded:
        step.status["startedAt"] = step.status.get("startedAt") or outcome.started_at
    transition, _ = after_attempt(step.state, outcome, _strategy(step), attempt)
    if transition.status == S.RUNNABLE:
        # A retried job goes back to RUNNABLE (and to the front of its queue): record the walk (an
        # attempt that never started goes back from STARTING: it never ran).
        if step.state == S.STARTING and not outcome.start_failure:
            step.move(S.RUNNING)
        step.d.events.append(JobEvent("Normal", "JobRetry", f"attempt {attempt} failed: {outcome.status_reason}"))
        step.status["status"] = S.RUNNABLE.value
        step.set_reason("")
        step.status["queuedAt"] = step.now_iso
        step.status.pop("computeEnvironment", None)
        step.d.events.append(JobEvent("Normal", event_reason(S.RUNNABLE), f"{step.job_name} is RUNNABLE (retry)"))
        return
    step.move(transition.status, transition.status_reason)


def _given_main_address(pods: Mapping[str, Mapping[str, Any]], names: Mapping[int, str], main: int) -> str | None:
    """The main node's address this attempt's other nodes were given, if any exists yet.

    The nodes created first fix it: every later node of the attempt gets the same address, even if
    the main pod's reported IP were to change (a simulated node can report a second one). Only this
    address is recorded on the job: the main pod's IP before any other node exists may not be the one
    they get.
    """
    for k, nm in names.items():
        pod = pods.get(nm)
        if k == main or pod is None:
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        for e in (containers[0].get("env") or []) if containers else []:
            if e.get("name") == ENV_MAIN_NODE_IP and e.get("value"):
                return str(e["value"])
    return None


def _multinode_attempt(step: _Step, attempt: int, terminate: Mapping[str, Any] | None) -> None:
    """Main node first; the others once it runs (with its IP); the job follows the main node."""
    assert step.ctx.definition is not None
    dspec = step.ctx.definition.spec
    n = num_nodes_of(dspec, step.spec)
    main = main_node_of(dspec)
    names = {k: pod_name(step.name, attempt, node_index=k) for k in range(n)}
    main_pod = step.pods.get(names[main])
    st = step.state
    if st == S.RUNNABLE:
        if main_pod is None:
            forced = step.ctx.forced_cancel.get(None)
            if forced:
                step.move(S.FAILED, forced)
            else:
                step.set_blocked_reason()
            return
        step.status["computeEnvironment"] = (main_pod["metadata"].get("labels") or {}).get(
            "kubatch.dev/compute-environment", ""
        )
        step.move(S.STARTING)
        st = S.STARTING
    if st not in ACTIVE:
        return
    term_reason = str(terminate.get("reason") or DEFAULT_TERMINATE_REASON) if terminate is not None else None
    view = _follow_attempt(step, main_pod, names[main], terminate_reason=term_reason)
    nodes_status: list[dict[str, Any]] = []
    for k in range(n):
        pod = step.pods.get(names[k])
        entry: dict[str, Any] = {"nodeIndex": k, "podName": names[k]}
        if pod is not None:
            obs = observe_pod(pod)
            seen = observed_status(obs)
            if view.outcome is not None and seen not in TERMINAL:
                # The attempt ended (the main node exited, timed out, was terminated) and this node is
                # being stopped: its last word is the attempt's end, never a RUNNING left behind.
                seen = S.SUCCEEDED if k == main and view.outcome.succeeded else S.FAILED
            entry["status"] = seen.value
            if obs.node_name:
                entry["nodeName"] = obs.node_name
            code = next((c.exit_code for c in obs.containers if c.exit_code is not None), None)
            if code is not None:
                entry["exitCode"] = code
        else:
            entry["status"] = S.RUNNABLE.value if view.outcome is None else S.FAILED.value
        nodes_status.append(entry)
    given_ip = _given_main_address(step.pods, names, main)
    step.status["nodeProperties"] = {"numNodes": n, "mainNode": main, "nodes": nodes_status}
    if given_ip:
        step.status["nodeProperties"]["mainNodeAddress"] = given_ip
    if view.outcome is not None:
        # The main node exited (or the job stopped): stop every other node; the job takes its result.
        for k, nm in names.items():
            pod = step.pods.get(nm)
            if k != main and pod is not None:
                step.delete_pod(pod, 0 if _finished(pod) else step.ctx.settings.termination_grace_period_seconds)
        outcome = view.outcome
        if outcome.succeeded or outcome.status_reason == REASON_MAIN_NODE_EXITED:
            pass
        _record_outcome(step, outcome, attempt)
        return
    for k, nm in names.items():
        pod = step.pods.get(nm)
        if k != main and pod is not None and _node_replaced(step, pod):
            # Another node's pod on a node being replaced: stopped at its deadline like the main
            # node's would be (what a lost node means for the job is the main node's to show).
            step.delete_pod(pod, step.ctx.settings.termination_grace_period_seconds)
    if view.state == S.RUNNING:
        if st != S.RUNNING:
            step.move(S.RUNNING)
        main_ip = given_ip or ((main_pod or {}).get("status") or {}).get("podIP")
        if main_ip:
            for k, nm in names.items():
                if k == main or nm in step.pods:
                    continue
                try:
                    step.d.create.append(
                        build_pod(
                            step.job,
                            dspec,
                            step.ctx.definition.resolved,
                            job_id=str(step.status.get("jobId") or step.job["metadata"].get("uid", "")),
                            queue=str(step.spec.get("jobQueue", "")),
                            compute_environment=str(step.status.get("computeEnvironment", "")),
                            attempt=attempt,
                            node_index=k,
                            num_nodes=n,
                            main_node_index=main,
                            main_node_ip=str(main_ip),
                            settings=step.ctx.settings,
                            environment_tolerations=environment_tolerations(
                                step.ctx.environments.get(str(step.status.get("computeEnvironment", "")))
                            ),
                        )
                    )
                except PodSpecError as e:
                    step.delete_pod(main_pod or {"metadata": {"name": names[main]}}, 0)
                    step.move(S.FAILED, str(e))
                    return
                step.status["nodeProperties"]["mainNodeAddress"] = str(main_ip)
    # Other nodes stopping on their own do not fail the job: only the main node decides.


# ------------------------------------------------------------------------------------------------
# array parents
# ------------------------------------------------------------------------------------------------
def _counter_map(data: Mapping[str, Any] | None) -> dict[str, IndexSet]:
    return {str(k): IndexSet.parse(str(v)) for k, v in (data or {}).items() if v}


def _counter_get(counter: Mapping[str, IndexSet], index: int) -> str | None:
    for k, s in counter.items():
        if index in s:
            return k
    return None


def _counter_set(counter: dict[str, IndexSet], index: int, value: str | None) -> None:
    for k in list(counter):
        if index in counter[k]:
            counter[k] = counter[k].remove(index)
            if not counter[k]:
                del counter[k]
    if value is not None:
        counter[value] = counter.get(value, IndexSet()).add(index)


def _counter_dump(counter: Mapping[str, IndexSet]) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(counter.items()) if v}


def child_attempt_counts(status: Mapping[str, Any]) -> Callable[[int], int]:
    """A lookup of finished attempts per array child, parsing the compact counter once."""
    counter = [(int(k), s) for k, s in _counter_map((status.get("arrayProperties") or {}).get("attempts")).items()]

    def attempts(index: int) -> int:
        for count, members in counter:
            if index in members:
                return count
        return 0

    return attempts


def child_attempts(status: Mapping[str, Any], index: int) -> int:
    """Finished attempts of array child ``index`` (from the parent's compact status)."""
    value = _counter_get(_counter_map((status.get("arrayProperties") or {}).get("attempts")), index)
    return int(value) if value else 0


def _child_stops(requests: Any, default: str, size: int) -> dict[str, IndexSet]:
    """``spec.cancelChildren`` / ``spec.terminateChildren`` (child index -> ``{reason}``) as reason ->
    children (indexes outside the array are ignored; the CRD rejects them)."""
    by_reason: dict[str, set[int]] = {}
    for key, request in (requests or {}).items() if isinstance(requests, Mapping) else ():
        try:
            index = int(key)
        except (TypeError, ValueError):
            continue
        if 0 <= index < size:
            reason = str((request or {}).get("reason") or default) if isinstance(request, Mapping) else default
            by_reason.setdefault(reason, set()).add(index)
    return {reason: IndexSet.of(sorted(indexes)) for reason, indexes in by_reason.items()}


def _array(step: _Step) -> None:
    size = _array_size(step.job)
    props = dict(step.status.get("arrayProperties") or {})
    children = ArrayChildren.from_status(size, props.get("indexes"))
    attempts = _counter_map(props.get("attempts"))
    exit_codes = _counter_map(props.get("exitCodes"))
    reasons = _counter_map(props.get("statusReasons"))
    cancel = _cancel_request(step)
    terminate = step.spec.get("terminate")
    waiting = children.get(S.SUBMITTED) | children.get(S.PENDING) | children.get(S.RUNNABLE)

    def fail(indexes: IndexSet, reason: str) -> None:
        nonlocal children
        if not indexes:
            return
        children = children.move(indexes, S.FAILED)
        reasons[reason] = reasons.get(reason, IndexSet()) | indexes
        for other in list(reasons):
            if other != reason:
                reasons[other] = reasons[other] - indexes
                if not reasons[other]:
                    del reasons[other]

    # Single children cancelled or terminated (CancelJob / TerminateJob on `<jobId>:<index>`): those
    # not yet STARTING fail now (terminate wins over cancel); dependencies then see them FAILED.
    terminate_children = _child_stops(step.spec.get("terminateChildren"), DEFAULT_TERMINATE_REASON, size)
    cancel_children = _child_stops(step.spec.get("cancelChildren"), DEFAULT_CANCEL_REASON, size)
    child_terminate: dict[int, str] = {}
    for stops in (terminate_children, cancel_children):
        for why, indexes in stops.items():
            fail(indexes & waiting, why)
            waiting = waiting - indexes
    for why, indexes in terminate_children.items():
        child_terminate.update(dict.fromkeys(indexes, why))
    if terminate is not None:
        fail(waiting, str(terminate.get("reason") or DEFAULT_TERMINATE_REASON))
    elif cancel is not None:
        fail(waiting, str(cancel.get("reason") or DEFAULT_CANCEL_REASON))
    else:
        gates = array_child_gates(step.job, step.ctx.deps, children)
        fail(gates.failed, gates.status_reason)
        children = children.move(gates.ready, S.RUNNABLE)
        rest = (children.get(S.SUBMITTED)) - gates.ready - gates.failed
        children = children.move(rest, S.PENDING)
    term_reason = str(terminate.get("reason") or DEFAULT_TERMINATE_REASON) if terminate is not None else None
    strategy = _strategy(step)

    # RUNNABLE children whose pod exists were dispatched: they are STARTING.
    by_index: dict[int, Mapping[str, Any]] = {}
    for pod in step.pods.values():
        labels = (pod.get("metadata") or {}).get("labels") or {}
        idx = labels.get("kubatch.dev/array-index")
        att = labels.get("kubatch.dev/attempt")
        if idx is None or att is None:
            continue
        i, a = int(idx), int(att)
        current = (int(_counter_get(attempts, i) or 0)) + 1
        if a == current and children.state_of(i) in TERMINAL and not _finished(pod):
            # Its child failed before the attempt was seen to start (cancelled just as it was placed).
            step.delete_pod(pod, step.ctx.settings.termination_grace_period_seconds)
        elif a == current:
            by_index[i] = pod
        elif _finished(pod) or step.ctx.delete_finished_pods:
            step.delete_pod(pod, 0 if _finished(pod) else step.ctx.settings.termination_grace_period_seconds)
    started = IndexSet.of(i for i in by_index if i in children.get(S.RUNNABLE))
    children = children.move(started, S.STARTING)
    for forced_index, why in step.ctx.forced_cancel.items():
        if forced_index is not None and forced_index in children.get(S.RUNNABLE):
            fail(IndexSet.of([forced_index]), why)

    for i in list(children.get(S.STARTING) | children.get(S.RUNNING)):
        current = int(_counter_get(attempts, i) or 0) + 1
        name = pod_name(step.name, current, array_index=i)
        view = _follow_attempt(step, by_index.get(i), name, terminate_reason=term_reason or child_terminate.get(i))
        if view.outcome is None:
            if view.state == S.RUNNING:
                children = children.move(i, S.RUNNING)
            continue
        outcome = view.outcome
        _counter_set(attempts, i, str(current))
        _counter_set(exit_codes, i, None if outcome.exit_code is None else str(outcome.exit_code))
        cur_state = children.state_of(i)
        transition, _ = after_attempt(cur_state, outcome, strategy, current)
        children = children.move(i, transition.status)
        _counter_set(reasons, i, transition.status_reason if transition.status == S.FAILED else None)
    new_state, reason = children.status(step.state)
    props.update(
        {
            "size": size,
            "statusSummary": children.summary(),
            "indexes": {k: v for k, v in children.to_status().items() if v},
            "attempts": _counter_dump(attempts),
            "exitCodes": _counter_dump(exit_codes),
            "statusReasons": _counter_dump(reasons),
        }
    )
    step.status["arrayProperties"] = props
    if new_state != step.state:
        step.move(new_state, reason)
    if new_state == S.PENDING and children.get(S.RUNNABLE) and not step.status.get("queuedAt"):
        step.status["queuedAt"] = step.now_iso
    if new_state == S.PENDING:
        step.set_blocked_reason()


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
def reconcile(job: Mapping[str, Any], pods: Mapping[str, Mapping[str, Any]], ctx: Context) -> Decision:
    """One step for ``job`` given its pods (by name) and the context; see the module docstring."""
    step = _Step(job, pods, ctx)
    if not step.status.get("status"):
        meta = job.get("metadata") or {}
        step.status.update(
            {
                "status": S.SUBMITTED.value,
                "statusReason": "",
                "jobId": job_id(job),
                "createdAt": str(meta.get("creationTimestamp") or step.now_iso),
            }
        )
        if _is_array(job):
            step.status["arrayProperties"] = {"size": _array_size(job)}
        if ctx.definition_error or ctx.queue_missing:
            step.move(S.FAILED, str(ctx.definition_error or ctx.queue_missing))
            return step.finish()
        if ctx.definition is not None:
            step.status["jobDefinition"] = ctx.definition.resolved
            # As DescribeJobs shows them: the share, and the effective priority when one is set.
            if step.spec.get("shareIdentifier"):
                step.status["shareIdentifier"] = str(step.spec["shareIdentifier"])
            if step.spec.get("schedulingPriorityOverride") is not None or (
                ctx.definition.spec.get("schedulingPriority") is not None
            ):
                step.status["schedulingPriority"] = scheduling_priority(ctx.definition.spec, step.spec)
            tags = propagated_tags(ctx.definition.spec, step.spec)
            if len(tags) > MAX_PROPAGATED_TAGS:
                # AWS: "If the total number of combined tags from the job and job definition is over
                # 50, the job's moved to the FAILED state."
                step.move(S.FAILED, REASON_TOO_MANY_TAGS, f"{len(tags)} tags after merging job and job definition tags")
                return step.finish()
    if step.state in TERMINAL:
        for pod in pods.values():
            if not _finished(pod):
                step.delete_pod(pod, ctx.settings.termination_grace_period_seconds)
            elif ctx.delete_finished_pods:
                step.delete_pod(pod, 0)
        return step.finish()
    if ctx.definition is None:
        step.move(S.FAILED, str(ctx.definition_error or "Job definition not found"))
        return step.finish()
    if _is_array(job):
        _array(step)
    else:
        _single(step)
    return step.finish()


def grace_seconds_default() -> int:
    return DEFAULT_GRACE_PERIOD_SECONDS
