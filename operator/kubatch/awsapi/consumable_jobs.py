"""ListJobsByConsumableResource (pure): which jobs need a consumable resource, and how many units,
as AWS's ``ListJobsByConsumableResourceSummary``, a page at a time.

A job's consumable resources are its job definition revision's ``consumableResourceList`` with the
job's ``consumableResourcePropertiesOverride`` merged in, by ``kubatch.core.pods.needs.consumables_of``,
the helper the scheduler uses. The revision is the one kubatch resolved for the job
(``status.jobDefinition``, ``name:rev``); a job kubatch has not resolved yet is read against the
revision its reference names now (``name:rev``, or the latest ACTIVE one for a bare name), as
kubatch will resolve it. An array job is one entry (its ``quantity`` is per child, as each child
holds it while it runs).

Filters: ``JOB_STATUS`` (any of its values) and ``JOB_NAME`` (case-insensitive, ``prefix*``); both
may be given, and a job must match both. Order: most recently created first, then by jobId;
``maxResults`` 1 to 100 (default 100); ``nextToken`` is an opaque cursor (the last job's creation
time and id, and a fingerprint of the query), so pages neither repeat nor skip a job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kubatch.awsapi.arns import CONSUMABLE_RESOURCE, Arns, name_of
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.jobs import STATES, aws_job_name, created_at, definition_arn, job_id, queue_name, submitted_at
from kubatch.awsapi.listing import decode_token, encode_cursor, filter_entries, filter_list
from kubatch.awsapi.protocol import epoch_ms, optional_int, optional_str, required_str
from kubatch.core.pods.needs import consumables_of
from kubatch.core.revisions import (
    LABEL_JOB_DEFINITION,
    ResolutionError,
    RevisionRecord,
    parse_reference,
    resolve,
    stored_records,
)

JSON = dict[str, Any]
FILTERS = ("JOB_STATUS", "JOB_NAME")
MAX_RESULTS = 100


@dataclass(frozen=True)
class ConsumableQuery:
    resource: str
    statuses: frozenset[str]
    names: tuple[str, ...]
    max_results: int
    after: tuple[int, int, str] | None
    fingerprint: str


def _fingerprint(body: Mapping[str, Any], resource: str) -> str:
    scope = {"r": resource, "f": body.get("filters")}
    return hashlib.sha256(orjson.dumps(scope, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def parse_query(body: Mapping[str, Any]) -> ConsumableQuery:
    resource = name_of(required_str(body, "consumableResource"), CONSUMABLE_RESOURCE, "consumableResource")
    filters = filter_list(body)
    statuses: set[str] = set()
    names: list[str] = []
    for name, values in filter_entries(filters, FILTERS, "use JOB_STATUS or JOB_NAME"):
        if name == "JOB_STATUS":
            unknown = sorted(set(values) - set(STATES))
            if unknown:
                raise ClientException(f"filters: JOB_STATUS {unknown[0]!r} is not one of {', '.join(STATES)}")
            statuses.update(values)
        else:
            names.extend(values)
    fingerprint = _fingerprint(body, resource)
    token = optional_str(body, "nextToken")
    return ConsumableQuery(
        resource=resource,
        statuses=frozenset(statuses),
        names=tuple(names),
        max_results=optional_int(body, "maxResults", low=1, high=MAX_RESULTS) or MAX_RESULTS,
        after=decode_token(token, fingerprint) if token else None,
        fingerprint=fingerprint,
    )


def _name_matches(patterns: Sequence[str], job: Mapping[str, Any]) -> bool:
    name = aws_job_name(job).lower()
    return any(name.startswith(p[:-1].lower()) if p.endswith("*") else name == p.lower() for p in patterns)


def records_by_name(
    definitions: Iterable[Mapping[str, Any]], revisions: Iterable[Mapping[str, Any]] | None
) -> dict[str, list[RevisionRecord]]:
    """The namespace's revisions by definition object name: its ControllerRevisions, or (a caller
    who may not list them: ``revisions`` None) each JobDefinition's latest revision only."""
    out: dict[str, list[RevisionRecord]] = {}
    by_name = {str(d["metadata"]["name"]): d for d in definitions}
    if revisions is not None:
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for cr in revisions:
            label = ((cr.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_DEFINITION)
            if label:
                grouped.setdefault(str(label), []).append(cr)
        for name, crs in grouped.items():
            definition = by_name.get(name)
            deregistered = bool(((definition or {}).get("spec") or {}).get("deregistered"))
            out[name] = [
                RevisionRecord(r.revision, r.active and not deregistered, r.spec, r.current)
                for r in stored_records(crs, definition)
            ]
    for name, definition in by_name.items():
        latest = (definition.get("status") or {}).get("revision")
        if latest and all(r.revision != int(latest) for r in out.get(name, [])):
            spec = {k: v for k, v in (definition.get("spec") or {}).items() if k != "deregistered"}
            active = not (definition.get("spec") or {}).get("deregistered")
            out.setdefault(name, []).append(RevisionRecord(int(latest), active, spec))
    return out


def definition_spec(job: Mapping[str, Any], records: Mapping[str, Sequence[RevisionRecord]]) -> Mapping[str, Any]:
    """The spec of the job definition revision the job runs (or will run); {} when there is none.
    ``records``: the namespace's revisions by definition object name."""
    status, spec = job.get("status") or {}, job.get("spec") or {}
    resolved = str(status.get("jobDefinition") or "")
    reference = resolved or str(spec.get("jobDefinition") or "")
    try:
        ref = parse_reference(reference)
    except ValueError:
        return {}
    known = records.get(ref.name) or []
    if resolved:
        return next((r.spec for r in known if r.revision == ref.revision), {})
    try:
        return resolve(ref, known).spec
    except ResolutionError:
        return {}


def summary(job: Mapping[str, Any], quantity: int, consumables: Mapping[str, int], arns: Arns) -> JSON:
    """A job as ListJobsByConsumableResource shows it."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    queue = str(spec.get("jobQueue") or "")
    return {
        "jobArn": arns.job(job_id(job)),
        "jobQueueArn": arns.job_queue(queue_name(queue)) if queue else None,
        "jobName": aws_job_name(job),
        "jobDefinitionArn": definition_arn(job, arns),
        "shareIdentifier": status.get("shareIdentifier") or spec.get("shareIdentifier"),
        "jobStatus": status.get("status") or "SUBMITTED",
        "quantity": quantity,
        "statusReason": status.get("statusReason"),
        "startedAt": epoch_ms(status.get("startedAt")),
        "createdAt": created_at(job),
        "consumableResourceProperties": {
            "consumableResourceList": [
                {"consumableResource": arns.consumable_resource(name), "quantity": units}
                for name, units in sorted(consumables.items())
            ]
        },
    }


def select(
    jobs: Iterable[Mapping[str, Any]],
    records: Mapping[str, Sequence[RevisionRecord]],
    query: ConsumableQuery,
    arns: Arns,
) -> tuple[list[JSON], str | None]:
    """One page of the jobs that need ``query.resource``, and the next page's token (None at the end)."""
    entries: list[tuple[tuple[int, int, str], JSON]] = []
    for job in jobs:
        status = (job.get("status") or {}).get("status") or "SUBMITTED"
        if query.statuses and status not in query.statuses:
            continue
        if query.names and not _name_matches(query.names, job):
            continue
        consumables = consumables_of(definition_spec(job, records), job.get("spec") or {})
        if query.resource not in consumables:
            continue
        jid = job_id(job)
        key = (-(created_at(job) or 0), -submitted_at(job), jid)
        entries.append((key, summary(job, consumables[query.resource], consumables, arns)))
    entries.sort(key=lambda e: e[0])
    if query.after is not None:
        entries = [e for e in entries if e[0] > query.after]
    chosen = entries[: query.max_results]
    token = encode_cursor(chosen[-1][0], query.fingerprint) if len(entries) > len(chosen) and chosen else None
    return [s for _, s in chosen], token
