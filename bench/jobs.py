"""Running a batch of BatchJobs through kubatch and watching it to the end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.estimates import EstimateTracker
from bench.harness import Harness, submit
from bench.trackers import JobTracker, PodTracker, Sampler, until


@dataclass
class KubatchRun:
    t0: float
    submitted: dict[str, float]
    submit_end: float
    jobs: JobTracker
    pods: PodTracker
    end: float
    samples: list[dict[str, float]]
    estimates: dict[str, float]  # job name -> the first estimatedStartAt its queue's front showed

    @property
    def makespan(self) -> float:
        return self.end - self.t0

    def submit_to(self, times: dict[str, float]) -> list[float]:
        return [times[k] - s for k, s in self.submitted.items() if k in times]


async def run_kubatch(h: Harness, ns: str, manifests: list[dict[str, Any]], *, timeout: float = 600) -> KubatchRun:
    """Submit `manifests` (bounded concurrency) and wait until every job is SUCCEEDED or FAILED."""
    jobs = JobTracker(h.k, ns)
    pods = PodTracker(h.k, ns)
    estimates = EstimateTracker(h.k, ns)
    await jobs.start()
    await pods.start()
    await estimates.start()
    sampler = Sampler(pods, jobs)
    sampler.start()
    t0 = time.time()
    try:
        submitted = await submit(h.k, ns, manifests)
        submit_end = time.time()
        end = await until(lambda: jobs.done() >= len(manifests), timeout, f"{len(manifests)} jobs finished")
    finally:
        samples = await sampler.stop()
        await jobs.stop()
        await pods.stop()
        await estimates.stop()
    return KubatchRun(t0, submitted, submit_end, jobs, pods, end, samples, estimates.first)
