"""Deleting job queues and compute environments, as AWS Batch allows it (pure).

- A JobQueue can be deleted only once it is DISABLED (AWS: "You must first disable submissions for a
  queue with the UpdateJobQueue operation"): the validating webhook refuses the DELETE of an ENABLED
  queue (``queue_deletion_refusal``). When a queue is gone, its jobs that have not started fail
  (``states.queue_deleted_reason``, applied by the lifecycle); its STARTING and RUNNING jobs finish.
- A ComputeEnvironment can be deleted only once it is DISABLED and no job queue names it (AWS: "disable
  the JQs and delete them (or detach the CE), then disable the CE, then delete it"). kubatch also lets
  the jobs still running on it finish. Until then the deletion waits on the environment's finalizer,
  which keeps serving it (``environment_deletion_blockers``, ``environment_deletion_wait``).
- A ServiceEnvironment likewise: once DISABLED and no job queue names it (AWS: "disassociate any
  service job queue and then disable the service environment"); kubatch also waits for the
  workloads still holding its capacity to end. Meanwhile it is DELETING and says what it waits for
  (``service_environment_deletion_blockers``); its finalizer goes then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def queue_deletion_refusal(queue: Mapping[str, Any]) -> str | None:
    """Why the DELETE of ``queue`` is refused, or None when it may go."""
    if ((queue.get("spec") or {}).get("state") or "ENABLED") == "DISABLED":
        return None
    name = (queue.get("metadata") or {}).get("name", "")
    return (
        f'job queue "{name}" is ENABLED: a job queue can be deleted only once it is DISABLED '
        f"(set spec.state: DISABLED first; jobs that have not started then fail, running ones finish)"
    )


def attached_queues(environment: str, queues: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The job queues whose computeEnvironmentOrder names ``environment``, sorted."""
    return sorted(
        name
        for name, queue in queues.items()
        if any(
            str(entry.get("computeEnvironment")) == environment
            for entry in (queue.get("spec") or {}).get("computeEnvironmentOrder") or []
        )
    )


def environment_deletion_blockers(
    environment: str,
    ce: Mapping[str, Any],
    queues: Mapping[str, Mapping[str, Any]],
    unfinished_pods: int,
) -> list[str]:
    """What keeps a compute environment that is being deleted from going, in the order to fix it
    (empty: it may go)."""
    blockers = []
    if ((ce.get("spec") or {}).get("state") or "ENABLED") != "DISABLED":
        blockers.append("it is ENABLED (set spec.state: DISABLED)")
    attached = attached_queues(environment, queues)
    if attached:
        names = ", ".join(attached[:10]) + (f" and {len(attached) - 10} more" if len(attached) > 10 else "")
        blockers.append(f"job queue(s) {names} still use it (remove it from their computeEnvironmentOrder)")
    if unfinished_pods:
        blockers.append(f"{unfinished_pods} job pod(s) still run on it")
    return blockers


def environment_deletion_wait(blockers: list[str]) -> str:
    """The statusReason of a compute environment whose deletion waits."""
    return "DELETE_PENDING - the compute environment is deleted once it is DISABLED, no job queue uses it and " + (
        "no job runs on it; waiting: " + "; ".join(blockers)
    )


def attached_service_queues(environment: str, queues: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The job queues whose serviceEnvironmentOrder names ``environment``, sorted."""
    return sorted(
        name
        for name, queue in queues.items()
        if any(
            str(entry.get("serviceEnvironment")) == environment
            for entry in (queue.get("spec") or {}).get("serviceEnvironmentOrder") or []
        )
    )


def service_environment_deletion_blockers(
    environment: str, se: Mapping[str, Any], queues: Mapping[str, Mapping[str, Any]], instances_in_use: int
) -> list[str]:
    """What keeps a service environment that is being deleted from going, in the order to fix it
    (empty: it may go)."""
    blockers = []
    if ((se.get("spec") or {}).get("state") or "ENABLED") != "DISABLED":
        blockers.append("it is ENABLED (set spec.state: DISABLED)")
    attached = attached_service_queues(environment, queues)
    if attached:
        names = ", ".join(attached[:10]) + (f" and {len(attached) - 10} more" if len(attached) > 10 else "")
        blockers.append(f"job queue(s) {names} still use it (delete them, or name another service environment)")
    if instances_in_use:
        blockers.append(f"service jobs still hold {instances_in_use} instance(s) on it")
    return blockers


def service_environment_deletion_wait(blockers: list[str]) -> str:
    """The statusReason of a service environment whose deletion waits."""
    return "DELETE_PENDING - the service environment is deleted once it is DISABLED, no job queue uses it and " + (
        "no service job runs on it; waiting: " + "; ".join(blockers)
    )
