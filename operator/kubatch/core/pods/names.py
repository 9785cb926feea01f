"""Names and labels of what kubatch creates for a job: the label, annotation and AWS_BATCH_*
variable names, DNS-valid names (pods ``<job>-a<attempt>``, ``<job>-<index>-a<attempt>`` for an
array child, ``<job>-n<node>-a<attempt>`` for a node; a name too long or not a DNS label is cut and
suffixed with 8 hex characters of a SHA-256 of the whole), label value and key checks, the
``jobId`` of a child or node, the ownerReference to the BatchJob, and ``PodSpecError`` (a
``ValueError`` whose message is a usable statusReason). Pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

API_VERSION = "kubatch.dev/v1alpha1"
KIND = "BatchJob"
LABEL_JOB_NAME = "kubatch.dev/job-name"
LABEL_JOB_ID = "kubatch.dev/job-id"
LABEL_JOB_QUEUE = "kubatch.dev/job-queue"
LABEL_COMPUTE_ENVIRONMENT = "kubatch.dev/compute-environment"
LABEL_ATTEMPT = "kubatch.dev/attempt"
LABEL_ARRAY_INDEX = "kubatch.dev/array-index"
LABEL_NODE_INDEX = "kubatch.dev/node-index"
ANNOTATION_JOB_DEFINITION = "kubatch.dev/job-definition"
ANNOTATION_TAGS = "kubatch.dev/tags"
#: Karpenter's pod annotation that keeps it from disrupting the pod's node voluntarily.
ANNOTATION_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
#: Node label and taint key of a compute environment's nodes.
CE_NODE_KEY = LABEL_COMPUTE_ENVIRONMENT
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
GPU_RESOURCE = "nvidia.com/gpu"
MAIN_CONTAINER = "main"
RESERVED_PREFIXES: tuple[str, ...] = ("kubatch.dev/", "kubernetes.io/", "k8s.io/")
ENV_JOB_ID = "AWS_BATCH_JOB_ID"
ENV_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
ENV_JQ_NAME = "AWS_BATCH_JQ_NAME"
ENV_CE_NAME = "AWS_BATCH_CE_NAME"
ENV_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ENV_ARRAY_SIZE = "AWS_BATCH_JOB_ARRAY_SIZE"
ENV_NODE_INDEX = "AWS_BATCH_JOB_NODE_INDEX"
ENV_NUM_NODES = "AWS_BATCH_JOB_NUM_NODES"
ENV_MAIN_NODE_INDEX = "AWS_BATCH_JOB_MAIN_NODE_INDEX"
ENV_MAIN_NODE_IP = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
#: kubatch's own: the name of the node the pod runs on (downward API ``spec.nodeName``). AWS Batch on
#: EKS sets AWS_BATCH_JOB_KUBERNETES_NODE_UID instead, which a pod cannot learn before it is bound
#: (the downward API has no node UID); kubatch records the UID in ``attempts[].container.nodeUid``.
ENV_NODE_NAME = "AWS_BATCH_JOB_KUBERNETES_NODE_NAME"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PodSpecError(ValueError):
    """The job cannot be turned into a pod; the message is suitable as a statusReason."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` if it is already a DNS label within ``limit``; otherwise a cleaned, cut version
    suffixed with a hash of ``text`` (deterministic, distinct inputs stay distinct)."""
    if len(text) <= limit and _DNS_LABEL.match(text):
        return text
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    keep = max(limit - 9, 0)
    clean = clean[:keep].rstrip("-")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a cut/cleaned version with a hash suffix."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:54].strip("-_.")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


def is_label_value(text: str) -> bool:
    return len(text) <= 63 and bool(_LABEL_VALUE.match(text))


def is_qualified_key(key: str) -> bool:
    """A valid label/annotation key: ``[prefix/]name``."""
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def pod_name(job_name: str, attempt: int, *, array_index: int | None = None, node_index: int | None = None) -> str:
    """Deterministic pod name (module docstring)."""
    if array_index is not None:
        suffix = f"-{array_index}-a{attempt}"
    elif node_index is not None:
        suffix = f"-n{node_index}-a{attempt}"
    else:
        suffix = f"-a{attempt}"
    return dns_label(job_name, 63 - len(suffix)) + suffix


def headless_service_name(job_name: str) -> str:
    """DNS-1035 label (starts with a letter) naming the multi-node job's headless Service."""
    name = dns_label(job_name)
    return name if name[0].isalpha() else dns_label(f"j-{job_name}")


def job_id_env(job_id: str, *, array_index: int | None = None, node_index: int | None = None) -> str:
    """``AWS_BATCH_JOB_ID``: ``<id>``, ``<id>:<index>`` (array child) or ``<id>#<node>`` (MNP node)."""
    if array_index is not None:
        return f"{job_id}:{array_index}"
    if node_index is not None:
        return f"{job_id}#{node_index}"
    return job_id


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }
