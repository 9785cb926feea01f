"""Multi-node parallel and GPU jobs on managed (kwok-provisioned) compute environments, end to end
with the operator: gang admission, distinct nodes, the main node first and its IP, node ranges,
main-node exit stopping the others, GPU placement and limits. The main node alone decides a
multi-node job (a child node failing changes nothing, a main-node failure retries the whole job) and
the timeout covers the whole job; those tests run on UNMANAGED kwok nodes (kubatch allows gangs
there), which need no provisioning."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def managed_env(batch: Batch, *, max_vcpus: int, instance_types: list[str], name: str | None = None) -> str:
    ce = name or batch.name("mce")
    return batch.cluster_object(
        "ComputeEnvironment",
        ce,
        {
            "type": "MANAGED",
            "computeResources": {
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": max_vcpus,
                "instanceTypes": instance_types,
                "allocationStrategy": "BEST_FIT_PROGRESSIVE",
                "provisioner": "kwok",
            },
        },
    )


def wait_env_valid(batch: Batch, ce: str) -> None:
    batch.wait_for(
        lambda: (batch.kget("computeenvironment", ce).get("status") or {}).get("status") == "VALID", f"{ce} VALID"
    )


def mnp_definition(batch: Batch, name: str, nodes: int, *, vcpus: str = "1", **extra: Any) -> str:
    container = {
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo node $AWS_BATCH_JOB_NODE_INDEX"],
        "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": "256"}],
    }
    return batch.definition(
        name,
        {
            "type": "multinode",
            "nodeProperties": {
                "numNodes": nodes,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {"targetNodes": "0:", "container": container},
                    {"targetNodes": "1:", "container": {**container, "command": ["sh", "-c", "echo worker"]}},
                ],
            },
            **extra,
        },
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def test_three_node_job_runs_on_distinct_nodes_with_main_ip(batch: Batch) -> None:
    ce = managed_env(batch, max_vcpus=16, instance_types=["m5.large"])
    wait_env_valid(batch, ce)
    q = batch.queue([ce])
    mnp_definition(batch, "mpi", 3)
    batch.job("mpi-1", q, "mpi", duration="30s", annotations={"sim.kubatch.dev/duration-node-0": "15s"})
    st = batch.wait_status("mpi-1", "RUNNING", timeout=120)
    batch.wait_for(
        lambda: len([p for p in batch.pods("mpi-1") if p["spec"].get("nodeName")]) == 3,
        "all three nodes bound",
        timeout=120,
    )
    pods = {int(p["metadata"]["labels"]["kubatch.dev/node-index"]): p for p in batch.pods("mpi-1")}
    assert sorted(pods) == [0, 1, 2]
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 3, "nodes must be distinct"
    # Every other node gets the main pod's IP, recorded on the job (a simulated node can report a
    # second IP later; the real-node tests connect to the address for real).
    main_ip = batch.wait_for(
        lambda: (batch.status("mpi-1").get("nodeProperties") or {}).get("mainNodeAddress"),
        "main node address recorded",
        timeout=60,
    )
    assert ipaddress.ip_address(main_ip).version == 4
    for i, pod in pods.items():
        env = env_of(pod)
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(i)
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "3"
        assert env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
        assert env["AWS_BATCH_JOB_ID"] == f"{st['jobId']}#{i}"
        if i == 0:
            assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in env
            assert pod["spec"]["containers"][0]["args"] == ["sh", "-c", "echo node $AWS_BATCH_JOB_NODE_INDEX"]
        else:
            assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == main_ip
            assert pod["spec"]["containers"][0]["args"] == ["sh", "-c", "echo worker"]
    # The main node exits first (15 s): the others are stopped and the job takes its result.
    done = batch.wait_done("mpi-1", timeout=120)
    assert done["status"] == "SUCCEEDED"
    assert len(done["attempts"]) == 1
    batch.wait_for(lambda: not batch.pods("mpi-1"), "worker pods stopped", timeout=60)
    nodes = done["nodeProperties"]["nodes"]
    assert [n["nodeIndex"] for n in nodes] == [0, 1, 2]
    services = batch.kget("services", "-n", batch.ns)["items"]
    assert any(s["spec"].get("clusterIP") == "None" for s in services), "a headless Service for node discovery"


def test_gang_that_cannot_fit_waits_runnable_with_no_pod(batch: Batch) -> None:
    ce = managed_env(batch, max_vcpus=4, instance_types=["m5.large"])
    wait_env_valid(batch, ce)
    q = batch.queue([ce])
    mnp_definition(batch, "wide", 3, vcpus="2")
    batch.job("wide-1", q, "wide", duration="5s")
    st = batch.wait_status("wide-1", "RUNNABLE")
    batch.wait_for(
        lambda: batch.status("wide-1").get("statusReason", "").startswith("MISCONFIGURATION"),
        "a MISCONFIGURATION reason on the gang",
        timeout=30,
    )
    time.sleep(3)
    assert not batch.pods("wide-1"), "no partial start"
    assert st["status"] == "RUNNABLE"


def test_gpu_job_lands_on_a_gpu_node_with_the_limit(batch: Batch) -> None:
    ce = managed_env(batch, max_vcpus=16, instance_types=["p3.2xlarge"])
    wait_env_valid(batch, ce)
    q = batch.queue([ce])
    batch.container_definition("gpu", vcpus="2", memory="1024", command=["nvidia-smi"], gpus="1")
    batch.job("train", q, "gpu", duration="30s")
    batch.wait_status("train", "RUNNING", timeout=120)
    (pod,) = batch.pods("train")
    res = pod["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1"
    assert res["requests"]["nvidia.com/gpu"] == "1"
    node = batch.kget("node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "p3.2xlarge"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert batch.wait_done("train", timeout=90)["status"] == "SUCCEEDED"


def test_gpu_job_on_a_queue_without_gpu_instances_is_misconfigured(batch: Batch) -> None:
    ce = managed_env(batch, max_vcpus=16, instance_types=["m5.large"])
    wait_env_valid(batch, ce)
    q = batch.queue([ce])
    batch.container_definition("gpu", vcpus="1", memory="512", command=["nvidia-smi"], gpus="1")
    batch.job("no-gpu", q, "gpu")
    batch.wait_for(
        lambda: batch.status("no-gpu").get("statusReason", "").startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"),
        "JOB_RESOURCE_REQUIREMENT reason",
        timeout=30,
    )
    assert not batch.pods("no-gpu")


def node_pods(batch: Batch, job: str) -> dict[str, dict[str, Any]]:
    """The job's pods by name."""
    return {p["metadata"]["name"]: p for p in batch.pods(job)}


def phase(pod: dict[str, Any] | None) -> str | None:
    return None if pod is None else (pod.get("status") or {}).get("phase")


def test_a_failing_child_node_is_ignored_the_main_node_decides(batch: Batch) -> None:
    """AWS: "If a child node dies, AWS Batch doesn't take any action on the other nodes"; "Child
    node failures don't cause more attempts to occur"; the main node's exit decides the job."""
    q = batch.queue([batch.environment(nodes=3, cpu=2)])
    mnp_definition(batch, "gang", 3, retryStrategy={"attempts": 2})
    batch.job(
        "child-fails",
        q,
        "gang",
        duration="1h",
        annotations={
            "sim.kubatch.dev/duration-node-0": "20s",
            "sim.kubatch.dev/duration-node-1": "2s",
            "sim.kubatch.dev/exit-code-node-1": "1",
        },
    )

    def child_failed_others_run() -> dict[str, dict[str, Any]] | None:
        pods = node_pods(batch, "child-fails")
        main, child, other = (pods.get(f"child-fails-n{k}-a1") for k in range(3))
        if phase(child) == "Failed" and phase(main) == "Running" and phase(other) == "Running":
            return pods
        return None

    pods = batch.wait_for(child_failed_others_run, "node 1 failed while nodes 0 and 2 run", timeout=60)
    code = pods["child-fails-n1-a1"]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
    assert code == 1
    # Nothing is stopped or retried for it: the job runs on with its main node.
    st = batch.status("child-fails")
    assert st["status"] in ("STARTING", "RUNNING"), st
    assert not st.get("attempts"), st
    assert not {p for p in node_pods(batch, "child-fails") if p.endswith("-a2")}
    done = batch.wait_done("child-fails", timeout=90)
    assert done["status"] == "SUCCEEDED", done
    (attempt,) = done["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["podName"] == "child-fails-n0-a1"
    nodes = {n["nodeIndex"]: n for n in done["nodeProperties"]["nodes"]}
    assert (nodes[1]["status"], nodes[1].get("exitCode")) == ("FAILED", 1), nodes
    assert nodes[0]["status"] == "SUCCEEDED", nodes
    assert nodes[2]["status"] == "FAILED", nodes  # stopped with the job, not left RUNNING
    # The main node's exit stops node 2, which was still running.
    batch.wait_for(lambda: not batch.pods("child-fails"), "every node stopped", timeout=60)


def test_a_main_node_failure_retries_the_whole_job(batch: Batch) -> None:
    """AWS: "a main node failure causes another attempt to occur"; the new attempt runs every node
    again (kubatch: new pods, named for attempt 2)."""
    q = batch.queue([batch.environment(nodes=3, cpu=2)])
    mnp_definition(batch, "gang", 3, retryStrategy={"attempts": 2})
    # Every node of attempt 1 exits 1; the main node after 8 s (the others would run for an hour).
    batch.job(
        "main-fails",
        q,
        "gang",
        duration="1h",
        annotations={"sim.kubatch.dev/duration-node-0": "8s", "sim.kubatch.dev/exit-code-attempt-1": "1"},
    )
    seen: set[str] = set()

    def record_until_done() -> dict[str, Any] | None:
        seen.update(p for p, pod in node_pods(batch, "main-fails").items() if phase(pod) == "Running")
        st = batch.status("main-fails")
        return st if st.get("status") in ("SUCCEEDED", "FAILED") else None

    done = batch.wait_for(record_until_done, "the job done", timeout=120, interval=0.2)
    assert done["status"] == "SUCCEEDED", done
    assert [a["container"]["exitCode"] for a in done["attempts"]] == [1, 0]
    assert [a["container"]["podName"] for a in done["attempts"]] == ["main-fails-n0-a1", "main-fails-n0-a2"]
    assert done["attempts"][0]["statusReason"] == "Essential container in task exited"
    # Every node ran in both attempts: attempt 2 created all three again.
    assert seen == {f"main-fails-n{k}-a{a}" for k in range(3) for a in (1, 2)}, sorted(seen)
    assert done["nodeProperties"]["numNodes"] == 3
    assert [n["podName"] for n in done["nodeProperties"]["nodes"]] == [f"main-fails-n{k}-a2" for k in range(3)]
    batch.wait_for(lambda: not batch.pods("main-fails"), "every node stopped", timeout=60)
    batch.wait_for(lambda: "JobRetry" in {e["reason"] for e in batch.events("main-fails")}, "JobRetry event")


def test_the_timeout_covers_the_whole_multi_node_job(batch: Batch) -> None:
    """AWS: "The timeout value specified in the attemptDurationSeconds parameter applies to the
    whole job and not to the nodes": its clock starts when the main node runs, every node is
    stopped when it runs out, and a timed-out job is not retried. (AWS's minimum is 60 s and the
    test operator does not scale attempt timeouts: this test takes a minute.)"""
    q = batch.queue([batch.environment(nodes=3, cpu=2)])
    mnp_definition(batch, "gang", 3, retryStrategy={"attempts": 2}, timeout={"attemptDurationSeconds": 60})
    batch.job("timed", q, "gang", duration="1h")
    batch.wait_for(
        lambda: sum(phase(p) == "Running" for p in batch.pods("timed")) == 3, "all three nodes running", timeout=60
    )
    done = batch.wait_done("timed", timeout=150)
    assert done["status"] == "FAILED", done
    assert done["statusReason"] == "Job attempt duration exceeded timeout"
    (attempt,) = done["attempts"]
    assert attempt["statusReason"] == "Job attempt duration exceeded timeout"
    assert attempt["container"]["podName"] == "timed-n0-a1"
    assert [n["status"] for n in done["nodeProperties"]["nodes"]] == ["FAILED"] * 3, done["nodeProperties"]
    ran = (parse_iso(done["stoppedAt"]) or 0) - (parse_iso(done["startedAt"]) or 0)
    assert 59 <= ran <= 80, (done["startedAt"], done["stoppedAt"])
    # The main node and the children are all stopped, none restarted.
    batch.wait_for(lambda: not batch.pods("timed"), "every node stopped", timeout=60)
    assert batch.status("timed")["status"] == "FAILED"
