"""Quota shares (pure): AWS's CreateQuotaShare / UpdateQuotaShare requests as entries of a JobQueue's
``spec.quotaShares``, and those entries as DescribeQuotaShare's answer and ListQuotaShares' items.

- **ARNs.** A quota share lives in its job queue: kubatch's ARN of one is
  ``arn:aws:batch:<region>:<account>:job-queue/<queue>/quota-share/<share>``, and UpdateQuotaShare,
  DeleteQuotaShare and DescribeQuotaShare take that ARN (only the queue and share names count) or
  ``<queue>/quota-share/<share>``.
- **Fields.** ``capacityLimits``, ``resourceSharingConfiguration`` and ``preemptionConfiguration``
  are the entry's own (kubatch's queue mirrors AWS's shapes). kubatch's quota shares have no
  ``state`` and no ``tags``: ``state: ENABLED`` is accepted (a share always takes jobs),
  ``DISABLED`` and tags are refused with a ClientException saying so. ``status`` is the queue's
  (VALID when it is VALID).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubatch.awsapi.arns import JOB_QUEUE, Arns, split_arn
from kubatch.awsapi.errors import ClientException

JSON = dict[str, Any]
QUOTA_SHARE = "quota-share"
#: DescribeQuotaShare's status values (QuotaShareStatus): a queue's status when it is one of them.
STATUSES = ("CREATING", "VALID", "INVALID", "UPDATING", "DELETING")
_FIELDS = ("capacityLimits", "resourceSharingConfiguration", "preemptionConfiguration")


def share_arn(arns: Arns, queue: str, share: str) -> str:
    return arns.arn(JOB_QUEUE, f"{queue}/{QUOTA_SHARE}/{share}")


def parse_share_arn(value: str) -> tuple[str, str]:
    """(queue, share) of a quota share's ARN (or ``<queue>/quota-share/<share>``)."""
    arn = split_arn(value)
    if arn is not None:
        if arn[0] != JOB_QUEUE:
            raise ClientException(f"quotaShareArn: {value} is not a quota share ARN")
        resource = arn[1]
    else:
        resource = value.removeprefix(f"{JOB_QUEUE}/")
    queue, sep, share = resource.partition(f"/{QUOTA_SHARE}/")
    if not sep or not queue or not share or "/" in share:
        raise ClientException(
            f"quotaShareArn: {value} is not a quota share ARN (arn:aws:batch:<region>:<account>:"
            "job-queue/<queue>/quota-share/<name>)"
        )
    return queue, share


def _no_state_or_tags(body: Mapping[str, Any]) -> None:
    state = body.get("state")
    if state is not None and state != "ENABLED":
        raise ClientException(
            f"state {state} is not supported by kubatch: a quota share always accepts jobs (ENABLED). "
            "To stop a share's jobs, terminate them; DeleteQuotaShare removes the share"
        )
    if body.get("tags"):
        raise ClientException(
            "tags are not supported on kubatch's quota shares (a quota share is an entry of its job queue)"
        )


def _check_fields(body: Mapping[str, Any]) -> None:
    for field in _FIELDS:
        value = body.get(field)
        if value is not None and not isinstance(value, list if field == "capacityLimits" else dict):
            raise ClientException(f"{field} must be {'a list' if field == 'capacityLimits' else 'an object'}")


def new_share(body: Mapping[str, Any]) -> JSON:
    """CreateQuotaShare's entry of ``spec.quotaShares``."""
    name = body.get("quotaShareName")
    if not isinstance(name, str) or not name:
        raise ClientException("quotaShareName is required")
    for field in _FIELDS:
        if body.get(field) is None:
            raise ClientException(f"{field} is required")
    _check_fields(body)
    _no_state_or_tags(body)
    return {"quotaShareName": name, **{f: body[f] for f in _FIELDS}}


def updated_share(share: Mapping[str, Any], body: Mapping[str, Any]) -> JSON:
    """The entry after UpdateQuotaShare: the fields it names replaced, the others kept."""
    _check_fields(body)
    _no_state_or_tags(body)
    return {**share, **{f: body[f] for f in _FIELDS if body.get(f) is not None}}


def find(queue: Mapping[str, Any], name: str) -> JSON | None:
    for share in (queue.get("spec") or {}).get("quotaShares") or []:
        if share.get("quotaShareName") == name:
            return dict(share)
    return None


def detail(queue: Mapping[str, Any], share: Mapping[str, Any], arns: Arns) -> JSON:
    """A quota share as DescribeQuotaShare and ListQuotaShares show it."""
    queue_name = str(queue["metadata"]["name"])
    status = (queue.get("status") or {}).get("status")
    sharing = share.get("resourceSharingConfiguration") or {"strategy": "RESERVE"}
    return {
        "quotaShareName": share.get("quotaShareName"),
        "quotaShareArn": share_arn(arns, queue_name, str(share.get("quotaShareName"))),
        "jobQueueArn": arns.job_queue(queue_name),
        "capacityLimits": [
            {"maxCapacity": c.get("maxCapacity"), "capacityUnit": c.get("capacityUnit")}
            for c in share.get("capacityLimits") or []
        ],
        "resourceSharingConfiguration": {
            "strategy": sharing.get("strategy", "RESERVE"),
            "borrowLimit": sharing.get("borrowLimit"),
        },
        "preemptionConfiguration": {
            "inSharePreemption": (share.get("preemptionConfiguration") or {}).get("inSharePreemption", "DISABLED")
        },
        "state": "ENABLED",
        "status": status if status in STATUSES else None,
    }
