"""The warm start on the real control plane: a restarted leader starts the jobs its queue's written
front names before the BatchJob list is in, in the queue's order and within capacity.

The shared operator is stopped and an operator runtime runs in this process instead (same options,
Lease and identity), with its BatchJob list held back until the test lets it go: the list of a deep
queue takes minutes, this one would take milliseconds. The API server is the real one throughout."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubatch.cluster.client import Kube
from kubatch.devcluster import operatorproc
from kubatch.runtime.app import Options, Runtime
from kubatch.runtime.waits import where_waits
from tests.integration.batch import Batch
from tests.integration.helpers import operator_down

# Stops the shared operator: runs with the other restart tests (same xdist worker).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]


class HeldRuntime:
    """An operator runtime on its own event loop thread whose BatchJob list waits for ``release``."""

    def __init__(self, kubeconfig: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gate = asyncio.Event()
        self.list_asked = threading.Event()
        self.stopped = False
        self.records: collections.deque[str] = collections.deque(maxlen=60)
        self._handler = _Collect(self.records)
        self._logger = logging.getLogger("kubatch")
        self._level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self._handler)
        self.runtime: Runtime = self._call(self._make(kubeconfig))
        self.started = asyncio.run_coroutine_threadsafe(self.runtime.start(), self.loop)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _make(self, kubeconfig: str) -> Runtime:
        kube = await Kube.connect(kubeconfig)
        plain = kube.list_pages

        async def held(path: str, **kw: Any) -> Any:
            if path.endswith("/batchjobs"):
                self.list_asked.set()
                await self.gate.wait()
            async for page in plain(path, **kw):
                yield page

        kube.list_pages = held  # type: ignore[method-assign]
        options = Options.from_env()
        options.kubeconfig = kubeconfig
        options.metrics_port = 0
        return Runtime(kube, options)

    def diagnosis(self) -> str:
        """Where the warm start is (its task's stack, or how it ended) and the runtime's last log lines."""

        async def tasks() -> str:
            out = []
            for task in asyncio.all_tasks():
                if task.get_name() in ("warm-start", "lead"):
                    if task.done():
                        state = f"done: {task.exception()!r}" if not task.cancelled() else "cancelled"
                    else:
                        state = where_waits(task)
                    out.append(f"task {task.get_name()}: {state}")
            return "; ".join(out)

        return f"{self._call(tasks())}\nlog:\n" + "\n".join(self.records)

    def _stacks(self) -> str:
        """Every task of the runtime's loop and where it waits."""

        async def stacks() -> str:
            return "\n".join(f"{task.get_name()}: {where_waits(task)}" for task in asyncio.all_tasks())

        return str(self._call(stacks()))

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.release()
        try:
            self.started.result(timeout=60)
        finally:
            stopping = asyncio.run_coroutine_threadsafe(self.runtime.stop(), self.loop)
            try:
                stopping.result(timeout=60)
            except TimeoutError:
                raise AssertionError(f"the runtime's stop did not end within 60 s; tasks:\n{self._stacks()}") from None
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self._logger.removeHandler(self._handler)
            self._logger.setLevel(self._level)


class _Collect(logging.Handler):
    def __init__(self, into: collections.deque[str]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        if record.exc_info:
            self.into.append(logging.Formatter().formatException(record.exc_info))


@contextlib.contextmanager
def instead_of_the_shared_operator(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HeldRuntime]]:
    """Stops the shared operator (it gives its Lease up) and yields a starter of held runtimes with its
    options, Lease and identity (extra environment as keyword arguments); at the end they stop and
    the shared operator runs again."""
    with operator_down(cluster):
        runtimes: list[HeldRuntime] = []

        def start(**env: str) -> HeldRuntime:
            for key, value in {
                "KUBECONFIG": cluster.kubeconfig,
                "KUBATCH_LEASE_NAMESPACE": "default",
                "KUBATCH_LEADER_IDENTITY": "kubatch-test",
                **operatorproc.shared_workload_types_env(),
                **env,
            }.items():
                monkeypatch.setenv(key, value)
            runtimes.append(HeldRuntime(cluster.kubeconfig))
            return runtimes[-1]

        try:
            yield start
        finally:
            for held in runtimes:
                held.stop()


def front_of(batch: Batch, queue: str) -> list[dict[str, Any]]:
    """The queue's written front."""
    return list((batch.kget("jobqueue", queue).get("status") or {}).get("front") or [])


def pods_once(batch: Batch, count: int) -> Callable[[], set[str] | None]:
    """A condition for ``wait_for``: the names of the test namespace's pods once there are ``count``."""

    def started() -> set[str] | None:
        names = {p["metadata"]["name"] for p in batch.kget("pods", "-n", batch.ns)["items"]}
        return names if len(names) >= count else None

    return started


def test_a_restarted_leader_starts_the_queue_front_before_the_job_list_is_in(
    batch: Batch, cluster: Any, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One node of 2 vCPUs in a DISABLED environment: the four 1-vCPU jobs wait, and the queue's
    # status records them as its front, in order.
    ce = batch.environment(cpu=2, state="DISABLED")
    q = batch.queue([ce])
    batch.container_definition("work", vcpus="1", memory="256")
    jobs = ["w1", "w2", "w3", "w4"]
    for name in jobs:
        batch.job(name, q, "work", duration="900s")

    batch.wait_for(
        lambda: [e["name"] for e in front_of(batch, q)] == jobs or None,
        "the four jobs in the queue's front",
        timeout=120,
    )

    # The shared operator stops (and gives its Lease up); meanwhile the environment is enabled and a
    # node of 1 vCPU joins it (its nodeSelector selects it; no operator has put it in the pool yet).
    with instead_of_the_shared_operator(cluster, monkeypatch) as start_runtime:
        patch = json.dumps({"spec": {"state": "ENABLED"}})
        batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", patch)
        batch.make_node(cpu=1, labels={"kubatch.dev/test-pool": ce})
        # The runtime the shared operator runs, with its options, Lease and identity.
        held = start_runtime(
            KUBATCH_TIME_LIMIT_SCALE="0.01",
            KUBATCH_START_TIMEOUT_SECONDS=str(operatorproc.TEST_START_TIMEOUT_SECONDS),
        )
        assert held.list_asked.wait(60), "the runtime never listed the jobs"

        # The first three front jobs start on the three free vCPUs while the job list is held.
        try:
            names = batch.wait_for(pods_once(batch, 3), "pods of the front jobs", timeout=90)
        except AssertionError as e:
            rt = held.runtime
            raise AssertionError(
                f"{e}; leader {rt.is_leader}, warm start ended with {rt.warm_started} pods, front "
                f"{((rt.view.queues.get(q) or {}).get('status') or {}).get('front')}, "
                f"environment {batch.kget('computeenvironment', ce).get('status')}\n{held.diagnosis()}"
            ) from None
        assert names == {"w1-a1", "w2-a1", "w3-a1"}, names
        assert not held.gate.is_set() and not held.runtime.synced.is_set()
        assert set(held.runtime.view.jobs) >= {f"{batch.ns}/{name}" for name in jobs}

        # The list comes in: the full cycles take over and start nothing twice.
        held.release()
        held.started.result(timeout=60)
        batch.wait_for(lambda: held.runtime.warm_started is not None, "the warm start's end", timeout=30)
        assert held.runtime.warm_started == 3
        for name in ("w1", "w2", "w3"):
            batch.wait_status(name, "RUNNING", timeout=90)
        assert batch.status("w4").get("status") == "RUNNABLE"
        pods = batch.kget("pods", "-n", batch.ns)["items"]
        assert sorted(p["metadata"]["name"] for p in pods) == ["w1-a1", "w2-a1", "w3-a1"]


def test_a_stopping_leader_writes_its_queue_front_for_the_next_one(
    batch: Batch, cluster: Any, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The front a stopping leader leaves is what the next leader's warm start starts. Its status
    # writer here waits an hour between writes, so only the write at stop can drop the jobs it
    # started: without it the front would still name them, and the next warm start would have
    # nothing to start.
    ce = batch.environment(cpu=2, state="DISABLED")
    q = batch.queue([ce])
    batch.container_definition("work", vcpus="1", memory="256")
    jobs = ["s1", "s2", "s3", "s4"]
    for name in jobs:
        batch.job(name, q, "work", duration="900s")

    def front() -> list[str]:
        return [e["name"] for e in front_of(batch, q)]

    batch.wait_for(lambda: front() == jobs or None, "the four jobs in the queue's front", timeout=120)
    with instead_of_the_shared_operator(cluster, monkeypatch) as start_runtime:
        held = start_runtime()
        held.runtime.status.period = 3600.0  # read when its loop starts: once the list is in
        held.release()
        held.started.result(timeout=60)
        batch.wait_for(lambda: held.runtime.status.ready.is_set() or None, "the runtime's loops", timeout=60)
        enable = json.dumps({"spec": {"state": "ENABLED"}})
        batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", enable)
        assert batch.wait_for(pods_once(batch, 2), "pods of the first two jobs", timeout=90) == {"s1-a1", "s2-a1"}
        assert front() == jobs  # not rewritten while it ran
        held.stop()
        assert front() == ["s3", "s4"]


def test_a_stopping_leader_writes_the_statuses_it_held_back_for_the_next_ones_warm_start(
    batch: Batch, cluster: Any, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A leader holds a queued job's first status back (a minute under a burst) while its queue's
    # front already names the job. Here it holds every status back for an hour: only its stop writes
    # them, and the next leader's warm start starts a front job only once its written status says
    # RUNNABLE.
    ce = batch.environment(cpu=2, state="DISABLED")
    q = batch.queue([ce])
    batch.container_definition("work", vcpus="1", memory="256")
    jobs = ["h1", "h2", "h3"]
    with instead_of_the_shared_operator(cluster, monkeypatch) as start_runtime:
        first = start_runtime(KUBATCH_STATUS_COALESCE_SECONDS="3600")
        first.release()
        first.started.result(timeout=60)
        for name in jobs:
            batch.job(name, q, "work", duration="900s")

        def fronted() -> list[dict[str, Any]] | None:
            front = front_of(batch, q)
            return front if [e["name"] for e in front] == jobs else None

        front = batch.wait_for(fronted, "the three jobs in the queue's front", timeout=120)
        assert [batch.status(name).get("status") for name in jobs] == [None, None, None]  # held back
        first.stop()
        for entry in front:
            st = batch.status(entry["name"])
            assert st.get("status") == "RUNNABLE" and st.get("jobId") == entry["jobId"], st

        # The environment is enabled while no operator runs; the next leader's warm start starts
        # the first two front jobs on its two vCPUs before its job list is in.
        enable = json.dumps({"spec": {"state": "ENABLED"}})
        batch.kubectl("patch", "computeenvironment", ce, "--type=merge", "-p", enable)
        second = start_runtime(KUBATCH_STATUS_COALESCE_SECONDS="1")
        assert second.list_asked.wait(60), "the runtime never listed the jobs"
        started = batch.wait_for(pods_once(batch, 2), "pods of the first two front jobs", timeout=90)
        assert started == {"h1-a1", "h2-a1"}
        assert not second.runtime.synced.is_set()
