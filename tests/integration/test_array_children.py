"""Cancelling and terminating single array children on the real control plane (AWS Batch CancelJob /
TerminateJob on `<jobId>:<index>`): through `kubatch cancel name:3` and through the BatchJob's
`spec.terminateChildren`. Only that child fails; its N_TO_N dependent child fails with `Dependent
Job failed`; the parent fails once every child ended; the entries can be added, never changed or
removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from kubatch.cli.main import cli
from kubatch.core.arrays import IndexSet
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def kubatch(cluster: ClusterInfo, namespace: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--kubeconfig", cluster.kubeconfig, "-n", namespace, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def children(batch: Batch, name: str) -> dict[str, Any]:
    return dict(batch.status(name).get("arrayProperties") or {})


def in_state(batch: Batch, name: str, state: str) -> IndexSet:
    return IndexSet.parse((children(batch, name).get("indexes") or {}).get(state))


def test_cancel_and_terminate_one_child(batch: Batch, cluster: ClusterInfo) -> None:
    q = batch.queue([batch.environment(cpu=2)])
    batch.container_definition("one-cpu")
    batch.job("up", q, "one-cpu", duration="8s", arrayProperties={"size": 4})
    n_to_n = [{"jobName": "up", "type": "N_TO_N"}]
    batch.job("down", q, "one-cpu", duration="1s", arrayProperties={"size": 4}, dependsOn=n_to_n)
    # Two vCPUs: children 0 and 1 run, 2 and 3 wait RUNNABLE.
    batch.wait_for(lambda: in_state(batch, "up", "RUNNING") == IndexSet.parse("0-1"), "children 0 and 1 running")

    code, out, err = kubatch(cluster, batch.ns, "cancel", "up:3", "--reason", "not needed")
    assert code == 0, err
    assert "batchjob/up:3 cancel requested (status RUNNABLE)" in out
    # Through the API object: terminate the RUNNING child 0.
    batch.kubectl(
        "patch",
        "batchjob",
        "up",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"terminateChildren": {"0": {"reason": "stop it"}}}}),
    )

    up = batch.wait_done("up")
    assert up["status"] == "FAILED"
    props = up["arrayProperties"]
    assert props["indexes"] == {"SUCCEEDED": "1-2", "FAILED": "0,3"}
    assert props["statusReasons"] == {"not needed": "3", "stop it": "0"}
    assert props["statusSummary"]["SUCCEEDED"] == 2 and props["statusSummary"]["FAILED"] == 2
    assert props["attempts"] == {"1": "0-2"}  # child 0's stopped attempt is recorded, child 3 never ran
    assert not any(p["metadata"]["labels"].get("kubatch.dev/array-index") == "3" for p in batch.pods("up"))

    down = batch.wait_done("down")
    assert down["status"] == "FAILED"
    assert down["arrayProperties"]["indexes"] == {"SUCCEEDED": "1-2", "FAILED": "0,3"}
    assert down["arrayProperties"]["statusReasons"] == {"Dependent Job failed": "0,3"}

    code, out, _ = kubatch(cluster, batch.ns, "describe", "up:3")
    assert code == 0
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    assert fields["Status"] == "FAILED" and fields["Reason"] == "not needed"


def test_child_stop_entries_are_checked_and_only_grow(batch: Batch, cluster: ClusterInfo) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("one-cpu")
    batch.job("arr", q, "one-cpu", duration="1h", arrayProperties={"size": 3})
    batch.job("single", q, "one-cpu", duration="1h")

    assert kubatch(cluster, batch.ns, "cancel", "arr:2", "--reason", "first")[0] == 0
    assert kubatch(cluster, batch.ns, "cancel", "arr:2", "--reason", "first")[0] == 0  # the same again: a no-op
    code, _, err = kubatch(cluster, batch.ns, "cancel", "arr:2", "--reason", "second")
    assert code == 1 and "spec.cancelChildren: entries can be added, not changed or removed" in err
    code, _, err = kubatch(cluster, batch.ns, "terminate", "arr:3")
    assert code == 1 and "only an array job's children" in err
    code, _, err = kubatch(cluster, batch.ns, "cancel", "single:0")
    assert code == 1 and "only an array job's children" in err
    removed = batch.kubectl(
        "patch",
        "batchjob",
        "arr",
        "-n",
        batch.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cancelChildren": {"2": None}}}),
        check=False,
    )
    assert removed.returncode != 0 and "entries can be added, not changed or removed" in removed.stderr
    assert batch.get("arr")["spec"]["cancelChildren"] == {"2": {"reason": "first"}}
    # Other fields stay immutable, and say what can be changed.
    other = batch.kubectl(
        "patch", "batchjob", "arr", "-n", batch.ns, "--type=merge", "-p", '{"spec": {"jobQueue": "x"}}', check=False
    )
    assert other.returncode != 0 and "is immutable" in other.stderr and "spec.cancelChildren" in other.stderr
    batch.wait_for(lambda: in_state(batch, "arr", "FAILED") == IndexSet.parse("2"), "child 2 cancelled")
