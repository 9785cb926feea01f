"""A job whose pod never starts does not stay STARTING forever.

A pod that can never start (an invalid image name, a missing image its pull policy forbids pulling)
fails the attempt at once. A pod that shows a start problem the kubelet keeps retrying (a pull backing
off, a missing Secret or ConfigMap, a container that cannot be created) or that no node takes gets
the start bound (``Context.start_timeout``) from its binding to a node (from its creation when no node
took it); a pod that is only slow (containers being created, which is where a volume that cannot be
mounted shows; a MANAGED environment's pod waiting for its new node) gets ``SLOW_START_FACTOR`` bounds.
Then the attempt fails with ``Task failed to start`` and the container reason in ECS's words, its pod
is deleted, and ``retryStrategy`` applies. A running init container (the job's own code) is never cut
short; the clock then counts from its end."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.states import (
    REASON_TASK_FAILED_TO_START,
    SLOW_START_FACTOR,
    StartBlock,
    attempt_outcome,
    observe_pod,
    start_block,
    start_clock,
)
from kubatch.core.timestamps import parse_iso

CE_LABEL = "kubatch.dev/compute-environment"
DEF = Definition("d:1", {"type": "container", "containerProperties": {"image": "busybox"}})
CREATED = "2027-01-15T08:00:00Z"
BOUND = "2027-01-15T08:00:10Z"
T_CREATED = parse_iso(CREATED) or 0.0
T_BOUND = parse_iso(BOUND) or 0.0
LIMIT = 300.0
UNMANAGED = {"um": {"metadata": {"name": "um"}, "spec": {"type": "UNMANAGED"}, "status": {"status": "VALID"}}}


def managed(status: str = "VALID") -> dict[str, Any]:
    return {"mg": {"metadata": {"name": "mg"}, "spec": {"type": "MANAGED"}, "status": {"status": status}}}


def job(*, retry: dict[str, Any] | None = None, array: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"jobQueue": "q", "jobDefinition": "d"}
    if retry:
        spec["retryStrategy"] = retry
    status: dict[str, Any] = {"status": "STARTING", "statusReason": "", "jobId": "uid", "jobDefinition": "d:1"}
    if array:
        spec["arrayProperties"] = {"size": array}
        status = {
            "status": "PENDING",
            "statusReason": "",
            "jobId": "uid",
            "jobDefinition": "d:1",
            "arrayProperties": {"size": array, "indexes": {"STARTING": "0", "SUCCEEDED": f"1-{array - 1}"}},
        }
    return {"metadata": {"name": "j", "namespace": "ns", "uid": "uid"}, "spec": spec, "status": status}


def pod(
    *,
    waiting: str | None = "ContainerCreating",
    message: str | None = None,
    node: str | None = "n1",
    ce: str = "um",
    unschedulable: str | None = None,
    init: dict[str, Any] | None = None,
    name: str = "j-a1",
    index: int | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    conditions = []
    if node:
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": BOUND})
        status["startTime"] = BOUND
        if waiting:
            state = {"waiting": {"reason": waiting, **({"message": message} if message else {})}}
            status["containerStatuses"] = [{"name": "main", "state": state}]
    elif unschedulable:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        )
    status["conditions"] = conditions
    if init is not None:
        status["initContainerStatuses"] = [{"name": "prep", "state": init}]
    labels = {"kubatch.dev/job-name": "j", "kubatch.dev/attempt": "1", CE_LABEL: ce}
    if index is not None:
        labels["kubatch.dev/array-index"] = str(index)
    return {
        "metadata": {"name": name, "uid": f"{name}-uid", "creationTimestamp": CREATED, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main"}]},
        "status": status,
    }


def step(p: dict[str, Any], now: float, *, envs: Any = None, bound: float | None = LIMIT, **kw: Any) -> Any:
    ctx = Context(
        now=now,
        definition=DEF,
        nodes=frozenset({"n1"}),
        environments=UNMANAGED if envs is None else envs,
        start_timeout=bound,
    )
    return reconcile(job(**kw), {str(p["metadata"]["name"]): p}, ctx)


def failed_to_start(d: Any) -> dict[str, Any]:
    assert d.status is not None, "the attempt should have failed"
    assert d.status["status"] == "FAILED"
    assert d.status["statusReason"] == REASON_TASK_FAILED_TO_START
    [attempt] = d.status["attempts"]
    assert attempt["statusReason"] == REASON_TASK_FAILED_TO_START
    assert "startedAt" not in attempt and "exitCode" not in attempt["container"]
    assert [x.name for x in d.delete] == ["j-a1"]
    return dict(attempt["container"])


@pytest.mark.parametrize("reason", ["InvalidImageName", "ErrImageNeverPull"])
def test_an_image_that_can_never_be_had_fails_at_once(reason: str) -> None:
    d = step(pod(waiting=reason, message="no such image"), T_BOUND + 1)
    assert failed_to_start(d)["reason"] == "CannotPullContainerError: no such image"
    # also without any bound: a definitive failure needs none
    d = step(pod(waiting=reason, message="no such image"), T_BOUND + 1, bound=None)
    assert failed_to_start(d)["reason"] == "CannotPullContainerError: no such image"


@pytest.mark.parametrize(
    ("waiting", "kind"),
    [
        ("ImagePullBackOff", "CannotPullContainerError"),
        ("ErrImagePull", "CannotPullContainerError"),
        ("CreateContainerConfigError", "ResourceInitializationError"),
        ("CreateContainerError", "CannotCreateContainerError"),
        ("RunContainerError", "CannotStartContainerError"),
    ],
)
def test_a_start_problem_fails_the_attempt_once_it_outlasts_the_bound(waiting: str, kind: str) -> None:
    p = pod(waiting=waiting, message="the kubelet says why")
    before = step(p, T_BOUND + LIMIT - 1)
    assert before.status is None and before.delete == []
    assert before.requeue_at == T_BOUND + LIMIT  # looked at again when the bound passes
    after = step(p, T_BOUND + LIMIT)
    assert failed_to_start(after)["reason"] == f"{kind}: the kubelet says why"
    assert after.status is not None and after.status["stoppedAt"] == "2027-01-15T08:05:10Z"


def test_no_bound_no_failure() -> None:
    d = step(pod(waiting="ImagePullBackOff"), T_BOUND + 10 * LIMIT, bound=None)
    assert d.status is None and d.delete == [] and d.requeue_at is None


def test_retry_strategy_applies_to_a_start_failure() -> None:
    retry = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Task failed to start", "action": "RETRY"}]}
    d = step(pod(waiting="ImagePullBackOff", message="back-off pulling"), T_BOUND + LIMIT, retry=retry)
    assert d.status is not None and d.status["status"] == "RUNNABLE"
    assert "startedAt" not in d.status  # it never ran
    assert [e.reason for e in d.events] == ["JobRetry", "JobRunnable"]
    assert d.status["attempts"][0]["container"]["reason"] == "CannotPullContainerError: back-off pulling"
    assert [x.name for x in d.delete] == ["j-a1"]
    exit_on_it = {"attempts": 3, "evaluateOnExit": [{"onReason": "CannotPullContainerError*", "action": "EXIT"}]}
    d = step(pod(waiting="ImagePullBackOff"), T_BOUND + LIMIT, retry=exit_on_it)
    assert d.status is not None and d.status["status"] == "FAILED"


def test_containers_being_created_get_the_slow_bound() -> None:
    """Where a volume that cannot be mounted shows (FailedMount is only in the pod's Events)."""
    p = pod(waiting="ContainerCreating")
    d = step(p, T_BOUND + LIMIT)
    assert d.status is None and d.requeue_at == T_BOUND + SLOW_START_FACTOR * LIMIT
    reason = failed_to_start(step(p, T_BOUND + SLOW_START_FACTOR * LIMIT))["reason"]
    assert reason == "ResourceInitializationError: ContainerCreating: containers not created"
    # a kubelet that has not reported any container yet: the same
    quiet = pod(waiting=None)
    assert step(quiet, T_BOUND + SLOW_START_FACTOR * LIMIT).status is not None


def test_a_pod_no_node_takes_is_bounded_from_its_creation() -> None:
    p = pod(node=None, unschedulable="0/3 nodes are available: 3 node(s) had untolerated taint {x: y}.")
    assert step(p, T_CREATED + LIMIT - 1).requeue_at == T_CREATED + LIMIT
    d = step(p, T_CREATED + LIMIT)
    assert (
        failed_to_start(d)["reason"]
        == "Unschedulable: 0/3 nodes are available: 3 node(s) had untolerated taint {x: y}."
    )
    # not looked at by the scheduler yet (no condition): only slow
    quiet = pod(node=None)
    assert step(quiet, T_CREATED + LIMIT).status is None
    assert step(quiet, T_CREATED + SLOW_START_FACTOR * LIMIT).status is not None


def test_a_managed_environments_pod_waiting_for_its_node_is_only_slow() -> None:
    p = pod(node=None, ce="mg", unschedulable="0/1 nodes are available: 1 node(s) didn't match selector.")
    d = step(p, T_CREATED + LIMIT, envs=managed())
    assert d.status is None and d.requeue_at == T_CREATED + SLOW_START_FACTOR * LIMIT
    assert step(p, T_CREATED + SLOW_START_FACTOR * LIMIT, envs=managed()).status is not None
    # an environment whose nodes never join (INVALID) brings no node: the plain bound
    assert step(p, T_CREATED + LIMIT, envs=managed("INVALID")).status is not None


def test_a_running_init_container_is_never_cut_short() -> None:
    running = pod(waiting="PodInitializing", init={"running": {"startedAt": BOUND}})
    d = step(running, T_BOUND + 100 * LIMIT)
    assert d.status is None and d.requeue_at is None
    # the clock counts from the end of the init containers
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2027-01-15T09:00:00Z"}}
    pulled = pod(waiting="ImagePullBackOff", init=done)
    t_done = parse_iso("2027-01-15T09:00:00Z") or 0.0
    assert step(pulled, t_done + LIMIT - 1).status is None
    assert step(pulled, t_done + LIMIT).status is not None


def test_an_array_child_that_never_starts_fails_alone() -> None:
    p = pod(waiting="ImagePullBackOff", message="denied", name="j-0-a1", index=0)
    ctx = Context(
        now=T_BOUND + LIMIT, definition=DEF, nodes=frozenset({"n1"}), environments=UNMANAGED, start_timeout=LIMIT
    )
    d = reconcile(job(array=3), {"j-0-a1": p}, ctx)
    assert d.status is not None
    props = d.status["arrayProperties"]
    assert props["indexes"] == {"FAILED": "0", "SUCCEEDED": "1-2"}
    assert props["statusReasons"] == {REASON_TASK_FAILED_TO_START: "0"}
    assert d.status["status"] == "FAILED"
    assert [x.name for x in d.delete] == ["j-0-a1"]


def test_start_block_and_clock() -> None:
    obs = observe_pod(pod(waiting="ImagePullBackOff", message="m"))
    assert start_block(obs) == StartBlock("CannotPullContainerError: m")
    assert start_clock(obs) == BOUND
    unbound = observe_pod(pod(node=None, unschedulable="no"))
    assert start_clock(unbound) == CREATED
    assert start_block(unbound) == StartBlock("Unschedulable: no")
    assert start_block(unbound, awaiting_node=True) == StartBlock("Unschedulable: no", visible=False)
    # attempt_outcome alone fails only what can never start
    assert attempt_outcome(obs) is None
    out = attempt_outcome(obs, start_failure=start_block(obs), now=BOUND)
    assert out is not None and out.start_failure and out.reason == "CannotPullContainerError: m"
    running = observe_pod(
        {
            "metadata": {"name": "x"},
            "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]},
        }
    )
    assert start_block(running) is None
