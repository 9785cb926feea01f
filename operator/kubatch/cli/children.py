"""Addressing jobs, array children (``name:7``) and multi-node nodes (``name#2``), and their pods.

Children have no objects of their own: their state comes from the parent's compact status
(``status.arrayProperties``: ``indexes``, ``attempts``, ``exitCodes``, ``statusReasons``, each a map
from a value to index ranges) and nodes from ``status.nodeProperties.nodes``. Pure functions on dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.core.arrays import IndexSet
from kubatch.core.job_ids import job_id
from kubatch.core.podspec import pod_name

JSON = dict[str, Any]
STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
ACTIVE = frozenset({"STARTING", "RUNNING"})
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
_ADDRESS = re.compile(r"^(?P<name>[^:#\s]+)(?::(?P<index>\d+)|#(?P<node>\d+))?$")


@dataclass(frozen=True)
class JobAddress:
    """``name``, ``name:index`` (array child) or ``name#node`` (multi-node node)."""

    name: str
    index: int | None = None
    node: int | None = None

    def __str__(self) -> str:
        if self.index is not None:
            return f"{self.name}:{self.index}"
        if self.node is not None:
            return f"{self.name}#{self.node}"
        return self.name


def parse_address(text: str) -> JobAddress:
    """Parse ``name``, ``name:7`` or ``name#2``; ValueError on anything else."""
    m = _ADDRESS.match(text.strip())
    if not m:
        raise ValueError(f"invalid job address {text!r}: expected NAME, NAME:INDEX or NAME#NODE")
    index, node = m.group("index"), m.group("node")
    return JobAddress(m.group("name"), int(index) if index else None, int(node) if node else None)


def range_lookup(ranges: Mapping[str, Any] | None, index: int) -> str | None:
    """The key of ``{value: "0-40,52"}`` whose ranges hold ``index`` (malformed ranges are skipped)."""
    for key, text in (ranges or {}).items():
        try:
            if index in IndexSet.parse(str(text) if text is not None else ""):
                return str(key)
        except ValueError:
            continue
    return None


def current_attempt(status: Mapping[str, Any]) -> int:
    """Number of the latest attempt (0 = none yet): ``attemptCount``, else derived from ``attempts``."""
    count = status.get("attemptCount")
    if isinstance(count, int):
        return count
    finished = len(status.get("attempts") or [])
    return finished + 1 if status.get("status") in ACTIVE else finished


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def child_view(job: Mapping[str, Any], index: int) -> JSON:
    """The state of array child ``index``, read from the parent's compact status."""
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    name = meta.get("name", "")
    ap = status.get("arrayProperties") or {}
    size = ap.get("size") or (spec.get("arrayProperties") or {}).get("size")
    if not size:
        raise ValueError(f'batchjob "{name}" is not an array job')
    if index >= int(size):
        raise ValueError(f'batchjob "{name}" has array indexes 0-{int(size) - 1}; {index} is out of range')
    state = range_lookup(ap.get("indexes"), index)
    reason = range_lookup(ap.get("statusReasons"), index)
    parent = status.get("status") or "SUBMITTED"
    if state is None and (parent == "SUBMITTED" or (not ap.get("indexes") and parent in TERMINAL)):
        state = parent  # no per-child state yet (or the parent ended before any child): all share it
        reason = reason or (status.get("statusReason") if parent == "FAILED" else None)
    finished = _int(range_lookup(ap.get("attempts"), index)) or 0
    attempt = finished + 1 if state in ACTIVE else finished
    jid = job_id(job)
    return {
        "jobName": f"{name}:{index}",
        "jobId": f"{jid}:{index}" if jid else None,
        "namespace": meta.get("namespace"),
        "status": state,
        "statusReason": reason,
        "jobQueue": spec.get("jobQueue"),
        "jobDefinition": status.get("jobDefinition") or spec.get("jobDefinition"),
        "computeEnvironment": status.get("computeEnvironment"),
        "arrayProperties": {"index": index, "size": int(size)},
        "finishedAttempts": finished,
        "attempt": attempt or None,
        "exitCode": _int(range_lookup(ap.get("exitCodes"), index)),
        "podName": pod_name(name, attempt, array_index=index) if attempt else None,
    }


def node_view(job: Mapping[str, Any], node: int) -> JSON:
    """The state of node ``node`` of a multi-node job, from ``status.nodeProperties``."""
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    name = meta.get("name", "")
    np = status.get("nodeProperties") or {}
    num = np.get("numNodes") or (spec.get("nodeOverrides") or {}).get("numNodes")
    if not np and not spec.get("nodeOverrides"):
        raise ValueError(f'batchjob "{name}" is not a multi-node job (or kubatch has not started it yet)')
    if num and node >= int(num):
        raise ValueError(f'batchjob "{name}" has nodes 0-{int(num) - 1}; {node} is out of range')
    entry: Mapping[str, Any] = next((n for n in np.get("nodes") or [] if _int(n.get("nodeIndex")) == node), {})
    attempt = current_attempt(status)
    pod = entry.get("podName") or (pod_name(name, attempt, node_index=node) if attempt else None)
    jid = job_id(job)
    return {
        "jobName": f"{name}#{node}",
        "jobId": f"{jid}#{node}" if jid else None,
        "namespace": meta.get("namespace"),
        "status": entry.get("status") or range_lookup(np.get("indexes"), node),
        "jobQueue": spec.get("jobQueue"),
        "jobDefinition": status.get("jobDefinition") or spec.get("jobDefinition"),
        "nodeProperties": {
            "nodeIndex": node,
            "numNodes": num,
            "mainNode": np.get("mainNode"),
            "isMainNode": np.get("mainNode") == node,
        },
        "attempt": attempt or None,
        "exitCode": _int(entry.get("exitCode")),
        "podName": pod,
        "nodeName": entry.get("nodeName"),
    }


def attempt_pod(job: Mapping[str, Any], address: JobAddress, attempt: int | None = None) -> tuple[str, int]:
    """The pod name of an attempt (default: the latest) of a job, child or node, and its number."""
    name = (job.get("metadata") or {}).get("name", address.name)
    status = job.get("status") or {}
    if address.index is not None:
        view = child_view(job, address.index)
        n = attempt or view["attempt"]
        if not n:
            raise ValueError(f"{address} has not started an attempt yet (status {view['status'] or 'unknown'})")
        return pod_name(name, n, array_index=address.index), n
    if address.node is not None:
        view = node_view(job, address.node)
        n = attempt or view["attempt"]
        if not n:
            raise ValueError(f"{address} has not started an attempt yet")
        if n == view["attempt"] and view["podName"]:
            return str(view["podName"]), n
        return pod_name(name, n, node_index=address.node), n
    n = attempt or current_attempt(status)
    if not n:
        raise ValueError(f"{address} has not started an attempt yet (status {status.get('status') or 'SUBMITTED'})")
    attempts = status.get("attempts") or []
    recorded = ((attempts[n - 1].get("container") or {}).get("podName")) if n <= len(attempts) else None
    return str(recorded or pod_name(name, n)), n
