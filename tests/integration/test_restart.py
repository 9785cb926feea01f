"""Crash safety: the operator killed with SIGKILL mid-run and started again loses no job,
duplicates no attempt and leaves nothing stuck (state lives only in the API server); fair-share
usage recorded before a restart still orders the shares after it."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from kubatch.core.timestamps import parse_iso
from tests.integration.batch import Batch
from tests.integration.helpers import operator_down
from tests.integration.test_consumables import restart_operator

# Tests that kill the shared operator run one after the other (same xdist worker).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]


class PodRecorder:
    """Records every pod the API server ever shows in a namespace: name -> set of uids."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.uids: dict[str, set[str]] = defaultdict(set)
        self.cluster = cluster
        self.namespace = namespace
        self.stopped = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        template = '{.type} {.object.metadata.name} {.object.metadata.uid}{"\\n"}'
        # A watch can be cut (server timeout, a restarted API server): watch again; the initial
        # list of each new watch repeats what exists, so nothing is missed in between.
        while not self.stopped.is_set():
            self.proc = subprocess.Popen(
                [
                    self.cluster.kubectl,
                    "get",
                    "pods",
                    "-n",
                    self.namespace,
                    "--watch",
                    "--output-watch-events",
                    "-o",
                    f"jsonpath={template}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self.cluster.env(),
            )
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                parts = line.split()
                if len(parts) == 3 and parts[0] in ("ADDED", "MODIFIED"):
                    self.uids[parts[1]].add(parts[2])
            self.proc.wait()

    def stop(self) -> None:
        self.stopped.set()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.thread.join(timeout=10)


def test_sigkill_mid_run_loses_and_duplicates_nothing(batch: Batch, cluster: Any, operator: Any) -> None:
    q = batch.queue([batch.environment(cpu=4)])
    batch.container_definition("work", retryStrategy={"attempts": 2})
    recorder = PodRecorder(cluster, batch.ns)
    try:
        names = [
            batch.job(
                f"r-{i}",
                q,
                "work",
                duration="2s",
                annotations={"sim.kubatch.dev/exit-code-attempt-1": "1"} if i % 5 == 0 else None,
            )
            for i in range(20)
        ]
        for round_ in range(3):
            want = 4 * (round_ + 1)
            batch.wait_for(lambda want=want: len(recorder.uids) >= want, "some pods created", timeout=60)
            with operator_down(cluster, signal.SIGKILL):
                time.sleep(1.0)  # the world moves on while the operator is down
        done = {n: batch.wait_done(n, timeout=120) for n in names}
    finally:
        time.sleep(1)
        recorder.stop()
    for name, st in done.items():
        assert st["status"] == "SUCCEEDED", (name, json.dumps(st))
        expected = 2 if int(name.split("-")[1]) % 5 == 0 else 1
        assert len(st["attempts"]) == expected, (name, st["attempts"])
    duplicated = {pod: uids for pod, uids in recorder.uids.items() if len(uids) > 1}
    assert not duplicated, f"an attempt ran twice: {duplicated}"
    # Every attempt had exactly one pod, named after the job and attempt.
    expected_pods = {f"r-{i}-a1" for i in range(20)} | {f"r-{i}-a2" for i in range(0, 20, 5)}
    assert set(recorder.uids) == expected_pods


def share_usage(batch: Batch, queue: str) -> dict[str, float]:
    rows = (batch.kget("jobqueue", queue).get("status") or {}).get("shareUsage") or []
    return {r["shareIdentifier"]: float(r.get("usage") or 0) for r in rows}


def diagnosis(batch: Batch, operator: Any, queue: str) -> str:
    """The queue's status and the operator log's errors, for a failure report."""
    status = json.dumps(batch.kget("jobqueue", queue).get("status") or {}, indent=1)
    log = Path(operator.log).read_text(errors="replace").splitlines() if operator.log else []
    errors = [line for line in log if "Traceback" in line or "ERROR" in line or "failed" in line][-30:]
    return f"queue status: {status}\noperator log errors (last 30 of {len(log)} lines):\n" + "\n".join(errors)


def test_fair_share_usage_survives_a_restart(batch: Batch, cluster: Any, operator: Any) -> None:
    """teamA used the queue before the operator restarts; after it, a wave of one teamA job (the
    older) and one teamB job on a single vCPU gives teamB the vCPU first. (Had the usage been lost,
    the two shares would tie and teamA would go first: ties go by share identifier.)"""
    ce = batch.environment(cpu=1)
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {
            "fairsharePolicy": {
                "shareDecaySeconds": 3600,
                "shareDistribution": [
                    {"shareIdentifier": "teamA", "weightFactor": 1.0},
                    {"shareIdentifier": "teamB", "weightFactor": 1.0},
                ],
            }
        },
    )
    q = batch.queue([ce], policy=policy)
    batch.container_definition("work")
    batch.job("history", q, "work", duration="6s", shareIdentifier="teamA")
    assert batch.wait_done("history")["status"] == "SUCCEEDED"
    try:
        recorded = batch.wait_for(
            # Usage that only drifts is written at most every 30 s (core.queue_snapshot): up to one period
            # plus a status cycle, and time for a loaded machine.
            lambda: (u := share_usage(batch, q)).get("teamA", 0) >= 3 and u, "teamA's usage recorded", timeout=90
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnosis(batch, operator, q)}") from None
    batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", json.dumps({"spec": {"state": "DISABLED"}}))

    restart_operator(cluster)
    batch.job("a-next", q, "work", duration="4s", shareIdentifier="teamA")
    time.sleep(1.1)  # distinct creation seconds: teamA's job is the older one
    batch.job("b-first", q, "work", duration="4s", shareIdentifier="teamB")
    for name in ("a-next", "b-first"):
        batch.wait_status(name, "RUNNABLE")
    # The restarted operator's status still has teamA's usage (decayed by seconds out of an hour).
    batch.wait_for(lambda: share_usage(batch, q).get("teamA", 0) >= 0.9 * recorded["teamA"], "usage kept", timeout=10)
    batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", json.dumps({"spec": {"state": "ENABLED"}}))
    b = batch.wait_done("b-first")
    a = batch.wait_done("a-next")
    assert (a["status"], b["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert (parse_iso(a["startedAt"]) or 0) >= (parse_iso(b["stoppedAt"]) or 0) - 1, (a, b)
