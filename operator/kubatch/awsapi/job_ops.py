"""The job operations against the API server: SubmitJob, DescribeJobs, ListJobs, CancelJob,
TerminateJob, CancelJobs, TerminateJobs. Every read and write of a job is made as the caller
(``ctx.user``), in the caller's namespace, so RBAC decides; one lookup that reveals nothing of
another namespace is made with the server's own client: whether a job queue exists (queues are
cluster-scoped, and the submit-only role cannot read them).

SubmitJob is one write: the BatchJob is created with its name (the AWS name and a random suffix;
another suffix on the rare name already taken) and the label ``kubatch.dev/job-id`` holding the
jobId derived from that name (``kubatch.core.job_ids``), which kubatch takes as the job's jobId;
the answer is the jobId. Finding jobs by jobId: ``kubatch.dev/job-id in (...)`` (one list per
DescribeJobs, served by the API server's cache). A job created another way (kubectl, a JobSchedule)
has no label and is found by the field selector ``status.jobId`` (a selectable field of the CRD)
once kubatch has written its first status, one request per such id (an API server whose CRD lacks
the field answers 400: not found).

SubmitJob checks first, with AWS's messages, that the queue exists (``JobQueue <q> not found.``) and
that the definition exists and is ACTIVE (``JobDefinition name <d> does not exist or is not in
ACTIVE status``), both answers kept a few seconds and read once by concurrent submissions
(``state.TtlCache``); the validating webhook (where it runs) and the CRD check the rest, and their
refusals come back as ClientException. CancelJob and TerminateJob set ``spec.cancel`` /
``spec.terminate`` (``cancelChildren`` / ``terminateChildren`` for ``<jobId>:<index>``); a job
already cancelled (terminated) is left as it is and the call succeeds, as in AWS. CancelJobs and
TerminateJobs do the same for up to 50 jobs, each reported on its own (``successful``, or ``errors``
with AWS's codes: ValidationException, ClientException, AccessDenied, ThrottlingException,
ServerException); a job that does not exist counts as successful, as AWS has it (``stop_many``,
which TerminateServiceJobs uses too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from kubatch.awsapi import jobs
from kubatch.awsapi.arns import Arns
from kubatch.awsapi.definitions import definition_status
from kubatch.awsapi.errors import AwsError, ClientException, from_kube
from kubatch.awsapi.jobs import JobRef
from kubatch.awsapi.listing import created_within, page, parse_list_jobs, sort_key
from kubatch.awsapi.protocol import JSON, Call, required_str, string_list
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
LABEL_JOB_ID = jobs.LABEL_JOB_ID
QUEUE_TTL = 5.0
#: How long an ACTIVE definition read for a submission is reused (per identity, namespace, name). A
#: definition deregistered meanwhile is refused by the webhook or fails the job, as with kubectl.
DEFINITION_TTL = 5.0
#: Ids per label selector (a selector stays far below the API server's URL limits).
IDS_PER_LIST = 100
#: Names tried for one submission (a random suffix taken already: another one).
NAME_TRIES = 5


def batchjobs_path(namespace: str, name: str | None = None) -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/batchjobs"
    return f"{base}/{name}" if name else base


def arns(ctx: Context) -> Arns:
    return Arns(ctx.config.region, ctx.config.account)


async def queue_exists(ctx: Context, name: str) -> bool:
    """Whether the JobQueue exists, read with the server's own client (an answer of yes is reused
    for a few seconds; concurrent submissions read it once)."""

    async def read() -> bool:
        try:
            await ctx.kube.get(f"{GROUP_PATH}/jobqueues/{name}")
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    return await ctx.state.queues.get(name, read, lambda exists: QUEUE_TTL if exists else 0.0)


async def find_jobs(ctx: Context, ids: Iterable[str]) -> dict[str, JSON]:
    """The caller's namespace's BatchJobs with these jobIds (those that exist)."""
    wanted = jobs.unique([i for i in ids if _label_value(i)])  # jobIds (JobRef) are label values
    found: dict[str, JSON] = {}
    for start in range(0, len(wanted), IDS_PER_LIST):
        chunk = wanted[start : start + IDS_PER_LIST]
        selector = f"{LABEL_JOB_ID} in ({','.join(chunk)})" if len(chunk) > 1 else f"{LABEL_JOB_ID}={chunk[0]}"
        listed = await ctx.user.get(batchjobs_path(ctx.namespace), labelSelector=selector)
        for job in listed.get("items") or []:
            found[jobs.job_id(job)] = job
    for missing in [i for i in wanted if i not in found]:
        job = await _by_status_job_id(ctx, missing)
        if job is not None:
            found[missing] = job
    return found


def _label_value(text: str) -> bool:
    return 0 < len(text) <= 63 and all(c.isalnum() or c in "-_." for c in text) and text[0].isalnum()


async def _by_status_job_id(ctx: Context, job_id: str) -> JSON | None:
    """A job without the label (created by kubectl, say), by ``status.jobId`` where the CRD offers
    that field selector."""
    try:
        listed = await ctx.user.get(batchjobs_path(ctx.namespace), fieldSelector=f"status.jobId={job_id}")
    except ApiError as e:
        if e.status == 400:  # the CRD does not offer the selector
            return None
        raise
    items = listed.get("items") or []
    return items[0] if items else None


async def find_job(ctx: Context, ref: JobRef) -> JSON:
    found = await find_jobs(ctx, [ref.job_id])
    job = found.get(ref.job_id)
    if job is None:
        raise ClientException(f"Job {ref} not found.")
    return job


# ---- SubmitJob -----------------------------------------------------------------------------------


async def submit_job(ctx: Context, call: Call) -> JSON:
    body = call.body
    queue_value = required_str(body, "jobQueue")
    definition_value = required_str(body, "jobDefinition")
    required_str(body, "jobName")
    queue = jobs.queue_name(queue_value)
    deps = jobs.dependency_ids(body)
    found = await find_jobs(ctx, deps) if deps else {}
    for dep in deps:
        if dep not in found:
            raise ClientException(f"dependsOn: job {dep} not found.")
    names = {i: found[i]["metadata"]["name"] for i in found}
    manifest = jobs.submit_manifest(body, ctx.namespace, names, int(time.time() * 1000), jobs.name_suffix())
    queue_ok, definition = await asyncio.gather(
        queue_exists(ctx, queue), _definition(ctx, manifest["spec"]["jobDefinition"])
    )
    if not queue_ok:
        raise ClientException(f"JobQueue {queue_value} not found.")
    if definition is None or definition_status(definition) != "ACTIVE" or not _has_revision(manifest, definition):
        raise ClientException(f"JobDefinition name {definition_value} does not exist or is not in ACTIVE status")
    created = await create_job(
        ctx,
        manifest,
        lambda: jobs.submit_manifest(body, ctx.namespace, names, int(time.time() * 1000), jobs.name_suffix()),
        "batch:SubmitJob",
    )
    job_id = jobs.job_id(created)
    return {"jobArn": arns(ctx).job(job_id), "jobName": body["jobName"], "jobId": job_id}


async def create_job(
    ctx: Context,
    manifest: JSON,
    renamed: Callable[[], JSON],
    action: str,
    taken: Callable[[str], Awaitable[JSON]] | None = None,
) -> JSON:
    """Create the BatchJob ``manifest`` as the caller (SubmitJob, SubmitServiceJob); the BatchJob
    created. When its name is taken: ``taken(name)``'s answer where given (a clientToken's earlier
    submission), else ``renamed()`` (another suffix) is tried, ``NAME_TRIES`` in all."""
    for attempt in range(NAME_TRIES):
        try:
            created: JSON = await ctx.user.request(
                "POST", batchjobs_path(ctx.namespace), params={"fieldValidation": "Strict"}, body=manifest, retries=0
            )
            return created
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                if taken is not None:
                    return await taken(str(manifest["metadata"]["name"]))
                if attempt + 1 < NAME_TRIES:
                    manifest = renamed()  # the name is taken: another suffix
                    continue
            raise from_kube(e, action) from None
    raise AssertionError("the last try returns or raises")


async def _definition(ctx: Context, reference: str) -> JSON | None:
    """The JobDefinition a job names, read as the caller; an ACTIVE one is reused for a few seconds
    per identity (submissions come in bursts; concurrent ones read it once), anything else is read
    again."""
    name = reference.split(":", 1)[0]

    async def read() -> JSON | None:
        try:
            result: JSON = await ctx.user.get(f"{GROUP_PATH}/namespaces/{ctx.namespace}/jobdefinitions/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise from_kube(e, "batch:SubmitJob") from None
        return result

    def keep(definition: JSON | None) -> float:
        return DEFINITION_TTL if definition is not None and definition_status(definition) == "ACTIVE" else 0.0

    found: JSON | None = await ctx.state.definitions.get((ctx.principal.identity, ctx.namespace, name), read, keep)
    return found


def forget_definition(ctx: Context, name: str) -> None:
    """Drop what SubmitJob remembers of a definition (this server registered or deregistered it)."""
    ctx.state.definitions.drop(lambda key: key[1] == ctx.namespace and key[2] == name)


def _has_revision(manifest: JSON, definition: JSON) -> bool:
    _, _, revision = str(manifest["spec"]["jobDefinition"]).partition(":")
    latest = (definition.get("status") or {}).get("revision")
    return not revision or latest is None or int(revision) <= int(latest)


# ---- DescribeJobs, ListJobs ----------------------------------------------------------------------


async def describe_jobs(ctx: Context, call: Call) -> JSON:
    wanted = string_list(call.body, "jobs")
    if not wanted:
        raise ClientException("jobs is required: a list of up to 100 job IDs")
    if len(wanted) > 100:
        raise ClientException("jobs: at most 100 job IDs")
    refs = []
    for text in wanted:
        try:
            refs.append(JobRef.parse(text))
        except ClientException:
            continue  # not a job id: no such job, left out as AWS leaves unknown ids out
    found = await find_jobs(ctx, [r.job_id for r in refs])
    out = []
    for ref in jobs.unique([str(r) for r in refs]):
        parsed = JobRef.parse(ref)
        job = found.get(parsed.job_id)
        if job is None:
            continue
        try:
            out.append(jobs.detail(job, parsed, arns(ctx)))
        except ClientException:
            continue  # a child or node the job does not have: not found, as AWS leaves it out
    return {"jobs": out}


async def list_namespace_jobs(ctx: Context, queue: str) -> list[JSON]:
    """Every BatchJob of the caller's namespace in ``queue`` (the CRD's spec.jobQueue field selector)."""
    items: list[JSON] = []
    cont: str | None = None
    while True:
        params: dict[str, Any] = {"fieldSelector": f"spec.jobQueue={queue}", "limit": 500}
        if cont:
            params["continue"] = cont
        listed = await ctx.user.get(batchjobs_path(ctx.namespace), **params)
        items.extend(listed.get("items") or [])
        cont = (listed.get("metadata") or {}).get("continue")
        if not cont:
            return items


async def list_jobs(ctx: Context, call: Call) -> JSON:
    query = parse_list_jobs(call.body)
    a = arns(ctx)
    entries: list[tuple[tuple[int, int, str], JSON]] = []
    if query.queue is not None:
        for job in await list_namespace_jobs(ctx, query.queue):
            status = (job.get("status") or {}).get("status") or "SUBMITTED"
            if query.status is not None and status != query.status:
                continue
            if not query.filter.matches(job):
                continue
            summary = jobs.job_summary(job, a)
            if not created_within(summary.get("createdAt"), query):
                continue
            entries.append((sort_key(summary.get("createdAt"), jobs.submitted_at(job), summary["jobId"]), summary))
    else:
        ref = query.array_job or query.multi_node_job
        assert ref is not None
        job = await find_job(ctx, ref)
        summaries = jobs.child_summaries(job, a) if query.array_job else jobs.node_summaries(job, a)
        for position, summary in enumerate(summaries):
            if query.status is not None and summary["status"] != query.status:
                continue
            entries.append(((position, 0, summary["jobId"]), summary))
    summaries, token = page(entries, query)
    return {"jobSummaryList": summaries, "nextToken": token}


# ---- CancelJob, TerminateJob ---------------------------------------------------------------------


class JobNotFound(ClientException):
    """The job (or child) to stop does not exist."""


async def stop_job(ctx: Context, job_text: str, reason: str, field: str, action: str) -> None:
    """Cancel (``field`` ``cancel``) or terminate one job, child ``id:N`` or not at all when it is
    already; AwsError when it cannot be."""
    ref = JobRef.parse(job_text)
    if len(reason) > 1024:
        raise ClientException("reason: at most 1024 characters")
    if ref.node is not None:
        raise ClientException(f"{ref}: a node of a multi-node job is stopped with its job ({ref.job_id})")
    found = await find_jobs(ctx, [ref.job_id])
    job = found.get(ref.job_id)
    if job is None:
        raise JobNotFound(f"Job {ref} not found.")
    spec = job.get("spec") or {}
    if ref.index is not None:
        size = int((spec.get("arrayProperties") or {}).get("size") or 0)
        if ref.index >= size:
            raise JobNotFound(f"Job {ref} not found.")
        children = f"{field}Children"
        if str(ref.index) in (spec.get(children) or {}):
            return
        patch: JSON = {"spec": {children: {str(ref.index): {"reason": reason}}}}
    else:
        if spec.get(field):
            return
        patch = {"spec": {field: {"reason": reason}}}
    try:
        await ctx.user.merge_patch(batchjobs_path(ctx.namespace, job["metadata"]["name"]), patch)
    except ApiError as e:
        if e.status == 422:  # set meanwhile by another call: AWS succeeds all the same
            return
        raise from_kube(e, action) from None


async def cancel_job(ctx: Context, call: Call) -> JSON:
    await stop_job(
        ctx, required_str(call.body, "jobId"), required_str(call.body, "reason"), "cancel", "batch:CancelJob"
    )
    return {}


async def terminate_job(ctx: Context, call: Call) -> JSON:
    await stop_job(
        ctx, required_str(call.body, "jobId"), required_str(call.body, "reason"), "terminate", "batch:TerminateJob"
    )
    return {}


#: CancelJobs/TerminateJobs error codes (CancelJobsErrorDetail.code) by AWS error code.
BULK_CODES = {
    "ClientException": "ClientException",
    "SerializationException": "ValidationException",
    "AccessDeniedException": "AccessDenied",
    "TooManyRequestsException": "ThrottlingException",
    "ServerException": "ServerException",
}


async def stop_many(
    call: Call,
    what: str,
    stop: Callable[[str, str], Awaitable[None]],
    not_found: type[ClientException],
    action: str,
) -> JSON:
    """Up to 50 jobs (``call``'s ``jobs``, named ``what`` in refusals) stopped side by side with
    ``stop(job, reason)``, each reported on its own; a job that does not exist (``not_found``)
    counts as done, as AWS has it. CancelJobs, TerminateJobs and TerminateServiceJobs."""
    wanted = string_list(call.body, "jobs")
    reason = required_str(call.body, "reason")
    if not wanted:
        raise ClientException(f"jobs is required: a list of up to 50 {what} IDs")
    if len(wanted) > 50:
        raise ClientException(f"jobs: at most 50 {what} IDs")

    async def one(job_text: str) -> JSON | None:
        try:
            await stop(job_text, reason)
        except not_found:
            return None
        except AwsError as e:
            code = "ValidationException" if "is not a job ID" in e.message else BULK_CODES.get(e.code, e.code)
            return {"job": job_text, "code": code, "message": e.message}
        except ApiError as e:
            error = from_kube(e, action)
            return {"job": job_text, "code": BULK_CODES.get(error.code, error.code), "message": error.message}
        return None

    outcomes = await asyncio.gather(*(one(j) for j in wanted))
    errors = [o for o in outcomes if o is not None]
    failed = {e["job"] for e in errors}
    return {"successful": [j for j in wanted if j not in failed], "errors": errors}


async def _stop_many(ctx: Context, call: Call, field: str, action: str) -> JSON:
    """CancelJobs / TerminateJobs: ``stop_job`` for each job."""
    return await stop_many(call, "job", partial(stop_job, ctx, field=field, action=action), JobNotFound, action)


async def cancel_jobs(ctx: Context, call: Call) -> JSON:
    return await _stop_many(ctx, call, "cancel", "batch:CancelJob")


async def terminate_jobs(ctx: Context, call: Call) -> JSON:
    return await _stop_many(ctx, call, "terminate", "batch:TerminateJob")


HANDLERS: dict[str, Handler] = {
    "SubmitJob": submit_job,
    "DescribeJobs": describe_jobs,
    "ListJobs": list_jobs,
    "CancelJob": cancel_job,
    "TerminateJob": terminate_job,
    "CancelJobs": cancel_jobs,
    "TerminateJobs": terminate_jobs,
}
