"""The benchmark's peers (bench/peers.py): the batch/v1 Jobs and Kueue objects it creates, Kueue's
configuration, and the figures it derives from what it watched.

Proves: a peer's Job runs exactly the pod kubatch would create (its template is the baseline pod
without name), once, and is deleted once finished; for Kueue it is created suspended with the
queue-name label; Kueue's configuration turns off what one out-of-cluster instance cannot have
(leader election, internal certificates, the visibility server) and keeps the fair user's settings;
the ClusterQueue's cpu quota is the environment's vCPUs; the figures (quantiles, requests per job,
controller CPU, step latencies, the comparison table) are computed from what they are given; the
wrapper Go module pins one Kueue release and builds only its manager."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench.baseline import KEY_LABEL, RUN_LABEL, Work, pod_manifest
from bench.peers import (
    JOB_STEPS,
    KUEUE_STEPS,
    QUEUE_LABEL,
    PeerUnavailable,
    batch_job,
    comparison,
    job_finished,
    kueue_config,
    kueue_queues,
    peer_figures,
    start_kueue,
    step_latencies,
    workload_key,
    writes,
)

REPO = Path(__file__).resolve().parents[3]


def test_a_peer_job_runs_the_baseline_pod_once_and_goes_when_finished() -> None:
    work = Work("k3", "q", 2, "1s", ("ce",))
    job = batch_job("jobs", work, "ce")
    pod = pod_manifest("jobs", work, "ce")
    spec = job["spec"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == "jobs-k3"
    assert job["metadata"]["labels"] == {RUN_LABEL: "jobs", KEY_LABEL: "k3"}
    assert spec["template"]["spec"] == pod["spec"]
    assert spec["template"]["metadata"] == {
        "labels": pod["metadata"]["labels"],
        "annotations": pod["metadata"]["annotations"],
    }
    assert "name" not in spec["template"]["metadata"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 0)
    assert spec["ttlSecondsAfterFinished"] == 0
    assert "suspend" not in spec and QUEUE_LABEL not in job["metadata"]["labels"]


def test_a_kueue_job_is_created_suspended_on_its_local_queue() -> None:
    job = batch_job("kueue", Work("k1", "q", 1, "1s", ("ce",)), "ce", queue="lq")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][QUEUE_LABEL] == "lq"


def test_a_job_is_finished_by_its_complete_or_failed_condition() -> None:
    assert job_finished({}) is None
    assert job_finished({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}}) is None
    assert job_finished({"status": {"conditions": [{"type": "Complete", "status": "False"}]}}) is None
    assert job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "Complete"
    assert job_finished({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "Failed"


def test_kueue_configuration_for_one_out_of_cluster_instance() -> None:
    cfg = kueue_config(health_port=1, metrics_port=2, webhook_port=3, cert_dir="/c")
    assert cfg["apiVersion"] == "config.kueue.x-k8s.io/v1beta2" and cfg["kind"] == "Configuration"
    assert cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["internalCertManagement"] == {"enable": False}
    assert cfg["featureGates"] == {"VisibilityOnDemand": False}
    assert cfg["health"]["healthProbeBindAddress"] == "127.0.0.1:1"
    assert cfg["metrics"]["bindAddress"] == "127.0.0.1:2"
    assert cfg["webhook"] == {"port": 3, "host": "127.0.0.1", "certDir": "/c"}
    # The fair user's settings (bench/README.md).
    assert cfg["manageJobsWithoutQueueName"] is False
    assert "waitForPodsReady" not in cfg and "fairSharing" not in cfg
    assert cfg["integrations"] == {"frameworks": ["batch/job"]}
    assert cfg["clientConnection"] == {"qps": 1000, "burst": 2000}
    assert cfg["controller"]["groupKindConcurrency"]["Job.batch"] == 5
    assert cfg["controller"]["groupKindConcurrency"]["Workload.kueue.x-k8s.io"] == 5
    more = kueue_config(health_port=1, metrics_port=2, webhook_port=3, cert_dir="/c", concurrency={"Job.batch": 20})
    assert more["controller"]["groupKindConcurrency"]["Job.batch"] == 20


def test_kueue_queues_hold_the_environments_vcpus() -> None:
    objects = kueue_queues("bench-x", "ns1", 100, 2560)
    kinds = [body["kind"] for _, body in objects]
    assert kinds == ["ResourceFlavor", "ClusterQueue", "LocalQueue"]
    paths = [path for path, _ in objects]
    assert paths == [
        "/apis/kueue.x-k8s.io/v1beta2/resourceflavors",
        "/apis/kueue.x-k8s.io/v1beta2/clusterqueues",
        "/apis/kueue.x-k8s.io/v1beta2/namespaces/ns1/localqueues",
    ]
    cq = objects[1][1]["spec"]
    assert cq["queueingStrategy"] == "BestEffortFIFO" and cq["namespaceSelector"] == {}
    (group,) = cq["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory"]
    (flavor,) = group["flavors"]
    assert flavor["name"] == "bench-x"
    assert {r["name"]: r["nominalQuota"] for r in flavor["resources"]} == {"cpu": "100", "memory": "2560Gi"}
    assert objects[2][1]["spec"] == {"clusterQueue": "bench-x"}
    assert objects[2][1]["metadata"] == {"name": "bench-x", "namespace": "ns1"}


def test_writes_leave_out_reads() -> None:
    delta = {
        "GET jobs": 50,
        "LIST pods": 2,
        "WATCH pods": 1,
        "POST pods": 10,
        "PATCH pods/status": 4,
        "DELETE pods (404)": 3,
    }
    assert writes(delta) == 17


def test_peer_figures() -> None:
    fig = peer_figures(
        4,
        2.0,
        [0.1, 0.2, 0.3, 0.4],
        {"POST pods": 4, "POST jobs": 4, "GET jobs": 2},
        {"kueue": 10.0, "kube-controller-manager": 5.5, "kube-apiserver": 80.0},
        ["kueue", "kube-controller-manager"],
    )
    assert fig["makespan_s"] == 2.0 and fig["jobs_per_s"] == 2.0
    assert fig["p50_submit_to_pod_s"] == 0.3 and fig["p99_submit_to_pod_s"] == 0.4
    assert fig["api_requests_per_job"] == 2.5
    assert fig["controller_cpu_pct"] == 15.5
    assert fig["cpu_pct"]["kube-apiserver"] == 80.0
    empty = peer_figures(4, 2.0, [], {}, {}, ["operator"])
    assert empty["p50_submit_to_pod_s"] is None and empty["controller_cpu_pct"] == 0.0


def test_workload_key_is_its_jobs_key() -> None:
    wl = {"metadata": {"ownerReferences": [{"kind": "Job", "name": "kueue-b00012"}]}}
    assert workload_key(wl, "kueue") == "b00012"
    assert workload_key(wl, "jobs") is None
    assert workload_key({"metadata": {}}, "kueue") is None


def test_step_latencies_over_the_jobs_that_reached_both_steps() -> None:
    stamps = {
        "a": {"submitted": 0.0, "pod created": 1.0, "pod running": 1.5},
        "b": {"submitted": 0.0, "pod created": 3.0},
        "c": {"submitted": 1.0},
    }
    steps = step_latencies(stamps, ("submitted", "pod created", "pod running"))
    assert list(steps) == ["submitted -> pod created", "pod created -> pod running"]
    assert steps["submitted -> pod created"]["n"] == 2
    assert steps["submitted -> pod created"]["p90"] == 3.0
    assert steps["pod created -> pod running"] == {"n": 1, "p50": 0.5, "p90": 0.5}
    assert set(JOB_STEPS) < set(KUEUE_STEPS) and KUEUE_STEPS[0] == "submitted"


def test_comparison_table() -> None:
    lines = comparison(
        {
            "kubatch": {
                "makespan_s": 16.0,
                "jobs_per_s": 18.7,
                "p50_submit_to_pod_s": 6.25,
                "p99_submit_to_pod_s": 12.0,
                "api_requests_per_job": 10.6,
                "controller_cpu_pct": 12.9,
            },
            "Kueue": {"makespan_s": 53.1},
        }
    )
    assert lines[0].split()[:2] == ["system", "makespan"]
    assert re.split(r"\s{2,}", lines[1].strip()) == ["kubatch", "16.0", "18.7", "6.25 / 12.00", "10.60", "12.9"]
    assert re.split(r"\s{2,}", lines[2].strip()) == ["Kueue", "53.1", "-", "- / -", "-", "-"]


def test_the_kueue_wrapper_module_pins_one_release_and_builds_its_manager() -> None:
    mod = (REPO / "hack" / "cluster" / "kueue" / "go.mod").read_text()
    (pin,) = re.findall(r"^require sigs\.k8s\.io/kueue (v\d+\.\d+\.\d+)$", mod, re.M)
    assert pin == "v0.17.0"
    tools = (REPO / "hack" / "cluster" / "kueue" / "tools.go").read_text()
    assert '_ "sigs.k8s.io/kueue/cmd/kueue"' in tools and "//go:build tools" in tools
    script = (REPO / "hack" / "cluster" / "kueue.sh").read_text()
    # Its own cache key, apart from the control plane's (whose key hashes versions.env).
    assert "kueue-${v}-${hash}" in script and "versions.env" not in script.split("set -euo")[1]


async def test_kueue_that_does_not_build_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    script = tmp_path / "hack" / "cluster" / "kueue.sh"
    script.parent.mkdir(parents=True)
    script.write_text("echo 'go: sigs.k8s.io/kueue@v0.17.0 requires go >= 1.99' >&2\nexit 1\n")

    class Info:
        state_dir = str(tmp_path)

    class FakeHarness:
        repo = tmp_path
        info = Info()

    with pytest.raises(PeerUnavailable, match=r"kueue\.sh build failed: go: .* requires go >= 1\.99"):
        await start_kueue(FakeHarness())  # type: ignore[arg-type]
