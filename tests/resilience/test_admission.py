"""What the API server and the controller do with bad submissions when no webhook guards them."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import sys
import urllib.parse
from typing import Any

import pytest

from tests.integration.batch import GROUP, Batch
from tests.integration.helpers import Kubectl
from tests.resilience.conftest import PrivateCluster

pytestmark = pytest.mark.integration


def test_without_webhook_bad_references_are_accepted_then_failed(batch: Batch, kubectl: Kubectl) -> None:
    """The private operator serves no admission webhook (none is registered), so the API server's
    schema is the only gate at submission. Proves: a job naming a queue that does not exist is
    accepted by the API server and then FAILED by the controller with a clear statusReason (and so
    is one naming a missing job definition), instead of sitting SUBMITTED forever."""
    hooks = json.loads(kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout)["items"]
    assert not [h for h in hooks if "kubatch" in json.dumps(h)], "a kubatch webhook is registered"
    q = batch.queue([batch.environment(cpu=2)])
    batch.container_definition("work")

    batch.job("no-queue", "no-such-queue", "work")
    st = batch.wait_done("no-queue", timeout=30)
    assert st["status"] == "FAILED"
    assert st["statusReason"] == "Job queue no-such-queue not found", st
    assert not batch.pods("no-queue")

    batch.job("no-definition", q, "no-such-definition")
    st = batch.wait_done("no-definition", timeout=30)
    assert st["status"] == "FAILED"
    assert "no-such-definition" in st["statusReason"], st
    assert not batch.pods("no-definition")


def _post(cluster: PrivateCluster, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST `body` and return (status, parsed Status). The server may answer a too-large body before
    reading all of it and close the connection while we still send: then read the answer it sent."""
    url = urllib.parse.urlsplit(cluster.info.server)
    conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, context=cluster._ssl(), timeout=30)
    try:
        with contextlib.suppress(ssl.SSLError, BrokenPipeError, ConnectionResetError):
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return int(resp.status), dict(json.loads(raw))
        except ValueError:
            return int(resp.status), {"raw": raw[:200].decode(errors="replace")}
    finally:
        conn.close()


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"x": value}
    return value


def test_huge_and_deep_manifests_are_refused_cleanly(
    private_cluster: PrivateCluster, namespace: str, batch: Batch
) -> None:
    """Hostile manifests sent straight to the real API server. Proves: a BatchJob carrying a 1 MiB
    string (in parameters, in pod annotations), a 4 MiB request body, a 200-level nested object and
    a 200-level nested list inside the spec, and a 10,000-level nested JSON document are each refused
    with a 4xx (422 Invalid / 400 BadRequest / 413 too large) and never stored, and the API server
    stays healthy afterwards (the CRD's schema bounds every string and allows no free-form fields)."""
    path = f"/apis/{GROUP}/namespaces/{namespace}/batchjobs"

    def job(name: str, **spec: Any) -> bytes:
        body = {
            "apiVersion": GROUP,
            "kind": "BatchJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
        }
        return json.dumps(body).encode()

    mib = "x" * (1024 * 1024)
    deep_list: Any = ["echo"]
    for _ in range(200):
        deep_list = [deep_list]
    cases = {
        "big-parameter": job("big-parameter", parameters={"a": mib}),
        "big-annotation": job("big-annotation", podMetadata={"annotations": {"a": mib}}),
        "huge-body": job("huge-body", parameters={f"p{i}": "x" * 4000 for i in range(1100)}),
        "deep-object": job("deep-object", parameters=_nested(200, "v")),
        "deep-list": job("deep-list", containerOverrides={"command": deep_list}),
        "deep-json": b'{"apiVersion":"'
        + GROUP.encode()
        + b'","kind":"BatchJob","spec":'
        + b"[" * 10000
        + b"]" * 10000
        + b"}",
    }
    answers = {name: _post(private_cluster, path, body) for name, body in cases.items()}
    for name, (code, body) in answers.items():
        assert 400 <= code < 500, (name, code, str(body)[:300])
        assert body.get("kind", "Status") == "Status" or "raw" in body, (name, body)
    assert answers["big-parameter"][0] == 422 and "Too long" in answers["big-parameter"][1]["message"]
    assert answers["huge-body"][0] in (413, 422), answers["huge-body"]
    stored = json.loads(batch.kubectl("get", "batchjobs", "-n", namespace, "-o", "json").stdout)["items"]
    assert stored == []
    assert private_cluster.apiserver_ready()
    codes = {name: code for name, (code, _) in answers.items()}
    print(f"\n[resilience] hostile manifests answered {codes}", file=sys.stderr)
