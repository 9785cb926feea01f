"""Service environment and service job operations against the API server, as the caller:
CreateServiceEnvironment, UpdateServiceEnvironment, DeleteServiceEnvironment,
DescribeServiceEnvironments; SubmitServiceJob, DescribeServiceJob, ListServiceJobs,
TerminateServiceJob, TerminateServiceJobs, UpdateServiceJob.

A service environment is a ServiceEnvironment (cluster-scoped: the key's identity needs cluster-wide
RBAC on ``serviceenvironments``); an update is a merge patch of what it names (``state``,
``capacityLimits``). DeleteServiceEnvironment refuses, as AWS does, an environment that is still
ENABLED or still used by a job queue (``status.jobQueues``); otherwise it deletes the object, and
kubatch's finalizer keeps it DELETING until no service job holds its capacity.

A service job is a BatchJob with ``serviceJobType`` and ``serviceRequestPayload`` in the key's
namespace (``services``: names, jobId label, clientToken). SubmitServiceJob checks first that the
queue exists (``JobQueue <q> not found.``, the server's cached lookup of ``job_ops``); the validating
webhook and the CRD check the rest (a service queue of the job's type, ENABLED, a usable
environment, the quota share, ...), and their refusals come back as ClientException. Service jobs
are found by jobId as ``job_ops`` finds jobs; a jobId of a job that is not a service job is not
found (``Job <id> not found.``). TerminateServiceJob sets ``spec.terminate`` (kubatch then fails the
job and deletes its workload; a job already terminated is left as it is); UpdateServiceJob patches
``spec.schedulingPriority``, which kubatch lets change after submission.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from kubatch.awsapi import jobs, services
from kubatch.awsapi.arns import Arns
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.job_ops import (
    batchjobs_path,
    create_job,
    find_jobs,
    list_namespace_jobs,
    queue_exists,
    stop_many,
)
from kubatch.awsapi.jobs import JobRef
from kubatch.awsapi.listing import created_within, page, sort_key
from kubatch.awsapi.protocol import JSON, Call, optional_int, optional_str, required_str, string_list
from kubatch.awsapi.resource_ops import OBJECT_NAME, delete_object, metadata_name, name_page, write
from kubatch.awsapi.resources import SERVICE_ENVIRONMENT
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError, Kube

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"


def arns(ctx: Context) -> Arns:
    return Arns(ctx.config.region, ctx.config.account)


def environment_path(name: str | None = None) -> str:
    base = f"{GROUP_PATH}/serviceenvironments"
    return f"{base}/{name}" if name else base


# ---- service environments ------------------------------------------------------------------------


async def get_environment(kube: Kube, name: str, action: str) -> JSON | None:
    """The ServiceEnvironment, or None when it does not exist (or the name cannot be an object's)."""
    if not OBJECT_NAME.match(name) or len(name) > 253:
        return None
    try:
        found: JSON = await kube.get(environment_path(name))
    except ApiError as e:
        if e.status == 404:
            return None
        raise from_kube(e, action) from None
    return found


async def must_get_environment(kube: Kube, value: str, action: str) -> JSON:
    found = await get_environment(kube, services.environment_name(value), action)
    if found is None:
        raise ClientException(f"ServiceEnvironment {value} not found.")
    return found


def _answer(ctx: Context, name: str) -> JSON:
    return {"serviceEnvironmentName": name, "serviceEnvironmentArn": arns(ctx).arn(SERVICE_ENVIRONMENT, name)}


async def create_service_environment(ctx: Context, call: Call) -> JSON:
    manifest = services.environment_manifest(call.body)
    created = await write(ctx.user, "POST", environment_path(), manifest, "batch:CreateServiceEnvironment")
    return _answer(ctx, str(created["metadata"]["name"]))


async def update_service_environment(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateServiceEnvironment"
    environment = await must_get_environment(ctx.user, required_str(call.body, "serviceEnvironment"), action)
    name = str(environment["metadata"]["name"])
    changes = services.environment_changes(call.body)
    if changes:
        await write(
            ctx.user, "PATCH", environment_path(name), {"spec": changes}, action, "application/merge-patch+json"
        )
    return _answer(ctx, name)


async def delete_service_environment(ctx: Context, call: Call) -> JSON:
    action = "batch:DeleteServiceEnvironment"
    environment = await must_get_environment(ctx.user, required_str(call.body, "serviceEnvironment"), action)
    refusal = services.deletion_refusal(environment)
    if refusal:
        raise ClientException(refusal)
    await delete_object(ctx.user, environment_path(str(environment["metadata"]["name"])), action)
    return {}


async def describe_service_environments(ctx: Context, call: Call) -> JSON:
    action = "batch:DescribeServiceEnvironments"
    wanted = string_list(call.body, "serviceEnvironments")
    max_results = optional_int(call.body, "maxResults", low=1, high=100) or 100
    token = optional_str(call.body, "nextToken")
    a = arns(ctx)
    if wanted:
        found = [await get_environment(ctx.user, services.environment_name(w), action) for w in wanted]
        return {"serviceEnvironments": [services.environment_detail(e, a) for e in found if e is not None]}
    try:
        listed = await ctx.user.get(environment_path())
    except ApiError as e:
        raise from_kube(e, action) from None
    chosen, next_token = name_page(listed.get("items") or [], metadata_name, max_results, token)
    return {"serviceEnvironments": [services.environment_detail(e, a) for e in chosen], "nextToken": next_token}


# ---- service jobs --------------------------------------------------------------------------------


async def submit_service_job(ctx: Context, call: Call) -> JSON:
    action = "batch:SubmitServiceJob"
    body = call.body
    queue_value = required_str(body, "jobQueue")
    required_str(body, "jobName")
    token = optional_str(body, "clientToken")
    suffix = services.token_suffix(ctx.namespace, token) if token else jobs.name_suffix()
    manifest = services.service_job_manifest(body, ctx.namespace, int(time.time() * 1000), suffix)
    if not await queue_exists(ctx, manifest["spec"]["jobQueue"]):
        raise ClientException(f"JobQueue {queue_value} not found.")
    created = await create_job(
        ctx,
        manifest,
        lambda: services.service_job_manifest(body, ctx.namespace, int(time.time() * 1000), jobs.name_suffix()),
        action,
        partial(_same_submission, ctx, body=body, token=token) if token else None,
    )
    job_id = jobs.job_id(created)
    return {"jobArn": arns(ctx).job(job_id), "jobName": body["jobName"], "jobId": job_id}


async def _same_submission(ctx: Context, name: str, body: JSON, token: str) -> JSON:
    """The BatchJob an earlier SubmitServiceJob with this clientToken created, when it was this
    request; ClientException when the token was used for another one."""
    try:
        existing: JSON = await ctx.user.get(batchjobs_path(ctx.namespace, name))
    except ApiError as e:
        raise from_kube(e, "batch:SubmitServiceJob") from None
    if not services.same_request(existing, body):
        raise ClientException(f"clientToken {token} was already used with another request")
    return existing


async def find_service_job(ctx: Context, text: str) -> JSON:
    """The caller's service job with this jobId (or job ARN); ClientException when there is none."""
    ref = JobRef.parse(text)
    if ref.index is not None or ref.node is not None:
        raise ClientException(f"Job {text} not found.")
    job = (await find_jobs(ctx, [ref.job_id])).get(ref.job_id)
    if job is None or not services.is_service_job(job):
        raise ClientException(f"Job {text} not found.")
    return job


async def describe_service_job(ctx: Context, call: Call) -> JSON:
    job = await find_service_job(ctx, required_str(call.body, "jobId"))
    return services.service_job_detail(job, arns(ctx))


async def list_service_jobs(ctx: Context, call: Call) -> JSON:
    listing = services.parse_list_service_jobs(call.body)
    query = listing.query
    assert query.queue is not None
    a = arns(ctx)
    entries: list[tuple[tuple[int, int, str], JSON]] = []
    for job in await list_namespace_jobs(ctx, query.queue):
        if not services.is_service_job(job) or not listing.matches(job):
            continue
        summary = services.service_job_summary(job, a)
        if not created_within(summary.get("createdAt"), query):
            continue
        entries.append((sort_key(summary.get("createdAt"), jobs.submitted_at(job), summary["jobId"]), summary))
    summaries, token = page(entries, query)
    return {"jobSummaryList": summaries, "nextToken": token}


class ServiceJobNotFound(ClientException):
    """The service job to terminate does not exist."""


async def terminate(ctx: Context, job_text: str, reason: str) -> None:
    """Set ``spec.terminate`` on one service job (nothing when it is already set)."""
    if len(reason) > 1024:
        raise ClientException("reason: at most 1024 characters")
    try:
        job = await find_service_job(ctx, job_text)
    except ClientException as e:
        if e.message.endswith("not found."):
            raise ServiceJobNotFound(e.message) from None
        raise
    if (job.get("spec") or {}).get("terminate"):
        return
    try:
        await ctx.user.merge_patch(
            batchjobs_path(ctx.namespace, job["metadata"]["name"]), {"spec": {"terminate": {"reason": reason}}}
        )
    except ApiError as e:
        if e.status == 422:
            fresh = (await find_jobs(ctx, [jobs.job_id(job)])).get(jobs.job_id(job))
            if fresh is not None and (fresh.get("spec") or {}).get("terminate"):
                return  # terminated meanwhile by another call: AWS succeeds all the same
        raise from_kube(e, "batch:TerminateServiceJob") from None


async def terminate_service_job(ctx: Context, call: Call) -> JSON:
    await terminate(ctx, required_str(call.body, "jobId"), required_str(call.body, "reason"))
    return {}


async def terminate_service_jobs(ctx: Context, call: Call) -> JSON:
    """Up to 50 service jobs, each reported on its own; one that does not exist counts as done."""
    return await stop_many(
        call, "service job", partial(terminate, ctx), ServiceJobNotFound, "batch:TerminateServiceJob"
    )


async def update_service_job(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateServiceJob"
    text = required_str(call.body, "jobId")
    priority = optional_int(call.body, "schedulingPriority", low=0, high=9999)
    if priority is None:
        raise ClientException("schedulingPriority is required: an integer between 0 and 9999")
    job = await find_service_job(ctx, text)
    patch: dict[str, Any] = {"spec": {"schedulingPriority": priority}}
    try:
        await ctx.user.merge_patch(batchjobs_path(ctx.namespace, job["metadata"]["name"]), patch)
    except ApiError as e:
        raise from_kube(e, action) from None
    job_id = jobs.job_id(job)
    return {"jobArn": arns(ctx).job(job_id), "jobName": jobs.aws_job_name(job), "jobId": job_id}


HANDLERS: dict[str, Handler] = {
    "CreateServiceEnvironment": create_service_environment,
    "UpdateServiceEnvironment": update_service_environment,
    "DeleteServiceEnvironment": delete_service_environment,
    "DescribeServiceEnvironments": describe_service_environments,
    "SubmitServiceJob": submit_service_job,
    "DescribeServiceJob": describe_service_job,
    "ListServiceJobs": list_service_jobs,
    "TerminateServiceJob": terminate_service_job,
    "TerminateServiceJobs": terminate_service_jobs,
    "UpdateServiceJob": update_service_job,
}
