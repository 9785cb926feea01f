"""The dispatcher: one scheduling loop (leader only) from the cluster view to started pods.

Each cycle builds an immutable ``Snapshot`` (RUNNABLE jobs and array children without a pod for
their current attempt; compute environment capacity and what STARTING/RUNNING pods use; queues,
policies, share usage, consumables), asks the pure planner for a ``Plan`` and applies it: the
first pod of each placed attempt is created (bounded parallelism, never waiting on one slow call),
the pod goes straight into the view, and the job is marked dirty so the lifecycle step records
STARTING. Blocked reasons and time-limit cancellations are handed to the lifecycle step through
the view, so every status write of a job has one author.

:meth:`Dispatcher.warm_cycle` is the cycle a restarted leader runs before the view holds every
job (see :mod:`kubatch.runtime.warm_start`): over the given jobs only, starting what fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import View
from kubatch.core.arrays import IndexSet
from kubatch.core.capacity import env_view
from kubatch.core.lifecycle import Definition, child_attempt_counts
from kubatch.core.podspec import (
    LABEL_COMPUTE_ENVIRONMENT,
    Needs,
    PodSettings,
    PodSpecError,
    build_headless_service,
    build_pod,
    environment_tolerations,
    main_node_of,
    num_nodes_of,
    parse_quantity,
    pod_name,
    resource_needs,
    scheduling_priority,
)
from kubatch.core.timestamps import parse_iso
from kubatch.observability.events import EventRecorder
from kubatch.observability.metrics import Metrics
from kubatch.runtime.consumables import Charge, Ledger, consumed_quantity, non_replenishable, started_units
from kubatch.runtime.estimates import DEFAULT_INTERVAL as ESTIMATE_INTERVAL
from kubatch.runtime.estimates import StartEstimator, head_waits
from kubatch.runtime.jobs import resolve_definition
from kubatch.runtime.waits import wait_set
from kubatch.scheduler import (
    Consumable,
    Job,
    Plan,
    Policy,
    Queue,
    Resources,
    ShareUsage,
    Snapshot,
    TimeLimitAction,
    UsageTracker,
)
from kubatch.scheduler import plan as make_plan
from kubatch.scheduler.orders import DispatchOrders
from kubatch.scheduler.plan import reason_code

log = logging.getLogger(__name__)

#: The job spec fields that ``resource_needs`` reads beside the definition (its cache key).
_NEEDS_OVERRIDES = ("containerOverrides", "nodeOverrides", "podOverrides", "consumableResourcePropertiesOverride")

#: A queue head blocked for less than this (capacity freed meanwhile) gets no statusReason.
BLOCKED_REPORT_SECONDS = 1.0

#: Candidates re-derived per cycle although nothing reported them changed (a slow safety-net round).
AUDIT_PER_CYCLE = 64


@dataclass(frozen=True, slots=True)
class Unit:
    """One dispatchable thing: a job, or one child of an array job; with the definition revision it
    runs and its scheduler entry as derived (one object per unit of a deep queue, not three)."""

    key: str  # ns/name or ns/name:index
    job_key: str
    index: int | None
    attempt: int  # the attempt this dispatch starts (1-based)
    definition: Definition = field(compare=False, repr=False)
    entry: Job = field(compare=False, repr=False)


def _pod_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


_REQUESTS = "_kubatch_requests"  # where a slim pod of the view keeps its parsed requests


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    cached = pod.get(_REQUESTS)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    requests = _pod_requests(pod)
    if isinstance(pod, dict):
        pod[_REQUESTS] = requests  # the view's pod copies are replaced, never edited: safe to memoize
    return requests


def _pod_requests(pod: Mapping[str, Any]) -> Resources:
    cpu = 0.0
    mem = 0
    gpus = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        lim = (c.get("resources") or {}).get("limits") or {}
        if "cpu" in req:
            cpu += float(parse_quantity(req["cpu"]))
        if "memory" in req:
            mem += int(parse_quantity(req["memory"]) / (1024 * 1024))
        g = req.get("nvidia.com/gpu", lim.get("nvidia.com/gpu"))
        if g is not None:
            gpus += int(parse_quantity(g))
    return Resources(cpu, mem, gpus)


def missing_service_account(error: ApiError, pod: Mapping[str, Any]) -> str | None:
    """The statusReason for a pod refused because the ServiceAccount its job definition names does
    not exist (the API server's ServiceAccount admission plugin: 403 "error looking up service
    account"), else None. The namespace's `default` account is not judged: a new namespace gets it
    a moment after it is created, so that refusal passes by itself."""
    name = (pod.get("spec") or {}).get("serviceAccountName")
    if error.status != 403 or not name or name == "default" or "error looking up service account" not in str(error):
        return None
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    return f"ServiceAccount {name} not found in namespace {namespace}: the job's pod cannot be created"


class Dispatcher:
    """Runs scheduling cycles while this replica leads."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        events: EventRecorder,
        metrics: Metrics,
        *,
        is_leader: Callable[[], bool] | None = None,
        max_parallel_creates: int = 64,
        tick_seconds: float = 1.0,
        settings: PodSettings | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.metrics = metrics
        self.is_leader = is_leader or (lambda: True)
        self.create_slots = asyncio.Semaphore(max_parallel_creates)
        self.tick = tick_seconds
        self.settings = settings or PodSettings()
        self.ready = asyncio.Event()
        self.needs_cache: dict[tuple[str, str, str], Needs] = {}
        self._amounts: dict[tuple[float, int, int], Resources] = {}
        self.consumers: set[str] = set()  # jobs that hold consumable resources
        self.sized: set[str] = set()  # jobs with pods whose needs are known (consumables_in_use)
        self.blocked: dict[str, str] = {}  # job key -> reason for the lifecycle step
        self.blocked_detail: dict[str, str] = {}  # job key -> kubatch's detail of that reason
        self.blocked_since: dict[str, tuple[str, float]] = {}
        self.forced_cancel: dict[str, dict[int | None, str]] = defaultdict(dict)
        self.front: dict[str, tuple[str, ...]] = {}
        self.blocked_queues: frozenset[str] = frozenset()
        self.in_flight: set[str] = set()
        # What is dispatchable, kept between cycles (`refresh_units`): every unit (unit key -> unit
        # with its definition and scheduler entry as derived), the units of each job, and the queues'
        # dispatch orders of their effective entries. A cycle re-derives only the jobs that changed.
        self.orders = DispatchOrders()
        self.units: dict[str, Unit] = {}
        # Array job key -> its children's unit keys in `units` (a single job's unit key is its own).
        self._unit_keys: dict[str, tuple[str, ...]] = {}
        self._adjusted: set[str] = set()  # unit keys whose entry in `orders` differs from the derived one
        self._touched: set[str] = set()  # job keys whose pod creation started or ended here
        self._derived_definitions = -1  # the view's definitions_version `units` were derived with
        self._rederive_all = True  # first cycle, or after a leadership gap: derive every candidate
        self.scope: set[str] | None = None  # the only jobs considered (a warm cycle), None: all
        self._audit: list[str] = []  # candidates still to re-derive in the current safety-net round
        self.audit_per_cycle = AUDIT_PER_CYCLE
        # What live pods hold per environment (millicores, MiB, GPUs): per job, and summed.
        self._job_used: dict[str, dict[str, tuple[int, int, int]]] = {}
        self._env_used: dict[str, list[int]] = {}
        self.cycles = 0
        self.last_plan: Plan | None = None
        self.now = time.time  # injectable clock (tests of jobStateTimeLimitActions)
        self.tracker = UsageTracker()
        # A testing knob: scales jobStateTimeLimitActions' maxTimeSeconds (1 in production).
        self.time_limit_scale = float(os.environ.get("KUBATCH_TIME_LIMIT_SCALE", "1") or 1)
        # How long a queue head must stay blocked before its reason is reported (`_record_blocking`).
        self.blocked_report_seconds = float(
            os.environ.get("KUBATCH_BLOCKED_REPORT_SECONDS", "") or BLOCKED_REPORT_SECONDS
        )
        self._next_report: float | None = None  # when the next unreported head is due to be reported
        self.usage_rows: tuple[ShareUsage, ...] = ()
        self.ledger = Ledger(kube, view)  # NON_REPLENISHABLE units, charged before a unit's pod exists
        self.ledger_swept = False  # the startup sweep charged units started without a charge
        self.ledger_pruned_at = 0.0
        self.estimator = StartEstimator(
            view,
            requests=pod_requests,
            definition_spec=self._definition_spec,
            interval=float(os.environ.get("KUBATCH_ESTIMATE_INTERVAL_SECONDS", "") or ESTIMATE_INTERVAL),
            now=lambda: self.now(),
        )
        self._estimating: asyncio.Task[None] | None = None
        self.services: Any = None  # runtime.service_jobs.ServiceJobs: its cycle runs after each of ours
        self._estimated_queues: set[str] = set()  # queues with a head_estimated_wait value

    # ---- loop ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.ready.wait()
        while True:
            self.view.changed.clear()
            took = 0.0
            if not self.is_leader():
                self.ledger_swept = False  # a new leadership sweeps again (another leader may have acted)
                self.view.take_touched()
                self._rederive_all = True
            else:
                started = time.perf_counter()
                try:
                    await self.cycle()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduling cycle failed")
                took = time.perf_counter() - started
            wait = self.tick
            if self._next_report is not None:  # a blocked head is due to be reported then
                wait = min(wait, max(0.0, self._next_report - self.now()))
            await wait_set(self.view.changed, wait)
            # Coalesce bursts of events into one cycle, and under load leave at least two thirds of
            # the process to the reconciler and the watches (a cycle's cost grows with the queue).
            await asyncio.sleep(min(0.25, max(0.02, 2 * took)))

    # ---- snapshot ---------------------------------------------------------------------------------
    def _needs(self, key: str, definition: Definition, job: Mapping[str, Any]) -> Needs:
        """What job ``key`` needs: a function of its definition revision and the overrides in its
        spec, so jobs without overrides share one computation per revision."""
        spec = job.get("spec") or {}
        overrides = tuple(spec.get(f) for f in _NEEDS_OVERRIDES)
        ident = json.dumps(overrides, sort_keys=True, default=str) if any(overrides) else ""
        cache_key = (key.split("/", 1)[0], definition.resolved, ident)
        needs = self.needs_cache.get(cache_key)
        if needs is None:
            needs = resource_needs(definition.spec, spec)
            if len(self.needs_cache) > 200_000:
                self.needs_cache.clear()
            self.needs_cache[cache_key] = needs
        if needs.consumables:
            self.consumers.add(key)
        return needs

    def derive(self, key: str, held: tuple[str, ...] = ()) -> list[Unit]:
        """The dispatchable units of job ``key`` now: the job, or its RUNNABLE array children, that
        have no pod for their next attempt and none being created; with their scheduler entries
        (as derived: without the blocked reason or charged consumables of ``_effective``).
        ``held``: the unit keys the job has now; an equal key reuses that string object (a
        re-derived entry must not keep a second copy of every key in a deep queue)."""
        job = self.view.jobs.get(key)
        if job is None or key not in self.view.candidates or (self.scope is not None and key not in self.scope):
            return []
        st = job.get("status") or {}
        state = st.get("status")
        spec = job.get("spec") or {}
        size = int((spec.get("arrayProperties") or {}).get("size") or 0)
        if state not in ("RUNNABLE", "PENDING") or spec.get("serviceJobType"):
            return []  # a service job is scheduled by the service cycle (runtime.service_jobs)
        if state == "PENDING" and size < 2:
            return []
        definition, _ = resolve_definition(self.view, job)
        if definition is None:
            return []
        try:
            needs = self._needs(key, definition, job)
        except (PodSpecError, ValueError, KeyError) as e:
            log.warning("job %s: cannot size it: %s", key, e)
            return []
        per_node = needs.per_node[0] if needs.num_nodes == 1 and needs.per_node else None
        if needs.num_nodes > 1:
            per_node = Resources(
                max(p.vcpus for p in needs.per_node),
                max(p.memory_mib for p in needs.per_node),
                max(p.gpus for p in needs.per_node),
            )  # type: ignore[assignment]
        amount = (
            (per_node.vcpus, per_node.memory_mib, per_node.gpus)
            if per_node is not None
            else (needs.vcpus, needs.memory_mib, needs.gpus)
        )
        node_needs = self._amounts.get(amount)
        if node_needs is None:  # one Resources per distinct amount, shared by the jobs that need it
            if len(self._amounts) > 10_000:
                self._amounts.clear()
            node_needs = self._amounts[amount] = Resources(*amount)
        created = parse_iso(job["metadata"].get("creationTimestamp")) or 0.0
        runnable_since = parse_iso(st.get("queuedAt")) or created
        common: dict[str, Any] = {
            "queue": str(spec.get("jobQueue", "")),
            "needs": node_needs,
            "num_nodes": needs.num_nodes,
            "multinode": bool(definition.spec.get("nodeProperties")),
            "consumables": tuple(sorted(needs.consumables.items())),
            "share": spec.get("shareIdentifier"),
            "priority": scheduling_priority(definition.spec, spec),
            "runnable_since": runnable_since,
        }
        pods = self.view.pods.get(key) or {}
        name = str(job["metadata"].get("name") or key.split("/", 1)[1])  # the view's string: shared
        out: list[Unit] = []
        if size >= 2:
            runnable = IndexSet.parse(((st.get("arrayProperties") or {}).get("indexes") or {}).get("RUNNABLE"))
            finished_attempts = child_attempt_counts(st)
            same = {k: k for k in held}
            for i in runnable:
                attempt = finished_attempts(i) + 1
                ukey = f"{key}:{i}"
                ukey = same.get(ukey, ukey)
                if pod_name(name, attempt, array_index=i) in pods or ukey in self.in_flight:
                    continue
                entry = Job(key=ukey, order=(created, name, i), retried=attempt > 1, **common)
                out.append(Unit(ukey, key, i, attempt, definition, entry))
            return out
        attempt = len(st.get("attempts") or []) + 1
        first = pod_name(name, attempt, node_index=main_node_of(definition.spec) if common["multinode"] else None)
        if first in pods or key in self.in_flight:
            return out
        entry = Job(key=key, order=(created, name, -1), retried=attempt > 1, **common)
        out.append(Unit(key, key, None, attempt, definition, entry))
        return out

    def refresh_units(self) -> None:
        """Bring ``orders`` and ``units`` up to date: re-derive the jobs the view reports touched
        (their object, candidacy or pods changed) and those whose pod creation started or ended
        here; every candidate when a definition changed (an entry depends on its definition), after
        a leadership gap, or on the first call. Then re-apply blocked reasons and charged units."""
        touched = self.view.take_touched()
        if self._derived_definitions != self.view.definitions_version or self._rederive_all:
            # What a job holds depends on its definition too (a gang's nodes not created yet).
            self._job_used.clear()
            self._env_used.clear()
            for key in list(self.view.pods):
                self._update_usage(key)
        else:
            for key in touched:
                self._update_usage(key)
        touched |= self._touched
        self._touched = set()
        if self._derived_definitions != self.view.definitions_version or self._rederive_all:
            self._derived_definitions = self.view.definitions_version
            self._rederive_all = False
            self._derive_all()
        else:
            if self.audit_per_cycle > 0:
                touched.update(self._audit_slice())
            for key in touched:
                self._update(key)
        # Blocked reasons change with each plan (`_record_blocking`) and charges with the ledger,
        # not with the jobs: only the entries that carry or may need one are looked at.
        adjust = self._adjusted | self.blocked_since.keys()
        if self.consumers and self.ledger.has_any():
            for job_key in self.consumers:
                adjust.update(self._units_of(job_key))
        adjusted = set()
        for ukey in adjust:
            held = self.units.get(ukey)
            if held is None:
                continue
            entry = self._effective(held.entry, held)
            if entry is not held.entry:
                adjusted.add(ukey)
            current = self.orders.get(ukey)
            if current is not entry and current != entry:
                self.orders.add(entry)
        self._adjusted = adjusted

    def _derive_all(self) -> None:
        """Every candidate derived afresh into new ``units`` and ``orders`` (sorted once)."""
        self.units.clear()
        self._unit_keys.clear()
        self._adjusted.clear()
        entries = []
        for key in self.view.candidates if self.scope is None else self.scope:
            derived = self.derive(key)
            if not derived:
                continue
            if derived[0].index is not None:
                self._unit_keys[key] = tuple(unit.key for unit in derived)
            for unit in derived:
                self.units[unit.key] = unit
                effective = self._effective(unit.entry, unit)
                if effective is not unit.entry:
                    self._adjusted.add(unit.key)
                entries.append(effective)
        self.orders = DispatchOrders(entries, fair_queues=self.orders.fair_queues)

    def _update(self, key: str) -> None:
        """Re-derive job ``key`` into ``orders`` and ``units``."""
        before = self._units_of(key)
        if before:
            key = self.units[before[0]].job_key  # the string object held already
        derived = self.derive(key, before)
        self._unit_keys.pop(key, None)
        now = {unit.key for unit in derived}
        for ukey in before:
            if ukey not in now:
                self.orders.discard(ukey)
                self.units.pop(ukey, None)
                self._adjusted.discard(ukey)
        for unit in derived:
            self.units[unit.key] = unit
            effective = self._effective(unit.entry, unit)
            if effective is not unit.entry:
                self._adjusted.add(unit.key)
            self.orders.add(effective)
        if derived and derived[0].index is not None:
            self._unit_keys[key] = tuple(now)

    def _units_of(self, key: str) -> tuple[str, ...]:
        """The unit keys job ``key`` has in ``units``."""
        children = self._unit_keys.get(key)
        if children is not None:
            return children
        return (key,) if key in self.units else ()

    def _audit_slice(self) -> list[str]:
        """The next few candidates of a slow round over all of them: re-derived although nothing
        reported them touched (a safety net; the view reports every change it makes)."""
        if not self._audit:
            self._audit = list(self.view.candidates)
        n = min(self.audit_per_cycle, len(self._audit))
        keys = self._audit[-n:]
        del self._audit[-n:]
        return keys

    def _effective(self, entry: Job, unit: Unit) -> Job:
        """``entry`` with the blocked reason of earlier plans and without the NON_REPLENISHABLE units
        already charged for it (a retry; a dispatch whose pod creation failed needs none again)."""
        job = self._with_blocking(entry)
        if job.consumables and self.ledger.has_any():
            uid = self._uid(unit.job_key)
            kept = tuple((name, qty) for name, qty in job.consumables if not self.ledger.settled(name, uid, unit.index))
            if kept != job.consumables:
                job = replace(job, consumables=kept)
        return job

    def fresh_orders(self) -> DispatchOrders:
        """Every candidate derived afresh, ignoring what was kept: what ``orders`` must equal."""
        entries = (self._effective(u.entry, u) for key in self.view.candidates for u in self.derive(key))
        return DispatchOrders(entries, fair_queues=self.orders.fair_queues)

    def _with_blocking(self, job: Job) -> Job:
        """``job`` carrying the blocked reason and time recorded from earlier plans (itself when unchanged)."""
        reason, since = self.blocked_since.get(job.key) or (None, None)
        if (job.blocked_reason, job.blocked_since) == (reason, since):
            return job
        return replace(job, blocked_reason=reason, blocked_since=since)

    def usage(self) -> dict[str, Resources]:
        """What STARTING/RUNNING work holds per environment (see ``job_usage``), kept current by
        ``refresh_units`` from the jobs that changed."""
        return {env: Resources(m / 1000, mib, gpus) for env, (m, mib, gpus) in self._env_used.items()}

    def usage_fresh(self) -> dict[str, Resources]:
        """``usage`` summed afresh over every job with pods (what the kept sums must equal)."""
        used: dict[str, list[int]] = {}
        for key in self.view.pods:
            for env, amount in self.job_usage(key).items():
                acc = used.setdefault(env, [0, 0, 0])
                for i in range(3):
                    acc[i] += amount[i]
        return {env: Resources(m / 1000, mib, gpus) for env, (m, mib, gpus) in used.items()}

    def job_usage(self, key: str) -> dict[str, tuple[int, int, int]]:
        """What job ``key`` holds per environment (millicores, MiB, GPUs): the requests of its live
        pods, plus, for a multi-node job whose main node runs, the nodes not created yet (the gang
        was admitted whole)."""
        out: dict[str, tuple[int, int, int]] = {}
        pods = self.view.pods.get(key)
        if not pods:
            return out
        live_nodes: set[str] = set()
        gang_env = None
        for pod in pods.values():
            if _pod_finished(pod):
                continue
            labels = (pod.get("metadata") or {}).get("labels") or {}
            ce = labels.get(LABEL_COMPUTE_ENVIRONMENT)
            if ce:
                r = pod_requests(pod)
                m, mib, gpus = out.get(ce, (0, 0, 0))
                out[ce] = (m + round(r.vcpus * 1000), mib + r.memory_mib, gpus + r.gpus)
            node = labels.get("kubatch.dev/node-index")
            if node is not None:
                live_nodes.add(node)
                gang_env = ce
        if gang_env:
            r = self._pending_gang(key, live_nodes)
            m, mib, gpus = out.get(gang_env, (0, 0, 0))
            out[gang_env] = (m + round(r.vcpus * 1000), mib + r.memory_mib, gpus + r.gpus)
        return out

    def _update_usage(self, key: str) -> None:
        """Bring the kept per-environment sums up to date for job ``key``."""
        before = self._job_used.pop(key, None)
        now = self.job_usage(key)
        if before == now:
            if now:
                self._job_used[key] = now
            return
        for amounts, sign in ((before or {}, -1), (now, 1)):
            for env, amount in amounts.items():
                acc = self._env_used.setdefault(env, [0, 0, 0])
                for i in range(3):
                    acc[i] += sign * amount[i]
                if acc == [0, 0, 0]:
                    del self._env_used[env]
        if now:
            self._job_used[key] = now

    def _pending_gang(self, key: str, live_nodes: set[str]) -> Resources:
        job = self.view.jobs.get(key)
        if job is None:
            return Resources()
        definition, _ = resolve_definition(self.view, job)
        if definition is None:
            return Resources()
        try:
            needs = self._needs(key, definition, job)
        except (PodSpecError, ValueError, KeyError):
            return Resources()
        missing = Resources()
        for index, node_needs in enumerate(needs.per_node):
            if str(index) not in live_nodes:
                missing = missing + Resources(node_needs.vcpus, node_needs.memory_mib, node_needs.gpus)
        return missing

    def consumables_in_use(self) -> dict[str, int]:
        """Units locked right now: from STARTING until the job (array child) ends. A unit counts when
        its status says STARTING/RUNNING or when it has a live pod (dispatched, status not yet
        updated), so a finished pod whose job is not yet marked ended still holds its units."""
        in_use: dict[str, int] = defaultdict(int)
        if len(self.sized) > 2 * len(self.view.pods) + 1000:  # jobs whose pods are gone
            self.sized = {key for key in self.sized if key in self.view.pods}
        for key in self.view.pods:
            if key not in self.sized and (job := self.view.jobs.get(key)) is not None:
                definition, _ = resolve_definition(self.view, job)
                if definition is not None:
                    with contextlib.suppress(PodSpecError, ValueError, KeyError):
                        self._needs(key, definition, job)  # after a restart: who holds consumables?
                    self.sized.add(key)
        for key in list(self.consumers):
            pods = self.view.pods.get(key) or {}
            job = self.view.jobs.get(key)
            if job is None:
                self.consumers.discard(key)
                continue
            st = job.get("status") or {}
            live_pods = {
                (p.get("metadata") or {}).get("labels", {}).get("kubatch.dev/array-index")
                for p in pods.values()
                if not _pod_finished(p)
            }
            props = st.get("arrayProperties") or {}
            if props:
                idx = props.get("indexes") or {}
                active = IndexSet.parse(idx.get("STARTING")) | IndexSet.parse(idx.get("RUNNING"))
                live = len(active | IndexSet.of(int(i) for i in live_pods if i is not None))
            else:
                live = 1 if live_pods or st.get("status") in ("STARTING", "RUNNING") else 0
            if not live:
                continue
            definition, _ = resolve_definition(self.view, job)
            if definition is None:
                continue
            needs = self._needs(key, definition, job)
            for cname, qty in needs.consumables.items():
                in_use[cname] += qty * live
        return in_use

    def consumables_consumed(self) -> dict[str, int]:
        """NON_REPLENISHABLE units used up for good and no longer in use: the units charged so far
        (the resource's ``status.consumedQuantity``, which deleting jobs does not lower) minus those
        that STARTING/RUNNING work holds now. Only computed when such resources exist."""
        out: dict[str, int] = defaultdict(int)
        spent = {name: consumed_quantity(c) for name, c in self.view.consumables.items() if non_replenishable(c)}
        if not spent:
            return out
        in_use = self.consumables_in_use()
        for name, charged in spent.items():
            out[name] = max(0, charged - in_use.get(name, 0))
        return out

    # ---- NON_REPLENISHABLE charges ------------------------------------------------------------------
    def _uid(self, job_key: str) -> str:
        return str(((self.view.jobs.get(job_key) or {}).get("metadata") or {}).get("uid", ""))

    def _charges(self, placements: list[tuple[str, str]]) -> list[Charge]:
        charges = []
        for key, _env in placements:
            unit = self.units[key]
            job = self.view.jobs.get(unit.job_key)
            if job is None or unit.job_key not in self.consumers:
                continue
            needs = self._needs(unit.job_key, unit.definition, job)
            uid = self._uid(unit.job_key)
            for name, qty in needs.consumables.items():
                if self.ledger.owed(name, uid, unit.index):
                    charges.append(Charge(name, uid, unit.index, qty, key))
        return charges

    async def maintain_ledger(self) -> None:
        """Once per leadership, charge the units that started without a charge (jobs started by an
        operator that kept no ledger); every 10 s, prune the entries of deleted jobs."""
        if not self.ledger.has_any():
            return
        if not self.ledger_swept:
            charges = []
            for key, job in list(self.view.jobs.items()):
                whole, children = started_units(job, self.view.pods.get(key) or {})
                if not whole and not children:
                    continue
                definition, _ = resolve_definition(self.view, job)
                if definition is None:
                    continue
                try:
                    needs = self._needs(key, definition, job)
                except (PodSpecError, ValueError, KeyError):
                    continue
                uid = self._uid(key)
                for name, qty in needs.consumables.items():
                    for index in [None] if whole else list(children):
                        if self.ledger.owed(name, uid, index):
                            charges.append(Charge(name, uid, index, qty, key))
            failed = await self.ledger.charge(charges)
            self.ledger_swept = not failed
        if self.now() - self.ledger_pruned_at >= 10:
            self.ledger_pruned_at = self.now()
            await self.ledger.prune()

    def snapshot(self) -> Snapshot:
        """This cycle's snapshot; its RUNNABLE jobs are not in it but in ``orders`` (brought up to
        date here), which ``plan`` reads beside it."""
        now = self.now()
        self.refresh_units()
        used = self.usage()
        envs = tuple(
            env_view(name, ce, self.view.nodes, used.get(name, Resources())) for name, ce in self.view.envs.items()
        )
        queues = []
        for name, q in self.view.queues.items():
            self.metrics.known_queue(name)
            spec = q.get("spec") or {}
            order = sorted(spec.get("computeEnvironmentOrder") or [], key=lambda e: int(e.get("order", 0)))
            queues.append(
                Queue(
                    name=name,
                    priority=int(spec.get("priority", 0)),
                    ce_order=tuple(str(e.get("computeEnvironment")) for e in order),
                    state="DISABLED" if spec.get("state") == "DISABLED" else "ENABLED",
                    policy=spec.get("schedulingPolicy") or None,
                    time_limit_actions=tuple(
                        TimeLimitAction(
                            reason=str(a.get("reason")),
                            max_time_seconds=float(a.get("maxTimeSeconds", 600)) * self.time_limit_scale,
                            state=str(a.get("state", "RUNNABLE")),
                            action=str(a.get("action", "CANCEL")),
                        )
                        for a in spec.get("jobStateTimeLimitActions") or []
                    ),
                )
            )
        policies = []
        for name, p in self.view.policies.items():
            fs = (p.get("spec") or {}).get("fairsharePolicy") or {}
            policies.append(
                Policy(
                    name=name,
                    share_decay_seconds=float(fs.get("shareDecaySeconds") or 0),
                    compute_reservation=int(fs.get("computeReservation") or 0),
                    weights=tuple(
                        (str(s.get("shareIdentifier")), float(s.get("weightFactor") or 1.0))
                        for s in fs.get("shareDistribution") or []
                    ),
                )
            )
        in_use = self.consumables_in_use()
        consumed = self.consumables_consumed()
        consumables = tuple(
            Consumable(
                name=name,
                total=int((c.get("spec") or {}).get("totalQuantity") or 0) - consumed.get(name, 0),
                in_use=in_use.get(name, 0),
                replenishable=(c.get("spec") or {}).get("resourceType", "REPLENISHABLE") != "NON_REPLENISHABLE",
            )
            for name, c in self.view.consumables.items()
        )
        # Share usage only matters to fair-share queues; without one the tracker starts afresh (from
        # the queues' status) when one appears.
        fair = any((q.get("spec") or {}).get("schedulingPolicy") for q in self.view.queues.values())
        if not fair:
            self.tracker = UsageTracker()
            self.usage_rows = ()
        self.orders.set_fair_queues(q.name for q in queues if q.policy is not None)
        return Snapshot(
            now=now,
            envs=envs,
            queues=tuple(queues),
            jobs=(),
            policies=tuple(policies),
            share_usage=self.share_usage() if fair else (),
            consumables=consumables,
            active_shares=(self.tracker.active_shares(now) | self.active_job_shares()) if fair else frozenset(),
        )

    def running_by_share(self) -> dict[tuple[str, str], float]:
        """vCPUs held right now by STARTING/RUNNING pods, per (queue, share identifier)."""
        running: dict[tuple[str, str], float] = defaultdict(float)
        for key, pods in self.view.pods.items():
            job = self.view.jobs.get(key)
            if job is None:
                continue
            share = (job.get("spec") or {}).get("shareIdentifier")
            if not share:
                continue
            queue = str((job.get("spec") or {}).get("jobQueue", ""))
            for pod in pods.values():
                if not _pod_finished(pod):
                    running[(queue, str(share))] += pod_requests(pod).vcpus
        if self.services is not None:
            # A service job's share uses its instances as a compute job's uses vCPUs.
            for share_key, instances in self.services.in_use_by_share().items():
                running[share_key] += instances
        return running

    def active_job_shares(self) -> frozenset[tuple[str, str]]:
        """(queue, share) pairs with a job that is not finished (fair share's "active" shares)."""
        return frozenset(self.view.share_jobs)

    def share_usage(self) -> tuple[ShareUsage, ...]:
        """Advance the decayed usage by the vCPUs held since the last cycle; rows for the snapshot."""
        now = self.now()
        running = self.running_by_share()
        decay: dict[str, float] = {}
        for name, q in self.view.queues.items():
            policy = self.view.policies.get(str((q.get("spec") or {}).get("schedulingPolicy") or ""))
            if policy is not None:
                fs = (policy.get("spec") or {}).get("fairsharePolicy") or {}
                decay[name] = float(fs.get("shareDecaySeconds") or 0)
        if self.tracker.at is None:
            self.tracker = self.restored_tracker(now, decay)
        self.tracker = self.tracker.advance(now, running, decay)
        self.usage_rows = self.tracker.share_usage(running)
        return self.usage_rows

    def restored_tracker(self, now: float, decay: Mapping[str, float]) -> UsageTracker:
        """Usage survives restarts: seed it from what the queues' status last recorded."""
        from types import MappingProxyType

        from kubatch.scheduler.fairshare import UsageEntry

        entries = {}
        for name, q in self.view.queues.items():
            for row in (q.get("status") or {}).get("shareUsage") or []:
                usage = float(row.get("usage") or 0)
                if usage > 0 and name in decay:
                    entries[(name, str(row.get("shareIdentifier")))] = UsageEntry(usage, now, decay[name])
        return UsageTracker(now, MappingProxyType(entries))

    # ---- one cycle ----------------------------------------------------------------------------------
    async def cycle(self) -> Plan:
        started = time.perf_counter()
        await self.maintain_ledger()
        snap = self.snapshot()
        plan = make_plan(snap, self.orders)
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.cycles += 1
        self.last_plan = plan
        self._record_blocking(plan)
        if self.estimator.due():
            # Off the dispatch path: the cycle does not wait for the simulation, which runs in a
            # thread on an immutable snapshot of the jobs it simulates (placed or in a front).
            self._estimating = asyncio.create_task(self._estimate(self._estimate_snapshot(snap, plan), plan))
        for key, reason in plan.cancellations.items():
            unit = self.units[key]
            self.forced_cancel[unit.job_key][unit.index] = reason
            self.view.mark(unit.job_key)
        # NON_REPLENISHABLE units are charged before any pod exists: a unit not charged is not started.
        charges = self._charges(plan.placements) if self.consumers else []
        refused = await self.ledger.charge(charges) if charges else set()
        await self._start_all([(key, env) for key, env in plan.placements if key not in refused])
        if self.services is not None:
            await self.services.cycle()
        return plan

    async def warm_cycle(self, keys: Iterable[str]) -> int:
        """One cycle over the jobs ``keys`` alone (their queues' fronts, in order), before the view
        holds every job: what fits of them starts, on the capacity the view's (complete) pods and
        nodes leave. A queue's front is cut at its first job that needs consumable resources (their
        ledger is read from every job; the jobs behind it must not pass it). No blocked reasons,
        cancellations or estimates come of it: those speak of the whole queue. Returns the pods
        started."""
        ordered = list(keys)
        self.scope = set(ordered)
        self._rederive_all = True
        try:
            self.refresh_units()  # sizes the jobs: which need consumables
            cut: set[str] = set()
            kept = set()
            for key in ordered:
                queue = str(((self.view.jobs.get(key) or {}).get("spec") or {}).get("jobQueue", ""))
                if key in self.consumers:
                    cut.add(queue)
                if queue not in cut:
                    kept.add(key)
            if kept != self.scope:
                self.scope = kept
                self._rederive_all = True
            plan = make_plan(self.snapshot(), self.orders)
            await self._start_all(plan.placements)
            return len(plan.placements)
        finally:
            self.scope = None
            self._rederive_all = True  # the first full cycle derives every job afresh

    async def _start_all(self, placements: Iterable[tuple[str, str]]) -> None:
        """Start the first pod of each placed unit (bounded by ``create_slots``), all at once."""
        tasks = []
        for key, env in placements:
            unit = self.units[key]
            self.in_flight.add(key)
            self._touched.add(unit.job_key)
            tasks.append(asyncio.create_task(self._start(unit, env)))
        if tasks:
            await asyncio.gather(*tasks)

    def _estimate_snapshot(self, snap: Snapshot, plan: Plan) -> Snapshot:
        """``snap`` with the jobs the estimate simulates: those ``plan`` placed or listed in a front."""
        wanted = [key for key, _ in plan.placements]
        for keys in plan.queue_front.values():
            wanted.extend(keys)
        jobs = (self.orders.get(key) for key in wanted)
        return replace(snap, jobs=tuple(j for j in jobs if j is not None))

    def _definition_spec(self, job: Mapping[str, Any]) -> Mapping[str, Any] | None:
        definition, _ = resolve_definition(self.view, job)
        return None if definition is None else definition.spec

    async def _estimate(self, snap: Snapshot, plan: Plan) -> None:
        started = time.perf_counter()
        try:
            estimates = await self.estimator.refresh(snap, plan)
        except Exception:
            log.exception("start-time estimate failed")
            return
        self.metrics.estimate_seconds.observe(time.perf_counter() - started)
        if estimates is None:
            return
        waits = head_waits(estimates, plan.queue_front, snap.now)
        for queue, wait in waits.items():
            self.metrics.head_estimated_wait.labels(queue).set(wait)
        for queue in self._estimated_queues - set(waits):
            self.metrics.head_estimated_wait.remove(queue)  # no head, or none expected to start
        self._estimated_queues = set(waits)

    def _record_blocking(self, plan: Plan) -> None:
        """Keep since when each head is blocked (with which reason code: time-limit actions count
        from it), and report the heads blocked for at least ``blocked_report_seconds`` to the
        lifecycle step (their statusReason), the queues' status and a QueueBlocked Event. A head
        blocked only until capacity frees within that time is not reported: under a stream of
        short jobs almost every job is the head for one cycle, and reporting each would cost a
        status write per job, and more the more often cycles run."""
        now = self.now()
        new_blocked: dict[str, str] = {}
        new_detail: dict[str, str] = {}
        heads: dict[str, str] = {}  # queue -> its reported head (scheduler key)
        units = self.units
        self._next_report = None
        for key, reason in plan.blocked.items():
            code = reason_code(reason)
            prev = self.blocked_since.get(key)
            if prev is None or prev[0] != code:
                self.blocked_since[key] = prev = (code, now)
            report_at = prev[1] + self.blocked_report_seconds
            if now < report_at:
                self._next_report = report_at if self._next_report is None else min(self._next_report, report_at)
                continue
            unit = units[key]
            heads[unit.entry.queue] = key
            new_blocked[unit.job_key] = reason
            if key in plan.blocked_detail:
                new_detail[unit.job_key] = plan.blocked_detail[key]
        for key in list(self.blocked_since):
            if key not in plan.blocked:
                del self.blocked_since[key]
        for job in set(self.blocked) | set(new_blocked):
            if self.blocked.get(job) != new_blocked.get(job) or self.blocked_detail.get(job) != new_detail.get(job):
                self.view.mark(job)
        self.blocked = new_blocked
        self.blocked_detail = new_detail
        for queue in heads.keys() - self.blocked_queues:
            head = heads[queue]
            reason = plan.blocked[head]
            detail = plan.blocked_detail.get(head, "")
            self.metrics.queue_blocked_events.labels(queue, reason_code(reason)).inc()
            q = self.view.queues.get(queue)
            if q is not None:
                blocker = self.view.jobs.get(units[head].job_key)
                aws_name = ((blocker or {}).get("spec") or {}).get("jobName")
                by = f"{head} ({aws_name})" if aws_name else head  # with the job's AWS name, spec.jobName
                message = f"job queue {queue} is blocked by {by}: {reason}" + (f" ({detail})" if detail else "")
                self.events.record(q, "QueueBlocked", message, type_="Warning")
        self.blocked_queues = frozenset(heads)
        self.front = dict(plan.queue_front)

    async def _start(self, unit: Unit, env: str) -> None:
        definition = unit.definition
        job = self.view.jobs.get(unit.job_key)
        try:
            if job is None:
                return
            ns, _name = unit.job_key.split("/", 1)
            spec = job.get("spec") or {}
            st = job.get("status") or {}
            multinode = bool(definition.spec.get("nodeProperties"))
            size = int((spec.get("arrayProperties") or {}).get("size") or 0)
            try:
                pod = build_pod(
                    job,
                    definition.spec,
                    definition.resolved,
                    job_id=str(st.get("jobId") or job["metadata"]["uid"]),
                    queue=str(spec.get("jobQueue", "")),
                    compute_environment=env,
                    attempt=unit.attempt,
                    array_index=unit.index,
                    array_size=size if unit.index is not None else None,
                    node_index=main_node_of(definition.spec) if multinode else None,
                    num_nodes=num_nodes_of(definition.spec, spec) if multinode else None,
                    settings=self.settings,
                    environment_tolerations=environment_tolerations(self.view.envs.get(env)),
                )
            except PodSpecError as e:
                self.forced_cancel[unit.job_key][unit.index] = str(e)
                self.view.mark(unit.job_key)
                return
            async with self.create_slots:
                if multinode:
                    svc = build_headless_service(job, str(st.get("jobId") or job["metadata"]["uid"]))
                    try:
                        await self.kube.create(f"/api/v1/namespaces/{ns}/services", svc)
                    except ApiError as e:
                        if e.status != 409:
                            raise
                try:
                    created = await self.kube.create(f"/api/v1/namespaces/{ns}/pods", pod)
                except ApiError as e:
                    missing = missing_service_account(e, pod)
                    if missing is not None:
                        # Asked again every cycle it would fail every cycle: the job fails, saying why.
                        self.forced_cancel[unit.job_key][unit.index] = missing
                        return
                    if e.status != 409:
                        raise
                    return
            self.view.on_pod("ADDED", created)
            self.metrics.pods_created.inc()
            self.metrics.attempts.labels(str(spec.get("jobQueue", ""))).inc()
        except ApiError as e:
            # A namespace being deleted refuses every pod of its jobs, which go with it: not news.
            (log.debug if e.namespace_terminating else log.warning)("dispatch %s: %s", unit.key, e)
        finally:
            self.in_flight.discard(unit.key)
            self._touched.add(unit.job_key)
            self.view.mark(unit.job_key)
