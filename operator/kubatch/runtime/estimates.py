"""Start-time estimates for the jobs at the front of each queue, refreshed off the dispatch path.

Owns the learned run times (:class:`kubatch.scheduler.estimate.RunTimes`, per job definition, fed
by the pods the view sees finishing and, after a restart, by the attempts recorded on finished
jobs), the work that holds capacity now (live pods, expected to end at their start plus their
definition's expected run time) and the latest :class:`Estimates`. The dispatcher calls
:meth:`StartEstimator.refresh` after a cycle at most every ``interval`` seconds; the simulation runs
in a worker thread on the cycle's immutable snapshot, so a deep front does not stall the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubatch.cluster.view import SEEN_CREATED, View
from kubatch.core.podspec import LABEL_COMPUTE_ENVIRONMENT
from kubatch.core.timestamps import parse_iso
from kubatch.scheduler.estimate import Estimates, Running, RunTimes, estimate_starts
from kubatch.scheduler.plan import Plan
from kubatch.scheduler.snapshot import Job, Resources, Snapshot

JSON = Mapping[str, Any]

#: Seconds between two estimates (each simulates every queue's front); the queues' status is
#: refreshed as often, so a front shows estimates at most this old.
DEFAULT_INTERVAL = 2.0


def job_key_of(unit_key: str) -> str:
    """The BatchJob key of a scheduler key (``ns/name`` or an array child's ``ns/name:7``)."""
    return unit_key.split(":", 1)[0]


def definition_of(job: Mapping[str, Any]) -> str:
    """The learning key of a job: ``namespace/definition name`` (every revision counts alike)."""
    ns = (job.get("metadata") or {}).get("namespace", "")
    ref = str((job.get("spec") or {}).get("jobDefinition") or "")
    name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
    return f"{ns}/{name.split(':', 1)[0]}"


def timeout_of(job: Mapping[str, Any], definition_spec: Mapping[str, Any] | None) -> float | None:
    """attemptDurationSeconds of the job, else of its definition (None: no timeout)."""
    for source in ((job.get("spec") or {}), (definition_spec or {})):
        value = (source.get("timeout") or {}).get("attemptDurationSeconds")
        if value:
            return float(value)
    return None


class StartEstimator:
    """Learns run times and refreshes the estimates (see module docstring)."""

    def __init__(
        self,
        view: View,
        *,
        requests: Callable[[JSON], Resources],
        definition_spec: Callable[[JSON], JSON | None],
        interval: float = DEFAULT_INTERVAL,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.requests = requests  # what a pod requests
        self.definition_spec = definition_spec  # the spec of the definition a job runs
        self.interval = interval
        self.now = now
        self.run_times = RunTimes.empty()
        self.latest: Estimates | None = None
        self.at = 0.0  # when ``latest`` was computed (epoch seconds)
        self._seeded = False
        self._busy = False
        #: A refresh has run (its estimates, or none to make, are known): until then a front's
        #: missing estimates say nothing, so the queues' status waits for it (after a restart it
        #: would otherwise be written without the estimates, then again with them).
        self.refreshed = False

    # ---- learning -----------------------------------------------------------------------------------
    def learn(self) -> None:
        """Fold in the runs the view saw finishing (and, once, the attempts of finished jobs)."""
        rt = self.run_times
        if not self._seeded:
            self._seeded = True
            for job in self.view.jobs.values():
                status = job.get("status") or {}
                if status.get("status") not in ("SUCCEEDED", "FAILED"):
                    continue
                for attempt in status.get("attempts") or []:
                    started, stopped = parse_iso(attempt.get("startedAt")), parse_iso(attempt.get("stoppedAt"))
                    if started is not None and stopped is not None:
                        rt = rt.observe(definition_of(job), stopped - started)
        runs = self.view.finished_runs
        while runs:
            key, seconds = runs.popleft()
            finished = self.view.jobs.get(key)
            if finished is not None:
                rt = rt.observe(definition_of(finished), seconds)
        latencies = self.view.start_latencies
        while latencies:
            rt = rt.observe_start(latencies.popleft())
        gaps = self.view.creation_gaps
        while gaps:
            rt = rt.observe_gap(gaps.popleft())
        self.run_times = rt

    def expected(self, job: JSON) -> float:
        """Expected run time of ``job``'s attempts."""
        return self.run_times.expected(definition_of(job), timeout_of(job, self.definition_spec(job)))

    def knows(self, job: JSON) -> bool:
        """Whether ``job``'s run time has a basis (learned, or its timeout), not just the default."""
        return self.run_times.knows(definition_of(job), timeout_of(job, self.definition_spec(job)))

    # ---- what runs now ----------------------------------------------------------------------------
    def running(self) -> list[Running]:
        """Live pods as work holding capacity until their expected end."""
        now = self.now()
        mono = time.monotonic()
        out: list[Running] = []
        for key, pods in self.view.pods.items():
            job = self.view.jobs.get(key)
            if job is None:
                continue
            spec = job.get("spec") or {}
            run = self.expected(job)
            share = spec.get("shareIdentifier")
            for name, pod in pods.items():
                st = pod.get("status") or {}
                if st.get("phase") in ("Succeeded", "Failed"):
                    continue
                labels = (pod.get("metadata") or {}).get("labels") or {}
                # Run times count from when the pod was first seen (see View._note_run).
                created = pod.get(SEEN_CREATED)
                started = now - (mono - created) if created is not None else (parse_iso(st.get("startTime")) or now)
                out.append(
                    Running(
                        key=f"{key}/{name}",
                        ends_at=started + run,
                        env=labels.get(LABEL_COMPUTE_ENVIRONMENT),
                        resources=self.requests(pod),
                        queue=str(spec.get("jobQueue", "")),
                        share=str(share) if share else None,
                    )
                )
        return out

    # ---- refresh ----------------------------------------------------------------------------------
    def due(self) -> bool:
        return not self._busy and self.now() - self.at >= self.interval

    async def refresh(self, snapshot: Snapshot, plan: Plan) -> Estimates | None:
        """Estimate the fronts of ``snapshot`` (``plan`` is the cycle's plan of it)."""
        if self._busy:
            return self.latest
        self._busy = True
        try:
            self.learn()
            if not self._has_basis(plan):
                # Nothing run yet and no timeout to go by: a default would be a guess, not an estimate.
                self.latest = Estimates({}, {}, 0, True)
                self.at = snapshot.now
                return self.latest
            running = self.running()
            # Run times of the waiting jobs, computed here: the simulation thread reads no live state.
            seconds: dict[str, float] = {}
            for keys in plan.queue_front.values():
                for k in keys:
                    seconds[k] = self._expected_of(k)
            for k, _ in plan.placements:
                seconds[k] = self._expected_of(k)

            def run_seconds(j: Job) -> float:
                return seconds.get(j.key, self.run_times.default_seconds)

            self.latest = await asyncio.to_thread(
                estimate_starts,
                snapshot,
                running,
                run_seconds,
                current=plan,
                start_latency=self.run_times.start_latency or 0.0,
                placement_interval=self.run_times.placement_interval or 0.0,
            )
            self.at = snapshot.now
            return self.latest
        finally:
            self._busy = False
            self.refreshed = True

    def _has_basis(self, plan: Plan) -> bool:
        """Whether every job to simulate, and every job holding capacity, has a known run time."""
        if self.run_times.overall is not None:
            return True
        keys = {job_key_of(k) for k, _ in plan.placements}
        for front in plan.queue_front.values():
            keys.update(job_key_of(k) for k in front)
        keys.update(k for k, pods in self.view.pods.items() if pods)
        jobs = (self.view.jobs.get(k) for k in keys)
        return all(self.knows(job) for job in jobs if job is not None)

    def _expected_of(self, unit_key: str) -> float:
        job = self.view.jobs.get(job_key_of(unit_key))
        return self.run_times.default_seconds if job is None else self.expected(job)

    def start_of(self, unit_key: str) -> float | None:
        """The estimated start (epoch seconds) of a scheduler key, if the latest estimate has one."""
        return None if self.latest is None else self.latest.starts.get(unit_key)


def head_waits(estimates: Estimates, fronts: Mapping[str, tuple[str, ...]], at: float) -> dict[str, float]:
    """Seconds from ``at`` until each queue's first front job is expected to start (queues with one)."""
    out: dict[str, float] = {}
    for queue, keys in fronts.items():
        if keys and keys[0] in estimates.starts:
            out[queue] = max(0.0, estimates.starts[keys[0]] - at)
    return out
