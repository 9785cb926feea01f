"""Cross-object admission rules (the validating webhook's decisions), pure: plain dicts in, violations out.

The CRDs' OpenAPI + CEL rules check each object on its own; these rules check what only a view of
other objects can tell. Each rule reads a small ``World`` (queues, compute environments, policies,
consumable resources, the namespace's job definitions with their revision records, the namespace's
jobs and its labels) and returns ``Violation``s whose text names the field and the offending value,
e.g. ``spec.jobQueue: job queue "q1" does not exist``.

BatchJob (CREATE): the queue exists, is ENABLED (a DISABLED queue takes no new jobs; judged after
the fact, by the controller, only a job created after the queue was disabled is refused:
``submitted_while_disabled``) and its ``namespaceSelector`` selects the job's namespace; the
definition reference resolves to an ACTIVE revision; ``dependsOn`` targets exist in the namespace,
form no cycle with the existing jobs, and N_TO_N targets are array jobs of the same size;
``shareIdentifier`` is set exactly on fair-share queues and ``schedulingPriorityOverride`` only there;
the consumable resources named by the job and its definition exist; overrides match the definition
type; privileged containers, hostNetwork and host paths need ``allow*`` on the queue and on every
compute environment of the queue.
Service jobs (BatchJob CREATE with ``spec.serviceJobType``): the queue is a service job queue of that
type, ENABLED as above, whose service environment exists and is not CREATING, INVALID or DELETING
(AWS: its queues "will not accept service job submissions"; a DISABLED one accepts them, they wait);
the payload is at most 10 KiB (UTF-8 bytes) and a JSON or YAML object; ``shareIdentifier`` and
``schedulingPriority`` as for fair-share queues; on a quota-managed queue (its policy has a
``quotaSharePolicy``) ``quotaShareName`` names one of the queue's quota shares and there is no
``shareIdentifier``, elsewhere there is no ``quotaShareName``.
JobQueue (CREATE, UPDATE): its compute environments and scheduling policy exist (on UPDATE only the
references that changed are checked); a service job queue's service environment exists (when set or
changed) and is of the queue's jobQueueType; a quotaSharePolicy only on a service job queue, and
quotaShares only with one. JobDefinition (CREATE, UPDATE): its consumable resources exist
(on UPDATE only when the list changed); each multi-node range has a container image.

``references`` lists the objects a rule will look at, so that the caller can fetch those missing from
its cache before deciding (a cache may lag an object created a moment ago).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubatch.api.job_queue import COMPUTE_QUEUE_TYPE
from kubatch.core.deps import dependency_graph, find_cycle
from kubatch.core.instances import Architecture, InstanceTypeError, architecture_conflict, environment_architecture
from kubatch.core.podspec import PodSpecError, apply_container_overrides, apply_pod_overrides, parse_target_nodes
from kubatch.core.revisions import (
    ResolutionError,
    RevisionRecord,
    next_revision,
    parse_reference,
    resolve,
    spec_hash,
)

JSON = Mapping[str, Any]
RefKind = Literal[
    "JobQueue",
    "ComputeEnvironment",
    "SchedulingPolicy",
    "ConsumableResource",
    "JobDefinition",
    "BatchJob",
    "ServiceEnvironment",
]
Ref = tuple[RefKind, str]

PRIVILEGES: tuple[tuple[str, str, str], ...] = (
    ("privileged", "allowPrivileged", "privileged containers"),
    ("hostNetwork", "allowHostNetwork", "the node's network (hostNetwork)"),
    ("hostPath", "allowHostPath", "host path volumes or devices"),
)


@dataclass(frozen=True)
class Violation:
    """One reason to reject: the field (a JSON path from the object root) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class World:
    """What the rules may look at. Cluster-scoped kinds by name; definitions and jobs of the
    object's namespace by name. ``revisions`` holds the stored revision records per definition;
    ``namespace_labels`` is None when unknown (the namespaceSelector rule is then skipped).
    ``created_at`` is set when a job is judged after its creation (the controller, epoch seconds of
    its creationTimestamp), with ``disabled_since``: since when each DISABLED queue is DISABLED."""

    namespace: str = ""
    queues: dict[str, JSON] = field(default_factory=dict)
    envs: dict[str, JSON] = field(default_factory=dict)
    policies: dict[str, JSON] = field(default_factory=dict)
    consumables: dict[str, JSON] = field(default_factory=dict)
    definitions: dict[str, JSON] = field(default_factory=dict)
    revisions: dict[str, list[RevisionRecord]] = field(default_factory=dict)
    jobs: dict[str, JSON] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] | None = None
    created_at: float | None = None
    disabled_since: Mapping[str, float] = field(default_factory=dict)
    service_envs: dict[str, JSON] = field(default_factory=dict)

    def store(self, kind: RefKind) -> dict[str, JSON]:
        """The collection holding objects of ``kind``."""
        return {
            "JobQueue": self.queues,
            "ComputeEnvironment": self.envs,
            "SchedulingPolicy": self.policies,
            "ConsumableResource": self.consumables,
            "JobDefinition": self.definitions,
            "BatchJob": self.jobs,
            "ServiceEnvironment": self.service_envs,
        }[kind]

    def has(self, ref: Ref) -> bool:
        return ref[1] in self.store(ref[0])


# ---- small helpers ----------------------------------------------------------------------------------
def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _spec(obj: Any) -> Mapping[str, Any]:
    return _d(_d(obj).get("spec"))


def _array_size(job: JSON) -> int | None:
    size = _d(_spec(job).get("arrayProperties")).get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 2 else None


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector against labels (absent or empty selector = everything; an unknown
    operator matches nothing)."""
    if selector is None:
        return True
    sel = _d(selector)
    for key, value in _d(sel.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in _l(sel.get("matchExpressions")):
        e = _d(expr)
        key, op, values = _s(e.get("key")), e.get("operator"), [v for v in _l(e.get("values")) if isinstance(v, str)]
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            ok = False
        if not ok:
            return False
    return True


# ---- job definitions --------------------------------------------------------------------------------
def registered_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a JobDefinition spec that makes up a revision (everything but ``deregistered``)."""
    return {k: v for k, v in spec.items() if k != "deregistered"}


def definition_records(definition: JSON | None, stored: Iterable[RevisionRecord]) -> list[RevisionRecord]:
    """The revisions a reference can resolve to: the stored ones (all INACTIVE once the definition
    is deregistered; retired ones, kept for the jobs of a deleted definition, always) plus, when the
    definition's current spec is not its latest stored revision yet, the revision the controller is
    about to record for it (numbered after every stored one, retired ones included)."""
    spec = _spec(definition)
    deregistered = spec.get("deregistered") is True
    records = [
        RevisionRecord(r.revision, r.active and r.current and not deregistered, r.spec, r.current) for r in stored
    ]
    if definition is None:
        return records
    current = registered_spec(spec)
    latest = max((r for r in records if r.current), key=lambda r: r.revision, default=None)
    if latest is None or spec_hash(latest.spec) != spec_hash(current):
        records.append(RevisionRecord(next_revision(r.revision for r in records), not deregistered, current))
    return records


def resolve_definition(reference: Any, world: World) -> tuple[str, RevisionRecord | None, Violation | None]:
    """The revision ``spec.jobDefinition`` names: (``name:rev`` or the reference, record, violation)."""
    text = _s(reference)
    try:
        ref = parse_reference(text)
    except ValueError as e:
        return text, None, Violation("spec.jobDefinition", f"invalid job definition reference {text!r}: {e}")
    definition = world.definitions.get(ref.name)
    stored = world.revisions.get(ref.name, [])
    if definition is None:
        # Revisions left by a deleted definition serve only the jobs already pinned to them.
        return (
            text,
            None,
            Violation(
                "spec.jobDefinition", f'job definition "{ref.name}" does not exist in namespace "{world.namespace}"'
            ),
        )
    records = definition_records(definition, stored)
    try:
        record = resolve(ref, records)
    except ResolutionError:
        if ref.revision is None:
            message = f'job definition "{ref.name}" has no ACTIVE revision (it is deregistered)'
        elif any(r.revision == ref.revision for r in records):
            message = f'job definition revision "{ref}" is INACTIVE (deregistered)'
        else:
            latest = max((r.revision for r in records), default=0)
            message = f'job definition revision "{ref}" does not exist (latest revision: {latest})'
        return text, None, Violation("spec.jobDefinition", message)
    return f"{ref.name}:{record.revision}", record, None


# ---- references ---------------------------------------------------------------------------------------
def _consumable_names(entries: Any) -> list[str]:
    return [n for n in (_s(_d(e).get("consumableResource")) for e in _l(entries)) if n]


def references(kind: str, obj: JSON, world: World) -> set[Ref]:
    """Every object the rules for ``obj`` will look at, as far as ``world`` lets us know now (a
    queue's environments are known once the queue is). Fetch the missing ones and ask again."""
    spec = _spec(obj)
    refs: set[Ref] = set()
    if kind == "BatchJob":
        queue_name = _s(spec.get("jobQueue"))
        if queue_name:
            refs.add(("JobQueue", queue_name))
            refs |= _queue_references(world.queues.get(queue_name))
        if spec.get("serviceJobType"):
            return refs  # a service job names no definition, dependency or consumable
        with contextlib.suppress(ValueError):
            refs.add(("JobDefinition", parse_reference(_s(spec.get("jobDefinition"))).name))
        _, record, _ = resolve_definition(spec.get("jobDefinition"), world)
        if record is not None:
            props = _d(record.spec.get("consumableResourceProperties")).get("consumableResourceList")
            refs |= {("ConsumableResource", n) for n in _consumable_names(props)}
        override = _d(spec.get("consumableResourcePropertiesOverride")).get("consumableResourceList")
        refs |= {("ConsumableResource", n) for n in _consumable_names(override)}
        for entry in _l(spec.get("dependsOn")):
            name = _s(_d(entry).get("jobName"))
            if name:
                refs.add(("BatchJob", name))
    elif kind == "JobQueue":
        refs |= _queue_references(obj)
    elif kind == "JobDefinition":
        props = _d(spec.get("consumableResourceProperties")).get("consumableResourceList")
        refs |= {("ConsumableResource", n) for n in _consumable_names(props)}
    return refs


def _queue_references(queue: JSON | None) -> set[Ref]:
    if queue is None:
        return set()
    spec = _spec(queue)
    refs: set[Ref] = {("ComputeEnvironment", n) for n in _queue_envs(queue)}
    refs |= {("ServiceEnvironment", n) for n in _queue_service_envs(queue)}
    policy = _s(spec.get("schedulingPolicy"))
    if policy:
        refs.add(("SchedulingPolicy", policy))
    return refs


def _queue_envs(queue: JSON) -> list[str]:
    order = [_d(o) for o in _l(_spec(queue).get("computeEnvironmentOrder"))]
    return [n for n in (_s(o.get("computeEnvironment")) for o in order) if n]


def _queue_service_envs(queue: JSON) -> list[str]:
    order = [_d(o) for o in _l(_spec(queue).get("serviceEnvironmentOrder"))]
    return [n for n in (_s(o.get("serviceEnvironment")) for o in order) if n]


def _queue_type(queue: JSON) -> str:
    return _s(_spec(queue).get("jobQueueType")) or COMPUTE_QUEUE_TYPE


# ---- BatchJob -----------------------------------------------------------------------------------------
def validate_batch_job(job: JSON, world: World) -> list[Violation]:
    """Cross-object rules for a new BatchJob (module docstring)."""
    spec = _spec(job)
    if spec.get("serviceJobType"):
        return validate_service_job(job, world)
    out: list[Violation] = []
    queue_name = _s(spec.get("jobQueue"))
    queue = world.queues.get(queue_name)
    if queue is None:
        out.append(Violation("spec.jobQueue", f'job queue "{queue_name}" does not exist'))
    else:
        out += _queue_admits(queue_name, queue, world)
        out += _share_rules(spec, queue_name, queue)
        if _queue_type(queue) != COMPUTE_QUEUE_TYPE:
            out.append(
                Violation(
                    "spec.jobQueue",
                    f'job queue "{queue_name}" is a service job queue (jobQueueType {_queue_type(queue)}): '
                    "submit service jobs to it (spec.serviceJobType and spec.serviceRequestPayload)",
                )
            )
    resolved, record, problem = resolve_definition(spec.get("jobDefinition"), world)
    if problem is not None:
        out.append(problem)
    out += _dependency_rules(job, world)
    out += _consumable_rules(spec, resolved, record, world)
    if record is not None:
        out += _override_rules(spec, resolved, record.spec)
        if queue is not None:
            out += _privilege_rules(spec, resolved, record.spec, queue_name, queue, world)
    return out


def validate_service_job(job: JSON, world: World) -> list[Violation]:
    """Cross-object rules for a new service job (module docstring)."""
    from kubatch.core.service_jobs import payload_problem

    spec = _spec(job)
    out: list[Violation] = []
    kind = _s(spec.get("serviceJobType"))
    problem = payload_problem(spec.get("serviceRequestPayload"))
    if problem is not None:
        out.append(Violation("spec.serviceRequestPayload", problem))
    queue_name = _s(spec.get("jobQueue"))
    queue = world.queues.get(queue_name)
    if queue is None:
        out.append(Violation("spec.jobQueue", f'job queue "{queue_name}" does not exist'))
        return out
    out += _queue_admits(queue_name, queue, world)
    if _queue_type(queue) != kind:
        what = "a queue of compute environments" if _queue_type(queue) == COMPUTE_QUEUE_TYPE else "a service job queue"
        out.append(
            Violation(
                "spec.jobQueue",
                f'job queue "{queue_name}" is {what} of jobQueueType {_queue_type(queue)}, '
                f"not of the service job's serviceJobType {kind}",
            )
        )
        return out
    policy = world.policies.get(_s(_spec(queue).get("schedulingPolicy")))
    if quota_managed(queue, policy):
        out += _quota_share_rules(spec, queue_name, queue)
    else:
        share_name = spec.get("quotaShareName")
        if share_name is not None:
            out.append(
                Violation(
                    "spec.quotaShareName",
                    f'"{share_name}" is not allowed: job queue "{queue_name}" is not quota-managed (its scheduling '
                    "policy has no quotaSharePolicy)",
                )
            )
        out += _share_rules({**spec, "schedulingPriorityOverride": spec.get("schedulingPriority")}, queue_name, queue)
    for name in _queue_service_envs(queue):
        se = world.service_envs.get(name)
        where = f'service environment "{name}" of job queue "{queue_name}"'
        if se is None:
            out.append(Violation("spec.jobQueue", f"{where} does not exist"))
            continue
        # Without a status kubatch has not looked at it yet: CREATING. (Judged later, by the
        # controller, such a job waits a little for it instead: world.created_at is set then.)
        status = _s(_d(se.get("status")).get("status")) or ("CREATING" if world.created_at is None else "")
        if _d(se.get("metadata")).get("deletionTimestamp"):
            status = "DELETING"
        if status in ("CREATING", "INVALID", "DELETING"):
            reason = _s(_d(se.get("status")).get("statusReason"))
            text = f"{where} is {status}: its job queues do not accept service jobs"
            out.append(Violation("spec.jobQueue", text + (f" ({reason})" if reason else "")))
    renamed = "spec.schedulingPriorityOverride"  # _share_rules' name for it
    return [Violation("spec.schedulingPriority", v.message) if v.field == renamed else v for v in out]


def quota_managed(queue: JSON | None, policy: JSON | None) -> bool:
    """Whether ``queue`` is quota-managed: a service job queue whose scheduling policy (``policy``)
    has a quotaSharePolicy."""
    if queue is None or policy is None or _queue_type(queue) == COMPUTE_QUEUE_TYPE:
        return False
    return _spec(policy).get("quotaSharePolicy") is not None


def quota_share_names(queue: JSON) -> list[str]:
    """The names of a queue's quota shares (spec.quotaShares)."""
    return [n for n in (_s(_d(q).get("quotaShareName")) for q in _l(_spec(queue).get("quotaShares"))) if n]


def _quota_share_rules(spec: Mapping[str, Any], name: str, queue: JSON) -> list[Violation]:
    """A job of a quota-managed queue names one of its quota shares; it has no shareIdentifier."""
    out: list[Violation] = []
    share = spec.get("quotaShareName")
    names = quota_share_names(queue)
    if share is None:
        known = ", ".join(names) or "none yet"
        out.append(
            Violation(
                "spec.quotaShareName",
                f'required: job queue "{name}" is quota-managed: name one of its quota shares ({known})',
            )
        )
    elif share not in names:
        known = ", ".join(names) or "none"
        out.append(
            Violation("spec.quotaShareName", f'quota share "{share}" does not exist in job queue "{name}" ({known})')
        )
    if spec.get("shareIdentifier") is not None:
        out.append(
            Violation(
                "spec.shareIdentifier",
                f'"{spec.get("shareIdentifier")}" is not allowed: job queue "{name}" is quota-managed (jobs name '
                "spec.quotaShareName)",
            )
        )
    return out


def submitted_while_disabled(created_at: float | None, disabled_since: float | None) -> bool:
    """Whether a job was submitted to a queue DISABLED since ``disabled_since``: at admission
    (``created_at`` None) it is; judged later, only when it was created in a later second than the
    one the queue was disabled in (creationTimestamp has whole seconds: a job of that same second
    gets the benefit of the doubt and runs)."""
    if created_at is None or disabled_since is None:
        return True
    return created_at >= math.floor(disabled_since) + 1


def _queue_admits(name: str, queue: JSON, world: World) -> list[Violation]:
    qspec = _spec(queue)
    out: list[Violation] = []
    state = qspec.get("state", "ENABLED")
    if state != "ENABLED" and submitted_while_disabled(world.created_at, world.disabled_since.get(name)):
        out.append(
            Violation(
                "spec.jobQueue",
                f'job queue "{name}" is {state}: new jobs can' + "'t be added to the queue (queued jobs still run)",
            )
        )
    selector = qspec.get("namespaceSelector")
    labels = world.namespace_labels
    if selector is not None and labels is not None and not selector_matches(selector, labels):
        out.append(
            Violation(
                "spec.jobQueue",
                f'job queue "{name}" does not accept jobs from namespace "{world.namespace}" '
                "(its spec.namespaceSelector does not select the namespace's labels)",
            )
        )
    return out


def _share_rules(spec: Mapping[str, Any], name: str, queue: JSON) -> list[Violation]:
    policy = _s(_spec(queue).get("schedulingPolicy"))
    share = spec.get("shareIdentifier")
    out: list[Violation] = []
    if policy and share is None:
        out.append(
            Violation(
                "spec.shareIdentifier",
                f'required: job queue "{name}" is a fair-share queue (schedulingPolicy "{policy}")',
            )
        )
    if not policy and share is not None:
        out.append(
            Violation(
                "spec.shareIdentifier",
                f'"{share}" is not allowed: job queue "{name}" is a FIFO queue (no schedulingPolicy)',
            )
        )
    priority = spec.get("schedulingPriorityOverride")
    if not policy and priority is not None:
        out.append(
            Violation(
                "spec.schedulingPriorityOverride",
                f'{priority} is not allowed: job queue "{name}" is a FIFO queue (fair-share queues only)',
            )
        )
    return out


def _dependency_rules(job: JSON, world: World) -> list[Violation]:
    spec = _spec(job)
    name = _s(_d(job.get("metadata")).get("name"))
    own_size = _array_size(job)
    out: list[Violation] = []
    on_itself = False
    for i, raw in enumerate(_l(spec.get("dependsOn"))):
        entry = _d(raw)
        target = _s(entry.get("jobName"))
        if not target:
            continue
        if target == name:
            on_itself = True
            out.append(Violation(f"spec.dependsOn[{i}].jobName", f'job "{target}" cannot depend on itself'))
            continue
        dep = world.jobs.get(target)
        if dep is None:
            out.append(
                Violation(
                    f"spec.dependsOn[{i}].jobName", f'job "{target}" does not exist in namespace "{world.namespace}"'
                )
            )
            continue
        if entry.get("type") == "N_TO_N":
            size = _array_size(dep)
            if own_size is None:
                out.append(Violation(f"spec.dependsOn[{i}].type", "N_TO_N needs spec.arrayProperties on this job"))
            elif size is None:
                out.append(Violation(f"spec.dependsOn[{i}].type", f'N_TO_N needs job "{target}" to be an array job'))
            elif size != own_size:
                out.append(
                    Violation(
                        f"spec.dependsOn[{i}].type",
                        f'N_TO_N needs job "{target}" to have the same array size as this job ({size} != {own_size})',
                    )
                )
    if name and not on_itself:
        cycle = dependency_cycle(job, world.jobs.values())
        if cycle is not None:
            out.append(Violation("spec.dependsOn", "dependency cycle " + " -> ".join(f'"{n}"' for n in cycle)))
    return out


def dependency_cycle(job: JSON, existing: Iterable[JSON]) -> list[str] | None:
    """A dependency cycle through ``job`` once it joins ``existing`` (the namespace's jobs; one of the
    same name is replaced), as a closed path starting and ending at the job, or None."""
    name = _s(_d(job.get("metadata")).get("name"))
    jobs = {_s(_d(j.get("metadata")).get("name")): _dependencies_only(j) for j in existing if isinstance(j, Mapping)}
    jobs[name] = _dependencies_only(job)
    graph = dependency_graph(jobs.values())
    # Only what the new job reaches can close a cycle through it.
    reach: dict[str, list[str]] = {}
    stack = [name]
    while stack:
        node = stack.pop()
        if node in reach:
            continue
        reach[node] = [t for t in graph.get(node, []) if isinstance(t, str)]
        stack.extend(reach[node])
    if find_cycle(reach) is None or not any(name in targets for targets in reach.values()):
        return None
    # Shortest path back to the job (breadth-first).
    parent: dict[str, str] = {}
    frontier = [name]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for target in reach.get(node, []):
                if target == name:
                    path = [node]
                    while path[-1] != name:
                        path.append(parent[path[-1]])
                    return [*reversed(path), name]
                if target not in parent:
                    parent[target] = node
                    nxt.append(target)
        frontier = nxt
    return None


def _dependencies_only(job: JSON) -> JSON:
    """The job reduced to its name and well-formed ``dependsOn`` names (what the graph needs)."""
    names = [_s(_d(e).get("jobName")) for e in _l(_spec(job).get("dependsOn"))]
    return {
        "metadata": {"name": _s(_d(job.get("metadata")).get("name"))},
        "spec": {"dependsOn": [{"jobName": n} for n in names if n]},
    }


def _consumable_rules(
    spec: Mapping[str, Any], resolved: str, record: RevisionRecord | None, world: World
) -> list[Violation]:
    out: list[Violation] = []
    override = _l(_d(spec.get("consumableResourcePropertiesOverride")).get("consumableResourceList"))
    for i, entry in enumerate(override):
        name = _s(_d(entry).get("consumableResource"))
        if name and name not in world.consumables:
            out.append(
                Violation(
                    f"spec.consumableResourcePropertiesOverride.consumableResourceList[{i}].consumableResource",
                    f'consumable resource "{name}" does not exist',
                )
            )
    if record is not None:
        own = set(_consumable_names(override))
        props = _d(record.spec.get("consumableResourceProperties")).get("consumableResourceList")
        for name in _consumable_names(props):
            if name not in world.consumables and name not in own:
                out.append(
                    Violation(
                        "spec.jobDefinition",
                        f'job definition "{resolved}" needs consumable resource "{name}", which does not exist',
                    )
                )
    return out


def _override_rules(spec: Mapping[str, Any], resolved: str, definition: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    multinode = bool(definition.get("nodeProperties"))
    has_container = definition.get("containerProperties") is not None
    template = _pod_template(definition)
    if multinode:
        for key in ("containerOverrides", "podOverrides"):
            if spec.get(key) is not None:
                out.append(
                    Violation(f"spec.{key}", f'job definition "{resolved}" is multinode: use spec.nodeOverrides')
                )
        if spec.get("arrayProperties") is not None:
            out.append(
                Violation(
                    "spec.arrayProperties",
                    f'job definition "{resolved}" is multinode, and a multi-node job cannot be an array job',
                )
            )
        out += _node_override_rules(spec, resolved, _d(definition.get("nodeProperties")))
        return out
    if spec.get("nodeOverrides") is not None:
        out.append(Violation("spec.nodeOverrides", f'job definition "{resolved}" is not multinode'))
    if spec.get("containerOverrides") is not None and not has_container:
        out.append(
            Violation(
                "spec.containerOverrides",
                f'job definition "{resolved}" has no containerProperties (use spec.podOverrides)',
            )
        )
    if spec.get("podOverrides") is not None:
        if template is None:
            out.append(
                Violation(
                    "spec.podOverrides",
                    f'job definition "{resolved}" has no podProperties (use spec.containerOverrides)',
                )
            )
        else:
            out += _pod_override_names(_d(spec.get("podOverrides")), template, resolved, "spec.podOverrides")
    return out


def _pod_template(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template = props.get("podProperties")
    return template if isinstance(template, Mapping) else None


def _pod_override_names(
    overrides: Mapping[str, Any], template: Mapping[str, Any], resolved: str, path: str
) -> list[Violation]:
    out: list[Violation] = []
    for key in ("containers", "initContainers"):
        entries = [_d(c) for c in _l(template.get(key))]
        names = {_s(c.get("name")) for c in entries}
        if key == "containers" and len(entries) == 1 and not _s(entries[0].get("name")):
            names.add("main")
        for i, over in enumerate(_l(overrides.get(key))):
            name = _s(_d(over).get("name")) or "default"
            if name not in names and not (name == "default" and entries):
                out.append(
                    Violation(
                        f"{path}.{key}[{i}].name",
                        f'job definition "{resolved}" has no {key} entry named "{name}"',
                    )
                )
    return out


def _node_override_rules(spec: Mapping[str, Any], resolved: str, props: Mapping[str, Any]) -> list[Violation]:
    over = _d(spec.get("nodeOverrides"))
    num = over.get("numNodes")
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        return []
    out: list[Violation] = []
    main = props.get("mainNode", 0)
    if isinstance(main, int) and main >= num:
        out.append(
            Violation(
                "spec.nodeOverrides.numNodes",
                f'{num} is too small: job definition "{resolved}" has main node {main}',
            )
        )
    covered: list[tuple[int, int]] = []
    for entry in _l(props.get("nodeRangeProperties")):
        try:
            covered.append(parse_target_nodes(_s(_d(entry).get("targetNodes")) or ":", num))
        except PodSpecError:
            continue
    node = 0
    for lo, hi in sorted(covered):
        if lo > node:
            break
        node = max(node, hi + 1)
    if node < num:
        out.append(
            Violation(
                "spec.nodeOverrides.numNodes",
                f'{num} nodes are not all covered by the nodeRangeProperties of job definition "{resolved}" '
                f"(node {node} is not)",
            )
        )
    return out


# ---- privileges -----------------------------------------------------------------------------------------
def requested_privileges(definition: Mapping[str, Any], job_spec: Mapping[str, Any]) -> set[str]:
    """Which of privileged / hostNetwork / hostPath the job's pods would use (definition + overrides;
    every node range of a multi-node definition counts)."""
    used: set[str] = set()
    node_props = _d(definition.get("nodeProperties"))
    if node_props:
        # nodeOverrides cannot add privileges (schema): the ranges decide.
        for raw in _l(node_props.get("nodeRangeProperties")):
            entry = _d(raw)
            container = entry.get("container")
            if isinstance(container, Mapping):
                used |= _container_privileges(container, None)
            template = _pod_template(entry)
            if template is not None:
                used |= _pod_privileges(template, None)
        return used
    container = definition.get("containerProperties")
    if isinstance(container, Mapping):
        used |= _container_privileges(container, _d(job_spec.get("containerOverrides")))
    template = _pod_template(definition)
    if template is not None:
        used |= _pod_privileges(template, _d(job_spec.get("podOverrides")))
    return used


def _container_privileges(props: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> set[str]:
    merged: Mapping[str, Any] = props
    # A malformed override fails the job when its pod is built; judge the definition alone then.
    with contextlib.suppress(PodSpecError, TypeError, AttributeError, ValueError):
        merged = apply_container_overrides(props, overrides or None)
    used: set[str] = set()
    if merged.get("privileged") is True:
        used.add("privileged")
    for volume in _l(merged.get("volumes")):
        v = _d(volume)
        if "hostPath" in v or _d(v.get("host")).get("sourcePath"):
            used.add("hostPath")
    if _l(_d(merged.get("linuxParameters")).get("devices")):
        used.add("hostPath")
    return used


def _pod_privileges(template: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> set[str]:
    merged: Mapping[str, Any] = template
    with contextlib.suppress(PodSpecError, TypeError, AttributeError, ValueError):
        merged = apply_pod_overrides(template, overrides or None)
    used: set[str] = set()
    if merged.get("hostNetwork") is True:
        used.add("hostNetwork")
    if any("hostPath" in _d(v) for v in _l(merged.get("volumes"))):
        used.add("hostPath")
    for key in ("containers", "initContainers"):
        for c in _l(merged.get(key)):
            if _d(_d(c).get("securityContext")).get("privileged") is True:
                used.add("privileged")
    return used


def _privilege_rules(
    spec: Mapping[str, Any],
    resolved: str,
    definition: Mapping[str, Any],
    queue_name: str,
    queue: JSON,
    world: World,
) -> list[Violation]:
    used = requested_privileges(definition, spec)
    out: list[Violation] = []
    for flag, allow, what in PRIVILEGES:
        if flag not in used:
            continue
        refusing: list[str] = []
        if _spec(queue).get(allow) is not True:
            refusing.append(f'job queue "{queue_name}"')
        for env_name in _queue_envs(queue):
            env = world.envs.get(env_name)
            if env is None:
                refusing.append(f'compute environment "{env_name}" (it does not exist)')
            elif _spec(env).get(allow) is not True:
                refusing.append(f'compute environment "{env_name}"')
        if refusing:
            out.append(
                Violation(
                    "spec.jobDefinition",
                    f'job definition "{resolved}" uses {what} ({flag}), which needs spec.{allow}: true on '
                    + ", ".join(refusing),
                )
            )
    return out


# ---- JobQueue and JobDefinition ------------------------------------------------------------------------
def _architecture(ce: JSON) -> Architecture | None:
    """A compute environment's architecture (None: unknown, or its instance types are unusable,
    which its own status reports)."""
    try:
        return environment_architecture(ce)
    except InstanceTypeError:
        return None


def validate_job_queue(queue: JSON, world: World, old: JSON | None = None) -> list[Violation]:
    """The queue's compute environments and scheduling policy exist (on UPDATE: the changed ones),
    and its environments share one architecture (when the list is set or changed; an UNMANAGED
    environment counts with its nodeSelector's `kubernetes.io/arch`)."""
    out: list[Violation] = []
    before = set(_queue_envs(old)) if old is not None else set()
    for i, raw in enumerate(_l(_spec(queue).get("computeEnvironmentOrder"))):
        name = _s(_d(raw).get("computeEnvironment"))
        if name and name not in before and name not in world.envs:
            out.append(
                Violation(
                    f"spec.computeEnvironmentOrder[{i}].computeEnvironment",
                    f'compute environment "{name}" does not exist',
                )
            )
    order = _l(_spec(queue).get("computeEnvironmentOrder"))
    if old is None or order != _l(_spec(old).get("computeEnvironmentOrder")):
        conflict = architecture_conflict(
            {name: _architecture(world.envs[name]) for name in _queue_envs(queue) if name in world.envs}
        )
        if conflict:
            out.append(Violation("spec.computeEnvironmentOrder", conflict))
    policy = _s(_spec(queue).get("schedulingPolicy"))
    if policy and policy != _s(_spec(old).get("schedulingPolicy")) and policy not in world.policies:
        out.append(Violation("spec.schedulingPolicy", f'scheduling policy "{policy}" does not exist'))
    policy_obj = world.policies.get(policy)
    is_quota_policy = policy_obj is not None and _spec(policy_obj).get("quotaSharePolicy") is not None
    if is_quota_policy and _queue_type(queue) == COMPUTE_QUEUE_TYPE:
        out.append(
            Violation(
                "spec.schedulingPolicy",
                f'scheduling policy "{policy}" has a quotaSharePolicy: only service job queues are quota-managed',
            )
        )
    shares = _l(_spec(queue).get("quotaShares"))
    changed = (
        old is None or shares != _l(_spec(old).get("quotaShares")) or policy != _s(_spec(old).get("schedulingPolicy"))
    )
    if shares and changed and policy_obj is not None and not is_quota_policy:
        out.append(
            Violation(
                "spec.quotaShares",
                f'quota shares need a scheduling policy with a quotaSharePolicy; "{policy}" has none',
            )
        )
    if shares and changed and not policy:
        out.append(
            Violation("spec.quotaShares", "quota shares need a scheduling policy with a quotaSharePolicy (none set)")
        )
    before_se = set(_queue_service_envs(old)) if old is not None else set()
    for i, name in enumerate(_queue_service_envs(queue)):
        if name in before_se:
            continue
        se = world.service_envs.get(name)
        path = f"spec.serviceEnvironmentOrder[{i}].serviceEnvironment"
        if se is None:
            out.append(Violation(path, f'service environment "{name}" does not exist'))
            continue
        se_type = _s(_spec(se).get("serviceEnvironmentType"))
        if se_type != _queue_type(queue):
            out.append(
                Violation(
                    path,
                    f'service environment "{name}" is of serviceEnvironmentType {se_type}, the queue of jobQueueType '
                    f"{_queue_type(queue)}",
                )
            )
    return out


def validate_job_definition(definition: JSON, world: World, old: JSON | None = None) -> list[Violation]:
    """The definition's consumable resources exist (on UPDATE only when the list changed) and every
    multi-node range has a container image."""
    spec = _spec(definition)
    out: list[Violation] = []
    entries = _l(_d(spec.get("consumableResourceProperties")).get("consumableResourceList"))
    previous = _l(_d(_spec(old).get("consumableResourceProperties")).get("consumableResourceList"))
    if old is None or entries != previous:
        for i, entry in enumerate(entries):
            name = _s(_d(entry).get("consumableResource"))
            if name and name not in world.consumables:
                out.append(
                    Violation(
                        f"spec.consumableResourceProperties.consumableResourceList[{i}].consumableResource",
                        f'consumable resource "{name}" does not exist',
                    )
                )
    for i, raw in enumerate(_l(_d(spec.get("nodeProperties")).get("nodeRangeProperties"))):
        entry = _d(raw)
        container = entry.get("container")
        template = _pod_template(entry)
        path = f"spec.nodeProperties.nodeRangeProperties[{i}]"
        if isinstance(container, Mapping):
            if not _s(container.get("image")):
                out.append(Violation(f"{path}.container.image", "an image is required"))
        elif template is not None:
            for j, c in enumerate(_l(template.get("containers"))):
                if not _s(_d(c).get("image")):
                    out.append(Violation(f"{path}.podProperties.containers[{j}].image", "an image is required"))
        else:
            out.append(Violation(path, "set container or podProperties"))
    return out


def join(violations: Sequence[Violation]) -> str:
    """One admission message for several violations."""
    return "; ".join(str(v) for v in violations)
