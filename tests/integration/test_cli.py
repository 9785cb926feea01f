"""The `kubatch` CLI against the real local control plane.

The operator may or may not be running: tests that need a particular status set it themselves
through the status subresource, on jobs the operator leaves alone (terminal ones, after the operator
had its chance to initialise them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubatch.cli.main import cli
from kubatch.core.podspec import pod_name
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.helpers import Kubectl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Run:
    """Invoke the CLI in-process against the test cluster and namespace."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["--kubeconfig", self.kubeconfig, "-n", self.namespace, *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def kubatch(cluster: ClusterInfo, crds: None, namespace: str) -> Run:
    return Run(cluster.kubeconfig, namespace)


def get_job(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl("get", "batchjob", name, "-n", namespace, "-o", "json").stdout)
    return result


def set_status(kubectl: Kubectl, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """Write a terminal status once the operator (if running) has initialised the job."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not get_job(kubectl, namespace, name).get("status"):
        time.sleep(0.2)
    for _ in range(5):
        kubectl(
            "patch",
            "batchjob",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )
        time.sleep(0.3)
        job = get_job(kubectl, namespace, name)
        if job["status"].get("statusReason") == status.get("statusReason"):
            return job
    raise AssertionError(f"status of {name} kept being overwritten")


def submit(kubatch: Run, name: str, *extra: str) -> str:
    code, out, err = kubatch("submit", "--job-name", name, "--job-queue", "q", "--job-definition", "d", *extra)
    assert code == 0, err
    return out


def test_submit_creates_the_batchjob(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    out = submit(
        kubatch,
        "render",
        "--job-definition",
        "render:2",
        "--array-size",
        "4",
        "--depends-on",
        "prep",
        "--depends-on-sequential",
        "--command",
        "sh -c 'echo hi'",
        "--env",
        "MODE=fast",
        "--vcpus",
        "0.5",
        "--memory",
        "1024",
        "--timeout",
        "120",
        "--retries",
        "3",
        "--tag",
        "run=42",
        "--annotation",
        "sim.kubatch.dev/duration=5s",
        "--parameters",
        "frame=7",
    )
    job = get_job(kubectl, namespace, "render")
    assert out.splitlines() == ["jobName: render", f"jobId: {job['metadata']['uid']}"]
    spec = job["spec"]
    assert spec["jobQueue"] == "q" and spec["jobDefinition"] == "render:2"
    assert spec["arrayProperties"] == {"size": 4}
    assert spec["dependsOn"] == [{"jobName": "prep"}, {"type": "SEQUENTIAL"}]
    assert spec["containerOverrides"] == {
        "command": ["sh", "-c", "echo hi"],
        "environment": [{"name": "MODE", "value": "fast"}],
        "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}],
    }
    assert spec["timeout"] == {"attemptDurationSeconds": 120}
    assert spec["retryStrategy"] == {"attempts": 3}
    assert spec["tags"] == {"run": "42"}
    assert spec["parameters"] == {"frame": "7"}
    assert spec["podMetadata"] == {"annotations": {"sim.kubatch.dev/duration": "5s"}}


def test_submit_generated_name_json_output_and_dry_run(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    code, out, _ = kubatch("submit", "--job-queue", "q", "--job-definition", "render", "-o", "json")
    assert code == 0
    created = json.loads(out)
    assert created["metadata"]["name"].startswith("render-")
    code, out, _ = kubatch("submit", "--job-name", "dry", "--job-queue", "q", "--job-definition", "d", "--dry-run")
    assert code == 0 and "name: dry" in out
    assert kubectl("get", "batchjob", "dry", "-n", namespace, check=False).returncode != 0


def test_submit_rejected_by_the_api_server_exits_1(kubatch: Run) -> None:
    submit(kubatch, "dup")
    code, _, err = kubatch("submit", "--job-name", "dup", "--job-queue", "q", "--job-definition", "d")
    assert code == 1
    assert err.startswith("error: ") and "already exists" in err


def test_cancel_and_terminate_patch_the_spec(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    for name in ("a", "b", "c"):
        submit(kubatch, name)
    code, out, _ = kubatch("cancel", "a", "b", "--reason", "not needed")
    assert code == 0
    assert "batchjob/a cancel requested" in out and "batchjob/b cancel requested" in out
    assert get_job(kubectl, namespace, "a")["spec"]["cancel"] == {"reason": "not needed"}
    assert get_job(kubectl, namespace, "b")["spec"]["cancel"] == {"reason": "not needed"}
    code, _, err = kubatch("terminate", "c", "missing")
    assert code == 1
    assert f'error: batchjob "missing" not found in namespace "{namespace}"' in err
    assert get_job(kubectl, namespace, "c")["spec"]["terminate"] == {"reason": "Terminated by user"}
    code, _, err = kubatch("cancel", "a", "--reason", "changed my mind")  # cancel is set once
    assert code == 1 and "cannot be changed" in err


def test_describe_single_job_with_attempts(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    submit(kubatch, "single")
    set_status(
        kubectl,
        namespace,
        "single",
        {
            "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "jobDefinition": "d:1",
            "computeEnvironment": "cpu",
            "attemptCount": 2,
            "attempts": [
                {
                    "container": {"exitCode": 137, "reason": "OOMKilled", "podName": "single-a1", "nodeName": "kw-1"},
                    "startedAt": "2026-01-01T10:00:00Z",
                    "stoppedAt": "2026-01-01T10:00:30Z",
                    "statusReason": "retry",
                },
                {
                    "container": {"exitCode": 1, "podName": "single-a2", "nodeName": "kw-2"},
                    "startedAt": "2026-01-01T10:01:00Z",
                    "stoppedAt": "2026-01-01T10:02:00Z",
                },
            ],
        },
    )
    code, out, _ = kubatch("describe", "single")
    assert code == 0
    lines = out.splitlines()
    assert "Status: FAILED" in [" ".join(line.split()) for line in lines]
    assert any(line.split()[:4] == ["1", "137", "single-a1", "kw-1"] for line in lines)
    assert any(line.split()[:4] == ["2", "1", "single-a2", "kw-2"] for line in lines)
    assert all(len(line) <= 80 for line in lines)
    code, out, _ = kubatch("describe", "single", "-o", "json")
    assert code == 0 and json.loads(out)["status"]["attemptCount"] == 2


def test_describe_array_child_from_the_parent_status(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    submit(kubatch, "arr", "--array-size", "6")
    job = set_status(
        kubectl,
        namespace,
        "arr",
        {
            "status": "FAILED",
            "statusReason": "An array child failed",
            "arrayProperties": {
                "size": 6,
                "statusSummary": {"SUCCEEDED": 5, "FAILED": 1},
                "indexes": {"SUCCEEDED": "0-2,4-5", "FAILED": "3"},
                "attempts": {"1": "0-2,4-5", "2": "3"},
                "exitCodes": {"0": "0-2,4-5", "7": "3"},
                "statusReasons": {"Essential container in task exited": "3"},
            },
        },
    )
    code, out, _ = kubatch("describe", "arr:3")
    assert code == 0, out
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    assert fields["Name"] == "arr:3"
    assert fields["JobId"] == f"{job['metadata']['uid']}:3"
    assert fields["Status"] == "FAILED"
    assert fields["Array index"] == "3 of 0-5"
    stored = job["status"]["arrayProperties"]
    if "attempts" in stored:  # kept only when the CRD schema declares the compact per-child maps
        assert fields["Attempt"] == "2"
        assert fields["Exit code"] == "7"
        assert fields["Reason"] == "Essential container in task exited"
        pod = pod_name("arr", 2, array_index=3)
    else:
        assert fields["Attempt"] == "none started"
        pod = "-"
    assert fields["Pod"].startswith(pod)
    code, out, _ = kubatch("describe", "arr:1", "-o", "json")
    assert code == 0 and json.loads(out)["status"] == "SUCCEEDED"
    code, _, err = kubatch("describe", "arr:6")
    assert code == 1 and "6 is out of range" in err


def test_not_found_exits_1(kubatch: Run, namespace: str) -> None:
    for args in (["describe", "nope"], ["describe", "nope:1"], ["logs", "nope"], ["cancel", "nope"]):
        code, _, err = kubatch(*args)
        assert code == 1, args
        assert f'error: batchjob "nope" not found in namespace "{namespace}"' in err
    code, _, err = kubatch("queue", f"no-queue-{uuid.uuid4().hex[:6]}")
    assert code == 1 and err.startswith('error: jobqueue "no-queue-') and "namespace" not in err


def test_logs_say_when_the_pod_is_gone(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    submit(kubatch, "gone")
    set_status(
        kubectl,
        namespace,
        "gone",
        {
            "status": "SUCCEEDED",
            "statusReason": "done",
            "attemptCount": 1,
            "attempts": [{"container": {"exitCode": 0, "podName": "gone-a1"}}],
        },
    )
    code, _, err = kubatch("logs", "gone")
    assert code == 1
    assert 'pod "gone-a1" of gone (attempt 1) does not exist' in err


def test_list_filters(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    submit(kubatch, "etl-1", "--job-queue", "high")
    submit(kubatch, "etl-2", "--job-queue", "low", "--job-definition", "other")
    submit(kubatch, "report", "--job-queue", "high")
    set_status(kubectl, namespace, "etl-1", {"status": "SUCCEEDED", "statusReason": "ok"})
    set_status(kubectl, namespace, "report", {"status": "FAILED", "statusReason": "bad"})

    def names(*args: str) -> list[str]:
        code, out, err = kubatch("list", *args, "-o", "json")
        assert code == 0, err
        return [j["metadata"]["name"] for j in json.loads(out)["items"]]

    assert names() == ["etl-1", "etl-2", "report"]
    assert names("etl-*") == ["etl-1", "etl-2"]
    assert names("--queue", "high") == ["etl-1", "report"]
    assert names("--status", "succeeded") == ["etl-1"]
    assert {"etl-1", "report"} <= set(names("--status", "succeeded,failed"))  # etl-2 too if an operator failed it
    assert names("--definition", "other") == ["etl-2"]
    assert names("--created-after", "1h") == ["etl-1", "etl-2", "report"]
    assert names("--created-before", "1h") == []
    code, out, _ = kubatch("list")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "QUEUE", "STATUS", "REASON", "ATTEMPTS", "AGE"]
    assert any(line.split()[:4] == ["report", "high", "FAILED", "bad"] for line in out.splitlines())
    code, out, _ = kubatch("list", "-o", "wide", "etl-1")
    assert code == 0 and "JOBID" in out and get_job(kubectl, namespace, "etl-1")["metadata"]["uid"] in out


def test_list_name_definition_and_time_filters_ignore_status(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    """As AWS ListJobs: with a JOB_NAME, JOB_DEFINITION or created-at filter the status filter is
    ignored (a note on stderr says so); `--queue` still combines; `NAME*` / `--definition NAME*` are
    prefix matches."""
    submit(kubatch, "etl-1", "--job-definition", "etl")
    submit(kubatch, "etl-2", "--job-definition", "etl-big:2")
    submit(kubatch, "report", "--job-definition", "rep")
    set_status(kubectl, namespace, "etl-1", {"status": "SUCCEEDED", "statusReason": "ok"})
    set_status(kubectl, namespace, "etl-2", {"status": "FAILED", "statusReason": "bad"})
    set_status(kubectl, namespace, "report", {"status": "SUCCEEDED", "statusReason": "ok"})

    def listed(*args: str) -> tuple[list[str], str]:
        code, out, err = kubatch("list", *args, "-o", "json")
        assert code == 0, err
        return [j["metadata"]["name"] for j in json.loads(out)["items"]], err

    assert listed("--status", "succeeded") == (["etl-1", "report"], "")
    assert listed("--status", "succeeded", "--queue", "q") == (["etl-1", "report"], "")
    names, err = listed("--status", "succeeded", "etl-*")
    assert names == ["etl-1", "etl-2"]
    assert "--status is ignored" in err
    assert listed("--status", "succeeded", "--definition", "etl*")[0] == ["etl-1", "etl-2"]
    assert listed("--status", "succeeded", "--definition", "etl-*")[0] == ["etl-2"]
    assert listed("--status", "failed", "--created-after", "1h")[0] == ["etl-1", "etl-2", "report"]
    assert listed("--status", "succeeded", "--created-before", "1h")[0] == []


def test_watch_until_done_exit_codes(kubatch: Run, kubectl: Kubectl, namespace: str) -> None:
    submit(kubatch, "w-ok")
    submit(kubatch, "w-bad")
    set_status(kubectl, namespace, "w-ok", {"status": "SUCCEEDED", "statusReason": "ok"})
    set_status(kubectl, namespace, "w-bad", {"status": "FAILED", "statusReason": "bad"})
    code, out, _ = kubatch("watch", "--until-done", "w-ok")
    assert code == 0 and "w-ok" in out
    code, _, _ = kubatch("watch", "--until-done", "w-*")
    assert code == 1
    code, _, err = kubatch("watch", "--until-done", "nothing-*")
    assert code == 1 and "no batchjobs match" in err


@pytest.fixture
def job_queue(kubectl: Kubectl, crds: None) -> Iterator[str]:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {"priority": 5, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]},
    }
    kubectl("create", "-f", "-", input=json.dumps(manifest))
    yield name
    kubectl("delete", "jobqueue", name, "--wait=false", check=False)


def test_queue_shows_the_queue(kubatch: Run, job_queue: str) -> None:
    code, out, err = kubatch("queue", job_queue)
    assert code == 0, err
    text = [" ".join(line.split()) for line in out.splitlines()]
    assert f"Name: {job_queue}" in text
    assert "Priority: 5" in text
    assert "Compute envs: ce" in text


def test_console_script(cluster: ClusterInfo, crds: None, namespace: str) -> None:
    exe = shutil.which("kubatch", path=str(ROOT / ".venv" / "bin"))
    assert exe, "the kubatch console script is not installed in .venv"
    env = {**cluster.env(), "KUBECONFIG": cluster.kubeconfig}
    proc = subprocess.run([exe, "-n", namespace, "list"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "No batchjobs found" in proc.stderr
    proc = subprocess.run([exe, "list", "--status", "bogus"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
