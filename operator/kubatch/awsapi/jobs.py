"""Jobs (pure): SubmitJob's request as a BatchJob, and a BatchJob (or one of its array children or
multi-node nodes) as AWS's ``JobDetail`` (DescribeJobs) and ``JobSummary`` (ListJobs).

- **Identity.** A job's jobId is its BatchJob's (``kubatch.core.job_ids``); children are
  ``<jobId>:<index>``, nodes ``<jobId>#<node>``. The API creates each BatchJob with the label
  ``kubatch.dev/job-id=<jobId>``, the jobId being a UUID derived from the BatchJob's namespace and
  name (``api_job_id``), which kubatch takes as the job's jobId: SubmitJob answers with it at once
  and DescribeJobs finds jobs with a label selector, without listing the namespace.
- **Names.** AWS job names need not be unique and may hold upper case and ``_``: the BatchJob's name
  is the AWS name made a Kubernetes name (``kubatch.core.jobnames``) and a random suffix of five
  characters (``name_suffix``, as ``generateName`` would add; the API chooses it so that it knows the
  name, and so the jobId, before it creates the job), and the AWS name is kept in ``spec.jobName``.
  The job definition's AWS name is kept in the annotation ``kubatch.dev/job-definition-name`` (see
  ``definitions``).
- **Fields.** The BatchJob spec mirrors SubmitJob: ``parameters``, ``arrayProperties``,
  ``containerOverrides``, ``nodeOverrides``, ``retryStrategy``, ``timeout``, ``propagateTags``,
  ``tags``, ``shareIdentifier``, ``schedulingPriorityOverride`` and
  ``consumableResourcePropertiesOverride`` are copied; ``dependsOn`` jobIds become the BatchJobs'
  names (the caller looks them up; the jobIds are kept in the annotation ``kubatch.dev/depends-on``
  for DescribeJobs); ``eksPropertiesOverride.podProperties`` is kubatch's
  ``podOverrides`` (also per node range). ``ecsPropertiesOverride`` and a node range's
  ``instanceTypes`` or consumable override are refused (kubatch has no such per-range field).
- **Details.** Times are Unix milliseconds; ``jobQueue`` and ``jobDefinition`` are ARNs;
  ``attempts[]`` are the finished attempts (``container.exitCode``, ``reason``,
  ``logStreamName``; ``taskArn`` is left out, there is no ECS task); ``container`` holds the
  overrides given at submission and the latest attempt's outcome, not the definition's image and
  command (kubatch does not copy the definition into the job); an array parent's
  ``arrayProperties.statusSummary`` counts its children per state.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubatch.awsapi.arns import JOB_QUEUE, Arns, job_id_of, name_of
from kubatch.awsapi.definitions import consumable_properties
from kubatch.awsapi.definitions import reference as definition_reference
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.protocol import epoch_ms
from kubatch.cli.children import child_view, node_view
from kubatch.core.job_ids import LABEL_JOB_ID as LABEL_JOB_ID
from kubatch.core.job_ids import api_job_id
from kubatch.core.job_ids import job_id as job_id
from kubatch.core.jobnames import AWS_JOB_NAME_PATTERN, kubernetes_name

JSON = dict[str, Any]
STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
ANNOTATION_DEFINITION_NAME = "kubatch.dev/job-definition-name"
#: When SubmitJob was called, in Unix milliseconds: orders jobs created in the same second (the
#: times kubatch records, creationTimestamp among them, have seconds only).
ANNOTATION_SUBMITTED_AT = "kubatch.dev/submitted-at"
#: SubmitJob's dependsOn as given (jobIds), for DescribeJobs (the BatchJob names its dependencies).
ANNOTATION_DEPENDS_ON = "kubatch.dev/depends-on"
_AWS_JOB_NAME = re.compile(AWS_JOB_NAME_PATTERN)
_SYSTEM_RANDOM = random.SystemRandom()
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Name prefix at most this long: the suffix has 5 characters, a name 63 at most.
_PREFIX_MAX = 57
#: The characters of a name suffix (those of Kubernetes' generateName: no vowels, no look-alikes).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
_COPIED = (
    "parameters",
    "arrayProperties",
    "retryStrategy",
    "timeout",
    "propagateTags",
    "tags",
    "shareIdentifier",
    "schedulingPriorityOverride",
    "containerOverrides",
)
#: A jobId is a uid: letters, digits and '-' (a label value, so a label selector can hold it).
_ID = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9-]{0,62})(?::(?P<index>[0-9]{1,5})|#(?P<node>[0-9]{1,4}))?$")


@dataclass(frozen=True)
class JobRef:
    """A job as AWS names it: ``<jobId>``, an array child ``<jobId>:<index>`` or a node
    ``<jobId>#<node>`` (also as a job ARN)."""

    job_id: str
    index: int | None = None
    node: int | None = None

    @classmethod
    def parse(cls, text: str) -> JobRef:
        match = _ID.match(job_id_of(text.strip()))
        if not match:
            raise ClientException(f"{text} is not a job ID")
        index, node = match.group("index"), match.group("node")
        return cls(match.group("id"), int(index) if index else None, int(node) if node else None)

    def __str__(self) -> str:
        if self.index is not None:
            return f"{self.job_id}:{self.index}"
        if self.node is not None:
            return f"{self.job_id}#{self.node}"
        return self.job_id


def queue_name(value: str) -> str:
    """The JobQueue a name or ARN means; ClientException when it cannot be one."""
    name = name_of(value, JOB_QUEUE, "jobQueue")
    if not _DNS_LABEL.match(name) or len(name) > 63:
        raise ClientException(f"JobQueue {value} not found.")
    return name


def dependency_ids(body: Mapping[str, Any]) -> list[str]:
    """The jobIds SubmitJob's dependsOn names (to be looked up by the caller)."""
    out = []
    for dep in _list(body, "dependsOn"):
        job_id = dep.get("jobId")
        if job_id is not None:
            ref = JobRef.parse(str(job_id))
            if ref.index is not None or ref.node is not None:
                raise ClientException(f"dependsOn: {job_id}: depend on a whole job, not a child or node")
            out.append(ref.job_id)
    return out


def _list(body: Mapping[str, Any], name: str) -> list[JSON]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ClientException(f"{name} must be a list of objects")
    return value


def _node_overrides(value: Any) -> JSON:
    if not isinstance(value, Mapping):
        raise ClientException("nodeOverrides must be an object")
    out: JSON = {}
    if value.get("numNodes") is not None:
        out["numNodes"] = value["numNodes"]
    ranges = []
    for i, entry in enumerate(value.get("nodePropertyOverrides") or []):
        where = f"nodeOverrides.nodePropertyOverrides[{i}]"
        for field in ("ecsPropertiesOverride", "instanceTypes", "consumableResourcePropertiesOverride"):
            if entry.get(field) is not None:
                raise ClientException(f"{where}.{field} is not supported by kubatch")
        item: JSON = {"targetNodes": entry.get("targetNodes")}
        if entry.get("containerOverrides") is not None:
            item["containerOverrides"] = entry["containerOverrides"]
        if entry.get("eksPropertiesOverride") is not None:
            item["podOverrides"] = _pod_overrides(entry["eksPropertiesOverride"], f"{where}.eksPropertiesOverride")
        ranges.append(item)
    if ranges:
        out["nodePropertyOverrides"] = ranges
    return out


def _pod_overrides(value: Any, where: str) -> JSON:
    if not isinstance(value, Mapping) or not isinstance(value.get("podProperties"), Mapping):
        raise ClientException(f"{where}.podProperties is required")
    return dict(value["podProperties"])


def name_suffix(rng: random.Random | None = None) -> str:
    """A random suffix for a BatchJob's name (``SystemRandom`` unless given)."""
    pick = rng or _SYSTEM_RANDOM
    return "".join(pick.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def aws_job_name_of(body: Mapping[str, Any]) -> str:
    """The request's ``jobName`` (SubmitJob, SubmitServiceJob), which must be an AWS job name."""
    job_name = body.get("jobName")
    if not isinstance(job_name, str) or not _AWS_JOB_NAME.match(job_name):
        raise ClientException(
            "jobName: up to 128 letters (uppercase and lowercase), numbers, hyphens, and underscores are "
            "allowed, and the first character must be alphanumeric"
        )
    return job_name


def submit_manifest(
    body: Mapping[str, Any], namespace: str, dependencies: Mapping[str, str], now_ms: int, suffix: str
) -> JSON:
    """The BatchJob a SubmitJob request creates at ``now_ms``, named with ``suffix`` and labelled
    with its jobId. ``dependencies`` maps each jobId of ``dependsOn`` to its BatchJob's name."""
    job_name = aws_job_name_of(body)
    queue = body.get("jobQueue")
    definition = body.get("jobDefinition")
    if not isinstance(queue, str) or not queue:
        raise ClientException("jobQueue is required")
    if not isinstance(definition, str) or not definition:
        raise ClientException("jobDefinition is required")
    if body.get("ecsPropertiesOverride") is not None:
        raise ClientException("ecsPropertiesOverride is not supported by kubatch: use containerOverrides")
    aws_definition, definition_object, revision = definition_reference(definition)
    spec: JSON = {
        "jobName": job_name,
        "jobQueue": queue_name(queue),
        "jobDefinition": definition_object + (f":{revision}" if revision else ""),
    }
    for field in _COPIED:
        if body.get(field) is not None:
            spec[field] = body[field]
    if body.get("nodeOverrides") is not None:
        spec["nodeOverrides"] = _node_overrides(body["nodeOverrides"])
    if body.get("eksPropertiesOverride") is not None:
        spec["podOverrides"] = _pod_overrides(body["eksPropertiesOverride"], "eksPropertiesOverride")
    if body.get("consumableResourcePropertiesOverride") is not None:
        spec["consumableResourcePropertiesOverride"] = consumable_properties(
            body["consumableResourcePropertiesOverride"]
        )
    deps, shown = [], []
    for dep in _list(body, "dependsOn"):
        entry: JSON = {}
        aws: JSON = {}
        if dep.get("jobId") is not None:
            aws["jobId"] = JobRef.parse(str(dep["jobId"])).job_id
            entry["jobName"] = dependencies[aws["jobId"]]
        if dep.get("type") is not None:
            entry["type"] = aws["type"] = dep["type"]
        deps.append(entry)
        shown.append(aws)
    annotations: dict[str, str] = {ANNOTATION_SUBMITTED_AT: str(now_ms)}
    if deps:
        spec["dependsOn"] = deps
        annotations[ANNOTATION_DEPENDS_ON] = json.dumps(shown, separators=(",", ":"))
    if aws_definition != definition_object:
        annotations[ANNOTATION_DEFINITION_NAME] = aws_definition
    return batch_job(job_name, namespace, suffix, annotations, spec)


def batch_job(job_name: str, namespace: str, suffix: str, annotations: dict[str, str], spec: JSON) -> JSON:
    """The BatchJob of the AWS job name ``job_name`` (SubmitJob, SubmitServiceJob): named after it
    with ``suffix``, labelled with its jobId."""
    name = kubernetes_name(job_name)[: _PREFIX_MAX - 1].rstrip("-") + "-" + suffix
    metadata: JSON = {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_JOB_ID: api_job_id(namespace, name)},
        "annotations": annotations,
    }
    return {"apiVersion": "kubatch.dev/v1alpha1", "kind": "BatchJob", "metadata": metadata, "spec": spec}


# ---- what DescribeJobs and ListJobs show ---------------------------------------------------------


def created_at(job: Mapping[str, Any]) -> int | None:
    """When the job was submitted (``status.createdAt``, its creation), in Unix milliseconds."""
    meta = job.get("metadata") or {}
    return epoch_ms((job.get("status") or {}).get("createdAt") or meta.get("creationTimestamp"))


def submitted_at(job: Mapping[str, Any]) -> int:
    """SubmitJob's time in milliseconds when the API submitted the job, else 0."""
    submitted = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SUBMITTED_AT)
    return int(submitted) if submitted and submitted.isdigit() else 0


def aws_job_name(job: Mapping[str, Any]) -> str:
    return str((job.get("spec") or {}).get("jobName") or (job.get("metadata") or {}).get("name") or "")


def definition_arn(job: Mapping[str, Any], arns: Arns) -> str:
    """The job definition revision the job runs (as submitted, until kubatch resolved it)."""
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    resolved = str(status.get("jobDefinition") or spec.get("jobDefinition") or "")
    if resolved.startswith("arn:"):
        resolved = resolved.split(":job-definition/", 1)[-1]
    name, _, revision = resolved.partition(":")
    shown = (meta.get("annotations") or {}).get(ANNOTATION_DEFINITION_NAME) or name
    return arns.job_definition(shown, revision or None)


def _flags(job: Mapping[str, Any], index: int | None = None) -> JSON:
    spec = job.get("spec") or {}
    key = str(index) if index is not None else None
    return {
        "isCancelled": bool(spec.get("cancel")) or (key is not None and key in (spec.get("cancelChildren") or {})),
        "isTerminated": bool(spec.get("terminate"))
        or (key is not None and key in (spec.get("terminateChildren") or {})),
    }


def _attempt(attempt: Mapping[str, Any]) -> JSON:
    container = attempt.get("container") or {}
    return {
        "container": {
            "exitCode": container.get("exitCode"),
            "reason": container.get("reason"),
            "logStreamName": container.get("logStreamName"),
        },
        "startedAt": epoch_ms(attempt.get("startedAt")),
        "stoppedAt": epoch_ms(attempt.get("stoppedAt")),
        "statusReason": attempt.get("statusReason"),
    }


def _summary_counts(summary: Mapping[str, Any] | None) -> JSON:
    return {state: int((summary or {}).get(state) or 0) for state in STATES}


def _last_container(status: Mapping[str, Any]) -> JSON:
    attempts = status.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    return {"exitCode": last.get("exitCode"), "reason": last.get("reason"), "logStreamName": last.get("logStreamName")}


def job_detail(job: Mapping[str, Any], arns: Arns) -> JSON:
    """A whole job as DescribeJobs shows it."""
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    jid = job_id(job)
    overrides = spec.get("containerOverrides") or {}
    detail: JSON = {
        "jobArn": arns.job(jid),
        "jobName": aws_job_name(job),
        "jobId": jid,
        "jobQueue": arns.job_queue(str(spec.get("jobQueue", ""))),
        "status": status.get("status") or "SUBMITTED",
        "statusReason": status.get("statusReason"),
        "shareIdentifier": status.get("shareIdentifier") or spec.get("shareIdentifier"),
        "schedulingPriority": status.get("schedulingPriority"),
        "attempts": [_attempt(a) for a in status.get("attempts") or []],
        "createdAt": created_at(job),
        "startedAt": epoch_ms(status.get("startedAt")),
        "stoppedAt": epoch_ms(status.get("stoppedAt")),
        "retryStrategy": spec.get("retryStrategy"),
        "dependsOn": _dependencies(meta, spec),
        "jobDefinition": definition_arn(job, arns),
        "parameters": spec.get("parameters"),
        "timeout": spec.get("timeout"),
        "tags": spec.get("tags"),
        "propagateTags": spec.get("propagateTags"),
        "platformCapabilities": ["EC2"],
        **_flags(job),
    }
    if spec.get("nodeOverrides") is not None or status.get("nodeProperties"):
        nodes = status.get("nodeProperties") or {}
        detail["nodeProperties"] = {
            "numNodes": nodes.get("numNodes") or (spec.get("nodeOverrides") or {}).get("numNodes"),
            "mainNode": nodes.get("mainNode"),
        }
    elif spec.get("arrayProperties"):
        array = status.get("arrayProperties") or {}
        detail["arrayProperties"] = {
            "size": int(array.get("size") or spec["arrayProperties"]["size"]),
            "statusSummary": _summary_counts(array.get("statusSummary")),
        }
    else:
        detail["container"] = {
            "command": overrides.get("command"),
            "environment": overrides.get("environment"),
            "resourceRequirements": overrides.get("resourceRequirements"),
            "instanceType": overrides.get("instanceType"),
            **_last_container(status),
        }
    return detail


def _dependencies(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> list[JSON]:
    """SubmitJob's dependsOn as given; for a job submitted otherwise, its dependencies' types (the
    jobIds of named dependencies are not looked up)."""
    recorded = (meta.get("annotations") or {}).get(ANNOTATION_DEPENDS_ON)
    if recorded:
        try:
            value = json.loads(recorded)
            if isinstance(value, list):
                return [d for d in value if isinstance(d, dict)]
        except ValueError:
            pass
    return [{"type": d["type"]} for d in spec.get("dependsOn") or [] if d.get("type")]


def child_detail(job: Mapping[str, Any], index: int, arns: Arns) -> JSON:
    """Array child ``index`` as DescribeJobs shows it (read from the parent's compact status)."""
    try:
        view = child_view(job, index)
    except ValueError as e:
        raise ClientException(str(e)) from None
    spec = job.get("spec") or {}
    cid = f"{job_id(job)}:{index}"
    return {
        "jobArn": arns.job(cid),
        "jobName": aws_job_name(job),
        "jobId": cid,
        "jobQueue": arns.job_queue(str(spec.get("jobQueue", ""))),
        "status": view["status"] or "SUBMITTED",
        "statusReason": view["statusReason"],
        "createdAt": created_at(job),
        "jobDefinition": definition_arn(job, arns),
        "parameters": spec.get("parameters"),
        "retryStrategy": spec.get("retryStrategy"),
        "timeout": spec.get("timeout"),
        "tags": spec.get("tags"),
        "arrayProperties": {"index": index},
        "container": {"exitCode": view["exitCode"]},
        "platformCapabilities": ["EC2"],
        **_flags(job, index),
    }


def node_detail(job: Mapping[str, Any], node: int, arns: Arns) -> JSON:
    """Node ``node`` of a multi-node job as DescribeJobs shows it."""
    try:
        view = node_view(job, node)
    except ValueError as e:
        raise ClientException(str(e)) from None
    spec, status = job.get("spec") or {}, job.get("status") or {}
    nid = f"{job_id(job)}#{node}"
    return {
        "jobArn": arns.job(nid),
        "jobName": aws_job_name(job),
        "jobId": nid,
        "jobQueue": arns.job_queue(str(spec.get("jobQueue", ""))),
        "status": view["status"] or status.get("status") or "SUBMITTED",
        "createdAt": created_at(job),
        "jobDefinition": definition_arn(job, arns),
        "nodeDetails": {"nodeIndex": node, "isMainNode": view["nodeProperties"]["isMainNode"]},
        "container": {"exitCode": view["exitCode"]},
        "platformCapabilities": ["EC2"],
        **_flags(job),
    }


def detail(job: Mapping[str, Any], ref: JobRef, arns: Arns) -> JSON:
    if ref.index is not None:
        return child_detail(job, ref.index, arns)
    if ref.node is not None:
        return node_detail(job, ref.node, arns)
    return job_detail(job, arns)


def job_summary(job: Mapping[str, Any], arns: Arns) -> JSON:
    """A whole job as ListJobs shows it."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    jid = job_id(job)
    summary: JSON = {
        "jobArn": arns.job(jid),
        "jobId": jid,
        "jobName": aws_job_name(job),
        "createdAt": created_at(job),
        "shareIdentifier": status.get("shareIdentifier") or spec.get("shareIdentifier"),
        "status": status.get("status") or "SUBMITTED",
        "statusReason": status.get("statusReason"),
        "startedAt": epoch_ms(status.get("startedAt")),
        "stoppedAt": epoch_ms(status.get("stoppedAt")),
        "jobDefinition": definition_arn(job, arns),
        **_flags(job),
    }
    if spec.get("arrayProperties"):
        summary["arrayProperties"] = {"size": int(spec["arrayProperties"]["size"])}
    elif spec.get("nodeOverrides") is not None or status.get("nodeProperties"):
        nodes = status.get("nodeProperties") or {}
        summary["nodeProperties"] = {"numNodes": nodes.get("numNodes")}
    else:
        last = _last_container(status)
        summary["container"] = {"exitCode": last["exitCode"], "reason": last["reason"]}
    return summary


def child_summaries(job: Mapping[str, Any], arns: Arns) -> list[JSON]:
    """Every child of an array job as ListJobs(arrayJobId) shows them, by index."""
    size = int(((job.get("spec") or {}).get("arrayProperties") or {}).get("size") or 0)
    out = []
    for index in range(size):
        d = child_detail(job, index, arns)
        out.append(
            {
                "jobArn": d["jobArn"],
                "jobId": d["jobId"],
                "jobName": d["jobName"],
                "createdAt": d["createdAt"],
                "status": d["status"],
                "statusReason": d["statusReason"],
                "jobDefinition": d["jobDefinition"],
                "arrayProperties": {"index": index, "size": size},
                "container": {"exitCode": d["container"]["exitCode"]},
                "isCancelled": d["isCancelled"],
                "isTerminated": d["isTerminated"],
            }
        )
    return out


def node_summaries(job: Mapping[str, Any], arns: Arns) -> list[JSON]:
    """Every node of a multi-node job as ListJobs(multiNodeJobId) shows them."""
    nodes = (job.get("status") or {}).get("nodeProperties") or {}
    num = int(nodes.get("numNodes") or ((job.get("spec") or {}).get("nodeOverrides") or {}).get("numNodes") or 0)
    out = []
    for node in range(num):
        d = node_detail(job, node, arns)
        out.append(
            {
                "jobArn": d["jobArn"],
                "jobId": d["jobId"],
                "jobName": d["jobName"],
                "createdAt": d["createdAt"],
                "status": d["status"],
                "jobDefinition": d["jobDefinition"],
                "nodeProperties": {"numNodes": num, "nodeIndex": node, "isMainNode": d["nodeDetails"]["isMainNode"]},
                "container": {"exitCode": d["container"]["exitCode"]},
            }
        )
    return out


def unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))
