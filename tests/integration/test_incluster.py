"""The operator as users install it: the project's image, deployed by the Helm chart on real nodes.

These run in the in-cluster phase of `make test` (`make test-in-cluster`, KUBATCH_TEST_OPERATOR=in-cluster),
where the `operator` fixture is the chart's Deployment (two replicas on the real nodes). Beside them,
the tests marked `in_cluster` in the other modules (lifecycle, arrays, dependencies, retries,
cancel/terminate, fair share) run unchanged against it.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubatch.core.podspec import CE_NODE_KEY
from kubatch.devcluster import deploy
from kubatch.devcluster.cluster import ClusterInfo
from kubatch.devcluster.realnodes import BUSYBOX_TEST_IMAGE, REALNODE_SELECTOR, REALNODE_TOLERATION
from tests.integration.awsapi import client, create_key
from tests.integration.batch import Batch
from tests.integration.conftest import IN_CLUSTER, REPO
from tests.integration.helpers import Kubectl
from tests.integration.test_restart import PodRecorder

pytestmark = [
    pytest.mark.in_cluster,
    pytest.mark.xdist_group("operator-restarts"),
    pytest.mark.skipif(not IN_CLUSTER, reason="runs in the in-cluster phase of make test (make test-in-cluster)"),
]


def operator_pods(kget: Any, release: deploy.Deployment) -> list[dict[str, Any]]:
    return list(kget("pods", "-n", release.namespace, "-l", release.selector)["items"])


def test_replicas_run_the_built_image_on_real_nodes(operator: deploy.Deployment, kget: Any) -> None:
    pods = operator_pods(kget, operator)
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 2, [p["metadata"]["name"] for p in pods]
    real = {n["metadata"]["name"] for n in kget("nodes", "-l", "kubatch.dev/realnode=true")["items"]}
    assert {p["spec"]["nodeName"] for p in running} <= real
    assert len({p["spec"]["nodeName"] for p in running}) == 2, "one replica per node"
    for pod in running:
        (main,) = pod["spec"]["containers"]
        assert main["image"] == operator.image
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsUser"] == 10001
        assert all(c.get("ready") for c in pod["status"]["containerStatuses"])


def test_webhook_answers_through_its_service(operator: deploy.Deployment, kubectl: Kubectl, namespace: str) -> None:
    """The chart's ValidatingWebhookConfiguration points at its Service; the API server reaches a
    replica and the webhook's cross-object rule refuses a job whose queue does not exist."""
    job = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "webhook-probe", "namespace": namespace},
        "spec": {"jobQueue": "no-such-queue", "jobDefinition": "no-such-definition"},
    }
    deadline = time.monotonic() + 60
    while True:
        out = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(job), check=False)
        if out.returncode != 0 and "denied the request" in out.stderr:
            assert "no-such-queue" in out.stderr
            return
        assert time.monotonic() < deadline, f"the webhook never refused the job: {out.stderr or out.stdout}"
        time.sleep(1)


def test_metrics_are_scraped_through_the_service_from_a_pod(
    operator: deploy.Deployment, kubectl: Kubectl, kget: Any, namespace: str
) -> None:
    """A pod on a real node scrapes the metrics Service by its DNS name (kube-proxy + cluster DNS)."""
    url = f"http://{operator.fullname}-metrics.{operator.namespace}.svc.cluster.local:8080/metrics"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "scrape", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": REALNODE_SELECTOR,
            # The real nodes also carry the taint of the compute environment the tests give them.
            "tolerations": [REALNODE_TOLERATION, {"key": CE_NODE_KEY, "operator": "Exists"}],
            "containers": [{"name": "scrape", "image": BUSYBOX_TEST_IMAGE, "command": ["wget", "-qO-", url]}],
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + 120
    while (phase := kget("pod", "scrape", "-n", namespace)["status"].get("phase")) not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, f"scrape pod still {phase}"
        time.sleep(0.5)
    text = kubectl("logs", "scrape", "-n", namespace).stdout
    assert phase == "Succeeded", text
    assert "kubatch_" in text and "# TYPE" in text


def test_deleting_the_leader_pod_hands_over_without_duplicates(
    operator: deploy.Deployment, batch: Batch, cluster: ClusterInfo, kget: Any
) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    batch.container_definition("work")
    recorder = PodRecorder(cluster, batch.ns)
    try:
        names = [batch.job(f"ha-{i}", q, "work", duration="2s") for i in range(12)]
        batch.wait_for(lambda: len(recorder.uids) >= 4, "the leader started work")
        leader = deploy.leader(cluster, operator)
        assert leader, "a replica holds the Lease"
        batch.kubectl("delete", "pod", leader, "-n", operator.namespace, "--wait=false")
        deleted_at = time.monotonic()
        batch.wait_for(
            lambda: deploy.leader(cluster, operator) not in ("", leader), "another replica holds the Lease", timeout=60
        )
        takeover = time.monotonic() - deleted_at
        for n in names:
            st = batch.wait_done(n, timeout=180)
            assert st["status"] == "SUCCEEDED", json.dumps(st)
            assert len(st["attempts"]) == 1
    finally:
        time.sleep(1)
        recorder.stop()
    duplicated = {pod: uids for pod, uids in recorder.uids.items() if len(uids) > 1}
    assert not duplicated, f"a pod was created twice: {duplicated}"
    assert set(recorder.uids) == {f"ha-{i}-a1" for i in range(12)}
    print(f"takeover after deleting the leader pod: {takeover:.1f}s")
    # The Deployment replaces the deleted replica; the next tests get two again.
    deploy.wait_rolled_out(cluster, operator)


def test_aws_api_server_in_cluster(
    operator: deploy.Deployment, cluster: ClusterInfo, batch: Batch, kubectl: Kubectl, kget: Any, tmp_path: Path
) -> None:
    """The chart with api.enabled, on the real nodes: a release with the API server only (no operator
    replica, no webhook) beside the in-cluster operator, reached through its Service (kubectl
    port-forward) with boto3 over TLS, trusting the chart's CA; a job submitted with a key of a listed
    ServiceAccount runs to SUCCEEDED."""
    tag = uuid.uuid4().hex[:6]
    release, ns = f"kt-api-{tag}", f"kubatch-api-{tag}"
    name = f"{release}-kubatch-api"
    kubectl("create", "serviceaccount", "submitter", "-n", batch.ns)
    kubectl("create", "namespace", ns)
    values = deploy.values(operator.image, replicas=0)
    values.update(
        webhook={"enabled": False},
        leaderElection={"enabled": False},
        api={
            "enabled": True,
            "replicas": 1,
            "impersonate": {"serviceAccounts": [f"{batch.ns}/submitter"]},
            # The client below reaches the Service through a port-forward on this machine.
            "tls": {"extraDnsNames": ["localhost"]},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
    )
    values_file = tmp_path / "api-values.json"
    values_file.write_text(json.dumps(values))
    helm = [cluster.helm, f"--kubeconfig={cluster.kubeconfig}"]
    forward: subprocess.Popen[str] | None = None
    try:
        subprocess.run(
            [*helm, "install", release, "charts/kubatch", "-n", ns, "-f", str(values_file), "--wait", "--timeout=300s"],
            check=True, capture_output=True, text=True, env=cluster.env(), cwd=str(REPO), timeout=330,
        )  # fmt: skip
        kubectl(
            "create", "rolebinding", "submitter", f"--clusterrole={release}-kubatch-submit",
            f"--serviceaccount={batch.ns}:submitter", "-n", batch.ns,
        )  # fmt: skip
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(kget("secret", f"{name}-tls", "-n", ns)["data"]["ca.crt"]))
        forward = subprocess.Popen(
            [cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "port-forward", "-n", ns, f"svc/{name}", ":443"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert forward.stdout is not None
        line = forward.stdout.readline()  # Forwarding from 127.0.0.1:<port> -> 8443
        assert "Forwarding from 127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:", 1)[1].split()[0])
        url = f"https://localhost:{port}"

        context = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(f"{url}/healthz", context=context, timeout=10) as r:
            assert r.read() == b"ok"

        key = create_key(cluster.kubeconfig, ns, batch.ns, "--service-account", "submitter")
        q = batch.queue([batch.environment(cpu=4)])
        batch.container_definition("api-hello")
        aws = client(url, key, verify=str(ca))
        job_id = aws.submit_job(jobName="api_hello", jobQueue=q, jobDefinition="api-hello")["jobId"]
        deadline = time.monotonic() + 180
        while (status := aws.describe_jobs(jobs=[job_id])["jobs"][0]["status"]) not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, f"job {job_id} still {status}"
            time.sleep(1)
        assert status == "SUCCEEDED"
    finally:
        if forward is not None:
            forward.terminate()
            forward.wait(10)
        subprocess.run(
            [*helm, "uninstall", release, "-n", ns, "--wait", "--timeout=60s"],
            capture_output=True, text=True, env=cluster.env(), timeout=90,
        )  # fmt: skip
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
