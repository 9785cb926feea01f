"""Quota share operations against the API server, as the caller: CreateQuotaShare, UpdateQuotaShare,
DeleteQuotaShare, DescribeQuotaShare, ListQuotaShares.

A quota share is an entry of its JobQueue's ``spec.quotaShares`` (``quotas``). Create, Update and
Delete read the queue and write it back whole with the resourceVersion they read (optimistic
concurrency), again on a conflict, so concurrent changes of one queue's shares are all kept. The
CRD and the validating webhook check the result as they check ``kubectl``'s (at most 20 shares,
names unique, 1 to 5 capacity limits, a quota-managed queue: its scheduling policy has a
``quotaSharePolicy``), and their refusals come back as ClientException. Queues are cluster-scoped:
the key's identity needs ``get`` and ``update`` on ``jobqueues`` (the chart's ``kubatch-admin``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubatch.awsapi import quotas
from kubatch.awsapi.arns import JOB_QUEUE, Arns
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.protocol import JSON, Call, optional_int, optional_str, required_str
from kubatch.awsapi.resource_ops import must_get, name_page, path
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError

#: Reads and writes of one change before it gives up (each conflict: someone changed the queue).
TRIES = 10


def arns(ctx: Context) -> Arns:
    return Arns(ctx.config.region, ctx.config.account)


def _not_found(queue: str, share: str) -> ClientException:
    return ClientException(f"Quota share {share} not found in job queue {queue}.")


async def edit_shares(
    ctx: Context, queue_value: str, action: str, change: Callable[[JSON, list[JSON]], list[JSON]]
) -> JSON:
    """Replace the queue's ``spec.quotaShares`` with ``change(queue, shares)``, written with the
    resourceVersion read (read again and retried on a conflict); the queue as written."""
    for _ in range(TRIES):
        queue = await must_get(ctx.user, JOB_QUEUE, queue_value, "jobQueue", action)
        spec = dict(queue.get("spec") or {})
        shares = change(queue, [dict(s) for s in spec.get("quotaShares") or []])
        if shares:
            spec["quotaShares"] = shares
        else:
            spec.pop("quotaShares", None)
        replaced: JSON = {**queue, "spec": spec}
        replaced.pop("status", None)
        name = str(queue["metadata"]["name"])
        try:
            written: JSON = await ctx.user.request(
                "PUT", path(JOB_QUEUE, name), params={"fieldValidation": "Strict"}, body=replaced, retries=0
            )
        except ApiError as e:
            if e.status == 409:
                continue  # changed meanwhile: read again
            raise from_kube(e, action) from None
        return written
    raise ClientException(f"job queue {queue_value} is being changed concurrently; retry")


async def create_quota_share(ctx: Context, call: Call) -> JSON:
    share = quotas.new_share(call.body)
    name = str(share["quotaShareName"])

    def add(queue: JSON, shares: list[JSON]) -> list[JSON]:
        if any(s.get("quotaShareName") == name for s in shares):
            raise ClientException(f"Quota share {name} already exists in job queue {queue['metadata']['name']}.")
        return [*shares, share]

    queue = await edit_shares(ctx, required_str(call.body, "jobQueue"), "batch:CreateQuotaShare", add)
    queue_name = str(queue["metadata"]["name"])
    return {"quotaShareName": name, "quotaShareArn": quotas.share_arn(arns(ctx), queue_name, name)}


async def update_quota_share(ctx: Context, call: Call) -> JSON:
    queue_value, name = quotas.parse_share_arn(required_str(call.body, "quotaShareArn"))
    quotas.updated_share({}, call.body)  # refuses what kubatch does not have before any read

    def update(queue: JSON, shares: list[JSON]) -> list[JSON]:
        found = quotas.find(queue, name)
        if found is None:
            raise _not_found(queue_value, name)
        return [quotas.updated_share(s, call.body) if s.get("quotaShareName") == name else s for s in shares]

    queue = await edit_shares(ctx, queue_value, "batch:UpdateQuotaShare", update)
    queue_name = str(queue["metadata"]["name"])
    return {"quotaShareName": name, "quotaShareArn": quotas.share_arn(arns(ctx), queue_name, name)}


async def delete_quota_share(ctx: Context, call: Call) -> JSON:
    queue_value, name = quotas.parse_share_arn(required_str(call.body, "quotaShareArn"))

    def remove(queue: JSON, shares: list[JSON]) -> list[JSON]:
        if quotas.find(queue, name) is None:
            raise _not_found(queue_value, name)
        return [s for s in shares if s.get("quotaShareName") != name]

    await edit_shares(ctx, queue_value, "batch:DeleteQuotaShare", remove)
    return {}


async def describe_quota_share(ctx: Context, call: Call) -> JSON:
    action = "batch:DescribeQuotaShare"
    queue_value, name = quotas.parse_share_arn(required_str(call.body, "quotaShareArn"))
    queue = await must_get(ctx.user, JOB_QUEUE, queue_value, "jobQueue", action)
    share = quotas.find(queue, name)
    if share is None:
        raise _not_found(queue_value, name)
    return quotas.detail(queue, share, arns(ctx))


async def list_quota_shares(ctx: Context, call: Call) -> JSON:
    action = "batch:ListQuotaShares"
    queue = await must_get(ctx.user, JOB_QUEUE, required_str(call.body, "jobQueue"), "jobQueue", action)
    max_results = optional_int(call.body, "maxResults", low=1, high=100) or 100
    token = optional_str(call.body, "nextToken")
    listed: list[Any] = (queue.get("spec") or {}).get("quotaShares") or []
    chosen, next_token = name_page(listed, lambda s: str(s["quotaShareName"]), max_results, token)
    return {"quotaShares": [quotas.detail(queue, s, arns(ctx)) for s in chosen], "nextToken": next_token}


HANDLERS: dict[str, Handler] = {
    "CreateQuotaShare": create_quota_share,
    "UpdateQuotaShare": update_quota_share,
    "DeleteQuotaShare": delete_quota_share,
    "DescribeQuotaShare": describe_quota_share,
    "ListQuotaShares": list_quota_shares,
}
