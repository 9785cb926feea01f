"""Job queue, scheduling policy, compute environment and consumable resource operations against
the API server, as the caller: CreateJobQueue, UpdateJobQueue, DeleteJobQueue, DescribeJobQueues,
GetJobQueueSnapshot; CreateSchedulingPolicy, UpdateSchedulingPolicy, DeleteSchedulingPolicy,
DescribeSchedulingPolicies, ListSchedulingPolicies; DescribeComputeEnvironments;
CreateConsumableResource, UpdateConsumableResource, DeleteConsumableResource,
DescribeConsumableResource, ListConsumableResources.

UpdateConsumableResource (SET, ADD or REMOVE units) reads the resource and writes it back with its
resourceVersion, again on a conflict, so concurrent ADDs are all counted. Its ``clientToken`` makes
a retry harmless, as in AWS: the tokens of the last 8 hours are kept with a hash of their request
in the resource's annotation ``kubatch.dev/update-tokens``, written with the change itself; a
request whose token is there with the same payload changes nothing and answers the current total,
a token reused for another payload is refused.

These objects are cluster-scoped: the key's identity needs cluster-wide RBAC on them (the chart's
``kubatch-admin`` to change them, ``kubatch-view`` to read them). Kubatch's own rules apply as
they do to ``kubectl`` (a queue is deleted only once DISABLED, its environments share one
architecture, ...): their refusals come back as ClientException. Listings are by name, in pages of
``maxResults`` (1 to 100, default 100) with ``nextToken`` the last name of the page (``name_page``,
which ListQuotaShares and DescribeServiceEnvironments use too).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from kubatch.awsapi import resources
from kubatch.awsapi.arns import (
    COMPUTE_ENVIRONMENT,
    CONSUMABLE_RESOURCE,
    JOB_QUEUE,
    SCHEDULING_POLICY,
    Arns,
    name_of,
)
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.protocol import JSON, Call, optional_int, optional_str, required_str, string_list
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError, Kube

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KINDS = {JOB_QUEUE: ("jobqueues", "JobQueue"), SCHEDULING_POLICY: ("schedulingpolicies", "SchedulingPolicy"),
         COMPUTE_ENVIRONMENT: ("computeenvironments", "ComputeEnvironment"),
         CONSUMABLE_RESOURCE: ("consumableresources", "ConsumableResource")}  # fmt: skip
T = TypeVar("T")


def path(kind: str, name: str | None = None) -> str:
    base = f"{GROUP_PATH}/{KINDS[kind][0]}"
    return f"{base}/{name}" if name else base


def arns(ctx: Context) -> Arns:
    return Arns(ctx.config.region, ctx.config.account)


async def get(kube: Kube, kind: str, name: str, action: str) -> JSON | None:
    """The object, or None when it does not exist (or the name cannot be an object's)."""
    if not OBJECT_NAME.match(name) or len(name) > 253:
        return None
    try:
        found: JSON = await kube.get(path(kind, name))
    except ApiError as e:
        if e.status == 404:
            return None
        raise from_kube(e, action) from None
    return found


async def must_get(kube: Kube, kind: str, value: str, what: str, action: str) -> JSON:
    found = await get(kube, kind, name_of(value, kind, what), action)
    if found is None:
        raise ClientException(f"{KINDS[kind][1]} {value} not found.")
    return found


async def list_all(kube: Kube, kind: str, action: str) -> list[JSON]:
    try:
        listed = await kube.get(path(kind))
    except ApiError as e:
        raise from_kube(e, action) from None
    items: list[JSON] = listed.get("items") or []
    return sorted(items, key=lambda o: str(o["metadata"]["name"]))


async def write(kube: Kube, method: str, target: str, body: Any, action: str, content_type: str | None = None) -> JSON:
    try:
        if content_type:
            result: JSON = await kube.request(method, target, body=body, content_type=content_type, retries=0)
        else:
            result = await kube.request(method, target, params={"fieldValidation": "Strict"}, body=body, retries=0)
    except ApiError as e:
        raise from_kube(e, action) from None
    return result


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _after(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        raise ClientException("nextToken: invalid") from None


def name_page(
    items: Iterable[T], name: Callable[[T], str], max_results: int, token: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` in the order of their names: those after the name in ``token`` (a
    page's ``nextToken``), ``max_results`` at most, and the next page's token (None at the end)."""
    ordered = sorted(items, key=name)
    if token:
        after = _after(token)
        ordered = [i for i in ordered if name(i) > after]
    chosen = ordered[:max_results]
    more = len(ordered) > len(chosen) and chosen
    return chosen, _token(name(chosen[-1])) if more else None


def metadata_name(obj: JSON) -> str:
    return str(obj["metadata"]["name"])


async def describe(ctx: Context, call: Call, kind: str, names_field: str, action: str) -> tuple[list[JSON], str | None]:
    """The objects named in ``names_field`` (names or ARNs; missing ones left out), or a page of all."""
    wanted = string_list(call.body, names_field)
    max_results = optional_int(call.body, "maxResults", low=1, high=100) or 100
    token = optional_str(call.body, "nextToken")
    if wanted:
        found = [await get(ctx.user, kind, name_of(w, kind, names_field), action) for w in wanted]
        return [f for f in found if f is not None], None
    return name_page(await list_all(ctx.user, kind, action), metadata_name, max_results, token)


# ---- job queues ----------------------------------------------------------------------------------


async def create_job_queue(ctx: Context, call: Call) -> JSON:
    manifest = resources.queue_manifest(call.body)
    created = await write(ctx.user, "POST", path(JOB_QUEUE), manifest, "batch:CreateJobQueue")
    name = str(created["metadata"]["name"])
    return {"jobQueueName": name, "jobQueueArn": arns(ctx).job_queue(name)}


async def update_job_queue(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateJobQueue"
    queue = await must_get(ctx.user, JOB_QUEUE, required_str(call.body, "jobQueue"), "jobQueue", action)
    name = str(queue["metadata"]["name"])
    changes = resources.queue_spec_changes(call.body)
    if changes:
        await write(ctx.user, "PATCH", path(JOB_QUEUE, name), {"spec": changes}, action, "application/merge-patch+json")
    return {"jobQueueName": name, "jobQueueArn": arns(ctx).job_queue(name)}


async def delete_job_queue(ctx: Context, call: Call) -> JSON:
    action = "batch:DeleteJobQueue"
    queue = await must_get(ctx.user, JOB_QUEUE, required_str(call.body, "jobQueue"), "jobQueue", action)
    await delete_object(ctx.user, path(JOB_QUEUE, str(queue["metadata"]["name"])), action)
    return {}


async def delete_object(kube: Kube, target: str, action: str) -> None:
    """DELETE ``target`` (an object already gone is not an error)."""
    try:
        await kube.request("DELETE", target, retries=0)
    except ApiError as e:
        if e.status != 404:
            raise from_kube(e, action) from None


async def describe_job_queues(ctx: Context, call: Call) -> JSON:
    found, token = await describe(ctx, call, JOB_QUEUE, "jobQueues", "batch:DescribeJobQueues")
    return {"jobQueues": [resources.queue_detail(q, arns(ctx)) for q in found], "nextToken": token}


async def get_job_queue_snapshot(ctx: Context, call: Call) -> JSON:
    action = "batch:GetJobQueueSnapshot"
    queue = await must_get(ctx.user, JOB_QUEUE, required_str(call.body, "jobQueue"), "jobQueue", action)
    return resources.snapshot(queue, arns(ctx))


# ---- scheduling policies -------------------------------------------------------------------------


async def create_scheduling_policy(ctx: Context, call: Call) -> JSON:
    created = await write(
        ctx.user, "POST", path(SCHEDULING_POLICY), resources.policy_manifest(call.body), "batch:CreateSchedulingPolicy"
    )
    name = str(created["metadata"]["name"])
    return {"name": name, "arn": arns(ctx).scheduling_policy(name)}


async def update_scheduling_policy(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateSchedulingPolicy"
    policy = await must_get(ctx.user, SCHEDULING_POLICY, required_str(call.body, "arn"), "arn", action)
    spec = {k: v for k, v in (policy.get("spec") or {}).items() if k not in ("fairsharePolicy", "quotaSharePolicy")}
    spec.update(resources.policy_kind(call.body))
    replaced = {**policy, "spec": spec}
    replaced.pop("status", None)
    await write(ctx.user, "PUT", path(SCHEDULING_POLICY, str(policy["metadata"]["name"])), replaced, action)
    return {}


async def delete_scheduling_policy(ctx: Context, call: Call) -> JSON:
    action = "batch:DeleteSchedulingPolicy"
    policy = await must_get(ctx.user, SCHEDULING_POLICY, required_str(call.body, "arn"), "arn", action)
    await delete_object(ctx.user, path(SCHEDULING_POLICY, str(policy["metadata"]["name"])), action)
    return {}


async def describe_scheduling_policies(ctx: Context, call: Call) -> JSON:
    action = "batch:DescribeSchedulingPolicies"
    wanted: Sequence[str] = string_list(call.body, "arns")
    if not wanted:
        raise ClientException("arns is required")
    found = [await get(ctx.user, SCHEDULING_POLICY, name_of(a, SCHEDULING_POLICY, "arns"), action) for a in wanted]
    return {"schedulingPolicies": [resources.policy_detail(p, arns(ctx)) for p in found if p is not None]}


async def list_scheduling_policies(ctx: Context, call: Call) -> JSON:
    found, token = await describe(ctx, call, SCHEDULING_POLICY, "_none", "batch:ListSchedulingPolicies")
    return {
        "schedulingPolicies": [{"arn": arns(ctx).scheduling_policy(str(p["metadata"]["name"]))} for p in found],
        "nextToken": token,
    }


# ---- compute environments ------------------------------------------------------------------------


async def describe_compute_environments(ctx: Context, call: Call) -> JSON:
    action = "batch:DescribeComputeEnvironments"
    found, token = await describe(ctx, call, COMPUTE_ENVIRONMENT, "computeEnvironments", action)
    return {
        "computeEnvironments": [resources.environment_detail(e, arns(ctx)) for e in found],
        "nextToken": token,
    }


# ---- consumable resources ------------------------------------------------------------------------


async def create_consumable_resource(ctx: Context, call: Call) -> JSON:
    created = await write(
        ctx.user, "POST", path(CONSUMABLE_RESOURCE), resources.consumable_manifest(call.body),
        "batch:CreateConsumableResource",
    )  # fmt: skip
    name = str(created["metadata"]["name"])
    return {"consumableResourceName": name, "consumableResourceArn": arns(ctx).consumable_resource(name)}


async def update_consumable_resource(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateConsumableResource"
    value = required_str(call.body, "consumableResource")
    operation = optional_str(call.body, "operation") or "SET"
    quantity = optional_int(call.body, "quantity", low=0)
    if quantity is None:
        raise ClientException("quantity is required")
    token = optional_str(call.body, "clientToken")
    digest = hashlib.sha256(orjson.dumps([name_of(value, CONSUMABLE_RESOURCE, "consumableResource"), operation,
                                          quantity])).hexdigest()[:32]  # fmt: skip
    for _ in range(10):
        resource = await must_get(ctx.user, CONSUMABLE_RESOURCE, value, "consumableResource", action)
        name = str(resource["metadata"]["name"])
        answer = {"consumableResourceName": name, "consumableResourceArn": arns(ctx).consumable_resource(name)}
        now_ms = int(time.time() * 1000)
        tokens = resources.seen_tokens(resource, now_ms)
        current = int((resource.get("spec") or {}).get("totalQuantity") or 0)
        if token and token in tokens:
            if tokens[token].split(" ")[0] != digest:
                raise ClientException(f"clientToken {token} was used with another request")
            return {**answer, "totalQuantity": current}
        total = resources.updated_quantity(current, operation, quantity)
        metadata = dict(resource["metadata"])
        if token:
            tokens[token] = f"{digest} {now_ms + resources.TOKEN_LIFETIME_MS}"
            annotations = dict(metadata.get("annotations") or {})
            annotations[resources.ANNOTATION_UPDATE_TOKENS] = orjson.dumps(tokens).decode()
            metadata["annotations"] = annotations
        replaced = {**resource, "metadata": metadata, "spec": {**resource["spec"], "totalQuantity": total}}
        replaced.pop("status", None)
        try:
            await ctx.user.request("PUT", path(CONSUMABLE_RESOURCE, name), body=replaced, retries=0)
        except ApiError as e:
            if e.status == 409:
                continue  # changed meanwhile: read again
            raise from_kube(e, action) from None
        return {**answer, "totalQuantity": total}
    raise ClientException(f"consumable resource {value} is being changed concurrently; retry")


async def delete_consumable_resource(ctx: Context, call: Call) -> JSON:
    action = "batch:DeleteConsumableResource"
    value = required_str(call.body, "consumableResource")
    resource = await must_get(ctx.user, CONSUMABLE_RESOURCE, value, "consumableResource", action)
    await delete_object(ctx.user, path(CONSUMABLE_RESOURCE, str(resource["metadata"]["name"])), action)
    return {}


async def describe_consumable_resource(ctx: Context, call: Call) -> JSON:
    value = required_str(call.body, "consumableResource")
    action = "batch:DescribeConsumableResource"
    resource = await must_get(ctx.user, CONSUMABLE_RESOURCE, value, "consumableResource", action)
    return resources.consumable_detail(resource, arns(ctx))


async def list_consumable_resources(ctx: Context, call: Call) -> JSON:
    patterns: list[str] = []
    for entry in call.body.get("filters") or []:
        if not isinstance(entry, dict) or entry.get("name") != "CONSUMABLE_RESOURCE_NAME":
            raise ClientException("filters: the only filter is CONSUMABLE_RESOURCE_NAME")
        patterns.extend(str(v) for v in entry.get("values") or [])
    max_results = optional_int(call.body, "maxResults", low=1, high=100) or 100
    token = optional_str(call.body, "nextToken")
    objects = await list_all(ctx.user, CONSUMABLE_RESOURCE, "batch:ListConsumableResources")
    if patterns:
        objects = [o for o in objects if resources.name_matches(patterns, str(o["metadata"]["name"]))]
    chosen, next_token = name_page(objects, metadata_name, max_results, token)
    summaries = []
    for resource in chosen:
        detail = resources.consumable_detail(resource, arns(ctx))
        summaries.append({k: detail[k] for k in ("consumableResourceArn", "consumableResourceName", "totalQuantity",
                                                 "inUseQuantity", "resourceType")})  # fmt: skip
    return {"consumableResources": summaries, "nextToken": next_token}


HANDLERS: dict[str, Handler] = {
    "CreateJobQueue": create_job_queue,
    "UpdateJobQueue": update_job_queue,
    "DeleteJobQueue": delete_job_queue,
    "DescribeJobQueues": describe_job_queues,
    "GetJobQueueSnapshot": get_job_queue_snapshot,
    "CreateSchedulingPolicy": create_scheduling_policy,
    "UpdateSchedulingPolicy": update_scheduling_policy,
    "DeleteSchedulingPolicy": delete_scheduling_policy,
    "DescribeSchedulingPolicies": describe_scheduling_policies,
    "ListSchedulingPolicies": list_scheduling_policies,
    "DescribeComputeEnvironments": describe_compute_environments,
    "CreateConsumableResource": create_consumable_resource,
    "UpdateConsumableResource": update_consumable_resource,
    "DeleteConsumableResource": delete_consumable_resource,
    "DescribeConsumableResource": describe_consumable_resource,
    "ListConsumableResources": list_consumable_resources,
}
