"""Fuzzing the pure lifecycle step: random jobs, status histories, pods and dependencies.

Properties of `kubatch.core.lifecycle.reconcile` for any input within the CRD's shape: it never
raises; a terminal job never moves; it never asks for more than one pod per (array index, node,
attempt) nor for a pod that already exists; the status it writes is always a valid JobStatus
(known state, attempts consistent with attemptCount, array parents only in parent states, every
array index in exactly one state).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.arrays import IndexSet
from kubatch.core.deps import DependencyStatus
from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.states import ARRAY_PARENT_STATUSES, TERMINAL, JobStatus

STATES = [s.value for s in JobStatus]
PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown", None]
NODES = ["n1", "n2", "gone"]
NOW = 1_800_000_000.0

names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
reasons = st.text(max_size=30)


@st.composite
def strategies(draw: st.DrawFn) -> dict[str, Any] | None:
    if not draw(st.booleans()):
        return None
    rules = draw(
        st.lists(
            st.fixed_dictionaries(
                {"action": st.sampled_from(["RETRY", "EXIT", "retry", "exit"])},
                optional={
                    "onExitCode": st.sampled_from(["1", "2*", "*", "137"]),
                    "onStatusReason": st.sampled_from(["Host EC2*", "*", "Essential*"]),
                    "onReason": st.sampled_from(["*", "OutOfMemory*"]),
                },
            ),
            max_size=3,
        )
    )
    out: dict[str, Any] = {"attempts": draw(st.integers(1, 10))}
    if rules:
        out["evaluateOnExit"] = rules
    return out


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    spec: dict[str, Any] = {
        "type": "container",
        "containerProperties": {
            "image": "busybox",
            "command": ["sh", "-c", "true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    }
    strategy = draw(strategies())
    if strategy:
        spec["retryStrategy"] = strategy
    if draw(st.booleans()):
        spec["timeout"] = {"attemptDurationSeconds": draw(st.integers(60, 3600))}
    return Definition("def:1", spec)


@st.composite
def pods_for(draw: st.DrawFn, job: str, size: int) -> dict[str, dict[str, Any]]:
    pods: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(0, 6))):
        attempt = draw(st.integers(1, 4))
        index = draw(st.integers(0, size - 1)) if size >= 2 else None
        name = f"{job}-{index}-a{attempt}" if index is not None else f"{job}-a{attempt}"
        labels = {"kubatch.dev/job-name": job, "kubatch.dev/attempt": str(attempt)}
        if index is not None:
            labels["kubatch.dev/array-index"] = str(index)
        phase = draw(st.sampled_from(PHASES))
        status: dict[str, Any] = {"phase": phase}
        if phase in ("Succeeded", "Failed", "Running"):
            state: dict[str, Any] = (
                {"running": {"startedAt": "2027-01-15T08:00:00Z"}}
                if phase == "Running"
                else {
                    "terminated": {
                        "exitCode": draw(st.integers(0, 255)),
                        "reason": draw(st.sampled_from(["Completed", "Error", "OOMKilled"])),
                        "startedAt": "2027-01-15T08:00:00Z",
                        "finishedAt": "2027-01-15T08:01:00Z",
                    }
                }
            )
            status["containerStatuses"] = [{"name": "main", "state": state}]
        pods[name] = {
            "metadata": {
                "name": name,
                "uid": f"uid-{name}",
                "labels": labels,
                "deletionTimestamp": draw(st.sampled_from([None, "2027-01-15T08:02:00Z"])),
            },
            "spec": {"nodeName": draw(st.sampled_from([*NODES, None]))},
            "status": status,
        }
    return pods


@st.composite
def array_status(draw: st.DrawFn, size: int) -> dict[str, Any]:
    """Per-index states as compact index sets: a random partition of 0..size-1."""
    by_state: dict[str, list[int]] = {}
    for i in range(size):
        by_state.setdefault(draw(st.sampled_from(STATES)), []).append(i)
    props: dict[str, Any] = {"size": size, "indexes": {k: str(IndexSet.of(v)) for k, v in by_state.items()}}
    if draw(st.booleans()):
        done = [i for i in range(size) if draw(st.booleans())]
        if done:
            props["attempts"] = {str(draw(st.integers(1, 3))): str(IndexSet.of(done))}
    return props


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, dict[str, Any]], Context]:
    name = draw(names)
    size = draw(st.sampled_from([0, 0, draw(st.integers(2, 50))]))
    spec: dict[str, Any] = {"jobQueue": "q", "jobDefinition": "def"}
    if size:
        spec["arrayProperties"] = {"size": size}
    deps: dict[str, DependencyStatus] = {}
    entries = []
    for dep in draw(st.lists(names, max_size=3, unique=True)):
        entry: dict[str, Any] = {"jobName": dep}
        if size and draw(st.booleans()):
            entry["type"] = draw(st.sampled_from(["N_TO_N", "SEQUENTIAL"]))
        entries.append(entry)
        if draw(st.booleans()):
            deps[dep] = DependencyStatus(JobStatus(draw(st.sampled_from(STATES))))
    if entries:
        spec["dependsOn"] = entries
    strategy = draw(strategies())
    if strategy:
        spec["retryStrategy"] = strategy
    if draw(st.integers(0, 9)) == 0:
        spec["cancel"] = {"reason": draw(reasons)}
    if draw(st.integers(0, 9)) == 0:
        spec["terminate"] = {"reason": draw(reasons)}
    for field in ("cancelChildren", "terminateChildren"):
        if size and draw(st.integers(0, 3)) == 0:
            picked = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=4, unique=True))
            spec[field] = {str(i): {"reason": draw(reasons)} for i in picked}
    status: dict[str, Any] = {}
    if draw(st.booleans()):
        # Reachable histories only: an array parent shows only the parent states (a RUNNABLE parent,
        # which only a hand-edited status can produce, makes the step raise InvalidTransition).
        state = draw(st.sampled_from(sorted(ARRAY_PARENT_STATUSES) if size else STATES))
        n_attempts = draw(st.integers(0, 3))
        status = {
            "status": state,
            "statusReason": draw(reasons),
            "jobId": "uid-1",
            "jobDefinition": "def:1",
            "attempts": [
                {"container": {"exitCode": 1, "podName": f"{name}-a{a + 1}"}, "statusReason": "x"}
                for a in range(n_attempts)
            ],
            "attemptCount": n_attempts,
        }
        if size:
            status["arrayProperties"] = draw(array_status(size))
    job = {
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "creationTimestamp": "2027-01-15T07:00:00Z"},
        "spec": spec,
        "status": status,
    }
    ctx = Context(
        now=NOW + draw(st.integers(0, 7200)),
        definition=draw(st.one_of(st.none(), definitions())) if draw(st.integers(0, 9)) == 0 else draw(definitions()),
        definition_error=draw(st.sampled_from([None, None, "Job definition def not found"])),
        deps=deps,
        nodes=draw(st.sampled_from([None, frozenset({"n1", "n2"})])),
        queue_missing=draw(st.sampled_from([None, None, None, "Job queue q not found"])),
        delete_finished_pods=draw(st.booleans()),
        blocked_reason=draw(st.sampled_from([None, "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"])),
        forced_cancel=draw(st.sampled_from([{}, {None: "time limit"}, {0: "time limit"}])),
    )
    return job, draw(pods_for(name, size)), ctx


def _check_status(job: dict[str, Any], status: dict[str, Any]) -> None:
    state = status.get("status")
    assert state in STATES, status
    assert isinstance(status.get("statusReason", ""), str)
    attempts = status.get("attempts")
    if attempts is not None:
        assert isinstance(attempts, list)
        assert status.get("attemptCount", len(attempts)) == len(attempts)
    size = int((job["spec"].get("arrayProperties") or {}).get("size") or 0)
    if size >= 2:
        assert JobStatus(state) in ARRAY_PARENT_STATUSES, status
        indexes = (status.get("arrayProperties") or {}).get("indexes")
        if indexes:
            seen: list[int] = []
            for k, v in indexes.items():
                assert k in STATES
                seen.extend(IndexSet.parse(v))
            assert sorted(seen) == list(range(size)), indexes


@given(cases())
def test_reconcile_is_total_and_safe(case: tuple[dict[str, Any], dict[str, dict[str, Any]], Context]) -> None:
    job, pods, ctx = case
    decision = reconcile(job, pods, ctx)
    old_state = (job.get("status") or {}).get("status")
    if old_state in TERMINAL:
        assert decision.status is None or decision.status.get("status") == old_state
        assert decision.create == []
    if decision.status is not None:
        _check_status(job, decision.status)
    created = [m["metadata"]["name"] for m in decision.create]
    assert len(created) == len(set(created)), created
    assert not set(created) & set(pods), "asked to create a pod that exists"
    keys = [
        (
            m["metadata"]["labels"].get("kubatch.dev/array-index"),
            m["metadata"]["labels"].get("kubatch.dev/node-index"),
            m["metadata"]["labels"].get("kubatch.dev/attempt"),
        )
        for m in decision.create
    ]
    assert len(keys) == len(set(keys)), keys
    deleted = [d.name for d in decision.delete]
    assert len(deleted) == len(set(deleted))
    assert set(deleted) <= set(pods)


@given(cases())
def test_reconcile_is_idempotent_once_written(
    case: tuple[dict[str, Any], dict[str, dict[str, Any]], Context],
) -> None:
    """Writing the step's status and stepping again with the same pods never goes backwards from a
    terminal state (a replayed watch event or a restart cannot undo a finished job)."""
    job, pods, ctx = case
    first = reconcile(job, pods, ctx)
    if first.status is None:
        return
    again = reconcile({**job, "status": first.status}, pods, ctx)
    if first.status.get("status") in TERMINAL:
        assert again.status is None or again.status.get("status") == first.status["status"]
        assert again.create == []
