"""When will a queued job start? ``estimate_starts`` simulates the plan forward — pure, no I/O.

Model:

* Start from this cycle's :class:`Snapshot` and the work that holds capacity now (:class:`Running`:
  its environment, resources, consumable units and share, and when it is expected to end).
* Repeat: run :func:`kubatch.scheduler.plan.plan` on the simulated snapshot at simulated time ``t``;
  each placement starts at ``t`` and holds its resources until ``t`` plus its expected run time;
  advance ``t`` to the next expected end, release what ends then, plan again. Using ``plan`` itself
  keeps every rule — queue priority, FIFO or fair-share order, head-of-line blocking, consumable
  resources, computeReservation — exactly as the real cycles apply it.
* Expected run times come from the caller (:class:`RunTimes`: a decayed mean of how long the past
  attempts of the job's definition held their capacity — from the pod's creation to its end, so
  the pod's start counts — else of every definition, else a default; ``attemptDurationSeconds``
  bounds it). Work past its expected end is expected to end "now". A job placed at ``t`` is
  expected running ``start_latency`` later (the learned time from a placement to a running pod), and
  many placements at once become pods one every ``placement_interval`` (learned from bursts).
* What is not simulated: new submissions (an estimate is what happens if nothing else arrives),
  node provisioning delays (capacity up to ``maxvCpus`` is taken as available), retries (a job
  runs once), ``jobStateTimeLimitActions``, and the decay of fair-share history over the simulated
  time (the vCPUs each share holds are tracked, and what it runs is added to its history
  undecayed). Jobs whose head never becomes placeable (a misconfiguration) have no estimate, nor
  have the jobs behind them — as in reality they would not start.
* Only the jobs the real plan placed or listed in a queue's front (``FRONT_SIZE`` per queue) are
  simulated: a job further back cannot start before them in its queue.

Cost: one ``plan`` per distinct expected end time until every simulated job has started (at most
``max_steps``), each ``O(J + P log J)`` over the ``J <= FRONT_SIZE * queues`` simulated jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from kubatch.scheduler.plan import Plan, plan
from kubatch.scheduler.snapshot import Job, Resources, ShareUsage, Snapshot

#: No resources (the default of work that holds none).
NOTHING = Resources()
#: Simulated steps per estimate (each a plan over the fronts): bounds the cost of a very deep front.
MAX_STEPS = 2000
#: Expected run time of a job whose definition has no history and no timeout.
DEFAULT_RUN_SECONDS = 600.0
#: Weight of the newest attempt in the decayed mean of a definition's run times.
RUN_TIME_WEIGHT = 0.3
#: Weight of the newest gap in the decayed mean of the placement interval.
GAP_WEIGHT = 0.02


@dataclass(frozen=True, slots=True)
class Running:
    """Work that holds capacity now: ``resources`` in ``env`` (None: no environment capacity, e.g.
    a job whose pods are gone), ``consumables`` units, counted for ``share`` of ``queue``; expected
    to end at ``ends_at`` (epoch seconds)."""

    key: str
    ends_at: float
    env: str | None = None
    resources: Resources = NOTHING
    consumables: tuple[tuple[str, int], ...] = ()
    queue: str = ""
    share: str | None = None


@dataclass(frozen=True, slots=True)
class Estimates:
    """Expected start (epoch seconds) and environment per job key; ``complete`` is False when the
    simulation stopped at ``max_steps`` before every simulated job had started or was known never
    to start."""

    starts: Mapping[str, float]
    where: Mapping[str, str]
    steps: int
    complete: bool


@dataclass(frozen=True, slots=True)
class RunTimes:
    """Learned run times: a decayed mean per job definition, and one over every definition (pure
    value; ``observe`` returns a new one)."""

    means: Mapping[str, float]
    default_seconds: float = DEFAULT_RUN_SECONDS
    overall: float | None = None
    #: Decayed mean of the seconds from a placement to its pod running (None: none seen yet).
    start_latency: float | None = None
    #: Decayed mean of the seconds between two placements becoming pods in a burst: the rate at
    #: which the dispatcher, the API server and the scheduler turn many placements into pods.
    placement_interval: float | None = None

    @staticmethod
    def empty(default_seconds: float = DEFAULT_RUN_SECONDS) -> RunTimes:
        return RunTimes({}, default_seconds)

    def observe(self, definition: str, seconds: float) -> RunTimes:
        """Fold one finished attempt of ``definition`` that held its capacity ``seconds`` into its mean."""
        seconds = max(0.0, seconds)
        old = self.means.get(definition)
        new = seconds if old is None else old + RUN_TIME_WEIGHT * (seconds - old)
        overall = seconds if self.overall is None else self.overall + RUN_TIME_WEIGHT * (seconds - self.overall)
        return replace(self, means={**self.means, definition: new}, overall=overall)

    def observe_start(self, seconds: float) -> RunTimes:
        """Fold one placement's time to running into the start latency."""
        seconds = max(0.0, seconds)
        old = self.start_latency
        return replace(self, start_latency=seconds if old is None else old + RUN_TIME_WEIGHT * (seconds - old))

    def observe_gap(self, seconds: float) -> RunTimes:
        """Fold one gap between two pods of a burst into the placement interval (weighted lightly:
        gaps come in clumps as creates are answered together)."""
        seconds = max(0.0, seconds)
        old = self.placement_interval
        return replace(self, placement_interval=seconds if old is None else old + GAP_WEIGHT * (seconds - old))

    def knows(self, definition: str, timeout_seconds: float | None = None) -> bool:
        """Whether :meth:`expected` has a basis for ``definition`` (a run of it or of any other
        definition, or a timeout) rather than the default."""
        return bool(timeout_seconds) or definition in self.means or self.overall is not None

    def expected(self, definition: str, timeout_seconds: float | None = None) -> float:
        """Expected run time of a job of ``definition``: its mean; with none, the mean over every
        definition; with none either, the default. Never more than its timeout."""
        mean = self.means.get(definition)
        if mean is None:
            mean = self.overall if self.overall is not None else self.default_seconds
        return min(mean, float(timeout_seconds)) if timeout_seconds else mean


def estimate_starts(
    snapshot: Snapshot,
    running: Iterable[Running],
    run_seconds: Callable[[Job], float],
    *,
    current: Plan | None = None,
    max_steps: int = MAX_STEPS,
    start_latency: float = 0.0,
    placement_interval: float = 0.0,
) -> Estimates:
    """Expected start of each RUNNABLE job the plan places or lists in a queue front (see module doc).

    ``current`` is this cycle's plan of ``snapshot`` when the caller has it (saves one plan); a job
    placed at simulated time ``t`` is expected to be running ``start_latency`` seconds later; placements
    become pods one every ``placement_interval`` seconds (a burst of them queues), and hold their
    capacity from then.
    """
    now = snapshot.now
    first = current if current is not None else plan(snapshot)
    wanted = {key for key, _ in first.placements}
    for keys in first.queue_front.values():
        wanted.update(keys)
    waiting = {j.key: j for j in snapshot.jobs if j.key in wanted}
    used = {e.name: e.used for e in snapshot.envs}
    in_use = {c.name: c.in_use for c in snapshot.consumables}
    replenishable = {c.name: c.replenishable for c in snapshot.consumables}
    holding: dict[tuple[str, str], float] = {}
    for row in snapshot.share_usage:
        holding[(row.queue, row.share)] = row.running_vcpus
    history = {(row.queue, row.share): row.usage for row in snapshot.share_usage}
    queues = tuple(replace(q, time_limit_actions=()) for q in snapshot.queues)

    ends: list[tuple[float, int, Running]] = []
    seq = 0
    for r in running:
        heapq.heappush(ends, (max(now, r.ends_at), seq, r))
        seq += 1

    def hold(r: Running, sign: int) -> None:
        if r.env is not None and r.env in used:
            res = r.resources if sign > 0 else Resources(-r.resources.vcpus, -r.resources.memory_mib, -r.resources.gpus)
            used[r.env] = used[r.env].add(res)
        for name, qty in r.consumables:
            if name in in_use and (sign > 0 or replenishable.get(name, True)):
                in_use[name] += sign * qty
        if r.share is not None:
            k = (r.queue, r.share)
            holding[k] = max(0.0, holding.get(k, 0.0) + sign * r.resources.vcpus)
            if sign < 0:
                # What a share used in the simulation counts in its history (undecayed: the
                # horizon of an estimate is short against a decay window).
                history[k] = history.get(k, 0.0) + r.resources.vcpus * max(0.0, r.ends_at - started.get(r.key, now))

    fair_queues = {q.name for q in snapshot.queues if q.policy is not None}
    starts: dict[str, float] = {}
    started: dict[str, float] = {}
    where: dict[str, str] = {}
    t = now
    steps = 0
    placements = first.placements
    pipeline = now  # when the next placement becomes a pod
    while True:
        for key, env in placements:
            job = waiting.pop(key)
            at = max(t, pipeline)
            pipeline = at + placement_interval
            started[key] = at
            starts[key] = at + start_latency
            where[key] = env
            share = (job.share or "") if job.queue in fair_queues else None
            r = Running(key, at + max(0.0, run_seconds(job)), env, job.total, job.consumables, job.queue, share)
            hold(r, +1)
            heapq.heappush(ends, (r.ends_at, seq, r))
            seq += 1
        if not waiting or not ends:
            return Estimates(starts, where, steps, True)
        if steps >= max_steps:
            return Estimates(starts, where, steps, False)
        t = ends[0][0]
        while ends and ends[0][0] <= t:
            _, _, r = heapq.heappop(ends)
            hold(r, -1)
        steps += 1
        sim = Snapshot(
            now=t,
            envs=tuple(replace(e, used=used[e.name]) for e in snapshot.envs),
            queues=queues,
            jobs=tuple(waiting.values()),
            policies=snapshot.policies,
            share_usage=tuple(
                ShareUsage(q, s, history.get((q, s), 0.0), vcpus) for (q, s), vcpus in sorted(holding.items())
            ),
            consumables=tuple(replace(c, in_use=in_use[c.name]) for c in snapshot.consumables),
            active_shares=snapshot.active_shares,
        )
        placements = plan(sim).placements
