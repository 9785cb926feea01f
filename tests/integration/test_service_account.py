"""`containerProperties.serviceAccountName` (AWS's replacement of jobRoleArn on Kubernetes) on the
real control plane: the job's pod runs as that ServiceAccount of the job's namespace."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def container(**fields: Any) -> dict[str, Any]:
    return {
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo hello"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
        **fields,
    }


def test_job_pod_runs_as_the_definitions_service_account(batch: Batch) -> None:
    sa = "s3-reader"
    batch.kubectl("create", "serviceaccount", sa, "-n", batch.ns)
    q = batch.queue([batch.environment()])
    batch.definition("as-sa", {"type": "container", "containerProperties": container(serviceAccountName=sa)})
    batch.container_definition("plain")
    batch.job("with-sa", q, "as-sa", duration="30s")
    batch.job("without-sa", q, "plain", duration="30s")
    batch.wait_status("with-sa", "RUNNING")
    batch.wait_status("without-sa", "RUNNING")
    (pod,) = batch.pods("with-sa")
    assert pod["spec"]["serviceAccountName"] == sa
    (plain,) = batch.pods("without-sa")
    assert plain["spec"]["serviceAccountName"] == "default"
    assert batch.wait_done("with-sa", timeout=120)["status"] == "SUCCEEDED"


def test_multi_node_ranges_run_as_their_service_accounts(batch: Batch) -> None:
    for sa in ("main-sa", "worker-sa"):
        batch.kubectl("create", "serviceaccount", sa, "-n", batch.ns)
    ce = batch.cluster_object(
        "ComputeEnvironment",
        batch.name("mnp"),
        {"type": "MANAGED", "computeResources": {"maxvCpus": 8, "instanceTypes": ["m5.large"], "provisioner": "kwok"}},
    )
    q = batch.queue([ce])
    batch.definition(
        "mnp-sa",
        {
            "type": "multinode",
            "nodeProperties": {
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {"targetNodes": "0", "container": container(serviceAccountName="main-sa")},
                    {"targetNodes": "1", "container": container(serviceAccountName="worker-sa")},
                ],
            },
        },
    )
    batch.job("gang", q, "mnp-sa", duration="30s")
    batch.wait_for(lambda: len(batch.pods("gang")) == 2, "both nodes' pods", timeout=120)
    by_node = {
        p["metadata"]["labels"]["kubatch.dev/node-index"]: p["spec"]["serviceAccountName"] for p in batch.pods("gang")
    }
    assert by_node == {"0": "main-sa", "1": "worker-sa"}
    assert batch.wait_done("gang", timeout=150)["status"] == "SUCCEEDED"


def test_a_missing_service_account_fails_the_job_with_a_reason(batch: Batch) -> None:
    """The API server refuses a pod whose ServiceAccount does not exist; asking again every cycle
    would never succeed, so the job fails and says why."""
    q = batch.queue([batch.environment()])
    batch.definition("no-sa", {"type": "container", "containerProperties": container(serviceAccountName="absent")})
    batch.job("orphan", q, "no-sa")
    st = batch.wait_done("orphan")
    assert st["status"] == "FAILED"
    assert st["statusReason"] == (
        f"ServiceAccount absent not found in namespace {batch.ns}: the job's pod cannot be created"
    )
    assert batch.pods("orphan") == []
