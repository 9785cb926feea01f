"""Infrastructure updates of a MANAGED compute environment and its `updatePolicy`, on the real control
plane with kwok-provisioned nodes (AWS §1.4).

With the shared operator (time limits scaled by KUBATCH_TIME_LIMIT_SCALE=0.01, so
jobExecutionTimeoutMinutes 60 is 36 s): terminateJobsOnUpdate ends the jobs running on the old
nodes at once (as a lost host: retried only with a retry strategy) and new jobs run on nodes of the
new spec; without it a job that ends in time succeeds on its old node, one that runs too long is
terminated at the deadline, and the old nodes go. With a compute controller of the test's own: the
deadline is the node's annotation, which a restarted controller keeps, and a node still busy after
its deadline (nothing terminated its pods here) is removed once the drain grace has passed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from kubatch.core.updates import (
    ANNOTATION_TERMINATE_JOBS_AT,
    LABEL_INFRASTRUCTURE,
    REASON_NODE_REPLACED,
    TAINT_INFRASTRUCTURE_UPDATE,
    terminate_jobs_at,
)
from tests.integration.batch import Batch
from tests.integration.test_compute import CE_PATH, Harness, harness, managed, until

pytestmark = pytest.mark.integration

__all__ = ["harness"]  # the fixture, shared with test_compute

SCALE = 0.01  # the shared test operator's KUBATCH_TIME_LIMIT_SCALE


def managed_env(batch: Batch, policy: dict[str, Any]) -> str:
    ce = batch.name("upd")
    spec = {**managed(["m5.large"], max_vcpus=8), "updatePolicy": policy}
    batch.cluster_object("ComputeEnvironment", ce, spec)
    batch.wait_for(lambda: env_status(batch, ce).get("status") == "VALID", f"{ce} VALID")
    return ce


def env_status(batch: Batch, ce: str) -> dict[str, Any]:
    return dict(batch.kget("computeenvironment", ce).get("status") or {})


def switch_to_c5(batch: Batch, ce: str) -> float:
    """The infrastructure update: m5.large -> c5.large. Returns when it was made (epoch seconds)."""
    at = time.time()
    batch.kubectl(
        "patch",
        "computeenvironment",
        ce,
        "--type=merge",
        "-p",
        '{"spec":{"computeResources":{"instanceTypes":["c5.large"]}}}',
    )
    return at


def node_of(batch: Batch, job: str) -> str:
    """The node the job's running pod is bound to."""

    def bound() -> str | None:
        pods = [p for p in batch.pods(job) if p["spec"].get("nodeName")]
        return str(pods[0]["spec"]["nodeName"]) if pods else None

    return str(batch.wait_for(bound, f"{job}'s pod bound to a node", timeout=120))


def node_exists(batch: Batch, name: str) -> bool:
    return batch.kubectl("get", "node", name, check=False).returncode == 0


def env_events(batch: Batch, ce: str) -> list[str]:
    out = batch.kget("events", "-n", "default", "--field-selector", f"involvedObject.name={ce}")
    return [str(e.get("reason")) for e in out["items"]]


def host_lost(node: str) -> str:
    return f"Host EC2 (instance {node}) terminated."


def test_terminate_jobs_on_update_ends_running_jobs_and_new_jobs_run_on_new_nodes(batch: Batch) -> None:
    ce = managed_env(batch, {"terminateJobsOnUpdate": True})
    q = batch.queue([ce])
    batch.container_definition("work")
    batch.job("plain", q, "work", duration="600s")
    batch.job(
        "retried",
        q,
        "work",
        duration="600s",
        annotations={"sim.kubatch.dev/duration-attempt-2": "2s"},
        retryStrategy={"attempts": 2},
    )
    for job in ("plain", "retried"):
        batch.wait_status(job, "RUNNING", timeout=120)
    old = {node_of(batch, "plain"), node_of(batch, "retried")}
    assert all(n.startswith(f"{ce}-m5-large-") for n in old), old

    switch_to_c5(batch, ce)

    # Terminated at once, as a lost host: no retry strategy, FAILED ...
    plain = batch.wait_done("plain", timeout=120)
    assert plain["status"] == "FAILED", plain
    (attempt,) = plain["attempts"]
    assert plain["statusReason"] == host_lost(attempt["container"]["nodeName"])
    assert attempt["container"]["nodeName"] in old
    assert attempt["container"]["reason"] == REASON_NODE_REPLACED
    # ... with one, retried on a node of the new spec.
    retried = batch.wait_done("retried", timeout=180)
    assert retried["status"] == "SUCCEEDED", retried
    first, second = retried["attempts"]
    assert first["statusReason"] == host_lost(first["container"]["nodeName"])
    assert second["container"]["nodeName"].startswith(f"{ce}-c5-large-"), second

    # The old nodes go, the update ends, and a new job runs on the new node type.
    batch.wait_for(lambda: not any(node_exists(batch, n) for n in old), "old nodes removed", timeout=120)
    batch.wait_for(lambda: env_status(batch, ce).get("status") == "VALID", "VALID after the update", timeout=120)
    batch.job("fresh", q, "work", duration="2s")
    fresh = batch.wait_done("fresh", timeout=120)
    assert fresh["status"] == "SUCCEEDED", fresh
    assert fresh["attempts"][-1]["container"]["nodeName"].startswith(f"{ce}-c5-large-")
    reasons = batch.wait_for(
        lambda: (r := env_events(batch, ce)) and "InfrastructureUpdated" in r and r, "the update's Events", timeout=60
    )
    assert "InfrastructureUpdate" in reasons


def test_without_terminate_jobs_run_until_the_timeout_then_the_old_nodes_go(batch: Batch) -> None:
    minutes = 60  # 36 s with the shared operator's time-limit scale
    ce = managed_env(batch, {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": minutes})
    q = batch.queue([ce])
    batch.container_definition("work")
    batch.job("short", q, "work", duration="15s")
    batch.job("long", q, "work", duration="600s")
    for job in ("short", "long"):
        batch.wait_status(job, "RUNNING", timeout=120)
    old = {node_of(batch, "short"), node_of(batch, "long")}

    updated_at = switch_to_c5(batch, ce)

    # The old nodes are marked: cordoned, tainted, and the deadline recorded on them.
    def marked() -> list[dict[str, Any]] | None:
        nodes = [batch.kget("node", n) for n in old if node_exists(batch, n)]
        ok = nodes and all(
            n["spec"].get("unschedulable")
            and any(t["key"] == TAINT_INFRASTRUCTURE_UPDATE for t in n["spec"].get("taints") or [])
            and ANNOTATION_TERMINATE_JOBS_AT in n["metadata"].get("annotations", {})
            for n in nodes
        )
        return nodes if ok else None

    nodes = batch.wait_for(marked, "old nodes cordoned, tainted and given a deadline", timeout=60)
    deadline = min(d for n in nodes if (d := terminate_jobs_at(n)) is not None)
    grace = minutes * 60 * SCALE
    assert updated_at + grace - 2 <= deadline <= updated_at + grace + 30, (updated_at, deadline)
    st = batch.wait_for(
        lambda: (s := env_status(batch, ce)).get("status") == "UPDATING" and s,
        "the environment UPDATING (its status is written after the nodes are marked)",
        timeout=30,
    )
    assert "terminated at" in st["statusReason"], st

    # A job submitted during the update runs on a node of the new spec.
    batch.job("fresh", q, "work", duration="2s")
    fresh = batch.wait_done("fresh", timeout=120)
    assert fresh["status"] == "SUCCEEDED", fresh
    assert fresh["attempts"][-1]["container"]["nodeName"].startswith(f"{ce}-c5-large-")

    # The short job ends in time on its old node.
    short = batch.wait_done("short", timeout=120)
    assert short["status"] == "SUCCEEDED", short
    assert short["attempts"][-1]["container"]["nodeName"] in old
    assert (parse_iso(short["stoppedAt"]) or 0) >= updated_at

    # The long one is terminated at the deadline, not before.
    long = batch.wait_done("long", timeout=180)
    assert long["status"] == "FAILED", long
    (attempt,) = long["attempts"]
    assert long["statusReason"] == host_lost(attempt["container"]["nodeName"])
    assert attempt["container"]["nodeName"] in old
    assert (parse_iso(long["stoppedAt"]) or 0) >= deadline - 1, (long["stoppedAt"], deadline)

    batch.wait_for(lambda: not any(node_exists(batch, n) for n in old), "old nodes removed", timeout=120)
    batch.wait_for(lambda: env_status(batch, ce).get("status") == "VALID", "VALID after the update", timeout=120)
    reasons = batch.wait_for(
        lambda: (r := env_events(batch, ce)) and "InfrastructureUpdated" in r and r, "the update's Events", timeout=60
    )
    assert "InfrastructureUpdate" in reasons


async def test_the_deadline_survives_a_restart_and_a_busy_node_goes_after_it(harness: Harness, namespace: str) -> None:
    """No job reconciler here: the pod is not terminated at the deadline, so the node's removal
    after the drain grace is the compute controller's backstop."""
    h = harness
    h.controller(time_limit_scale=SCALE, drain_grace=2)
    first = h.tasks[-1]
    policy = {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": 20}  # 12 s
    ce = await h.create_env("restart", {**managed(["m5.large"], max_vcpus=4), "updatePolicy": policy})
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID")
    await h.create_pods(namespace, ce, "busy", 1, duration="600s")
    pods = await until(
        lambda: [p for p in h.pods("busy", namespace) if p["spec"].get("nodeName")], 90, "the pod on a node"
    )
    [old] = [n for n in h.nodes(ce) if n["metadata"]["name"] == pods[0]["spec"]["nodeName"]]
    name = old["metadata"]["name"]
    stamp = old["metadata"]["labels"][LABEL_INFRASTRUCTURE]

    await h.kube.merge_patch(f"{CE_PATH}/{ce}", {"spec": {"computeResources": {"instanceTypes": ["c5.large"]}}})
    node = await until(
        lambda: (n := h.view.nodes.get(name)) and terminate_jobs_at(n) is not None and n, 30, "the deadline recorded"
    )
    deadline = terminate_jobs_at(node)
    assert deadline is not None
    assert node["spec"].get("unschedulable") is True
    # The status is written after the node is marked: wait for it (the view follows by watch).
    await until(lambda: h.status(ce).get("status") == "UPDATING", 30, "UPDATING")

    # The operator restarts: a new controller, nothing in memory, finds the deadline on the node.
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.sleep(1.5)
    h.controller(time_limit_scale=SCALE, drain_grace=2)
    await asyncio.sleep(2)  # a few syncs of the new controller
    if time.time() < deadline:
        assert terminate_jobs_at(h.view.nodes[name]) == deadline

    await until(lambda: name not in h.view.nodes, 90, "the busy old node removed after its deadline and the grace")
    assert time.time() >= deadline + 2 - 1
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID again")
    for n in h.nodes(ce):
        assert n["metadata"]["labels"][LABEL_INFRASTRUCTURE] != stamp


async def test_setting_the_earlier_spec_back_takes_the_mark_off(harness: Harness, namespace: str) -> None:
    h = harness
    h.controller(time_limit_scale=SCALE)
    ce = await h.create_env("revert", {**managed(["m5.large"], max_vcpus=4), "updatePolicy": {}})
    await until(lambda: h.status(ce).get("status") == "VALID", 60, "VALID")
    await h.create_pods(namespace, ce, "busy", 1, duration="600s")
    pods = await until(
        lambda: [p for p in h.pods("busy", namespace) if p["spec"].get("nodeName")], 90, "the pod on a node"
    )
    name = pods[0]["spec"]["nodeName"]
    await h.kube.merge_patch(f"{CE_PATH}/{ce}", {"spec": {"computeResources": {"instanceTypes": ["c5.large"]}}})
    await until(lambda: terminate_jobs_at(h.view.nodes.get(name, {})) is not None, 30, "the node marked")
    await h.kube.merge_patch(f"{CE_PATH}/{ce}", {"spec": {"computeResources": {"instanceTypes": ["m5.large"]}}})

    def unmarked() -> bool:
        node = h.view.nodes.get(name) or {}
        taints = (node.get("spec") or {}).get("taints") or []
        return (
            bool(node)
            and terminate_jobs_at(node) is None
            and not node["spec"].get("unschedulable")
            and not any(t["key"] == TAINT_INFRASTRUCTURE_UPDATE for t in taints)
        )

    await until(unmarked, 30, "the mark taken off the node, which is current again")
    await until(lambda: h.status(ce).get("status") == "VALID", 30, "VALID")
    assert name in h.view.nodes
