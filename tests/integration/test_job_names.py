"""AWS job names (spec.jobName) beside the Kubernetes object name, on the real API server: the CRD's
pattern and immutability, the printer column and field selector, `kubatch submit --job-name` with a
name Kubernetes cannot hold, `kubatch list` / `describe`, and the job's Events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubatch.core.jobnames import kubernetes_name
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl
from tests.integration.test_cli import Run

pytestmark = pytest.mark.integration

GROUP = "kubatch.dev/v1alpha1"


def batch_job(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
    }


def create(kubectl: Kubectl, obj: dict[str, Any]) -> Any:
    return kubectl("create", "-f", "-", input=json.dumps(obj), check=False)


def test_job_name_pattern_and_immutability(kubectl: Kubectl, crds: None, namespace: str) -> None:
    for bad in ("_leading", "-leading", "has.dot", "has space", "x" * 129):
        result = create(kubectl, batch_job("bad", namespace, jobName=bad))
        assert result.returncode != 0, bad
        assert "spec.jobName" in result.stderr, result.stderr
    longest = "A" + "b_C-" * 31 + "xyz"
    assert len(longest) == 128
    assert create(kubectl, batch_job("longest", namespace, jobName=longest)).returncode == 0
    assert create(kubectl, batch_job("aws", namespace, jobName="Render_Frames")).returncode == 0
    assert create(kubectl, batch_job("plain", namespace)).returncode == 0
    for name, patch, message in (
        ("aws", {"jobName": "Other_Name"}, "spec.jobName is immutable"),
        ("aws", {"jobName": None}, "spec.jobName is immutable"),
        ("plain", {"jobName": "Late_Name"}, "spec.jobName is immutable"),
    ):
        result = kubectl(
            "patch", "batchjob", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": patch}), check=False
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr

    # The printer column (-o wide) and the field selector.
    out = kubectl("get", "batchjobs", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert out[0].split()[:3] == ["NAME", "JOB-NAME", "QUEUE"]
    assert any(line.split()[:2] == ["aws", "Render_Frames"] for line in out[1:])
    selected = json.loads(
        kubectl(
            "get", "batchjobs", "-n", namespace, "--field-selector", "spec.jobName=Render_Frames", "-o", "json"
        ).stdout
    )
    assert [j["metadata"]["name"] for j in selected["items"]] == ["aws"]


def test_submit_list_and_describe_by_aws_name(
    cluster: ClusterInfo, crds: None, kubectl: Kubectl, namespace: str
) -> None:
    kubatch = Run(cluster.kubeconfig, namespace)
    code, out, err = kubatch("submit", "--job-name", "Prep_Step", "--job-queue", "q", "--job-definition", "d")
    assert code == 0, err
    prep = kubernetes_name("Prep_Step")
    assert prep.startswith("prep-step-")
    job = json.loads(kubectl("get", "batchjob", prep, "-n", namespace, "-o", "json").stdout)
    assert job["spec"]["jobName"] == "Prep_Step"
    assert out.splitlines() == ["jobName: Prep_Step", f"jobId: {job['metadata']['uid']}", f"name: {prep}"]
    # A dependency named by its AWS name is the object submit made for it.
    code, _, err = kubatch(
        "submit", "--job-name", "Main_Step", "--job-queue", "q", "--job-definition", "d", "--depends-on", "Prep_Step"
    )
    assert code == 0, err
    main = json.loads(kubectl("get", "batchjob", kubernetes_name("Main_Step"), "-n", namespace, "-o", "json").stdout)
    assert main["spec"]["dependsOn"] == [{"jobName": prep}]
    code, _, err = kubatch("submit", "--job-name", "plain", "--job-queue", "q", "--job-definition", "d")
    assert code == 0, err
    code, _, err = kubatch("submit", "--job-name", "bad.name", "--job-queue", "q", "--job-definition", "d")
    assert code == 2 and "1 to 128 letters" in err

    def listed(*args: str) -> list[str]:
        code, out, err = kubatch("list", *args, "-o", "json")
        assert code == 0, err
        return sorted(j["metadata"]["name"] for j in json.loads(out)["items"])

    assert listed("Prep_Step") == [prep]
    assert listed("prep_step") == [prep]  # case-insensitive, as ListJobs
    assert listed("*_Step") == []  # a prefix, not a glob
    assert listed("Main_*") == [kubernetes_name("Main_Step")]
    assert listed(prep) == [prep]  # the object name still works
    code, out, _ = kubatch("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "JOB-NAME", "QUEUE"]
    assert any(line.split()[:2] == [prep, "Prep_Step"] for line in lines)
    code, out, _ = kubatch("describe", prep)
    assert code == 0
    assert any(line.split() == ["Job", "name:", "Prep_Step"] for line in out.splitlines()), out


def test_events_name_the_job_by_its_aws_name(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("d")
    name = kubernetes_name("Render_Frames_2024")
    batch.job(name, q, "d", jobName="Render_Frames_2024")
    st = batch.wait_done(name)
    assert st["status"] == "SUCCEEDED", st
    messages = batch.wait_for(
        lambda: [e["message"] for e in batch.events(name) if e["reason"] == "JobSucceeded"], "JobSucceeded event"
    )
    assert messages[0].startswith("Render_Frames_2024: "), messages
