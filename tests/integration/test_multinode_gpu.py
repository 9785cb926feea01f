"""Multi-node parallel and GPU jobs on managed (kwok-provisioned) compute environments, end to end
with the operator: gang admission, distinct nodes, the main node first and its IP, node ranges,
main-node exit stopping the others, GPU placement and limits."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

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


def mnp_definition(batch: Batch, name: str, nodes: int, *, vcpus: str = "1") -> str:
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
