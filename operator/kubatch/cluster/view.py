"""The in-memory cluster view: the latest copy of every object the operator decides on.

Fed by informers (watch events) and by the operator's own write responses, so a decision never
waits for its own echo. Objects are kept whole except Pods, which are slimmed to the fields the
lifecycle reads. Each change marks the affected jobs dirty and wakes the loops that care.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Any

import orjson

from kubatch.cluster.informer import Known, known
from kubatch.core.pods.names import ENV_MAIN_NODE_IP
from kubatch.core.schedules import LABEL_SCHEDULE
from kubatch.core.timestamps import parse_iso

JSON = dict[str, Any]

LABEL_JOB_NAME = "kubatch.dev/job-name"
LABEL_JOB_DEFINITION = "kubatch.dev/job-definition"
#: On a service job's workload (a batch/v1 Job): the BatchJob's name (core.service_jobs).
LABEL_SERVICE_JOB = "kubatch.dev/service-job"


def _rv(obj: JSON) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _not_newer(obj: JSON, old: JSON) -> bool:
    """``obj`` is an older copy of ``old``, or the same version (objects without one always count)."""
    new_rv, old_rv = _rv(obj), _rv(old)
    return old_rv > new_rv or (new_rv > 0 and old_rv == new_rv)


def slim_pod(pod: JSON) -> JSON:
    """The parts of a Pod that kubatch reads (saves memory with tens of thousands of pods)."""
    md = pod.get("metadata", {})
    spec = pod.get("spec", {})
    st = pod.get("status", {})
    containers: list[JSON] = []
    for c in spec.get("containers", []):
        slim: JSON = {"name": c.get("name"), "resources": c.get("resources", {})}
        # A multi-node job's other node keeps the main address it was given: its later siblings get
        # the same one (the lifecycle reads it back, also after a restart).
        given = [e for e in c.get("env") or [] if e.get("name") == ENV_MAIN_NODE_IP]
        if given:
            slim["env"] = given
        containers.append(slim)
    return {
        "metadata": {
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "uid": md.get("uid"),
            "labels": md.get("labels", {}),
            "resourceVersion": md.get("resourceVersion"),
            "deletionTimestamp": md.get("deletionTimestamp"),
            "deletionGracePeriodSeconds": md.get("deletionGracePeriodSeconds"),
            "creationTimestamp": md.get("creationTimestamp"),
            "ownerReferences": md.get("ownerReferences", []),
        },
        "spec": {"nodeName": spec.get("nodeName"), "containers": containers},
        "status": {
            "phase": st.get("phase"),
            "podIP": st.get("podIP"),
            "reason": st.get("reason"),
            "message": st.get("message"),
            "startTime": st.get("startTime"),
            "containerStatuses": st.get("containerStatuses", []),
            "initContainerStatuses": st.get("initContainerStatuses", []),
            # Whether and since when the pod is bound (the start bound counts from there), or why
            # no node takes it.
            "conditions": [c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"],
        },
    }


def slim_workload(obj: JSON) -> JSON:
    """The parts of a service job's workload (a batch/v1 Job) that kubatch reads; a workload of a
    type declared by configuration keeps its whole spec and status (its paths are the configuration's)."""
    md = obj.get("metadata", {})
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    whole = obj.get("kind") != "Job" or obj.get("apiVersion") != "batch/v1"
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "uid": md.get("uid"),
            "labels": md.get("labels", {}),
            "resourceVersion": md.get("resourceVersion"),
            "deletionTimestamp": md.get("deletionTimestamp"),
            "creationTimestamp": md.get("creationTimestamp"),
        },
        "spec": spec if whole else {k: spec[k] for k in ("parallelism", "completions", "suspend") if k in spec},
        "status": st
        if whole
        else {
            k: st[k]
            for k in ("conditions", "active", "ready", "succeeded", "failed", "startTime", "completionTime")
            if k in st
        },
    }


_DONE_PHASES = ("Succeeded", "Failed")
#: Key of the monotonic time a pod of the view was first seen Running (kept across its updates).
_SEEN_RUNNING = "_seenRunning"
#: Key of the monotonic time a pod was first seen not yet running (its create's answer, usually):
#: from then on it holds its capacity.
SEEN_CREATED = "_seenCreated"
#: Pods first seen less than this apart belong to one burst of placements.
BURST_GAP_SECONDS = 0.5


def _run_seconds(pod: JSON) -> float | None:
    """How long a finished pod's first container ran (None when it never started)."""
    for cs in pod["status"].get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        started, finished = parse_iso(term.get("startedAt")), parse_iso(term.get("finishedAt"))
        if started is not None and finished is not None:
            return max(0.0, finished - started)
        return None
    return None


#: (section, field) of a BatchJob whose value many jobs share: kept once in memory (``compact_job``).
_SHARED_VALUES = (
    ("metadata", "namespace"),
    ("spec", "jobQueue"),
    ("spec", "jobDefinition"),
    ("spec", "shareIdentifier"),
    ("status", "status"),
    ("status", "jobDefinition"),
    ("status", "shareIdentifier"),
)
#: Distinct job specs kept for sharing (``compact_job``); past this the table starts afresh.
MAX_SHARED_SPECS = 20_000
_SPECS: dict[bytes, JSON] = {}


def _shared_spec(spec: JSON) -> JSON:
    """One dict for every job whose spec is equal (a deep queue is mostly copies of a few specs).
    Safe because nothing edits a job's spec in the view: the core reads it and builds new objects."""
    try:
        key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return spec
    shared = _SPECS.get(key)
    if shared is not None:
        return shared
    if len(_SPECS) >= MAX_SHARED_SPECS:
        _SPECS.clear()
    _SPECS[key] = spec
    return spec


#: metadata fields that never change over an object's life: a new version reuses the old one's strings.
_IDENTITY = ("name", "uid", "creationTimestamp")

#: Timestamp strings, one object per distinct value: jobs submitted in the same second (hundreds in
#: a burst) share their creation and queueing times. Bounded: when full it starts afresh (the jobs
#: already held keep sharing what they have).
_TIMES: dict[str, str] = {}
_MAX_TIMES = 100_000


def _shared_time(value: Any) -> Any:
    if type(value) is not str:
        return value
    shared = _TIMES.get(value)
    if shared is None:
        if len(_TIMES) >= _MAX_TIMES:
            _TIMES.clear()
        shared = _TIMES[value] = value
    return shared


def compact_job(obj: JSON, previous: JSON | None = None) -> JSON:
    """``obj`` holding less memory, for a view of up to a million jobs: no ``managedFields`` and no
    ``generation`` (never read), one spec object for the jobs whose specs are equal, one string
    object for each value many jobs share (namespace, queue, definition, state), the identity
    strings (name, uid, creation time) of ``previous`` (an older version of the same object: the
    informer's record keeps those), status.jobId the uid's string object, and one string object per
    distinct creation or queueing time (``_shared_time``). Other values are unchanged; the object is edited in
    place (a decoded copy of our own)."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return obj
    md.pop("managedFields", None)
    md.pop("generation", None)
    old_md = (previous or {}).get("metadata")
    if isinstance(old_md, dict):
        for field in _IDENTITY:
            value = old_md.get(field)
            if value is not None and md.get(field) == value:
                md[field] = value
    if isinstance(obj.get("spec"), dict):
        obj["spec"] = _shared_spec(obj["spec"])
    for section, field in _SHARED_VALUES:
        part = md if section == "metadata" else obj.get(section)
        if isinstance(part, dict):
            value = part.get(field)
            if type(value) is str:
                part[field] = sys.intern(value)
    for name in ("apiVersion", "kind"):
        value = obj.get(name)
        if type(value) is str:
            obj[name] = sys.intern(value)
    if "creationTimestamp" in md:
        md["creationTimestamp"] = _shared_time(md["creationTimestamp"])
    st = obj.get("status")
    if isinstance(st, dict):
        uid = md.get("uid")
        if st.get("jobId") == uid:
            st["jobId"] = uid
        for field in ("createdAt", "queuedAt"):
            if field in st:
                st[field] = _shared_time(st[field])
    return obj


def _count(n: Any) -> int:
    try:
        return int(n)
    except (TypeError, ValueError):
        return 0


def job_key(ns: str, name: str) -> str:
    return f"{ns}/{name}"


class View:
    """Latest objects by kind, plus pods grouped by owning job."""

    def __init__(self) -> None:
        self.jobs: dict[str, JSON] = {}  # the effective jobs: as the API has them, with pending status on top
        self.overlay: dict[str, tuple[str, JSON]] = {}  # job key -> (uid, status decided but not written yet)
        # Job key -> status as the API server has it, for the jobs with an overlay only: any other
        # job's own status is the written one (``written_status``; no table entry per queued job).
        self.written: dict[str, JSON] = {}
        # Indexes kept current on every change, so no loop rescans finished jobs:
        self.active: set[str] = set()  # jobs not SUCCEEDED/FAILED
        self.finished: set[str] = set()  # jobs SUCCEEDED or FAILED (the others are `active`)
        self.candidates: set[str] = set()  # RUNNABLE jobs and PENDING ones (array parents with RUNNABLE children)
        # Jobs per queue and state (an array counts its children: status.arrayProperties.statusSummary),
        # and unfinished jobs per (queue, shareIdentifier): what the queues' status shows.
        self.job_counts: dict[str, Counter[str]] = {}
        self.share_jobs: dict[tuple[str, str], int] = {}
        self.pods: dict[str, dict[str, JSON]] = defaultdict(dict)  # job key -> pod name -> pod
        # Uids of pods we deleted ourselves: their later events (deletionTimestamp set, the kubelet's
        # last status) must not bring them back, or the job would act on a pod that is already gone.
        self.deleted_pods: dict[str, None] = {}
        self.definitions: dict[str, JSON] = {}  # ns/name -> JobDefinition
        self.revisions: dict[str, dict[int, JSON]] = defaultdict(dict)  # ns/jd -> rev -> ControllerRevision
        self.definitions_version = 0  # bumped on every JobDefinition or revision change
        self.queues: dict[str, JSON] = {}
        self.envs: dict[str, JSON] = {}
        self.policies: dict[str, JSON] = {}
        self.consumables: dict[str, JSON] = {}
        self.service_envs: dict[str, JSON] = {}  # ServiceEnvironments by name
        # Service jobs' workloads (batch/v1 Jobs labelled kubatch.dev/service-job): job key -> name -> workload.
        self.workloads: dict[str, dict[str, JSON]] = defaultdict(dict)
        self.deleted_workloads: dict[str, None] = {}  # uids of workloads we deleted (as deleted_pods)
        # Workloads to adopt: batch/v1 Jobs labelled kubatch.dev/job-queue (no service job's yet), by ns/name.
        self.adoptable: dict[str, JSON] = {}
        # Queue name -> when this replica first saw it DISABLED, until its status records disabledAt.
        self.disabled_seen: dict[str, float] = {}
        self.nodes: dict[str, JSON] = {}
        # JobSchedules (ns/name), and the BatchJobs labelled kubatch.dev/schedule=<name> per schedule.
        self.schedules: dict[str, JSON] = {}
        self.scheduled_jobs: dict[str, set[str]] = defaultdict(set)
        self.dirty_schedules: set[str] = set()
        self.schedules_changed = asyncio.Event()  # a schedule, or a job of one, changed
        self.dependents: dict[str, set[str]] = defaultdict(set)  # job key -> keys of jobs depending on it
        self.dirty: set[str] = set()
        # Job keys whose object, candidacy or pods changed since the dispatcher last took them
        # (take_touched): what it re-derives, so a cycle costs the changes, not the queue's depth.
        self.touched: set[str] = set()
        self.changed = asyncio.Event()  # something the dispatcher may care about changed
        self.job_dirty = asyncio.Event()
        self.listeners: list[Callable[[str, str, JSON], None]] = []
        # (job key, seconds its main container ran) of pods seen finishing: run times to learn from.
        # (job key, seconds a finished pod held its capacity: from first seen not running, else from
        # first seen running, to seen finished) and seconds from first seen to seen Running.
        self.finished_runs: deque[tuple[str, float]] = deque(maxlen=10_000)
        self.start_latencies: deque[float] = deque(maxlen=10_000)
        # Seconds between consecutive pods first seen, within bursts (gaps under BURST_GAP_SECONDS):
        # how fast placements become pods when many are due at once.
        self.creation_gaps: deque[float] = deque(maxlen=10_000)
        self._last_created: float | None = None

    # ---- helpers ----------------------------------------------------------------------------------
    def mark(self, key: str) -> None:
        self.dirty.add(key)
        self.job_dirty.set()

    def take_touched(self) -> set[str]:
        """The job keys whose object, candidacy or pods changed since the last call."""
        keys, self.touched = self.touched, set()
        return keys

    def mark_dependents(self, key: str) -> None:
        for dep in self.dependents.get(key, ()):
            self.mark(dep)

    def _index_deps(self, key: str, job: JSON | None, old: JSON | None) -> None:
        ns = key.split("/", 1)[0]
        for source in (old, job):
            if source is None:
                continue
            for entry in (source.get("spec") or {}).get("dependsOn") or []:
                name = entry.get("jobName")
                if not name:
                    continue
                target = job_key(ns, name)
                if source is job:
                    self.dependents[target].add(key)
                else:
                    self.dependents[target].discard(key)

    def _index_schedule(self, key: str, job: JSON | None, old: JSON | None) -> None:
        """Keep ``scheduled_jobs`` current and mark the schedules whose jobs changed."""
        ns = key.split("/", 1)[0]
        for source in (old, job):
            schedule = (((source or {}).get("metadata") or {}).get("labels") or {}).get(LABEL_SCHEDULE)
            if not schedule:
                continue
            owner = job_key(ns, schedule)
            if source is job:
                self.scheduled_jobs[owner].add(key)
            elif job is None or (job.get("metadata") or {}).get("labels", {}).get(LABEL_SCHEDULE) != schedule:
                self.scheduled_jobs[owner].discard(key)
                if not self.scheduled_jobs[owner]:
                    del self.scheduled_jobs[owner]
            self.dirty_schedules.add(owner)
            self.schedules_changed.set()

    def _index(self, key: str, job: JSON | None, old: JSON | None = None) -> None:
        """Keep the indexes current as job ``key`` changes from ``old`` to ``job`` (None: absent)."""
        self.touched.add(key)
        self._tally(old, -1)
        self._tally(job, +1)
        state = ((job or {}).get("status") or {}).get("status") if job is not None else None
        if job is None or state in ("SUCCEEDED", "FAILED"):
            self.active.discard(key)
        else:
            self.active.add(key)
        if job is not None and state in ("SUCCEEDED", "FAILED"):
            self.finished.add(key)
        else:
            self.finished.discard(key)
        if job is not None and state in ("RUNNABLE", "PENDING"):
            self.candidates.add(key)
        else:
            self.candidates.discard(key)

    def _tally(self, job: JSON | None, sign: int) -> None:
        """Add (sign 1) or take away (-1) what ``job`` counts in ``job_counts`` and ``share_jobs``."""
        if job is None:
            return
        spec = job.get("spec") or {}
        st = job.get("status") or {}
        queue = str(spec.get("jobQueue", ""))
        counts = self.job_counts.get(queue)
        if counts is None:
            counts = self.job_counts[queue] = Counter()
        summary = (st.get("arrayProperties") or {}).get("statusSummary")
        if summary:
            for state, n in summary.items():
                counts[state] += sign * _count(n)
        else:
            counts[str(st.get("status") or "SUBMITTED")] += sign
        share = spec.get("shareIdentifier")
        if share and st.get("status") not in ("SUCCEEDED", "FAILED"):
            pair = (queue, str(share))
            n = self.share_jobs.get(pair, 0) + sign
            if n:
                self.share_jobs[pair] = n
            else:
                del self.share_jobs[pair]

    # ---- event handlers (informers) ---------------------------------------------------------------
    def on_job(self, typ: str, obj: JSON) -> None:
        md = obj.get("metadata", {})
        key = job_key(md.get("namespace", ""), md.get("name", ""))
        old = self.jobs.get(key)
        if typ == "DELETED":
            if old is not None and old["metadata"].get("uid") == md.get("uid"):
                self.jobs.pop(key, None)
                self.written.pop(key, None)
                self.overlay.pop(key, None)
                self._index_deps(key, None, old)
                self._index(key, None, old)
                self._index_schedule(key, None, old)
        else:
            if old is not None and old["metadata"].get("uid") == md.get("uid") and _not_newer(obj, old):
                # An older copy than the one our own write already gave us, or the watch's echo of
                # that write: nothing new, and nothing to reconcile again.
                return
            obj = compact_job(obj, old if old is not None and old["metadata"].get("uid") == md.get("uid") else None)
            pending = self.overlay.get(key)
            if pending is not None and pending[0] == md.get("uid"):
                self.written[key] = obj.get("status") or {}
                obj = {**obj, "status": pending[1]}
            elif pending is not None:
                del self.overlay[key]  # a new object of the same name
                self.written.pop(key, None)
            self.jobs[key] = obj
            self._index(key, obj, old)
            self._index_schedule(key, obj, old)
            if old is None or (old.get("spec") or {}).get("dependsOn") != (obj.get("spec") or {}).get("dependsOn"):
                self._index_deps(key, obj, old)
        self.mark(key)
        self.mark_dependents(key)
        self.changed.set()

    def put_job(self, obj: JSON) -> None:
        """Our own write's response: newer than anything the informer has shown yet."""
        self.on_job("MODIFIED", obj)

    def job_records(self) -> dict[str, Known]:
        """The informer's records of the jobs held (its relist reports the vanished ones from these;
        the BatchJob informer keeps none of its own)."""
        return {str(job["metadata"].get("uid", "")): known(job) for job in self.jobs.values()}

    def set_status(self, key: str, status: JSON) -> None:
        """A status decided but not written yet: every reader of the view sees it at once."""
        job = self.jobs.get(key)
        if job is None:
            return
        if key not in self.overlay:
            self.written[key] = job.get("status") or {}
        self.overlay[key] = (str(job["metadata"].get("uid", "")), status)
        self.jobs[key] = {**job, "status": status}
        self._index(key, self.jobs[key], job)
        self.mark_dependents(key)
        self.changed.set()

    def written_status(self, key: str) -> JSON:
        """The job's status as the API server has it (the decided one may be ahead: ``overlay``)."""
        if key in self.overlay:
            return self.written.get(key) or {}
        job = self.jobs.get(key)
        return (job.get("status") or {}) if job is not None else {}

    def settle(self, key: str, written: JSON) -> None:
        """``written`` is now the API's status: drop the overlay unless a newer decision is pending.

        The job then holds the written status object itself, not the equal decided one: a queue of a
        million written jobs would otherwise keep two copies of every status."""
        pending = self.overlay.get(key)
        if pending is not None and pending[1] == written:
            del self.overlay[key]
            job = self.jobs.get(key)
            stored = self.written.pop(key, None)
            if job is not None and stored is not None and job.get("status") is pending[1] and stored == pending[1]:
                self.jobs[key] = {**job, "status": stored}

    def on_pod(self, typ: str, obj: JSON) -> None:
        md = obj.get("metadata", {})
        labels = md.get("labels") or {}
        job = labels.get(LABEL_JOB_NAME)
        if not job:
            return
        key = job_key(md.get("namespace", ""), job)
        pods = self.pods[key]
        name = md.get("name", "")
        uid = md.get("uid")
        if typ == "DELETED":
            self.deleted_pods.pop(uid, None)
            old = pods.get(name)
            if old is not None and old["metadata"].get("uid") == md.get("uid"):
                del pods[name]
            if not pods:
                self.pods.pop(key, None)
        else:
            if uid in self.deleted_pods:
                if not pods:
                    self.pods.pop(key, None)
                return
            old = pods.get(name)
            if old is not None and old["metadata"].get("uid") == uid and _not_newer(obj, old):
                return  # older, or the echo of the pod our own create returned
            pods[name] = slim = slim_pod(obj)
            self._note_run(key, slim, old)
        self.touched.add(key)
        self.mark(key)
        self.changed.set()

    def on_workload(self, typ: str, obj: JSON) -> None:
        """A service job's workload changed (informer), or our own create's response."""
        md = obj.get("metadata", {})
        owner = (md.get("labels") or {}).get(LABEL_SERVICE_JOB)
        if not owner:
            return
        key = job_key(md.get("namespace", ""), owner)
        workloads = self.workloads[key]
        name, uid = md.get("name", ""), md.get("uid")
        if typ == "DELETED":
            self.deleted_workloads.pop(uid, None)
            old = workloads.get(name)
            if old is not None and old["metadata"].get("uid") == uid:
                del workloads[name]
        else:
            old = workloads.get(name)
            if old is not None and old["metadata"].get("uid") == uid and _not_newer(obj, old):
                return
            if uid in self.deleted_workloads:
                # Ours to delete: keep it known as being deleted (it holds capacity until gone).
                obj = {**obj, "metadata": {**md, "deletionTimestamp": md.get("deletionTimestamp") or "deleting"}}
            workloads[name] = slim_workload(obj)
        if not workloads:
            self.workloads.pop(key, None)
        self.mark(key)
        self.changed.set()

    def on_adoptable(self, typ: str, obj: JSON) -> None:
        """A Job labelled kubatch.dev/job-queue that no service job has adopted yet changed."""
        md = obj.get("metadata", {})
        key = job_key(md.get("namespace", ""), md.get("name", ""))
        if typ == "DELETED":
            old = self.adoptable.get(key)
            if old is not None and old["metadata"].get("uid") == md.get("uid"):
                del self.adoptable[key]
        else:
            self.adoptable[key] = slim_workload(obj)
        self.changed.set()

    def workload_deleting(self, key: str, name: str, uid: str | None, *, keep_tombstone: int = 100_000) -> None:
        """Our DELETE of a workload was accepted: until the watch shows it gone, it is being deleted."""
        if uid:
            if len(self.deleted_workloads) >= keep_tombstone:
                self.deleted_workloads.pop(next(iter(self.deleted_workloads)))
            self.deleted_workloads[uid] = None
        w = self.workloads.get(key, {}).get(name)
        if w is not None and w["metadata"].get("uid") == uid and not w["metadata"].get("deletionTimestamp"):
            self.workloads[key][name] = {**w, "metadata": {**w["metadata"], "deletionTimestamp": "deleting"}}
        self.changed.set()

    def _note_run(self, key: str, pod: JSON, old: JSON | None) -> None:
        """Remember when a pod was first seen, and first seen running; when it is seen finishing,
        record how long it held its capacity (as seen here: the containers' own timestamps count
        whole seconds only, and leave out the pod's start)."""
        phase = pod["status"]["phase"]
        now = time.monotonic()
        created = None if old is None else old.get(SEEN_CREATED)
        if old is None and phase not in ("Running", *_DONE_PHASES):
            created = now
            if self._last_created is not None and now - self._last_created < BURST_GAP_SECONDS:
                self.creation_gaps.append(now - self._last_created)
            self._last_created = now
        if created is not None:
            pod[SEEN_CREATED] = created
        seen = None if old is None else old.get(_SEEN_RUNNING)
        if phase == "Running":
            pod[_SEEN_RUNNING] = seen if seen is not None else now
            if seen is None and created is not None:
                self.start_latencies.append(now - created)
        elif phase in _DONE_PHASES and (old is None or old["status"]["phase"] not in _DONE_PHASES):
            since = created if created is not None else seen
            ran = now - since if since is not None else _run_seconds(pod)
            if ran is not None:
                self.finished_runs.append((key, ran))

    def pod_deleted(self, ns: str, name: str, uid: str | None, job: str, *, keep_tombstone: int = 100_000) -> None:
        """Our DELETE of a pod succeeded: drop it now, and ignore its events until the watch's DELETED."""
        gone = {"namespace": ns, "name": name, "uid": uid, "labels": {LABEL_JOB_NAME: job}}
        self.on_pod("DELETED", {"metadata": gone})
        if uid:
            if len(self.deleted_pods) >= keep_tombstone:
                self.deleted_pods.pop(next(iter(self.deleted_pods)))
            self.deleted_pods[uid] = None

    def on_named(self, store: dict[str, JSON], typ: str, obj: JSON, *, namespaced: bool = False) -> None:
        md = obj.get("metadata", {})
        key = job_key(md.get("namespace", ""), md.get("name", "")) if namespaced else md.get("name", "")
        if typ == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        self.changed.set()

    def on_schedule(self, typ: str, obj: JSON) -> None:
        """A JobSchedule changed (informer), or our status write's response."""
        md = obj.get("metadata", {})
        key = job_key(md.get("namespace", ""), md.get("name", ""))
        old = self.schedules.get(key)
        if typ == "DELETED":
            if old is not None and old["metadata"].get("uid") == md.get("uid"):
                del self.schedules[key]
        else:
            if old is not None and old["metadata"].get("uid") == md.get("uid") and _not_newer(obj, old):
                return
            self.schedules[key] = obj
        self.dirty_schedules.add(key)
        self.schedules_changed.set()

    def take_dirty_schedules(self) -> set[str]:
        """The schedules that changed (or whose jobs did) since the last call."""
        keys, self.dirty_schedules = self.dirty_schedules, set()
        return keys

    def on_queue(self, typ: str, obj: JSON) -> None:
        """A JobQueue changed. When one is deleted its unfinished jobs are looked at again: those that
        have not started fail (``Context.queue_deleted``)."""
        self.on_named(self.queues, typ, obj)
        if typ != "DELETED":
            return
        name = obj.get("metadata", {}).get("name", "")
        for key in list(self.active):
            if ((self.jobs.get(key) or {}).get("spec") or {}).get("jobQueue") == name:
                self.mark(key)

    def on_definition(self, typ: str, obj: JSON) -> None:
        self.definitions_version += 1
        self.on_named(self.definitions, typ, obj, namespaced=True)
        for listener in self.listeners:
            listener("JobDefinition", typ, obj)

    def on_revision(self, typ: str, obj: JSON) -> None:
        md = obj.get("metadata", {})
        jd = (md.get("labels") or {}).get(LABEL_JOB_DEFINITION)
        if not jd:
            return
        key = job_key(md.get("namespace", ""), jd)
        rev = int(obj.get("revision", 0))
        self.definitions_version += 1
        if typ == "DELETED":
            self.revisions[key].pop(rev, None)
        else:
            self.revisions[key][rev] = obj
        for listener in self.listeners:
            listener("ControllerRevision", typ, obj)
        self.changed.set()

    def on_node(self, typ: str, obj: JSON) -> None:
        name = obj.get("metadata", {}).get("name", "")
        if typ == "DELETED":
            self.nodes.pop(name, None)
            # Pods on a vanished node fail their attempt: look at their jobs again.
            for key, pods in self.pods.items():
                if any(p["spec"].get("nodeName") == name for p in pods.values()):
                    self.mark(key)
        else:
            self.nodes[name] = obj
        for listener in self.listeners:
            listener("Node", typ, obj)
        self.changed.set()
