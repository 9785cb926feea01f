"""Array jobs and dependencies on the real control plane: compact child state, SEQUENTIAL and
N_TO_N ordering, failure cascades."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from kubatch.core.arrays import IndexSet
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def ts(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").timestamp()


@pytest.mark.in_cluster
def test_array_of_five_reports_summary_and_child_env(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("render")
    batch.job("frames", q, "render", duration="3s", arrayProperties={"size": 5})
    batch.wait_for(lambda: len(batch.pods("frames")) == 5, "five child pods")
    pods = {int(p["metadata"]["labels"]["kubatch.dev/array-index"]): p for p in batch.pods("frames")}
    st = batch.wait_for(lambda: batch.status("frames").get("jobId") and batch.status("frames"), "status written")
    for i, pod in pods.items():
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == str(i)
        assert env["AWS_BATCH_JOB_ARRAY_SIZE"] == "5"
        assert env["AWS_BATCH_JOB_ID"] == f"{st['jobId']}:{i}"
        assert pod["metadata"]["name"] == f"frames-{i}-a1"
    # The parent never shows RUNNING: only SUBMITTED, PENDING, SUCCEEDED or FAILED.
    assert batch.status("frames")["status"] == "PENDING"
    done = batch.wait_done("frames")
    assert done["status"] == "SUCCEEDED"
    props = done["arrayProperties"]
    assert props["size"] == 5
    assert props["statusSummary"]["SUCCEEDED"] == 5
    assert props["indexes"]["SUCCEEDED"] == "0-4"
    assert props["exitCodes"] == {"0": "0-4"}


def test_failing_child_fails_parent_only_after_slow_children(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("render")
    batch.job(
        "mixed",
        q,
        "render",
        duration="1s",
        arrayProperties={"size": 3},
        annotations={"sim.kubatch.dev/exit-code-index-0": "5", "sim.kubatch.dev/duration-index-2": "8s"},
    )
    batch.wait_for(
        lambda: 0 in IndexSet.parse(batch.status("mixed").get("arrayProperties", {}).get("indexes", {}).get("FAILED")),
        "child 0 failed",
    )
    st = batch.status("mixed")
    assert st["status"] == "PENDING", "the parent waits for the slow child before failing"
    done = batch.wait_done("mixed")
    assert done["status"] == "FAILED"
    props = done["arrayProperties"]
    assert props["statusSummary"]["FAILED"] == 1
    assert props["statusSummary"]["SUCCEEDED"] == 2
    assert props["exitCodes"]["5"] == "0"
    assert ts(done["stoppedAt"]) - ts(st["createdAt"]) >= 7


@pytest.mark.in_cluster
def test_dependency_chain_and_failure_cascade(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("step")
    batch.job("a", q, "step", duration="10s")
    batch.job("b", q, "step", dependsOn=[{"jobName": "a"}])
    batch.job("c", q, "step", dependsOn=[{"jobName": "b"}])
    batch.wait_status("a", "RUNNING")
    assert batch.wait_status("b", "PENDING")["status"] == "PENDING"
    assert batch.status("a")["status"] == "RUNNING", "b waits while a runs"
    done_a = batch.wait_done("a")
    done_c = batch.wait_done("c")
    assert done_c["status"] == "SUCCEEDED"
    assert ts(batch.status("b")["startedAt"]) >= ts(done_a["stoppedAt"])
    # A failed dependency fails its dependents, down the chain.
    batch.job("x", q, "step", duration="500ms", exit_code=1)
    batch.job("y", q, "step", dependsOn=[{"jobName": "x"}])
    batch.job("z", q, "step", dependsOn=[{"jobName": "y"}])
    y = batch.wait_done("y")
    z = batch.wait_done("z")
    # AWS's exact statusReason; which dependency failed is kubatch's detail, kept apart.
    assert (y["status"], y["statusReason"]) == ("FAILED", "Dependent Job failed"), y
    assert y.get("statusReasonDetail") == "dependency x failed", y
    assert (z["status"], z["statusReason"], z.get("statusReasonDetail")) == (
        "FAILED",
        "Dependent Job failed",
        "dependency y failed",
    ), z
    assert not batch.pods("y") and not batch.pods("z")


@pytest.mark.in_cluster
def test_n_to_n_child_starts_while_other_children_of_its_dependency_run(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("stage")
    batch.job(
        "prep",
        q,
        "stage",
        duration="1s",
        arrayProperties={"size": 2},
        annotations={"sim.kubatch.dev/duration-index-1": "20s"},
    )
    batch.job(
        "post",
        q,
        "stage",
        duration="1s",
        arrayProperties={"size": 2},
        dependsOn=[{"jobName": "prep", "type": "N_TO_N"}],
    )

    def post0_started() -> bool:
        idx = batch.status("post").get("arrayProperties", {}).get("indexes", {})
        started = IndexSet.parse(idx.get("STARTING")) | IndexSet.parse(idx.get("RUNNING"))
        started = started | IndexSet.parse(idx.get("SUCCEEDED"))
        return 0 in started

    batch.wait_for(post0_started, "post:0 started", timeout=60)
    prep = batch.status("prep")["arrayProperties"]["indexes"]
    assert 1 in IndexSet.parse(prep.get("RUNNING")) | IndexSet.parse(prep.get("STARTING")), prep
    post = batch.status("post")["arrayProperties"]["indexes"]
    assert 1 not in IndexSet.parse(post.get("RUNNING")) | IndexSet.parse(post.get("SUCCEEDED"))
    assert batch.wait_done("post", timeout=90)["status"] == "SUCCEEDED"


def test_sequential_children_never_overlap(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("seq")
    batch.job("chain", q, "seq", duration="1s", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    seen_running: list[list[int]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        st = batch.status("chain")
        idx: dict[str, Any] = st.get("arrayProperties", {}).get("indexes", {})
        active = sorted(IndexSet.parse(idx.get("STARTING")) | IndexSet.parse(idx.get("RUNNING")))
        seen_running.append(active)
        assert len(active) <= 1, f"children overlap: {active}"
        if st.get("status") in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.2)
    assert batch.status("chain")["status"] == "SUCCEEDED"
    firsts = [a[0] for a in seen_running if a]
    assert firsts == sorted(firsts), "children ran out of order"


def test_job_depending_on_an_array_waits_for_all_children(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=8)])
    batch.container_definition("unit")
    batch.job(
        "many",
        q,
        "unit",
        duration="1s",
        arrayProperties={"size": 3},
        annotations={"sim.kubatch.dev/duration-index-2": "5s"},
    )
    batch.job("after", q, "unit", dependsOn=[{"jobName": "many"}])
    many = batch.wait_done("many")
    after = batch.wait_done("after")
    assert after["status"] == "SUCCEEDED"
    assert ts(after["startedAt"]) >= ts(many["stoppedAt"])


def test_cancel_of_array_parent_applies_to_waiting_children(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("one")
    batch.job("wide", q, "one", duration="1h", arrayProperties={"size": 4})
    batch.wait_for(lambda: len(batch.pods("wide")) == 1, "one child running (1 vCPU)")
    batch.kubectl(
        "patch",
        "batchjob",
        "wide",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        '{"spec": {"terminate": {"reason": "stop all"}}}',
    )
    done = batch.wait_done("wide")
    assert done["status"] == "FAILED"
    assert done["arrayProperties"]["statusSummary"]["FAILED"] == 4
    batch.wait_for(lambda: not batch.pods("wide"), "children's pods gone")
