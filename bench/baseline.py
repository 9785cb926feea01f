"""The baseline: a plain aiohttp client that creates the same pods directly.

The pods are the ones kubatch would create for the same jobs (built by kubatch's own pod builder:
same requests, nodeSelector and toleration, labels, AWS_BATCH_* environment, service account token,
`sim.kubatch.dev/duration`), so the comparison prices the orchestration, not a difference in pod
size. Only what ties a pod to kubatch goes: the ownerReference (there is no BatchJob to own it)
and the `kubatch.dev/` prefix of its labels (the operator would adopt the pods as its own).
Two ways to create them:

- all at once (`admission=False`): every pod is created as fast as the API server takes them and
  the scheduler binds them as capacity frees: the API server's and scheduler's own limit;
- with a perfect admission (`admission=True`): a pod is created as soon as its vCPUs are free
  (queues served round-robin, FIFO within a queue, first environment in the queue's order that
  fits), and its vCPUs are freed when the watch shows it finished: no unschedulable pods at all,
  the stricter of the two.

Finished pods are deleted, as kubatch does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from bench.harness import CONCURRENCY, GROUP
from bench.trackers import PodTracker, Sampler, until
from kubatch.cluster.client import Kube
from kubatch.core.podspec import build_pod

RUN_LABEL = "bench.kubatch.dev/run"
KEY_LABEL = "bench.kubatch.dev/key"


@dataclass(frozen=True)
class Work:
    """One job of the baseline: a pod of `vcpus` running for `duration` on one of `envs`."""

    key: str
    queue: str
    vcpus: int
    duration: str
    envs: tuple[str, ...]


def pod_manifest(run: str, work: Work, ce: str) -> dict[str, Any]:
    name = f"{run}-{work.key}"
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    job = {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": name, "uid": uid},
        "spec": {
            "jobQueue": work.queue,
            "jobDefinition": "bench",
            "podMetadata": {"annotations": {"sim.kubatch.dev/duration": work.duration}},
        },
    }
    definition = {
        "type": "container",
        "containerProperties": {
            "image": "busybox:1.36",
            "command": ["sh", "-c", "true"],
            "resourceRequirements": [{"type": "VCPU", "value": str(work.vcpus)}, {"type": "MEMORY", "value": "64"}],
        },
    }
    pod = build_pod(job, definition, "bench:1", job_id=uid, queue=work.queue, compute_environment=ce, attempt=1)
    md = pod["metadata"]
    md.pop("ownerReferences", None)
    md.pop("namespace", None)
    md["name"] = name
    md["labels"] = {
        **{"bench." + k if k.startswith("kubatch.dev/") else k: v for k, v in md["labels"].items()},
        RUN_LABEL: run,
        KEY_LABEL: work.key,
    }
    return pod


@dataclass
class DirectRun:
    t0: float
    tracker: PodTracker
    end: float
    samples: list[dict[str, float]]

    @property
    def makespan(self) -> float:
        return self.end - self.t0


async def run_direct(
    kube: Kube,
    ns: str,
    work: list[Work],
    capacity: dict[str, int],
    *,
    run: str = "base",
    timeout: float = 600,
    concurrency: int = CONCURRENCY,
    admission: bool = True,
) -> DirectRun:
    """Run `work` as direct pods; returns when every pod has finished (as seen by the watch)."""
    if not admission:
        capacity = {ce: len(work) * max(w.vcpus for w in work) for ce in capacity}
    free = dict(capacity)
    queues: dict[str, deque[Work]] = {}
    for w in work:
        queues.setdefault(w.queue, deque()).append(w)
    by_key = {w.key: w for w in work}
    placed: dict[str, str] = {}
    freed = asyncio.Event()
    sem = asyncio.Semaphore(concurrency)
    deletes: set[asyncio.Task[Any]] = set()

    tracker = PodTracker(kube, ns, selector=f"{RUN_LABEL}={run}", key_label=KEY_LABEL)

    def finished(pod: dict[str, Any]) -> None:
        key = pod["metadata"]["labels"][KEY_LABEL]
        ce = placed.get(key)
        if ce is not None:
            free[ce] += by_key[key].vcpus
            freed.set()
        name = pod["metadata"]["name"]
        t = asyncio.create_task(kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}", grace_seconds=0))
        deletes.add(t)
        t.add_done_callback(deletes.discard)

    tracker.on_finished = finished
    await tracker.start()
    sampler = Sampler(tracker)
    sampler.start()
    t0 = time.time()
    creates: set[asyncio.Task[Any]] = set()

    async def create(w: Work, ce: str) -> None:
        async with sem:
            await kube.create(f"/api/v1/namespaces/{ns}/pods", pod_manifest(run, w, ce))

    while any(queues.values()):
        progressed = False
        for q in list(queues):
            pending = queues[q]
            if not pending:
                continue
            head = pending[0]
            ce = next((e for e in head.envs if free.get(e, 0) >= head.vcpus), None)
            if ce is None:
                continue
            pending.popleft()
            free[ce] -= head.vcpus
            placed[head.key] = ce
            t = asyncio.create_task(create(head, ce))
            creates.add(t)
            t.add_done_callback(creates.discard)
            progressed = True
        if not progressed:
            freed.clear()
            await freed.wait()
        elif len(creates) >= 4 * concurrency:
            await asyncio.sleep(0)
    end = await until(lambda: len(tracker.finished) >= len(work), timeout, "baseline pods finished")
    samples = await sampler.stop()
    await tracker.stop()
    if deletes:
        await asyncio.gather(*list(deletes), return_exceptions=True)
    return DirectRun(t0, tracker, end, samples)
