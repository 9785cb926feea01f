"""Service environments and service jobs (pure): AWS's requests as kubatch's ServiceEnvironments and
service BatchJobs, and those objects as AWS's ``ServiceEnvironmentDetail``, DescribeServiceJob's
answer and ``ServiceJobSummary`` (ListServiceJobs).

- **Types.** AWS's only type is ``SAGEMAKER_TRAINING``, which does not apply to a Kubernetes cluster
  and is refused with a ClientException saying so; kubatch's built-in type is ``KUBERNETES_JOB`` (the
  payload is a ``batch/v1`` Job, run by the cluster's Job controller). Other types pass through as
  with ``kubectl`` (the operator marks an environment of a type it does not know INVALID).
- **Service jobs** are BatchJobs with ``serviceJobType`` and ``serviceRequestPayload``, named and
  labelled as SubmitJob's jobs (``jobs``: the AWS name made a Kubernetes name with a random suffix,
  the jobId a UUID of namespace and name in the label ``kubatch.dev/job-id``). With a
  ``clientToken`` the suffix is derived from the namespace and the token instead, so a retry names
  the same BatchJob (a second create is a 409) and is answered with the first job, when the request
  is the same (a hash of it is kept in the annotation ``kubatch.dev/client-token``).
- **Details.** Times are Unix milliseconds, ``jobQueue`` an ARN; ``attempts[]``, ``latestAttempt`` and
  ``preemptionSummary`` carry kubatch's ``serviceResourceId`` (``JobUid``: the uid of the attempt's
  ``batch/v1`` Job, where AWS has ``TrainingJobArn``).
- **ListServiceJobs**: the queue's service jobs of the caller's namespace; ``jobStatus`` (RUNNING
  when absent), filters ``JOB_NAME`` (case-insensitive, ``prefix*``), ``BEFORE_CREATED_AT``,
  ``AFTER_CREATED_AT`` (these three make jobStatus ignored, as in AWS), ``SHARE_IDENTIFIER`` and
  ``QUOTA_SHARE_NAME``; most recent first, ``maxResults`` 1 to 100 (default 100) and an opaque
  ``nextToken`` (``listing``'s cursor).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kubatch.awsapi.arns import Arns, name_of
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.jobs import (
    ANNOTATION_SUBMITTED_AT,
    SUFFIX_ALPHABET,
    SUFFIX_LENGTH,
    aws_job_name,
    aws_job_name_of,
    batch_job,
    created_at,
    job_id,
    queue_name,
)
from kubatch.awsapi.listing import ListQuery, decode_token, filter_entries, filter_list, filter_ms, fingerprint
from kubatch.awsapi.protocol import epoch_ms, optional_int, optional_str
from kubatch.awsapi.resources import GROUP_VERSION, SERVICE_ENVIRONMENT, object_name
from kubatch.cli.filters import JobFilter

JSON = dict[str, Any]
KUBERNETES_JOB = "KUBERNETES_JOB"
SAGEMAKER_TRAINING = "SAGEMAKER_TRAINING"
SERVICE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
SERVICE_FILTERS = ("JOB_NAME", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER", "QUOTA_SHARE_NAME")
MAX_LIST_RESULTS = 100
#: SubmitServiceJob's clientToken: "<token hash> <request hash>" on the BatchJob it created.
ANNOTATION_CLIENT_TOKEN = "kubatch.dev/client-token"
_COPIED = (
    "retryStrategy",
    "timeoutConfig",
    "schedulingPriority",
    "shareIdentifier",
    "quotaShareName",
    "preemptionConfiguration",
    "tags",
)
_NOT_APPLICABLE = (
    "{field} SAGEMAKER_TRAINING is not applicable in kubatch: there is no SageMaker in a Kubernetes cluster. "
    "Use KUBERNETES_JOB (the serviceRequestPayload is a batch/v1 Job, run by the cluster's Job controller)"
)


def _service_type(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ClientException(f"{field} is required")
    if value == SAGEMAKER_TRAINING:
        raise ClientException(_NOT_APPLICABLE.format(field=field))
    return value


def _capacity_limits(value: Any) -> list[JSON]:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ClientException("capacityLimits is required: a list of {maxCapacity, capacityUnit}")
    out = []
    for entry in value:
        limit: JSON = {"capacityUnit": entry.get("capacityUnit") or "NUM_INSTANCES"}
        if entry.get("maxCapacity") is None:
            raise ClientException("capacityLimits[].maxCapacity is required")
        limit["maxCapacity"] = entry["maxCapacity"]
        out.append(limit)
    return out


# ---- service environments ------------------------------------------------------------------------


def environment_name(value: str) -> str:
    """The ServiceEnvironment a name or ARN means."""
    return name_of(value, SERVICE_ENVIRONMENT, "serviceEnvironment")


def environment_manifest(body: Mapping[str, Any]) -> JSON:
    """CreateServiceEnvironment's ServiceEnvironment."""
    name = body.get("serviceEnvironmentName")
    if not isinstance(name, str):
        raise ClientException("serviceEnvironmentName is required")
    spec: JSON = {
        "serviceEnvironmentType": _service_type(body.get("serviceEnvironmentType"), "serviceEnvironmentType"),
        "capacityLimits": _capacity_limits(body.get("capacityLimits")),
    }
    if body.get("state") is not None:
        spec["state"] = body["state"]
    if body.get("tags") is not None:
        spec["tags"] = body["tags"]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ServiceEnvironment",
        "metadata": {"name": object_name(name, "serviceEnvironmentName")},
        "spec": spec,
    }


def environment_changes(body: Mapping[str, Any]) -> JSON:
    """The spec fields UpdateServiceEnvironment sets (a merge patch; capacityLimits replaced whole)."""
    changes: JSON = {}
    if body.get("state") is not None:
        changes["state"] = body["state"]
    if body.get("capacityLimits") is not None:
        changes["capacityLimits"] = _capacity_limits(body["capacityLimits"])
    return changes


def environment_detail(environment: Mapping[str, Any], arns: Arns) -> JSON:
    name = str(environment["metadata"]["name"])
    spec, status = environment.get("spec") or {}, environment.get("status") or {}
    return {
        "serviceEnvironmentName": name,
        "serviceEnvironmentArn": arns.arn(SERVICE_ENVIRONMENT, name),
        "serviceEnvironmentType": spec.get("serviceEnvironmentType"),
        "state": spec.get("state", "ENABLED"),
        "status": status.get("status") or "CREATING",
        "capacityLimits": [
            {"maxCapacity": c.get("maxCapacity"), "capacityUnit": c.get("capacityUnit", "NUM_INSTANCES")}
            for c in spec.get("capacityLimits") or []
        ],
        "tags": spec.get("tags"),
    }


def deletion_refusal(environment: Mapping[str, Any]) -> str | None:
    """Why DeleteServiceEnvironment refuses now, in AWS's order (disable it, detach its queues)."""
    name = str(environment["metadata"]["name"])
    spec, status = environment.get("spec") or {}, environment.get("status") or {}
    if spec.get("state", "ENABLED") != "DISABLED":
        return (
            f"Cannot delete service environment {name}: it is ENABLED. Before you can delete a service "
            "environment, you must first set its state to DISABLED with UpdateServiceEnvironment"
        )
    queues = [str(q) for q in status.get("jobQueues") or []]
    if queues:
        return (
            f"Cannot delete service environment {name}: job queue(s) {', '.join(queues)} still use it. "
            "Disassociate it from them with UpdateJobQueue (or delete them) first"
        )
    return None


# ---- service jobs --------------------------------------------------------------------------------


def is_service_job(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("serviceJobType"))


def token_suffix(namespace: str, token: str) -> str:
    """The BatchJob name suffix of a clientToken (the same token, the same name)."""
    digest = hashlib.sha256(f"{namespace}\n{token}".encode()).digest()
    return "".join(SUFFIX_ALPHABET[b % len(SUFFIX_ALPHABET)] for b in digest[:SUFFIX_LENGTH])


def request_digest(body: Mapping[str, Any]) -> str:
    """A hash of a SubmitServiceJob request (its clientToken left out)."""
    request = {k: v for k, v in body.items() if k != "clientToken"}
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def same_request(job: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Whether ``job`` was created by this SubmitServiceJob request (its clientToken and payload)."""
    recorded = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CLIENT_TOKEN) or ""
    return recorded == request_digest(body)


def service_job_manifest(body: Mapping[str, Any], namespace: str, now_ms: int, suffix: str) -> JSON:
    """The BatchJob a SubmitServiceJob request creates at ``now_ms``, named with ``suffix``."""
    job_name = aws_job_name_of(body)
    queue = body.get("jobQueue")
    if not isinstance(queue, str) or not queue:
        raise ClientException("jobQueue is required")
    payload = body.get("serviceRequestPayload")
    if not isinstance(payload, str) or not payload:
        raise ClientException("serviceRequestPayload is required")
    spec: JSON = {
        "jobName": job_name,
        "jobQueue": queue_name(queue),
        "serviceJobType": _service_type(body.get("serviceJobType"), "serviceJobType"),
        "serviceRequestPayload": payload,
    }
    for field in _COPIED:
        if body.get(field) is not None:
            spec[field] = body[field]
    annotations = {ANNOTATION_SUBMITTED_AT: str(now_ms)}
    if body.get("clientToken") is not None:
        annotations[ANNOTATION_CLIENT_TOKEN] = request_digest(body)
    return batch_job(job_name, namespace, suffix, annotations, spec)


def _resource_id(value: Any) -> JSON | None:
    if not isinstance(value, Mapping) or not value.get("value"):
        return None
    return {"name": value.get("name") or "JobUid", "value": str(value["value"])}


def _service_attempt(attempt: Mapping[str, Any]) -> JSON:
    return {
        "serviceResourceId": _resource_id(attempt.get("serviceResourceId")),
        "startedAt": epoch_ms(attempt.get("startedAt")),
        "stoppedAt": epoch_ms(attempt.get("stoppedAt")),
        "statusReason": attempt.get("statusReason"),
    }


def _capacity_usage(status: Mapping[str, Any]) -> list[JSON] | None:
    usage = status.get("capacityUsage")
    if not usage:
        return None
    return [{"capacityUnit": u.get("capacityUnit"), "quantity": float(u.get("quantity") or 0)} for u in usage]


def _latest(status: Mapping[str, Any]) -> JSON | None:
    resource = _resource_id((status.get("latestAttempt") or {}).get("serviceResourceId"))
    return {"serviceResourceId": resource} if resource else None


def service_job_detail(job: Mapping[str, Any], arns: Arns) -> JSON:
    """A service job as DescribeServiceJob shows it."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    jid = job_id(job)
    preemption = status.get("preemptionSummary")
    return {
        "jobArn": arns.job(jid),
        "jobId": jid,
        "jobName": aws_job_name(job),
        "jobQueue": arns.job_queue(str(spec.get("jobQueue", ""))),
        "serviceJobType": spec.get("serviceJobType"),
        "serviceRequestPayload": spec.get("serviceRequestPayload"),
        "status": status.get("status") or "SUBMITTED",
        "statusReason": status.get("statusReason"),
        "attempts": [_service_attempt(a) for a in status.get("attempts") or []],
        "latestAttempt": _latest(status),
        "capacityUsage": _capacity_usage(status),
        "createdAt": created_at(job),
        "scheduledAt": epoch_ms(status.get("scheduledAt")),
        # AWS requires startedAt: a job not started yet shows 0
        "startedAt": epoch_ms(status.get("startedAt")) or 0,
        "stoppedAt": epoch_ms(status.get("stoppedAt")),
        "isTerminated": bool(spec.get("terminate")),
        "retryStrategy": spec.get("retryStrategy"),
        "timeoutConfig": spec.get("timeoutConfig"),
        "schedulingPriority": spec.get("schedulingPriority", status.get("schedulingPriority")),
        "shareIdentifier": status.get("shareIdentifier") or spec.get("shareIdentifier"),
        "quotaShareName": spec.get("quotaShareName") or status.get("quotaShareName"),
        "preemptionConfiguration": spec.get("preemptionConfiguration"),
        "preemptionSummary": {
            "preemptedAttemptCount": int(preemption.get("preemptedAttemptCount") or 0),
            "recentPreemptedAttempts": [_service_attempt(a) for a in preemption.get("recentPreemptedAttempts") or []],
        }
        if preemption
        else None,
        "tags": spec.get("tags"),
    }


def service_job_summary(job: Mapping[str, Any], arns: Arns) -> JSON:
    """A service job as ListServiceJobs shows it."""
    detail = service_job_detail(job, arns)
    summary = {k: detail[k] for k in ("jobArn", "jobId", "jobName", "serviceJobType", "status", "statusReason",
                                      "latestAttempt", "capacityUsage", "createdAt", "scheduledAt", "stoppedAt",
                                      "shareIdentifier", "quotaShareName", "isTerminated")}  # fmt: skip
    summary["startedAt"] = detail["startedAt"] or None
    return summary


# ---- ListServiceJobs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceListQuery:
    """ListServiceJobs read: ``query`` holds what ListJobs' pages need (status, name and share
    filters, creation bounds, page size and cursor); ``quota_share`` the QUOTA_SHARE_NAME filter."""

    query: ListQuery
    quota_share: str | None

    def matches(self, job: Mapping[str, Any]) -> bool:
        status = (job.get("status") or {}).get("status") or "SUBMITTED"
        if self.query.status is not None and status != self.query.status:
            return False
        if not self.query.filter.matches(job):
            return False
        spec, job_status = job.get("spec") or {}, job.get("status") or {}
        return self.quota_share is None or self.quota_share in (
            spec.get("quotaShareName"),
            job_status.get("quotaShareName"),
        )


def parse_list_service_jobs(body: Mapping[str, Any]) -> ServiceListQuery:
    queue = optional_str(body, "jobQueue")
    if not queue:
        raise ClientException("jobQueue is required")
    filters = filter_list(body)
    names: list[str] = []
    after: int | None = None
    before: int | None = None
    share: str | None = None
    quota_share: str | None = None
    for name, values in filter_entries(filters, SERVICE_FILTERS):
        if name == "JOB_NAME":
            names.extend(values)
        elif name == "AFTER_CREATED_AT":
            after = filter_ms(values[0], name)
        elif name == "BEFORE_CREATED_AT":
            before = filter_ms(values[0], name)
        elif name == "SHARE_IDENTIFIER":
            share = values[0]
        else:
            quota_share = values[0]
    overrides = bool(names or after is not None or before is not None)
    status = optional_str(body, "jobStatus")
    if status is not None and status not in SERVICE_STATES:
        raise ClientException(f"jobStatus must be one of {', '.join(SERVICE_STATES)}")
    max_results = optional_int(body, "maxResults", low=1, high=MAX_LIST_RESULTS) or MAX_LIST_RESULTS
    fp = fingerprint(body)
    token = optional_str(body, "nextToken")
    query = ListQuery(
        queue=queue_name(queue),
        array_job=None,
        multi_node_job=None,
        status=None if overrides else (status or "RUNNING"),
        filter=JobFilter(names=names, share=share),
        created_after=after,
        created_before=before,
        max_results=max_results,
        after=decode_token(token, fp) if token else None,
        fingerprint=fp,
    )
    return ServiceListQuery(query, quota_share)
