"""Tags: TagResource, UntagResource and ListTagsForResource on ``/v1/tags/{resourceArn}``, as the
caller.

A resource's tags are its object's ``spec.tags``. Job queues, scheduling policies and compute
environments are tagged and untagged in place (a merge patch of ``spec.tags``). A job's and a job
definition revision's tags are listed but not changed: a BatchJob's spec is immutable once
submitted, and a change of a JobDefinition's spec registers a new revision, where AWS tags the
revision in place; both are refused with a ClientException that says so.
"""

from __future__ import annotations

from typing import Any

from kubatch.awsapi import definitions, resource_ops
from kubatch.awsapi.arns import (
    COMPUTE_ENVIRONMENT,
    JOB,
    JOB_DEFINITION,
    JOB_QUEUE,
    SCHEDULING_POLICY,
    split_arn,
)
from kubatch.awsapi.definition_ops import definitions_path, revisions_path
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.job_ops import find_job
from kubatch.awsapi.jobs import JobRef
from kubatch.awsapi.protocol import JSON, Call, string_map
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError
from kubatch.core.revisions import LABEL_JOB_DEFINITION

TAGGABLE_IN_PLACE = (JOB_QUEUE, SCHEDULING_POLICY, COMPUTE_ENVIRONMENT)


def _resource(call: Call) -> tuple[str, str]:
    arn = call.resource_arn or ""
    parsed = split_arn(arn) if arn.startswith("arn:") else None
    if parsed is None or parsed[0] not in (*TAGGABLE_IN_PLACE, JOB, JOB_DEFINITION):
        raise ClientException(
            f"{arn} is not the ARN of a job, job definition, job queue, scheduling policy or compute environment"
        )
    return parsed


async def list_tags_for_resource(ctx: Context, call: Call) -> JSON:
    kind, name = _resource(call)
    action = "batch:ListTagsForResource"
    if kind in TAGGABLE_IN_PLACE:
        obj = await resource_ops.must_get(ctx.user, kind, name, "resourceArn", action)
        return {"tags": (obj.get("spec") or {}).get("tags") or {}}
    if kind == JOB:
        ref = JobRef.parse(name)
        job = await find_job(ctx, JobRef(ref.job_id))
        return {"tags": (job.get("spec") or {}).get("tags") or {}}
    return {"tags": await _definition_tags(ctx, name, action)}


async def _definition_tags(ctx: Context, value: str, action: str) -> dict[str, Any]:
    _, obj, revision = definitions.reference(value, "resourceArn")
    try:
        definition = await ctx.user.get(definitions_path(ctx.namespace, obj))
    except ApiError as e:
        if e.status == 404:
            raise ClientException(f"JobDefinition {value} not found.") from None
        raise from_kube(e, action) from None
    latest = (definition.get("status") or {}).get("revision")
    if revision is None or latest is None or revision == int(latest):
        tags: dict[str, Any] = (definition.get("spec") or {}).get("tags") or {}
        return tags
    try:
        listed = await ctx.user.get(revisions_path(ctx.namespace), labelSelector=f"{LABEL_JOB_DEFINITION}={obj}")
    except ApiError as e:
        raise from_kube(e, action) from None
    for cr in listed.get("items") or []:
        if int(cr.get("revision") or 0) == revision:
            found: dict[str, Any] = ((cr.get("data") or {}).get("spec") or {}).get("tags") or {}
            return found
    raise ClientException(f"JobDefinition {value} not found.")


def _in_place(kind: str, verb: str) -> None:
    if kind == JOB:
        raise ClientException(
            f"{verb}: a job's tags are set at submission (SubmitJob's tags); kubatch jobs are immutable"
        )
    if kind == JOB_DEFINITION:
        raise ClientException(
            f"{verb}: a job definition's tags are part of its revision in kubatch; register a new revision with them"
        )


async def tag_resource(ctx: Context, call: Call) -> JSON:
    kind, name = _resource(call)
    _in_place(kind, "TagResource")
    tags = string_map(call.body, "tags")
    if not tags:
        raise ClientException("tags is required")
    obj = await resource_ops.must_get(ctx.user, kind, name, "resourceArn", "batch:TagResource")
    await resource_ops.write(
        ctx.user, "PATCH", resource_ops.path(kind, str(obj["metadata"]["name"])), {"spec": {"tags": tags}},
        "batch:TagResource", "application/merge-patch+json",
    )  # fmt: skip
    return {}


async def untag_resource(ctx: Context, call: Call) -> JSON:
    kind, name = _resource(call)
    _in_place(kind, "UntagResource")
    keys = call.query_values("tagKeys")
    if not keys:
        raise ClientException("tagKeys is required")
    obj = await resource_ops.must_get(ctx.user, kind, name, "resourceArn", "batch:UntagResource")
    await resource_ops.write(
        ctx.user, "PATCH", resource_ops.path(kind, str(obj["metadata"]["name"])),
        {"spec": {"tags": dict.fromkeys(keys)}}, "batch:UntagResource", "application/merge-patch+json",
    )  # fmt: skip
    return {}


HANDLERS: dict[str, Handler] = {
    "ListTagsForResource": list_tags_for_resource,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
}
