"""Compute environment controller: pools, provisioning, finalizers and status, in one periodic loop.

Reads from the view: `envs` (ComputeEnvironments), `nodes` (all Nodes) and `pods` (job pods: the
label `kubatch.dev/compute-environment`, `spec.nodeName`, `status.phase`, container requests).
Per environment and sync:

- adds the finalizer `kubatch.dev/compute-environment`;
- UNMANAGED: VALID; `PoolController` labels and taints the nodes its nodeSelector picks;
- MANAGED: the demand is the requests of its pods that no node holds yet; `core.scaling.decide`
  turns demand, nodes and time into nodes to add/remove/cordon, which the environment's
  provisioner (`cluster.provisioners`: kwok nodes or a Karpenter NodePool) carries out;
- infrastructure updates (`core.updates`): a node whose `kubatch.dev/infrastructure` label is not
  the fingerprint of the current spec (or, unlabelled, whose instance or capacity type is no longer
  allowed) is replaced: idle, it is removed (kwok; Karpenter replaces drifted nodes itself); still
  running jobs, it is cordoned, tainted and annotated with the moment its jobs are terminated
  (`updatePolicy`; the job lifecycle does the terminating), and removed once idle or, as a
  backstop, `drain_grace` seconds after that moment. The environment is UPDATING meanwhile, with an
  Event `InfrastructureUpdate` when that starts and `InfrastructureUpdated` when it ends;
- deleted (deletionTimestamp): it waits, still served as before, until it is DISABLED, no job queue
  names it and no job pod on it is unfinished (``core.deletion``; its statusReason says what it
  waits for, and a Warning Event ``DeletionWaiting`` each time that changes); then DELETING, its
  nodes or NodePool are removed (UNMANAGED: our label and taint come off its nodes), then the
  finalizer goes;
- writes status: status (CREATING, VALID, UPDATING, INVALID, DELETING), statusReason,
  desiredvCpus, nodes (Ready ones), capacity {vcpus, memory, gpus} of the Ready nodes and
  observedGeneration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from kubatch.api.constants import API_VERSION
from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.provisioners import (
    LABEL_CAPACITY_TYPE,
    LABEL_INSTANCE_TYPE,
    KarpenterProvisioner,
    KwokProvisioner,
    Provisioner,
    ProvisionerError,
    capacity_type,
)
from kubatch.cluster.view import View
from kubatch.core.capacity import node_allocatable, node_ready, pool_nodes
from kubatch.core.deletion import environment_deletion_blockers, environment_deletion_wait
from kubatch.core.instances import CATALOG, InstanceTypeError, select
from kubatch.core.podspec import GPU_RESOURCE, LABEL_COMPUTE_ENVIRONMENT, PodSpecError, parse_quantity
from kubatch.core.scaling import Decision, NodeInfo, Request, ScalingSpec, decide
from kubatch.core.timestamps import iso
from kubatch.core.updates import (
    ANNOTATION_TERMINATE_JOBS_AT,
    TAINT_INFRASTRUCTURE_UPDATE,
    UpdatePolicy,
    drain_deadline,
    drain_mark,
    infrastructure_hash,
    is_replaced,
    terminate_jobs_at,
)
from kubatch.observability.events import EventRecorder
from kubatch.runtime.periodic import every
from kubatch.runtime.pools import PoolController, pool_patch
from kubatch.scheduler import Resources

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
FINALIZER = "kubatch.dev/compute-environment"
ANNOTATION_CONTROLLER = "kubatch.dev/compute-controller"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
JOIN_FAILURE = (
    "CLIENT_ERROR - Your compute environment has been INVALIDATED and scaled down because none of the "
    "nodes joined the cluster"
)
JSON = dict[str, Any]


# ---- pure helpers --------------------------------------------------------------------------------
def pod_request(pod: Mapping[str, Any]) -> Request:
    """The summed container requests of a pod (a missing request falls back to the limit)."""
    vcpus = 0.0
    mem = 0.0
    gpus = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        try:
            vcpus += float(parse_quantity(req.get("cpu", 0)))
            mem += float(parse_quantity(req.get("memory", 0))) / (1024 * 1024)
            gpus += int(parse_quantity(req.get(GPU_RESOURCE, 0)))
        except PodSpecError:
            continue
    return Request(gpus=gpus, vcpus=vcpus, memory_mib=mem, spread=gang_key(pod))


def gang_key(pod: Mapping[str, Any]) -> str:
    """A multi-node job's pods must land on distinct nodes (required pod anti-affinity)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if "kubatch.dev/node-index" in labels:
        return str(labels.get("kubatch.dev/job-id", ""))
    return ""


def gangs_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Gang keys of the unfinished pods bound to each node."""
    out: dict[str, set[str]] = defaultdict(set)
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        key = gang_key(pod)
        if node and key and (pod.get("status") or {}).get("phase") not in FINISHED_PHASES:
            out[node].add(key)
    return {k: frozenset(v) for k, v in out.items()}


def demand(pods: Iterable[Mapping[str, Any]]) -> tuple[dict[str, list[Request]], dict[str, tuple[Request, int]]]:
    """(pending requests per environment, (requests, count) of unfinished pods per node)."""
    pending: dict[str, list[Request]] = defaultdict(list)
    used: dict[str, tuple[Request, int]] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
            continue
        md = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        req = pod_request(pod)
        if node:
            have, n = used.get(node, (Request(), 0))
            used[node] = (have + req, n + 1)
            continue
        ce = (md.get("labels") or {}).get(LABEL_COMPUTE_ENVIRONMENT)
        if ce and not md.get("deletionTimestamp"):
            pending[ce].append(req)
    return pending, used


def timestamp(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def is_outdated(node: Mapping[str, Any], allowed: set[str], cap_type: str) -> bool:
    """The node's instance or capacity type is no longer what the environment's spec asks for."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_INSTANCE_TYPE) not in allowed or labels.get(LABEL_CAPACITY_TYPE, cap_type) != cap_type


def node_info(
    node: Mapping[str, Any],
    used: Mapping[str, tuple[Request, int]],
    idle_since: float | None,
    *,
    outdated: bool,
    now: float,
    spread_keys: frozenset[str] = frozenset(),
    terminate_at: float | None = None,
) -> NodeInfo:
    md = node.get("metadata") or {}
    name = str(md.get("name", ""))
    itype = str((md.get("labels") or {}).get(LABEL_INSTANCE_TYPE, ""))
    alloc = node_allocatable(node)
    if alloc.vcpus <= 0 and itype in CATALOG:  # not registered yet: it will have its type's size
        t = CATALOG[itype]
        alloc = Resources(t.vcpus, t.memory_mib, t.gpus)
    pods_alloc = ((node.get("status") or {}).get("allocatable") or {}).get("pods", "110")
    req, count = used.get(name, (Request(), 0))
    return NodeInfo(
        name=name,
        instance_type=itype,
        vcpus=alloc.vcpus,
        memory_mib=alloc.memory_mib,
        gpus=alloc.gpus,
        max_pods=int(parse_quantity(pods_alloc)),
        ready=node_ready(node),
        created=timestamp(md.get("creationTimestamp"), now),
        used=req,
        pods=count,
        idle_since=idle_since,
        outdated=outdated,
        spread_keys=spread_keys,
        terminate_at=terminate_at,
    )


def pool_stats(nodes: Iterable[Mapping[str, Any]]) -> JSON:
    """status.nodes and status.capacity from the Ready nodes of a pool."""
    ready = [n for n in nodes if node_ready(n)]
    vcpus = 0.0
    mem = gpus = 0
    for n in ready:
        a = node_allocatable(n)
        vcpus += a.vcpus
        mem += a.memory_mib
        gpus += a.gpus
    return {"nodes": len(ready), "capacity": {"vcpus": round(vcpus, 3), "memory": mem, "gpus": gpus}}


# ---- controller ----------------------------------------------------------------------------------
class ComputeController:
    """Keeps node pools, managed capacity and compute environment status current.

    `idle_seconds`: how long an idle node is kept when the environment sets no
    minScaleDownDelayMinutes. `node_ready_timeout`: a new node not Ready by then makes the environment
    INVALID. `env_filter`: only environments whose name it accepts are handled (sharding, tests).
    `manage_pools`: run the UNMANAGED pool labelling (`PoolController`) as part of each sync, and for
each node as soon as it changes.
    `controller_name`: handle only environments whose annotation `kubatch.dev/compute-controller`
    equals it (default "": the environments without that annotation), so that several controllers
    (a test's and an operator's) can share one cluster without fighting over an environment.
    `time_limit_scale`: multiplies `updatePolicy.jobExecutionTimeoutMinutes` (a testing knob, 1 in
    production; default: KUBATCH_TIME_LIMIT_SCALE, as the other time limits). `drain_grace`:
    seconds after a replaced node's deadline at which it is removed even if pods are still bound to
    it (its jobs were terminated at the deadline).
    """

    def __init__(
        self,
        kube: Kube,
        view: View,
        *,
        period: float = 2.0,
        is_leader: Callable[[], bool] | None = None,
        idle_seconds: float = 30.0,
        node_ready_timeout: float = 60.0,
        provisioners: Mapping[str, Provisioner] | None = None,
        env_filter: Callable[[str], bool] | None = None,
        manage_pools: bool = True,
        clock: Callable[[], float] = time.time,
        controller_name: str = "",
        events: EventRecorder | None = None,
        time_limit_scale: float | None = None,
        drain_grace: float = 120.0,
    ) -> None:
        self.kube = kube
        self.view = view
        self.pools = PoolController(kube, view)
        self.period = period
        self.is_leader = is_leader or (lambda: True)
        self.ready = asyncio.Event()
        self.idle_seconds = idle_seconds
        self.node_ready_timeout = node_ready_timeout
        self.provisioners: dict[str, Provisioner] = dict(
            provisioners
            or {
                "kwok": KwokProvisioner(kube),
                "karpenter": KarpenterProvisioner(kube, default_idle_seconds=idle_seconds),
            }
        )
        self.env_filter = env_filter or (lambda _name: True)
        self.manage_pools = manage_pools
        self.clock = clock
        self.gangs: dict[str, frozenset[str]] = {}
        self.controller_name = controller_name
        self.events = events
        self.deletion_waits: dict[str, str] = {}  # environment -> what its deletion waits for (last announced)
        self.idle_since: dict[str, float] = {}  # node -> since when it has run no pod
        self.decisions: dict[str, Decision] = {}  # environment -> last decision
        if time_limit_scale is None:
            time_limit_scale = float(os.environ.get("KUBATCH_TIME_LIMIT_SCALE", "1") or 1)
        self.time_limit_scale = time_limit_scale
        self.drain_grace = drain_grace

    async def run(self) -> None:
        periodic = every(
            self.period, self.sync, ready=self.ready, is_leader=self.is_leader, log=log, what="compute environment sync"
        )
        if not self.manage_pools:
            await periodic
            return
        # A node that changes gets its pool membership at once, not at the next periodic sync.
        await asyncio.gather(periodic, self.pools.run_nudged(self.ready, self.is_leader))

    async def sync(self) -> None:
        if self.manage_pools:
            await self.pools.sync()
        now = self.clock()
        pods = [p for by_name in list(self.view.pods.values()) for p in list(by_name.values())]
        pending, used = demand(pods)
        unfinished = Counter(
            str(((p.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPUTE_ENVIRONMENT))
            for p in pods
            if (p.get("status") or {}).get("phase") not in FINISHED_PHASES
        )
        self.gangs = gangs_by_node(pods)
        self._track_idle(used, now)
        for name, ce in sorted(self.view.envs.items()):
            annotations = (ce.get("metadata") or {}).get("annotations") or {}
            if not self.env_filter(name) or annotations.get(ANNOTATION_CONTROLLER, "") != self.controller_name:
                continue
            try:
                await self.sync_env(name, ce, pending.get(name, []), used, now, unfinished=unfinished.get(name, 0))
            except ApiError as e:
                log.warning("compute environment %s: %s", name, e)

    def _track_idle(self, used: Mapping[str, tuple[Request, int]], now: float) -> None:
        for name in list(self.idle_since):
            if name not in self.view.nodes or name in used:
                del self.idle_since[name]
        for name in self.view.nodes:
            if name not in used:
                self.idle_since.setdefault(name, now)

    # ---- one environment -------------------------------------------------------------------------
    async def sync_env(
        self,
        name: str,
        ce: JSON,
        pending: list[Request],
        used: Mapping[str, tuple[Request, int]],
        now: float,
        *,
        unfinished: int = 0,
    ) -> None:
        md = ce.get("metadata") or {}
        waiting = None
        if md.get("deletionTimestamp"):
            blockers = environment_deletion_blockers(name, ce, self.view.queues, unfinished)
            if not blockers or FINALIZER not in (md.get("finalizers") or []):
                self.deletion_waits.pop(name, None)
                await self._delete(name, ce)
                return
            # AWS deletes only a DISABLED environment no queue uses; kubatch also lets its jobs
            # finish. Until then it is served as before, and says what it waits for.
            waiting = environment_deletion_wait(blockers)
            self._announce_wait(name, ce, waiting)
        elif FINALIZER not in (md.get("finalizers") or []):
            updated = await self._set_finalizers(ce, [*(md.get("finalizers") or []), FINALIZER])
            if updated is None:
                return
            ce = updated
        spec = ce.get("spec") or {}
        members = pool_nodes(name, self.view.nodes)
        if spec.get("type") == "UNMANAGED":
            want: JSON = {"status": "VALID", "statusReason": "", **pool_stats(members)}
        else:
            want = await self._sync_managed(name, ce, members, pending, used, now)
        want["observedGeneration"] = md.get("generation")
        if waiting is not None:
            own = want.get("statusReason")
            want["statusReason"] = f"{waiting} ({own})" if own else waiting
        await self._write_status(name, ce, want)

    def _announce_wait(self, name: str, ce: JSON, waiting: str) -> None:
        """A Warning Event on the environment each time what its deletion waits for changes."""
        if self.deletion_waits.get(name) == waiting:
            return
        self.deletion_waits[name] = waiting
        log.info("compute environment %s: deletion waits: %s", name, waiting)
        if self.events is not None:
            obj = {"apiVersion": API_VERSION, "kind": "ComputeEnvironment", **ce}
            self.events.record(obj, "DeletionWaiting", waiting, type_="Warning")

    async def _sync_managed(
        self,
        name: str,
        ce: JSON,
        members: list[Mapping[str, Any]],
        pending: list[Request],
        used: Mapping[str, tuple[Request, int]],
        now: float,
    ) -> JSON:
        spec = ce.get("spec") or {}
        cr = spec.get("computeResources") or {}
        prev = ce.get("status") or {}
        generation = (ce.get("metadata") or {}).get("generation")
        stats = pool_stats(members)
        min_vcpus = int(cr.get("minvCpus") or 0)

        def invalid(reason: str) -> JSON:
            return {"status": "INVALID", "statusReason": reason, "desiredvCpus": min_vcpus, **stats}

        provisioner = self.provisioners.get(str(cr.get("provisioner") or "kwok"))
        if provisioner is None:
            return invalid(f"CLIENT_ERROR - unknown provisioner {cr.get('provisioner')!r}")
        sticky = (
            prev.get("status") == "INVALID"
            and str(prev.get("statusReason") or "").startswith(JOIN_FAILURE)
            and prev.get("observedGeneration") == generation
        )
        try:
            selection = select(cr.get("instanceTypes"))
            _ = selection.architecture  # raises MixedArchitectures
            if provisioner.manages_nodes:
                # kubatch sizes the nodes itself: every type must be in its catalogue (Karpenter
                # knows every EC2 type, and sizing uses the catalogue's part of the list).
                selection.require_known(f"the {provisioner.name} provisioner sizes nodes from it")
            sizing = ScalingSpec.from_resources(
                cr,
                default_idle_seconds=self.idle_seconds,
                ready_timeout=self.node_ready_timeout if provisioner.manages_nodes else float("inf"),
                scale_out=not sticky and provisioner.manages_nodes,
                instance_types=selection.known,
                drain_grace=self.drain_grace,
            )
            await provisioner.ensure(ce)
        except (InstanceTypeError, ProvisionerError) as e:
            return invalid(f"CLIENT_ERROR - {e}")
        allowed = {t.name for t in sizing.instance_types}
        cap_type = capacity_type(ce)
        current = infrastructure_hash(spec)
        replaced = {
            str(n["metadata"]["name"]): is_replaced(
                n, current, fallback=provisioner.manages_nodes and is_outdated(n, allowed, cap_type)
            )
            for n in members
        }
        members, deadlines = await self._mark_replaced(name, ce, members, replaced, used, now)
        infos = [
            node_info(
                n,
                used,
                self.idle_since.get(str(n["metadata"]["name"])),
                outdated=replaced[str(n["metadata"]["name"])],
                now=now,
                spread_keys=self.gangs.get(str(n["metadata"]["name"]), frozenset()),
                terminate_at=deadlines.get(str(n["metadata"]["name"])),
            )
            for n in members
        ]
        decision = decide(sizing, infos, pending, now)
        self.decisions[name] = decision
        outdated = {i.name for i in infos if i.outdated} - set(decision.remove)
        if provisioner.manages_nodes:
            try:
                await self._apply(ce, provisioner, decision, members)
            except ProvisionerError as e:
                return invalid(f"CLIENT_ERROR - {e}")
        want: JSON = {"desiredvCpus": decision.desired_vcpus, **stats}
        if decision.failed:
            reason = f"{JOIN_FAILURE} within {self.node_ready_timeout:g}s (not Ready: {', '.join(decision.failed)})"
            log.warning("compute environment %s: %s", name, reason)
            return {**want, "status": "INVALID", "statusReason": reason}
        if sticky:
            return {**want, "status": "INVALID", "statusReason": prev.get("statusReason")}
        if any(i.outdated for i in infos):
            # Also the sync that removes the last idle node of the earlier spec says UPDATING once,
            # so that every infrastructure update is seen (and announced) as one.
            reason = f"infrastructure update: {len(outdated)} node(s) of the earlier spec draining"
            pending_deadlines = [deadlines[n] for n in outdated if n in deadlines]
            if pending_deadlines:
                reason += f"; jobs still running there are terminated at {iso(min(pending_deadlines))}"
            if prev.get("status") != "UPDATING":
                self._announce_update(ce, UpdatePolicy.from_spec(spec), len({i.name for i in infos if i.outdated}))
            return {**want, "status": "UPDATING", "statusReason": reason}
        if prev.get("status") == "UPDATING":
            self._record(ce, "InfrastructureUpdated", "Infrastructure update done: every node runs the current spec")
        creating = prev.get("status") in (None, "", "CREATING")
        if creating and provisioner.manages_nodes and stats["capacity"]["vcpus"] < min_vcpus:
            return {**want, "status": "CREATING", "statusReason": f"waiting for {min_vcpus} vCPUs of Ready nodes"}
        return {**want, "status": "VALID", "statusReason": ""}

    def _record(self, ce: JSON, reason: str, message: str) -> None:
        log.info("compute environment %s: %s", (ce.get("metadata") or {}).get("name"), message)
        if self.events is not None:
            self.events.record({"apiVersion": API_VERSION, "kind": "ComputeEnvironment", **ce}, reason, message)

    def _announce_update(self, ce: JSON, policy: UpdatePolicy, nodes: int) -> None:
        message = f"Infrastructure update: {nodes} node(s) of the earlier spec are replaced; new jobs go to new nodes"
        if policy.terminate_jobs_on_update:
            message += "; running jobs there are terminated at once (updatePolicy.terminateJobsOnUpdate)"
        else:
            message += (
                f"; running jobs there may run {policy.job_execution_timeout_minutes} more minute(s) "
                "(updatePolicy.jobExecutionTimeoutMinutes), then they are terminated"
            )
        self._record(ce, "InfrastructureUpdate", message)

    async def _mark_replaced(
        self,
        name: str,
        ce: JSON,
        members: list[Mapping[str, Any]],
        replaced: Mapping[str, bool],
        used: Mapping[str, tuple[Request, int]],
        now: float,
    ) -> tuple[list[Mapping[str, Any]], dict[str, float]]:
        """Cordon, taint and annotate the replaced nodes that still run jobs with the moment their
        jobs are terminated (kept from an earlier sync or process: the annotation is the record);
        take the marks off a node that is current again (the spec went back). Returns the members as
        they are now and the deadlines by node."""
        policy = UpdatePolicy.from_spec(ce.get("spec") or {})
        out: list[Mapping[str, Any]] = []
        deadlines: dict[str, float] = {}
        for node in members:
            node_name = str(node["metadata"]["name"])
            existing = terminate_jobs_at(node)
            patch: JSON | None = None
            if replaced.get(node_name) and node_name in used:
                deadline = drain_deadline(existing, policy, now, scale=self.time_limit_scale)
                deadlines[node_name] = deadline
                patch = drain_mark(node, name, deadline)
                if patch is not None and existing is None:
                    log.info(
                        "compute environment %s: node %s replaced; its jobs are terminated at %s",
                        name,
                        node_name,
                        iso(deadline),
                    )
            elif replaced.get(node_name) and existing is not None:
                deadlines[node_name] = existing
            elif not replaced.get(node_name) and existing is not None:
                taints = [
                    t
                    for t in (node.get("spec") or {}).get("taints") or []
                    if t.get("key") != TAINT_INFRASTRUCTURE_UPDATE
                ]
                patch = {
                    "metadata": {"annotations": {ANNOTATION_TERMINATE_JOBS_AT: None}},
                    "spec": {"unschedulable": None, "taints": taints},
                }
            if patch is None:
                out.append(node)
                continue
            try:
                updated = await self.kube.merge_patch(f"/api/v1/nodes/{node_name}", patch)
            except ApiError as e:
                if e.status != 404:
                    raise
                continue
            self.view.on_node("MODIFIED", updated)
            self._mark_jobs_on(node_name)
            out.append(updated)
        return out, deadlines

    def _mark_jobs_on(self, node_name: str) -> None:
        """The jobs with a pod on ``node_name`` look at its new deadline (or its lifted one)."""
        for key, pods in list(self.view.pods.items()):
            if any((p.get("spec") or {}).get("nodeName") == node_name for p in pods.values()):
                self.view.mark(key)

    async def _apply(
        self, ce: JSON, provisioner: Provisioner, decision: Decision, members: list[Mapping[str, Any]]
    ) -> None:
        name = str(ce["metadata"]["name"])
        cordoned = {str(n["metadata"]["name"]) for n in members if (n.get("spec") or {}).get("unschedulable")}
        to_cordon = [n for n in decision.cordon if n not in cordoned]
        if to_cordon:
            for node in await provisioner.cordon(ce, to_cordon):
                self.view.on_node("MODIFIED", node)
        if decision.remove:
            log.info("compute environment %s: removing nodes %s", name, ", ".join(decision.remove))
            await provisioner.remove_nodes(ce, decision.remove)
            for node_name in decision.remove:
                self.view.on_node("DELETED", {"metadata": {"name": node_name}})
                self.idle_since.pop(node_name, None)
        if decision.add:
            log.info("compute environment %s: adding nodes %s", name, decision.add_counts)
            for node in await provisioner.add_nodes(ce, [CATALOG[t] for t in decision.add]):
                self.view.on_node("ADDED", node)

    # ---- deletion --------------------------------------------------------------------------------
    async def _delete(self, name: str, ce: JSON) -> None:
        md = ce.get("metadata") or {}
        if FINALIZER not in (md.get("finalizers") or []):
            return
        if (ce.get("status") or {}).get("status") != "DELETING":
            await self._write_status(name, ce, {"status": "DELETING", "statusReason": "removing the nodes"})
        spec = ce.get("spec") or {}
        if spec.get("type") == "UNMANAGED":
            done = True
            for node in pool_nodes(name, self.view.nodes):
                done = False
                patch = pool_patch(node, None, {name})
                if patch is None:
                    continue
                try:
                    self.view.on_node(
                        "MODIFIED", await self.kube.merge_patch(f"/api/v1/nodes/{node['metadata']['name']}", patch)
                    )
                except ApiError as e:
                    if e.status != 404:
                        raise
        else:
            cr = spec.get("computeResources") or {}
            provisioner = self.provisioners.get(str(cr.get("provisioner") or "kwok"))
            done = provisioner is None or await provisioner.cleanup(ce)
        if done:
            current = self.view.envs.get(name, ce)
            await self._set_finalizers(current, [f for f in (md.get("finalizers") or []) if f != FINALIZER])
            self.decisions.pop(name, None)
            log.info("compute environment %s: deleted", name)

    # ---- writes ----------------------------------------------------------------------------------
    async def _set_finalizers(self, ce: JSON, finalizers: list[str]) -> JSON | None:
        md = ce.get("metadata") or {}
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": md.get("resourceVersion")}}
        try:
            updated = await self.kube.merge_patch(f"{GROUP_PATH}/computeenvironments/{md.get('name')}", body)
        except ApiError as e:
            if e.status in (404, 409):
                return None  # gone, or changed since we read it: next sync
            raise
        gone = (updated.get("metadata") or {}).get("deletionTimestamp") and not updated["metadata"].get("finalizers")
        self.view.on_named(self.view.envs, "DELETED" if gone else "MODIFIED", updated)
        return updated

    async def _write_status(self, name: str, ce: JSON, want: JSON) -> None:
        have = ce.get("status") or {}
        if all(have.get(k) == v for k, v in want.items()):
            return
        try:
            updated = await self.kube.merge_patch(f"{GROUP_PATH}/computeenvironments/{name}/status", {"status": want})
        except ApiError as e:
            if e.status == 404:
                return
            raise
        if (have.get("status"), have.get("statusReason")) != (want.get("status"), want.get("statusReason")):
            log.info("compute environment %s: %s %s", name, want.get("status"), want.get("statusReason") or "")
        self.view.on_named(self.view.envs, "MODIFIED", updated)
