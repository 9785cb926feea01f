"""ListJobsByConsumableResource against the API server, as the caller (``consumable_jobs`` selects
and shapes the answer).

Each call reads, as the caller and in the key's namespace: the consumable resource (to answer
``ConsumableResource <r> not found.``; an identity that may not read cluster-scoped consumable
resources skips that check), the namespace's BatchJobs (in pages of 500), its JobDefinitions and
the ControllerRevisions of their revisions (a caller who may not list them: each definition's
latest revision only). No label or field of a BatchJob says which consumable resources it needs
(they come from its definition's revision and its overrides), so every page costs a read of the
namespace's jobs, as ListJobs' pages cost a read of the queue's.
"""

from __future__ import annotations

from typing import Any

from kubatch.awsapi import consumable_jobs
from kubatch.awsapi.arns import CONSUMABLE_RESOURCE
from kubatch.awsapi.definition_ops import definitions_path, revisions_path
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.job_ops import arns, batchjobs_path
from kubatch.awsapi.protocol import JSON, Call
from kubatch.awsapi.resource_ops import path
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.revisions import LABEL_JOB_DEFINITION

ACTION = "batch:ListJobsByConsumableResource"


async def _list(kube: Kube, target: str, **params: Any) -> list[JSON]:
    items: list[JSON] = []
    cont: str | None = None
    while True:
        page: dict[str, Any] = {"limit": 500, **params}
        if cont:
            page["continue"] = cont
        listed = await kube.get(target, **page)
        items.extend(listed.get("items") or [])
        cont = (listed.get("metadata") or {}).get("continue")
        if not cont:
            return items


async def _resource_exists(kube: Kube, name: str) -> bool:
    try:
        await kube.get(path(CONSUMABLE_RESOURCE, name))
    except ApiError as e:
        if e.status == 404:
            return False
        if e.status == 403:
            return True  # not the caller's to read: the listing of its own jobs goes on
        raise from_kube(e, ACTION) from None
    return True


async def list_jobs_by_consumable_resource(ctx: Context, call: Call) -> JSON:
    query = consumable_jobs.parse_query(call.body)
    if not await _resource_exists(ctx.user, query.resource):
        raise ClientException(f"ConsumableResource {call.body['consumableResource']} not found.")
    try:
        jobs = await _list(ctx.user, batchjobs_path(ctx.namespace))
        definitions = await _list(ctx.user, definitions_path(ctx.namespace)) if jobs else []
    except ApiError as e:
        raise from_kube(e, ACTION) from None
    revisions: list[JSON] | None = None
    if jobs:
        try:
            revisions = await _list(ctx.user, revisions_path(ctx.namespace), labelSelector=LABEL_JOB_DEFINITION)
        except ApiError as e:
            if e.status != 403:
                raise from_kube(e, ACTION) from None
    records = consumable_jobs.records_by_name(definitions, revisions)
    summaries, token = consumable_jobs.select(jobs, records, query, arns(ctx))
    return {"jobs": summaries, "nextToken": token}


HANDLERS: dict[str, Handler] = {"ListJobsByConsumableResource": list_jobs_by_consumable_resource}
