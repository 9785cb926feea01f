"""`kubatch api serve` as its own process against the local control plane and the shared operator:
over TLS with the self-signed certificate it makes (boto3 and the AWS CLI trusting it as their CA
bundle, refusing it otherwise), and over plain HTTP on loopback with --insecure-http."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import SSLError

from kubatch.devcluster.cluster import ClusterInfo
from kubatch.devcluster.procs import free_port
from tests.integration.awsapi import client, create_key
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl, fresh_namespace
from tests.integration.test_awsapi import CONTAINER, grant, wait_job

pytestmark = pytest.mark.integration

KUBATCH = str(Path(sys.executable).parent / "kubatch")


@pytest.fixture
def keys_namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from fresh_namespace(kubectl, "keys")


@contextmanager
def api_process(cluster: ClusterInfo, keys_namespace: str, log: Path, *args: str) -> Iterator[str]:
    """``kubatch api serve`` on a free loopback port; yields its URL once /healthz answers."""
    port = free_port()
    scheme = "http" if "--insecure-http" in args else "https"
    cert = next((Path(a) / "tls.crt" for a in args if a.startswith("/")), None)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [KUBATCH, "api", "serve", "--listen", f"127.0.0.1:{port}", "--kubeconfig", cluster.kubeconfig,
             "--keys-namespace", keys_namespace, *args],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"{scheme}://localhost:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"kubatch api serve exited ({proc.returncode}):\n{log.read_text()}")
            try:
                context = None
                if scheme == "https":
                    if cert is None or not cert.exists():
                        raise OSError("no certificate yet")
                    context = ssl.create_default_context(cafile=str(cert))
                with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=context) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"kubatch api serve never answered:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_serve_tls_and_plain_http(
    cluster: ClusterInfo,
    operator: Any,
    kubectl: Kubectl,
    keys_namespace: str,
    batch: Batch,
    tmp_path: Path,
) -> None:
    kubectl("create", "serviceaccount", "submitter", "-n", batch.ns)
    grant(kubectl, batch.ns, batch.ns, "submitter")
    key = create_key(cluster.kubeconfig, keys_namespace, batch.ns, "--service-account", "submitter")
    queue = batch.queue([batch.environment()])
    certs = tmp_path / "certs"
    with api_process(cluster, keys_namespace, tmp_path / "tls.log", "--cert-dir", str(certs)) as url:
        crt = str(certs / "tls.crt")
        aws = client(url, key, verify=crt)
        aws.register_job_definition(jobDefinitionName="over_tls", type="container", containerProperties=CONTAINER)
        job_id = aws.submit_job(jobName="Over_TLS", jobQueue=queue, jobDefinition="over_tls")["jobId"]
        assert wait_job(aws, job_id, "SUCCEEDED")["jobName"] == "Over_TLS"
        with pytest.raises(SSLError):
            client(url, key, verify=True).describe_jobs(jobs=[job_id])
        env = {**os.environ, **key.env(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}  # fmt: skip
        out = subprocess.run(
            [str(Path(sys.executable).parent / "aws"), "batch", "describe-jobs", "--endpoint-url", url,
             "--ca-bundle", crt, "--jobs", job_id, "--output", "json"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["jobs"][0]["status"] == "SUCCEEDED"
    with api_process(cluster, keys_namespace, tmp_path / "http.log", "--insecure-http") as url:
        assert url.startswith("http://")
        assert [j["jobId"] for j in client(url, key).describe_jobs(jobs=[job_id])["jobs"]] == [job_id]

