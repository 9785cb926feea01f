"""Job names as AWS Batch has them, beside the Kubernetes object name (checklist point 10).

AWS job names are up to 128 characters of letters (either case), digits, ``-`` and ``_``, starting
with a letter or digit; a Kubernetes object name cannot hold most of them (BatchJob names are DNS
labels of at most 63 characters, since they are the value of the pods' ``kubatch.dev/job-name``
label). A BatchJob therefore keeps its ``metadata.name`` and may carry the AWS name in
``spec.jobName``: ``job_name`` is the name AWS would show (``spec.jobName`` when set, else
``metadata.name``), and ``kubernetes_name`` derives a valid ``metadata.name`` from an AWS name that is
not one itself (``kubatch submit --job-name My_Job``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

#: spec.jobName (as SubmitJob's jobName).
AWS_JOB_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$"
AWS_JOB_NAME_MAX = 128
#: metadata.name of a BatchJob: a DNS label (at most 63 characters).
KUBERNETES_NAME_MAX = 63
_AWS = re.compile(AWS_JOB_NAME_PATTERN)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HASH_LENGTH = 6


def is_aws_job_name(name: str) -> bool:
    """Whether ``name`` is a valid AWS Batch job name."""
    return bool(_AWS.match(name))


def is_kubernetes_name(name: str) -> bool:
    """Whether ``name`` can be a BatchJob's ``metadata.name`` as it is."""
    return len(name) <= KUBERNETES_NAME_MAX and bool(_DNS_LABEL.match(name))


def kubernetes_name(aws_name: str) -> str:
    """A valid ``metadata.name`` for the AWS job name ``aws_name``: the name itself when it is one;
    otherwise lower case, ``_`` (and anything else outside ``[a-z0-9-]``) as ``-``, cut to leave room
    for ``-`` and a short hash of the exact name, so that names differing only in case or ``_``/``-``
    (``My_Job``, ``my-job``) get different objects. ValueError for a name AWS would refuse."""
    if is_kubernetes_name(aws_name):
        return aws_name
    if not is_aws_job_name(aws_name):
        raise ValueError(
            f"job name {aws_name!r}: use 1 to {AWS_JOB_NAME_MAX} letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    digest = hashlib.sha256(aws_name.encode()).hexdigest()[:_HASH_LENGTH]
    base = re.sub(r"[^a-z0-9-]", "-", aws_name.lower())
    base = re.sub(r"-{2,}", "-", base)[: KUBERNETES_NAME_MAX - _HASH_LENGTH - 1].strip("-")
    return f"{base}-{digest}" if base else digest


def job_name(job: Mapping[str, Any]) -> str:
    """The job's name as AWS shows it: ``spec.jobName`` when set, else ``metadata.name``."""
    name = (job.get("spec") or {}).get("jobName")
    return str(name) if name else str((job.get("metadata") or {}).get("name") or "")
