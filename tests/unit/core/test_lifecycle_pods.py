"""The pods the lifecycle step creates itself (a multi-node job's other nodes, once the main node
runs) carry what the environment of the main node asks for: its tolerations. An attempt's record
names the UID of the node it ran on when that node is known."""

from __future__ import annotations

from typing import Any

from kubatch.cluster.view import slim_pod
from kubatch.core.lifecycle import Context, Definition, reconcile
from kubatch.core.timestamps import parse_iso

NOW = 1_800_000_000.0
CE_LABEL = "kubatch.dev/compute-environment"
OWN = {"key": CE_LABEL, "operator": "Equal", "value": "ce", "effect": "NoSchedule"}
DEDICATED = {"key": "example.com/dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
MNP = Definition(
    "mpi:1",
    {
        "type": "multinode",
        "nodeProperties": {
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [
                {
                    "targetNodes": "0:",
                    "container": {
                        "image": "busybox",
                        "command": ["sh", "-c", "true"],
                        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
                    },
                }
            ],
        },
    },
)


def job() -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "mpi", "namespace": "ns", "uid": "job-uid", "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"jobQueue": "q", "jobDefinition": "mpi"},
        "status": {"status": "STARTING", "statusReason": "", "jobId": "job-uid", "computeEnvironment": "ce"},
    }


def running_main_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "mpi-n0-a1",
            "uid": "pod-uid",
            "labels": {"kubatch.dev/job-name": "mpi", "kubatch.dev/attempt": "1", CE_LABEL: "ce"},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": "2027-01-15T08:00:01Z"}}}],
        },
    }


def other_nodes(environments: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = Context(now=NOW, definition=MNP, nodes=frozenset({"n1"}), environments=environments)
    d = reconcile(job(), {"mpi-n0-a1": running_main_pod()}, ctx)
    pods = [o for o in d.create if o["kind"] == "Pod"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["mpi-n1-a1", "mpi-n2-a1"]
    return pods


def test_other_nodes_get_the_main_nodes_environment_tolerations() -> None:
    ce = {"metadata": {"name": "ce"}, "spec": {"type": "MANAGED", "tolerations": [DEDICATED]}}
    for p in other_nodes({"ce": ce, "elsewhere": {"spec": {"tolerations": [{"operator": "Exists"}]}}}):
        assert p["spec"]["tolerations"] == [OWN, DEDICATED]


def test_other_nodes_of_an_environment_without_tolerations_get_only_kubatchs() -> None:
    for p in other_nodes({}):
        assert p["spec"]["tolerations"] == [OWN]


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def test_other_nodes_get_the_main_pods_ip_and_the_job_records_it() -> None:
    ctx = Context(now=NOW, definition=MNP, nodes=frozenset({"n1"}))
    d = reconcile(job(), {"mpi-n0-a1": running_main_pod()}, ctx)
    assert {env(p)["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] for p in d.create} == {"10.0.0.5"}
    assert d.status is not None
    assert d.status["nodeProperties"]["mainNodeAddress"] == "10.0.0.5"


def test_a_node_created_later_gets_the_address_its_siblings_got() -> None:
    ctx = Context(now=NOW, definition=MNP, nodes=frozenset({"n1"}))
    first = reconcile(job(), {"mpi-n0-a1": running_main_pod()}, ctx)
    # The operator reads its pods from the view, which keeps slimmed copies.
    node1 = slim_pod(next(p for p in first.create if p["metadata"]["name"] == "mpi-n1-a1"))
    moved = running_main_pod()
    moved["status"]["podIP"] = "10.0.0.9"
    d = reconcile(job(), {"mpi-n0-a1": moved, "mpi-n1-a1": node1}, ctx)
    assert [p["metadata"]["name"] for p in d.create] == ["mpi-n2-a1"]
    assert env(d.create[0])["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "10.0.0.5"
    assert d.status is not None
    assert d.status["nodeProperties"]["mainNodeAddress"] == "10.0.0.5"


def test_a_main_pods_ip_is_recorded_only_once_other_nodes_are_given_it() -> None:
    # A real kubelet reports the IP while the pod is still Pending: before any other node exists the
    # job records no address (the IP the others get later is the one that counts).
    ctx = Context(now=NOW, definition=MNP, nodes=frozenset({"n1"}))
    pending = running_main_pod()
    pending["status"] = {"phase": "Pending", "podIP": "10.0.0.5"}
    d = reconcile(job(), {"mpi-n0-a1": pending}, ctx)
    assert d.create == []
    assert d.status is not None
    assert "mainNodeAddress" not in d.status["nodeProperties"]


# node UIDs in attempt records ---------------------------------------------------------------------
def single_job(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid", "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"jobQueue": "q", "jobDefinition": "work"},
        "status": status,
    }


def finished_pod(node: str) -> dict[str, Any]:
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2027-01-15T08:00:01Z",
        "finishedAt": "2027-01-15T08:00:02Z",
    }
    return {
        "metadata": {"name": "j-a1", "uid": "pod-uid", "labels": {"kubatch.dev/job-name": "j", CE_LABEL: "ce"}},
        "spec": {"nodeName": node, "containers": [{"name": "main"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}]},
    }


WORK = Definition(
    "work:1",
    {"type": "container", "containerProperties": MNP.spec["nodeProperties"]["nodeRangeProperties"][0]["container"]},
)


def test_the_attempt_record_names_the_nodes_uid() -> None:
    status = {"status": "RUNNING", "statusReason": "", "jobId": "job-uid", "computeEnvironment": "ce"}
    uids = {"n1": "9a3c-node-uid"}
    ctx = Context(now=NOW, definition=WORK, nodes=frozenset(uids), node_uids=uids)
    d = reconcile(single_job(status), {"j-a1": finished_pod("n1")}, ctx)
    assert d.status is not None and d.status["status"] == "SUCCEEDED"
    (attempt,) = d.status["attempts"]
    assert attempt["container"]["nodeName"] == "n1" and attempt["container"]["nodeUid"] == "9a3c-node-uid"


def test_a_node_kubatch_no_longer_knows_has_no_uid() -> None:
    status = {"status": "RUNNING", "statusReason": "", "jobId": "job-uid", "computeEnvironment": "ce"}
    ctx = Context(now=NOW, definition=WORK, nodes=frozenset({"n1"}))
    d = reconcile(single_job(status), {"j-a1": finished_pod("n1")}, ctx)
    assert d.status is not None
    (attempt,) = d.status["attempts"]
    assert attempt["container"]["nodeName"] == "n1" and "nodeUid" not in attempt["container"]


# the main node decides; nodes stopped with the attempt ---------------------------------------------
def node_pod(k: int, phase: str, exit_code: int | None = None) -> dict[str, Any]:
    """Node ``k`` of attempt 1 of the ``mpi`` job, running or finished with ``exit_code``."""
    started = "2027-01-15T08:00:01Z"
    if exit_code is None:
        state: dict[str, Any] = {"running": {"startedAt": started}}
    else:
        reason = "Completed" if exit_code == 0 else "Error"
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started}}
    return {
        "metadata": {
            "name": f"mpi-n{k}-a1",
            "uid": f"pod-{k}",
            "labels": {"kubatch.dev/job-name": "mpi", "kubatch.dev/attempt": "1", CE_LABEL: "ce"},
        },
        "spec": {"nodeName": f"n{k}", "containers": [{"name": "main"}]},
        "status": {"phase": phase, "podIP": f"10.0.0.{k + 5}", "containerStatuses": [{"name": "main", "state": state}]},
    }


def running_job() -> dict[str, Any]:
    j = job()
    j["status"]["status"] = "RUNNING"
    j["status"]["startedAt"] = "2027-01-15T08:00:01Z"
    return j


def node_states(status: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(n["status"], n.get("exitCode")) for n in status["nodeProperties"]["nodes"]]


MNP_RETRIED = Definition("mpi:1", {**MNP.spec, "retryStrategy": {"attempts": 2}})
NODES = frozenset({"n0", "n1", "n2"})


def test_a_child_node_failing_changes_nothing_but_its_own_state() -> None:
    ctx = Context(now=NOW, definition=MNP_RETRIED, nodes=NODES)
    pods = {
        "mpi-n0-a1": node_pod(0, "Running"),
        "mpi-n1-a1": node_pod(1, "Failed", 1),
        "mpi-n2-a1": node_pod(2, "Running"),
    }
    d = reconcile(running_job(), pods, ctx)
    assert d.status is not None
    assert d.status["status"] == "RUNNING" and "attempts" not in d.status
    assert node_states(d.status) == [("RUNNING", None), ("FAILED", 1), ("RUNNING", None)]
    assert not d.delete and not d.create


def test_nodes_still_running_when_the_main_node_exits_are_recorded_stopped() -> None:
    ctx = Context(now=NOW, definition=MNP_RETRIED, nodes=NODES)
    pods = {
        "mpi-n0-a1": node_pod(0, "Succeeded", 0),
        "mpi-n1-a1": node_pod(1, "Failed", 1),
        "mpi-n2-a1": node_pod(2, "Running"),
    }
    d = reconcile(running_job(), pods, ctx)
    assert d.status is not None and d.status["status"] == "SUCCEEDED"
    # Node 2 is stopped with the job: FAILED, not a RUNNING left on a finished job.
    assert node_states(d.status) == [("SUCCEEDED", 0), ("FAILED", 1), ("FAILED", None)]
    assert {x.name for x in d.delete} >= {"mpi-n2-a1"}


def test_a_timed_out_multi_node_job_stops_and_fails_every_node() -> None:
    timed = Definition("mpi:1", {**MNP_RETRIED.spec, "timeout": {"attemptDurationSeconds": 60}})
    started = parse_iso("2027-01-15T08:00:01Z")
    assert started is not None
    pods = {f"mpi-n{k}-a1": node_pod(k, "Running") for k in range(3)}
    d = reconcile(running_job(), pods, Context(now=started + 61, definition=timed, nodes=NODES))
    assert d.status is not None
    assert (d.status["status"], d.status["statusReason"]) == ("FAILED", "Job attempt duration exceeded timeout")
    assert len(d.status["attempts"]) == 1  # a timeout is not retried
    assert node_states(d.status) == [("FAILED", None)] * 3
    assert {x.name for x in d.delete} == set(pods)
