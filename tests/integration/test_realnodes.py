"""Jobs as real containers: real nodes (kubelet + containerd) in the local cluster run kubatch's pods.

Everything here is what kwok cannot show: the process really gets the AWS_BATCH_* environment, exit
codes and OOM kills come from the kernel, SIGTERM reaches a process on timeout and terminate, an
image that is not there fails the attempt, pods of a multi-node job talk over the pod network, and
Secrets reach the container. The tests share one UNMANAGED compute environment over the real nodes
(a node belongs to one environment), and run one after the other in one xdist group.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.core.podspec import headless_service_name, pod_name
from kubatch.devcluster.cluster import ClusterInfo
from kubatch.devcluster.realnodes import BUSYBOX_TEST_IMAGE, REALNODE_SELECTOR, REALNODE_TOLERATION
from tests.integration.batch import GROUP, Batch
from tests.integration.conftest import requires_real_nodes
from tests.integration.helpers import Kubectl

pytestmark = [requires_real_nodes, pytest.mark.xdist_group("realnodes")]

KUBATCH = str(Path(sys.executable).parent / "kubatch")
REAL_CE = "realnodes"
REAL_QUEUE = "realnodes"
REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"


@pytest.fixture(scope="module")
def real_queue(operator: Any, kubectl: Kubectl, cluster: ClusterInfo) -> str:
    """An UNMANAGED compute environment over every real node (tolerating their taint) and its queue."""
    import json

    ce = {
        "apiVersion": GROUP,
        "kind": "ComputeEnvironment",
        "metadata": {"name": REAL_CE},
        "spec": {"type": "UNMANAGED", "nodeSelector": REALNODE_SELECTOR, "tolerations": [REALNODE_TOLERATION]},
    }
    queue = {
        "apiVersion": GROUP,
        "kind": "JobQueue",
        "metadata": {"name": REAL_QUEUE},
        "spec": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": REAL_CE}]},
    }
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [ce, queue]}))
    deadline = time.monotonic() + 60
    while True:
        obj = json.loads(kubectl("get", "computeenvironment", REAL_CE, "-o", "json").stdout)
        nodes = json.loads(
            kubectl("get", "nodes", "-l", f"kubatch.dev/compute-environment={REAL_CE}", "-o", "json").stdout
        )["items"]
        if (obj.get("status") or {}).get("status") == "VALID" and len(nodes) == len(cluster.real_nodes):
            return REAL_QUEUE
        if time.monotonic() > deadline:
            raise AssertionError(f"the real-node environment never became VALID with every node: {obj.get('status')}")
        time.sleep(0.5)


def container(command: str, *, vcpus: str = "1", memory: str = "64", **extra: Any) -> dict[str, Any]:
    return {
        "image": BUSYBOX_TEST_IMAGE,
        "command": ["sh", "-c", command],
        "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}],
        **extra,
    }


class LogFollower:
    """`kubatch logs -f ADDRESS` in the background, started before the attempt runs (it waits for the
    container to start): finished pods are deleted by default, so a test reads a real container's
    output while it is produced."""

    def __init__(self, batch: Batch, cluster: ClusterInfo, address: str) -> None:
        self.address = address
        self.proc = subprocess.Popen(
            [KUBATCH, "--kubeconfig", cluster.kubeconfig, "-n", batch.ns, "logs", "-f", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self, timeout: float = 300) -> str:
        output, errors = self.proc.communicate(timeout=timeout)
        assert output, f"no log for {self.address}: {errors}"
        return output


@pytest.fixture
def rbatch(batch: Batch, real_queue: str) -> Iterator[Batch]:
    yield batch


def submit(batch: Batch, base: str, definition: str, **spec: Any) -> str:
    name = batch.name(base)
    batch.job(name, REAL_QUEUE, definition, **spec)
    return name


def test_environment_exit_code_and_logs(rbatch: Batch, cluster: ClusterInfo) -> None:
    names = ("AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ATTEMPT", "AWS_BATCH_JQ_NAME", "AWS_BATCH_CE_NAME")
    script = "sleep 15; " + "".join(f"echo {v}=${v}; " for v in names) + "sleep 2; exit 3"
    d = rbatch.definition(rbatch.name("env"), {"type": "container", "containerProperties": container(script)})
    job = submit(rbatch, "env", d)
    log = LogFollower(rbatch, cluster, job)
    status = rbatch.wait_done(job, timeout=180)
    assert status["status"] == "FAILED", status
    assert status["attempts"][0]["container"]["exitCode"] == 3
    assert status["statusReason"] == "Essential container in task exited"
    text = log.result()
    assert f"AWS_BATCH_JOB_ID={status['jobId']}" in text
    assert "AWS_BATCH_JOB_ATTEMPT=1" in text
    assert f"AWS_BATCH_JQ_NAME={REAL_QUEUE}" in text
    assert f"AWS_BATCH_CE_NAME={REAL_CE}" in text


def test_array_children_see_their_own_index(rbatch: Batch, cluster: ClusterInfo) -> None:
    script = 'sleep 15; echo "index=$AWS_BATCH_JOB_ARRAY_INDEX"; sleep 2'
    d = rbatch.definition(rbatch.name("arr"), {"type": "container", "containerProperties": container(script)})
    job = submit(rbatch, "arr", d, arrayProperties={"size": 4})
    logs = {i: LogFollower(rbatch, cluster, f"{job}:{i}") for i in range(4)}
    status = rbatch.wait_done(job, timeout=240)
    assert status["status"] == "SUCCEEDED", status
    for i, follower in logs.items():
        assert follower.result().split() == [f"index={i}"]


def test_out_of_memory_is_reported_and_retried_by_reason(rbatch: Batch) -> None:
    # dd allocates a 64 MiB buffer under a 16 MiB limit: the kernel kills it, and the container
    # exits 137 as a process killed by the OOM killer does. Not dd as PID 1: the runtime reports
    # OOMKilled only when its OOM event beats the exit event, which a loaded machine may reverse
    # (the container then reads as a plain SIGKILL, as on any Kubernetes node). So the shell
    # exits only once its cgroup counts the kill (cgroup v1 or v2; exit 3 if it never does) and
    # the runtime has had 10 s for the event (5 s were once too few under a full test run).
    oom = (
        "dd if=/dev/zero of=/dev/null bs=64M count=1; "
        "cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null "
        "| grep -q '^oom_kill [1-9]' || exit 3; sleep 10; exit 137"
    )
    spec = {
        "type": "container",
        "containerProperties": {
            "image": BUSYBOX_TEST_IMAGE,
            "command": ["sh", "-c", oom],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "16"}],
        },
        "retryStrategy": {
            "attempts": 2,
            "evaluateOnExit": [
                {"onReason": "OutOfMemoryError*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        },
    }
    d = rbatch.definition(rbatch.name("oom"), spec)
    job = submit(rbatch, "oom", d)
    status = rbatch.wait_done(job, timeout=180)
    assert status["status"] == "FAILED", status
    assert len(status["attempts"]) == 2, f"the OOM rule retried the first attempt: {status}"
    first, last = status["attempts"]
    for attempt in (first, last):
        assert attempt["container"]["reason"] == REASON_OOM, status
        assert attempt["container"]["exitCode"] == 137, status
    assert status["statusReason"] == REASON_OOM


def test_out_of_memory_of_a_child_process_follows_the_exit_code(rbatch: Batch) -> None:
    """The shell (PID 1) survives its child's OOM kill and exits 0: the attempt succeeds (the
    container's exit code decides, as in ECS) and still records the OOM reason."""
    spec = {
        "type": "container",
        "containerProperties": container("head -c 64m /dev/zero | tail > /dev/null; exit 0", memory="16"),
    }
    d = rbatch.definition(rbatch.name("childoom"), spec)
    job = submit(rbatch, "childoom", d)
    status = rbatch.wait_done(job, timeout=180)
    assert status["status"] == "SUCCEEDED", status
    assert status["attempts"][0]["container"]["exitCode"] == 0
    assert status["attempts"][0]["container"]["reason"] == REASON_OOM


TRAP = "trap 'echo got SIGTERM; sleep 1; exit 143' TERM; echo started; while true; do sleep 1; done"


def test_timeout_and_terminate_send_sigterm(rbatch: Batch, cluster: ClusterInfo) -> None:
    d = rbatch.definition(rbatch.name("trap"), {"type": "container", "containerProperties": container(TRAP)})
    timed = submit(rbatch, "timed", d, timeout={"attemptDurationSeconds": 60})
    terminated = submit(rbatch, "term", d)
    timed_log = LogFollower(rbatch, cluster, timed)
    term_log = LogFollower(rbatch, cluster, terminated)
    rbatch.wait_status(terminated, "RUNNING", timeout=120)
    rbatch.wait_for(lambda: "started" in _current_log(rbatch, cluster, terminated), "the trap is set")
    rbatch.kubectl(
        "patch",
        "batchjob",
        terminated,
        "-n",
        rbatch.ns,
        "--type=merge",
        "-p",
        '{"spec": {"terminate": {"reason": "stop it"}}}',
    )
    status = rbatch.wait_done(terminated, timeout=120)
    assert status["status"] == "FAILED" and status["statusReason"] == "stop it", status
    assert "got SIGTERM" in term_log.result()

    status = rbatch.wait_done(timed, timeout=180)
    assert status["status"] == "FAILED", status
    assert status["statusReason"] == "Job attempt duration exceeded timeout"
    assert "got SIGTERM" in timed_log.result()


def _current_log(batch: Batch, cluster: ClusterInfo, address: str) -> str:
    proc = subprocess.run(
        [KUBATCH, "--kubeconfig", cluster.kubeconfig, "-n", batch.ns, "logs", address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout


def test_missing_image_fails_the_attempt(rbatch: Batch) -> None:
    spec = {
        "type": "container",
        "podProperties": {
            "containers": [
                {
                    "name": "main",
                    "image": f"localhost/absent-{uuid.uuid4().hex[:6]}:1",
                    "imagePullPolicy": "Never",
                    "command": ["true"],
                    "resources": {"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
                }
            ]
        },
    }
    d = rbatch.definition(rbatch.name("noimage"), spec)
    job = submit(rbatch, "noimage", d)
    status = rbatch.wait_done(job, timeout=180)
    assert status["status"] == "FAILED", status
    assert status["statusReason"] == "Task failed to start"
    assert status["attempts"][0]["container"]["reason"].startswith("CannotPullContainerError: ")


def test_multi_node_workers_reach_the_main_node(rbatch: Batch, cluster: ClusterInfo) -> None:
    nodes = len(cluster.real_nodes)
    assert nodes >= 3, "the multi-node test needs three real nodes"
    # Worker 1 finds the main node by AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, worker 2 by its DNS
    # name (pod hostname + the job's headless Service), as an MPI hostfile would. The main node acks
    # each message once it has recorded it (an ack sent on connect could reach a worker whose message
    # was then lost) and counts distinct workers; a worker resends until acked (a connection queued
    # behind another one's listener can be reset).
    script = (
        'if [ "$AWS_BATCH_JOB_NODE_INDEX" = "$AWS_BATCH_JOB_MAIN_NODE_INDEX" ]; then '
        "  sleep 15; : > /tmp/got; echo 'read m; echo \"$m\" >> /tmp/got; echo ack' > /tmp/ack; "
        "  until [ \"$(sort -u /tmp/got | grep -c '^worker')\" -ge 2 ]; do nc -l -p 5000 -e sh /tmp/ack; done; "
        "  sort -u /tmp/got | grep '^worker'; echo main done; sleep 2; "
        "else "
        '  if [ "$AWS_BATCH_JOB_NODE_INDEX" = 1 ]; then main="$AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS";'
        "  else main=Ref::main; fi; "
        '  until echo "worker $AWS_BATCH_JOB_NODE_INDEX via $main" | nc -w 3 "$main" 5000 | grep -q ack;'
        "  do sleep 1; done; "
        "fi"
    )
    spec = {
        "type": "multinode",
        "nodeProperties": {
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container(script)}],
        },
    }
    d = rbatch.definition(rbatch.name("mnp"), spec)
    job = rbatch.name("mnp")
    main_name = f"{pod_name(job, 1, node_index=0)}.{headless_service_name(job)}"
    rbatch.job(job, REAL_QUEUE, d, parameters={"main": main_name})
    main_log = LogFollower(rbatch, cluster, f"{job}#0")
    status = rbatch.wait_done(job, timeout=240)
    assert status["status"] == "SUCCEEDED", status
    text = main_log.result()
    assert f"worker 2 via {main_name}" in text and "main done" in text, text
    assert "worker 1 via 10.244." in text, text
    placed = {n.get("nodeName") for n in status["nodeProperties"]["nodes"]}
    assert len(placed) == 3, f"one real node per job node: {placed}"


def test_secret_reaches_the_container_as_env_and_volume(rbatch: Batch, cluster: ClusterInfo) -> None:
    secret = rbatch.name("creds")
    rbatch.kubectl("create", "secret", "generic", secret, "-n", rbatch.ns, "--from-literal=password=s3cr3t-value")
    props = container(
        'sleep 15; echo "env=$DB_PASSWORD"; echo "file=$(cat /creds/password)"; sleep 2',
        secrets=[{"name": "DB_PASSWORD", "valueFrom": f"{secret}:password"}],
        volumes=[{"name": "creds", "secret": {"secretName": secret}}],
        mountPoints=[{"sourceVolume": "creds", "containerPath": "/creds", "readOnly": True}],
    )
    d = rbatch.definition(rbatch.name("secret"), {"type": "container", "containerProperties": props})
    job = submit(rbatch, "secret", d)
    log = LogFollower(rbatch, cluster, job)
    status = rbatch.wait_done(job, timeout=180)
    assert status["status"] == "SUCCEEDED", status
    text = log.result()
    assert "env=s3cr3t-value" in text and "file=s3cr3t-value" in text, text


def test_pods_reach_the_api_server_and_cluster_dns(rbatch: Batch, cluster: ClusterInfo) -> None:
    """What an operator in a pod and a multi-node job need: the `kubernetes` Service leads to the API
    server (a TLS answer), and Service names resolve through cluster DNS."""
    script = (
        "sleep 15; nslookup kubernetes.default.svc.cluster.local && "
        'echo | nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" && echo api-reachable; sleep 2'
    )
    d = rbatch.definition(rbatch.name("net"), {"type": "container", "containerProperties": container(script)})
    job = submit(rbatch, "net", d)
    log = LogFollower(rbatch, cluster, job)
    status = rbatch.wait_done(job, timeout=180)
    text = log.result()
    assert status["status"] == "SUCCEEDED", (status, text)
    assert "10.96.0.1" in text and "api-reachable" in text, text
