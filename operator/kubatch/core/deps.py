"""Job dependencies (user guide, "Job dependencies", "Array jobs"; spec 4.4, checklist I.75-83).

Owns: whether a job (or one array child) may leave PENDING (``dependency_gate``), the same for all
pending children of an array at once (``array_child_gates``), validation of ``dependsOn``
(``validate_depends_on``) and cycle detection for the admission webhook (``find_cycle``).

A ``dependsOn`` entry names its dependency by ``jobName`` (the BatchJob's name in the same
namespace, api.md) or ``jobId``; ``deps_status`` is keyed by that same string.

Rules:
- Plain dependency (no type): READY once the dependency SUCCEEDED; FAILED as soon as it FAILED
  (statusReason ``Dependent Job failed``; the cascade down a chain follows naturally, since the
  dependent itself becomes FAILED). A plain dependency on an array job waits for the whole array
  (its parent status).
- N_TO_N (with a job): child ``i`` of this array waits for child ``i`` of the listed array job.
  If the listed job is not an array, or ``i`` is outside its size, it is a plain dependency.
- SEQUENTIAL (no job): child ``i+1`` waits for child ``i`` of the *same* array to SUCCEED,
  starting at 0; when a child FAILED, every later child fails (it can never run).
- At the array-parent level (``index=None`` on an array job), N_TO_N and SEQUENTIAL entries do
  not block; they are evaluated per child. On a non-array job N_TO_N is a plain dependency and
  SEQUENTIAL is ignored (``validate_depends_on`` rejects it).
- A dependency that does not exist (yet) keeps the job waiting.
- FAILED wins over WAIT: one failed dependency fails the job at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubatch.core.arrays import ArrayChildren, IndexSet
from kubatch.core.states import REASON_DEPENDENT_JOB_FAILED, JobStatus

MAX_DEPENDENCIES = 20
#: Where an array parent keeps its per-state child index strings: ``status.arrayProperties.indexes``.
ARRAY_INDEXES_FIELD = "indexes"


class DependencyType(StrEnum):
    N_TO_N = "N_TO_N"
    SEQUENTIAL = "SEQUENTIAL"


class GateState(StrEnum):
    WAIT = "WAIT"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True)
class DependencyStatus:
    """What the gate needs to know about one dependency: its status and, for arrays, its children."""

    status: JobStatus
    children: ArrayChildren | None = None

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> DependencyStatus:
        """Read a BatchJob dict: ``status.status`` and, for arrays, ``status.arrayProperties.indexes``."""
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        st = JobStatus(status.get("status") or JobStatus.SUBMITTED)
        size = int((spec.get("arrayProperties") or {}).get("size") or 0)
        if size >= 2:
            indexes = (status.get("arrayProperties") or {}).get(ARRAY_INDEXES_FIELD)
            return cls(st, ArrayChildren.from_status(size, indexes))
        return cls(st)


@dataclass(frozen=True)
class Gate:
    """WAIT / READY / FAILED. On FAILED, ``status_reason`` is ``Dependent Job failed`` (exact AWS
    wording, so retry patterns and dashboards match) and ``dependency`` names the failed one
    (``name`` or ``name:index`` for an array child)."""

    state: GateState
    status_reason: str = ""
    dependency: str | None = None

    @property
    def message(self) -> str:
        if self.state == GateState.FAILED:
            return f"{self.status_reason}: {self.dependency}"
        if self.state == GateState.WAIT and self.dependency:
            return f"waiting for {self.dependency}"
        return ""


READY = Gate(GateState.READY)


def dependency_key(entry: Mapping[str, Any]) -> str | None:
    key = entry.get("jobName") or entry.get("jobId")
    return str(key) if key else None


def _dep_type(entry: Mapping[str, Any]) -> DependencyType | None:
    t = entry.get("type")
    return DependencyType(str(t).upper()) if t else None


def array_size(job: Mapping[str, Any]) -> int | None:
    size = ((job.get("spec") or {}).get("arrayProperties") or {}).get("size")
    return int(size) if size and int(size) >= 2 else None


def _from_status(st: JobStatus, name: str) -> Gate | None:
    if st == JobStatus.SUCCEEDED:
        return None
    if st == JobStatus.FAILED:
        return Gate(GateState.FAILED, REASON_DEPENDENT_JOB_FAILED, name)
    return Gate(GateState.WAIT, "", name)


def dependency_gate(
    job: Mapping[str, Any],
    deps_status: Mapping[str, DependencyStatus],
    *,
    index: int | None = None,
    own_children: ArrayChildren | None = None,
) -> Gate:
    """Gate for ``job`` (a BatchJob dict), or for its array child ``index`` (pass the array's own
    children for SEQUENTIAL)."""
    entries: Sequence[Mapping[str, Any]] = (job.get("spec") or {}).get("dependsOn") or []
    is_array = array_size(job) is not None
    own_name = str((job.get("metadata") or {}).get("name", ""))
    waiting: Gate | None = None
    for entry in entries:
        dtype = _dep_type(entry)
        key = dependency_key(entry)
        gate: Gate | None
        if dtype == DependencyType.SEQUENTIAL and key is None:
            if not is_array or index is None or index == 0:
                continue
            failed = own_children.get(JobStatus.FAILED) if own_children else IndexSet()
            first_failed = failed.min()
            if first_failed is not None and first_failed < index:
                return Gate(GateState.FAILED, REASON_DEPENDENT_JOB_FAILED, f"{own_name}:{first_failed}")
            prev = own_children.state_of(index - 1) if own_children else JobStatus.PENDING
            gate = _from_status(prev, f"{own_name}:{index - 1}")
        elif key is None:
            continue
        else:
            dep = deps_status.get(key)
            if dep is None:
                gate = Gate(GateState.WAIT, "", key)
            elif dtype == DependencyType.N_TO_N and is_array and index is None:
                continue
            elif (
                dtype == DependencyType.N_TO_N
                and index is not None
                and dep.children is not None
                and 0 <= index < dep.children.size
            ):
                gate = _from_status(dep.children.state_of(index), f"{key}:{index}")
            else:
                gate = _from_status(dep.status, key)
        if gate is not None and gate.state == GateState.FAILED:
            return gate
        if gate is not None and waiting is None:
            waiting = gate
    return waiting or READY


@dataclass(frozen=True)
class ChildGates:
    """For an array: the candidate children that may become RUNNABLE now, and those that FAIL
    (statusReason ``Dependent Job failed``); the rest keep waiting."""

    ready: IndexSet
    failed: IndexSet
    status_reason: str = REASON_DEPENDENT_JOB_FAILED


def array_child_gates(
    job: Mapping[str, Any],
    deps_status: Mapping[str, DependencyStatus],
    own_children: ArrayChildren,
    candidates: IndexSet | None = None,
) -> ChildGates:
    """``dependency_gate`` for many children at once, with IndexSet algebra (cheap for 10,000
    children). ``candidates`` defaults to the children in SUBMITTED or PENDING."""
    size = own_children.size
    if candidates is None:
        candidates = own_children.get(JobStatus.SUBMITTED) | own_children.get(JobStatus.PENDING)
    everyone = IndexSet.span(0, size)
    ok = everyone
    fail = IndexSet()
    for entry in (job.get("spec") or {}).get("dependsOn") or []:
        dtype = _dep_type(entry)
        key = dependency_key(entry)
        if dtype == DependencyType.SEQUENTIAL and key is None:
            ok = ok & (IndexSet.of([0]) | own_children.get(JobStatus.SUCCEEDED).shift(1))
            first_failed = own_children.get(JobStatus.FAILED).min()
            if first_failed is not None:
                fail = fail | IndexSet.span(first_failed + 1, size)
            continue
        if key is None:
            continue
        dep = deps_status.get(key)
        if dep is None:
            ok = IndexSet()
        elif dtype == DependencyType.N_TO_N and dep.children is not None:
            inside = IndexSet.span(0, dep.children.size)
            outside = everyone - inside
            ok = ok & (dep.children.get(JobStatus.SUCCEEDED) | _plain_ok(dep.status, outside))
            fail = fail | dep.children.get(JobStatus.FAILED)
            if dep.status == JobStatus.FAILED:
                fail = fail | outside
        elif dep.status == JobStatus.FAILED:
            fail = everyone
        elif dep.status != JobStatus.SUCCEEDED:
            ok = IndexSet()
    failed = candidates & fail
    return ChildGates(ready=(candidates & ok) - failed, failed=failed)


def _plain_ok(status: JobStatus, where: IndexSet) -> IndexSet:
    return where if status == JobStatus.SUCCEEDED else IndexSet()


def validate_depends_on(entries: Sequence[Mapping[str, Any]] | None, *, is_array: bool) -> list[str]:
    """Admission errors for a ``dependsOn`` list (empty list = valid)."""
    errors: list[str] = []
    entries = entries or []
    if len(entries) > MAX_DEPENDENCIES:
        errors.append(f"a job may depend on at most {MAX_DEPENDENCIES} jobs, got {len(entries)}")
    for i, entry in enumerate(entries):
        raw = entry.get("type")
        if raw and str(raw).upper() not in DependencyType.__members__:
            errors.append(f"dependsOn[{i}].type must be N_TO_N or SEQUENTIAL, got {raw!r}")
            continue
        dtype = _dep_type(entry)
        key = dependency_key(entry)
        if dtype == DependencyType.SEQUENTIAL:
            if key is not None:
                errors.append(f"dependsOn[{i}]: SEQUENTIAL is used without a job name or id")
            if not is_array:
                errors.append(f"dependsOn[{i}]: SEQUENTIAL needs an array job")
        elif key is None:
            errors.append(f"dependsOn[{i}] needs jobName or jobId")
        elif dtype == DependencyType.N_TO_N and not is_array:
            errors.append(f"dependsOn[{i}]: N_TO_N needs an array job")
    return errors


def dependency_graph(jobs: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{job name: [names it depends on]}`` for BatchJob dicts (SEQUENTIAL entries are skipped)."""
    graph: dict[str, list[str]] = {}
    for job in jobs:
        name = str((job.get("metadata") or {}).get("name", ""))
        entries = (job.get("spec") or {}).get("dependsOn") or []
        graph[name] = [k for k in (dependency_key(e) for e in entries) if k is not None]
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a closed path ``[a, b, ..., a]`` (``[a, a]`` for a job depending on
    itself), or None. Nodes only mentioned as targets count as leaves. Iterative, so deep chains
    do not hit the recursion limit."""
    adjacency = {node: list(targets) for node, targets in graph.items()}
    white, grey, black = 0, 1, 2
    color: dict[str, int] = {}
    for root in adjacency:
        if color.get(root, white) != white:
            continue
        path: list[str] = [root]
        color[root] = grey
        stack: list[Iterator[str]] = [iter(adjacency.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = black
                stack.pop()
                continue
            c = color.get(nxt, white)
            if c == grey:
                return [*path[path.index(nxt) :], nxt]
            if c == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append(iter(adjacency.get(nxt, ())))
    return None
