"""A mixed workload for the resilience tests: submitted in one call, checked in one pass.

Job `w-<i>` is one of three kinds, by `i % 10`:
- 3: exits 1 on its only attempt (definition without retries) -> FAILED after 1 attempt;
- 5: exits 1 on attempt 1 only (definition with 2 attempts) -> SUCCEEDED after 2 attempts;
- else: succeeds on attempt 1 -> SUCCEEDED after 1 attempt.
Each attempt has exactly one pod, `w-<i>-a<attempt>`; a second uid for a pod name means an
attempt ran twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.integration.batch import GROUP, TERMINAL, Batch
from tests.integration.test_restart import PodRecorder
from tests.resilience.conftest import PodAudit

__all__ = ["PodRecorder", "Workload"]


@dataclass(frozen=True)
class Expected:
    state: str
    attempts: int


def expected(i: int) -> Expected:
    if i % 10 == 3:
        return Expected("FAILED", 1)
    if i % 10 == 5:
        return Expected("SUCCEEDED", 2)
    return Expected("SUCCEEDED", 1)


class Workload:
    """N jobs on one queue of a roomy compute environment (every job fits at once)."""

    def __init__(self, batch: Batch, n: int, *, prefix: str = "w", duration: str = "1s", nodes: int = 4) -> None:
        self.batch = batch
        self.n = n
        self.prefix = prefix
        self.duration = duration
        per_node = max(8, -(-n // nodes))  # one vCPU per job
        self.queue = batch.queue(
            [batch.environment(nodes=nodes, cpu=per_node, memory=f"{per_node}Gi")], name=batch.name(prefix + "q")
        )
        self.retrying = batch.container_definition(f"{prefix}-retry", memory="128", retryStrategy={"attempts": 2})
        self.once = batch.container_definition(f"{prefix}-once", memory="128")
        self.names = [f"{prefix}-{i}" for i in range(n)]

    def manifest(self, i: int) -> dict[str, Any]:
        ann = {"sim.kubatch.dev/duration": self.duration}
        definition = self.retrying
        if i % 10 == 3:
            ann["sim.kubatch.dev/exit-code"] = "1"
            definition = self.once
        elif i % 10 == 5:
            ann["sim.kubatch.dev/exit-code-attempt-1"] = "1"
        return {
            "apiVersion": GROUP,
            "kind": "BatchJob",
            "metadata": {"name": f"{self.prefix}-{i}", "namespace": self.batch.ns},
            "spec": {"jobQueue": self.queue, "jobDefinition": definition, "podMetadata": {"annotations": ann}},
        }

    def submit(self, *, chunk: int = 250, during: Callable[[], None] | None = None) -> None:
        """Create the jobs with a few `kubectl create` calls (a v1 List each), not one call per job,
        calling `during()` after each chunk (fault injection while jobs are still arriving)."""
        for start in range(0, self.n, chunk):
            items = [self.manifest(i) for i in range(start, min(self.n, start + chunk))]
            self.batch.kubectl(
                "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), timeout=120
            )
            if during is not None:
                during()

    def statuses(self) -> dict[str, dict[str, Any]]:
        """name -> status of every job of the workload that the API server answers with (one list call)."""
        out = self.batch.kubectl("get", "batchjobs", "-n", self.batch.ns, "-o", "json", check=False, timeout=30)
        if out.returncode != 0:
            return {}  # the API server may be down on purpose right now
        items = json.loads(out.stdout)["items"]
        return {
            o["metadata"]["name"]: dict(o.get("status") or {})
            for o in items
            if o["metadata"]["name"].startswith(self.prefix + "-")
        }

    def progress(self) -> Counter[str]:
        return Counter(str(st.get("status") or "NEW") for st in self.statuses().values())

    def wait_done(
        self, timeout: float, *, during: Callable[[], None] | None = None, interval: float = 1.0
    ) -> dict[str, dict[str, Any]]:
        """Poll until every job is SUCCEEDED or FAILED, calling `during()` between polls (fault injection)."""
        deadline = time.monotonic() + timeout
        last: dict[str, dict[str, Any]] = {}
        while True:
            current = self.statuses()
            if current:
                last = current
            if len(last) == self.n and all(st.get("status") in TERMINAL for st in last.values()):
                return last
            if time.monotonic() > deadline:
                states = Counter(str(st.get("status")) for st in last.values())
                raise AssertionError(f"timed out after {timeout:.0f}s with {len(last)}/{self.n} jobs: {dict(states)}")
            if during is not None:
                during()
            time.sleep(interval)

    def check(self, final: dict[str, dict[str, Any]], audit: PodAudit, recorder: PodRecorder | None = None) -> None:
        """Right final state and attempt count for every job; exactly one pod per attempt.

        `audit` (successful pod creates and bindings per name, from the API server's audit log) is the
        complete record: every expected pod created exactly once and no other. `recorder` (a kubectl
        watch) must agree on what it saw: only expected names, each with one uid. It cannot be the
        complete record: under load the watch gets cut (observed here: kubectl exits mid-run) and
        PodRecorder does not resume it, so it sees only the pods up to the cut."""
        wrong = {}
        for i, name in enumerate(self.names):
            st = final[name]
            want = expected(i)
            reason_ok = want.state != "FAILED" or "Essential container in task exited" in str(st.get("statusReason"))
            if st.get("status") != want.state or len(st.get("attempts") or []) != want.attempts or not reason_ok:
                wrong[name] = st
        assert not wrong, f"{len(wrong)} jobs ended wrongly, e.g. {json.dumps(next(iter(wrong.items())))}"
        pods = {f"{self.prefix}-{i}-a{a}" for i in range(self.n) for a in range(1, expected(i).attempts + 1)}
        twice = audit.twice()
        assert not twice, f"an attempt ran twice (pod name created/bound more than once): {twice}"
        created = audit.created()
        assert created == pods, (
            f"pods never created {sorted(pods - created)[:5]}, unexpected pods {sorted(created - pods)[:5]}"
        )
        if recorder is not None:
            duplicated = {pod: uids for pod, uids in recorder.uids.items() if len(uids) > 1}
            assert not duplicated, f"an attempt ran twice: {duplicated}"
            seen = {p for p in recorder.uids if p.startswith(self.prefix + "-")}
            assert seen <= pods, f"unexpected pods {sorted(seen - pods)[:5]}"
