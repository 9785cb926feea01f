"""The node a job ran on, on the real control plane. AWS Batch on EKS hands the container
AWS_BATCH_JOB_KUBERNETES_NODE_UID; a pod cannot learn its node's UID (the downward API has only the
node's name), so kubatch's pods get AWS_BATCH_JOB_KUBERNETES_NODE_NAME from `spec.nodeName` and the
node's UID is recorded in the job's attempt."""

from __future__ import annotations

import pytest

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.batch import Batch
from tests.integration.conftest import requires_real_nodes
from tests.integration.test_realnodes import REAL_QUEUE, LogFollower, container, real_queue  # noqa: F401

pytestmark = pytest.mark.integration


def test_node_name_variable_and_node_uid_in_the_attempt(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("where")
    batch.job("where-am-i", q, "where", duration="3s")
    batch.wait_status("where-am-i", "RUNNING")
    (pod,) = batch.pods("where-am-i")
    node = pod["spec"]["nodeName"]
    (container,) = pod["spec"]["containers"]
    assert {
        "name": "AWS_BATCH_JOB_KUBERNETES_NODE_NAME",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
    } in container["env"]
    # The API server accepted the reference: it is a field the kubelet resolves once the pod is bound.
    assert not any(e["name"] == "AWS_BATCH_JOB_KUBERNETES_NODE_UID" for e in container["env"])
    st = batch.wait_done("where-am-i")
    assert st["status"] == "SUCCEEDED"
    (attempt,) = st["attempts"]
    assert attempt["container"]["nodeName"] == node
    assert attempt["container"]["nodeUid"] == batch.kget("node", node)["metadata"]["uid"]


@requires_real_nodes
@pytest.mark.xdist_group("realnodes")
@pytest.mark.usefixtures("real_queue")
def test_a_real_container_sees_its_node_name(batch: Batch, cluster: ClusterInfo) -> None:
    """On a real node (kubelet + containerd) the kubelet resolves the downward-API variable."""
    script = 'sleep 15; echo "node=$AWS_BATCH_JOB_KUBERNETES_NODE_NAME"'
    d = batch.definition(batch.name("node"), {"type": "container", "containerProperties": container(script)})
    job = batch.name("node")
    batch.job(job, REAL_QUEUE, d)
    log = LogFollower(batch, cluster, job)
    st = batch.wait_done(job, timeout=180)
    assert st["status"] == "SUCCEEDED", st
    (attempt,) = st["attempts"]
    node = attempt["container"]["nodeName"]
    assert node in cluster.real_nodes
    assert f"node={node}\n" in log.result()
    assert attempt["container"]["nodeUid"] == batch.kget("node", node)["metadata"]["uid"]
