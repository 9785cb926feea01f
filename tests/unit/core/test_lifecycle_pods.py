"""The pods the lifecycle step creates itself (a multi-node job's other nodes, once the main node
runs) carry what the environment of the main node asks for: its tolerations. An attempt's record
names the UID of the node it ran on when that node is known."""

from __future__ import annotations

from typing import Any

from kubatch.core.lifecycle import Context, Definition, reconcile

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
    node1 = next(p for p in first.create if p["metadata"]["name"] == "mpi-n1-a1")
    moved = running_main_pod()
    moved["status"]["podIP"] = "10.0.0.9"
    d = reconcile(job(), {"mpi-n0-a1": moved, "mpi-n1-a1": node1}, ctx)
    assert [p["metadata"]["name"] for p in d.create] == ["mpi-n2-a1"]
    assert env(d.create[0])["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "10.0.0.5"
    assert d.status is not None
    assert d.status["nodeProperties"]["mainNodeAddress"] == "10.0.0.5"


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
