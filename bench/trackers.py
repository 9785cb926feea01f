"""Watch-driven observers: when each pod and each BatchJob reached each phase, as the client saw it."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from kubatch.cluster.client import Kube
from kubatch.cluster.informer import Informer
from kubatch.devcluster.cluster import pid_alive

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
JOB_LABEL = "kubatch.dev/job-name"


# The operator under test (set by the harness): a wait fails at once when it has died.
WATCHED_PID: int | None = None


def ensure_operator_alive(what: str) -> None:
    """Raise RuntimeError when the operator under test has exited (a wait on it would only time out)."""
    if WATCHED_PID is not None and not pid_alive(WATCHED_PID):
        raise RuntimeError(f"the operator (pid {WATCHED_PID}) exited while waiting for {what}")


async def until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Wait for `pred`; returns the wall time it became true. Raises TimeoutError with `what`, and
    RuntimeError when the operator under test exits meanwhile."""
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while not pred():
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        if WATCHED_PID is not None and now - checked > 1.0:
            checked = now
            ensure_operator_alive(what)
        await asyncio.sleep(every)
    return time.time()


async def until_probed(probe: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.25) -> float:
    """`until` for a condition that needs a request to check (a GET, a scrape)."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        ensure_operator_alive(what)
        await asyncio.sleep(every)
    return time.time()


class _Watched(abc.ABC):
    def __init__(self, kube: Kube, path: str, selector: str | None) -> None:
        self.informer = Informer(kube, path, self.handle, label_selector=selector, name=path)
        self.task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        """One watch event of the tracked collection."""

    async def start(self) -> None:
        self.task = asyncio.create_task(self.informer.run())
        await asyncio.wait_for(self.informer.synced.wait(), 120)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


class PodTracker(_Watched):
    """Pods of one namespace: first sight, Running and finished times, keyed by `key_label` (or name)."""

    def __init__(self, kube: Kube, ns: str, selector: str = JOB_LABEL, key_label: str | None = JOB_LABEL) -> None:
        super().__init__(kube, f"/api/v1/namespaces/{ns}/pods", selector)
        self.key_label = key_label
        self.created: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.pod_created: dict[str, float] = {}  # per pod name (array children, retries)
        self.phase: dict[str, str] = {}  # pod name -> phase
        self.on_finished: Callable[[dict[str, Any]], None] | None = None

    def _key(self, obj: dict[str, Any]) -> str:
        md = obj.get("metadata", {})
        if self.key_label:
            return str((md.get("labels") or {}).get(self.key_label, md.get("name", "")))
        return str(md.get("name", ""))

    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        now = time.time()
        name = str(obj.get("metadata", {}).get("name", ""))
        key = self._key(obj)
        if typ == "DELETED":
            self.phase.pop(name, None)
            return
        self.created.setdefault(key, now)
        self.pod_created.setdefault(name, now)
        phase = str((obj.get("status") or {}).get("phase") or "Pending")
        before = self.phase.get(name)
        self.phase[name] = phase
        if phase == "Running":
            self.running.setdefault(key, now)
        if phase in ("Succeeded", "Failed"):
            self.running.setdefault(key, now)
            if before not in ("Succeeded", "Failed"):
                self.finished.setdefault(key, now)
                if self.on_finished is not None:
                    self.on_finished(obj)


class JobTracker(_Watched):
    """BatchJobs of one namespace: when each first showed each status, counts of status and of writes."""

    def __init__(self, kube: Kube, ns: str) -> None:
        super().__init__(kube, f"{GROUP_PATH}/namespaces/{ns}/batchjobs", None)
        self.status: dict[str, str] = {}
        self.seen: dict[str, dict[str, float]] = {}
        self.counts: Counter[str] = Counter()
        self.modified: Counter[str] = Counter()
        self.last: dict[str, dict[str, Any]] = {}
        self.keep_last = False
        self.history: dict[str, list[str]] = {}  # per job: the status shown by each version seen

    def handle(self, typ: str, obj: dict[str, Any]) -> None:
        now = time.time()
        name = str(obj.get("metadata", {}).get("name", ""))
        if typ == "DELETED":
            old = self.status.pop(name, None)
            if old is not None:
                self.counts[old] -= 1
            return
        if typ == "MODIFIED":
            self.modified[name] += 1
        if self.keep_last:
            self.last[name] = obj
        status = obj.get("status") or {}
        st = str(status.get("status") or "")
        self.history.setdefault(name, []).append(st + ("*" if status.get("statusReason") else ""))
        old = self.status.get(name)
        if st != old:
            if old is not None:
                self.counts[old] -= 1
            self.counts[st] += 1
            self.status[name] = st
        self.seen.setdefault(name, {}).setdefault(st, now)

    def patterns(self, top: int = 6) -> dict[str, int]:
        """The most common sequences of versions per job ('*': with a statusReason), to see what the
        status writes were."""
        seqs = Counter(" > ".join(h) for h in self.history.values())
        return dict(seqs.most_common(top))

    def done(self) -> int:
        return self.counts["SUCCEEDED"] + self.counts["FAILED"]

    def times(self, state: str) -> dict[str, float]:
        return {n: s[state] for n, s in self.seen.items() if state in s}


class Sampler:
    """Every `period` seconds: pods per phase (and jobs per status), for 'where does the time go' plots."""

    def __init__(self, pods: PodTracker, jobs: JobTracker | None = None, period: float = 0.5) -> None:
        self.pods, self.jobs, self.period = pods, jobs, period
        self.rows: list[dict[str, float]] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        t0 = time.time()
        while True:
            row: dict[str, float] = {"t": round(time.time() - t0, 2)}
            row.update(Counter(self.pods.phase.values()))
            if self.jobs is not None:
                row.update({f"job_{k}": v for k, v in self.jobs.counts.items() if v})
            self.rows.append(row)
            await asyncio.sleep(self.period)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> list[dict[str, float]]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        return self.rows
