"""A job's jobId (pure).

A BatchJob's jobId is ``status.jobId``, which kubatch writes with the job's first status and never
changes. Before that, and for that first status, it is:

- for a job submitted through kubatch's AWS Batch API: the UUID in its label ``kubatch.dev/job-id``,
  which the API sets when it creates the BatchJob, when that UUID is ``api_job_id`` of the job's
  namespace and name (a UUID derived from them). The API can then answer SubmitJob with the jobId
  and DescribeJobs find the job by a label selector at once, without a second write to label the
  job once Kubernetes has given it a uid. The check against the name keeps a copy of such a
  BatchJob (``kubectl get -o yaml``, another name or namespace, the label copied along) from taking
  the original's jobId: the copy's label does not match, and it gets its uid;
- otherwise: the BatchJob's uid (``metadata.uid``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

LABEL_JOB_ID = "kubatch.dev/job-id"
#: The UUID namespace of the jobIds the AWS API gives (a constant: every API server and operator
#: derives the same jobId from a namespace and name).
API_JOB_IDS = uuid.uuid5(uuid.NAMESPACE_DNS, "job-id.api.kubatch.dev")


def api_job_id(namespace: str, name: str) -> str:
    """The jobId the AWS API gives the BatchJob ``namespace/name`` it creates."""
    return str(uuid.uuid5(API_JOB_IDS, f"{namespace}/{name}"))


def job_id(job: Mapping[str, Any]) -> str:
    """The job's jobId: ``status.jobId``, else a matching ``kubatch.dev/job-id`` label, else its uid
    (empty for an object without one)."""
    written = (job.get("status") or {}).get("jobId")
    if written:
        return str(written)
    meta = job.get("metadata") or {}
    label = (meta.get("labels") or {}).get(LABEL_JOB_ID)
    if label and meta.get("name") and label == api_job_id(str(meta.get("namespace") or ""), str(meta["name"])):
        return str(label)
    return str(meta.get("uid") or "")
