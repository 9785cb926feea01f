"""ListJobs (pure): the request read as a query, the jobs it selects, in AWS's order, one page at a
time.

- **Scope**: exactly one of ``jobQueue`` (name or ARN), ``arrayJobId`` (the children of an array
  job) or ``multiNodeJobId`` (the nodes of a multi-node job).
- **Status**: ``jobStatus``, RUNNING when absent ("If you don't specify a status, only RUNNING jobs
  are returned"); ignored when a filter other than ``SHARE_IDENTIFIER`` is given.
- **Filters**: ``JOB_NAME`` (case-insensitive, ``prefix*``), ``JOB_DEFINITION`` (name: every
  revision; ``name:rev`` or an ARN: that revision; ``prefix*``), ``BEFORE_CREATED_AT`` and
  ``AFTER_CREATED_AT`` (Unix milliseconds), ``SHARE_IDENTIFIER``; they are kubatch's own
  ListJobs filters (``kubatch.cli.filters``). AWS takes one filter at a time; kubatch takes
  several, and a job must match all of them.
- **Order and pages**: most recently created first (AWS's order with filters; kubatch uses it
  always; jobs created in the same second by SubmitJob's time, which the API records in
  milliseconds), then by jobId. ``maxResults`` 1 to 1000 (default 1000, or 100 with filters); the
  ``nextToken`` is an opaque cursor (the last job's creation time and id, and a fingerprint of the
  query), so a page never repeats or skips a job that existed when the listing started, whatever
  was submitted since.

The checks of a listing's ``filters`` (``filter_list``, ``filter_entries``, ``filter_ms``) serve
ListServiceJobs (``services``) and ListJobsByConsumableResource (``consumable_jobs``) too.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kubatch.awsapi.definitions import reference as definition_reference
from kubatch.awsapi.errors import ClientException
from kubatch.awsapi.jobs import STATES, JobRef, queue_name
from kubatch.awsapi.protocol import optional_int, optional_str
from kubatch.cli.filters import JobFilter

JSON = dict[str, Any]
FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER")
MAX_RESULTS = 1000
MAX_RESULTS_WITH_FILTERS = 100


@dataclass(frozen=True)
class ListQuery:
    queue: str | None
    array_job: JobRef | None
    multi_node_job: JobRef | None
    status: str | None  # None: the status is ignored (a filter overrides it)
    filter: JobFilter
    created_after: int | None  # Unix milliseconds, inclusive
    created_before: int | None  # Unix milliseconds, exclusive
    max_results: int
    after: tuple[int, int, str] | None  # the cursor of nextToken
    fingerprint: str


def filter_ms(value: str, name: str) -> int:
    """A time filter's value: Unix milliseconds."""
    try:
        return int(value)
    except ValueError:
        raise ClientException(f"{name}: {value!r} is not a time in milliseconds since the epoch") from None


def filter_list(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A listing request's ``filters`` ([] when absent): a list of ``{name, values}``."""
    filters = body.get("filters") or []
    if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
        raise ClientException("filters must be a list of {name, values}")
    return filters


def filter_entries(
    filters: Iterable[Mapping[str, Any]], known: Sequence[str], usage: str | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Each filter's name and values, checked as it comes (one of ``known``, ``usage`` saying which
    when it is not; a list of strings, not empty)."""
    for entry in filters:
        name, values = entry.get("name"), entry.get("values")
        if name not in known:
            raise ClientException(f"filters: unknown filter {name!r}: {usage or 'use one of ' + ', '.join(known)}")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ClientException(f"filters: {name} needs a list of values")
        yield str(name), values


def _filter(filters: Sequence[Mapping[str, Any]]) -> tuple[JobFilter, int | None, int | None, bool]:
    """The filters: a JobFilter (names, definition, share), the creation-time bounds, and whether
    one of them overrides jobStatus."""
    names: list[str] = []
    definition: str | None = None
    after: int | None = None
    before: int | None = None
    share: str | None = None
    for name, values in filter_entries(filters, FILTERS):
        if name == "JOB_NAME":
            names.extend(values)
        elif name == "JOB_DEFINITION":
            definition = _definition_filter(values[0])
        elif name == "AFTER_CREATED_AT":
            after = filter_ms(values[0], name)
        elif name == "BEFORE_CREATED_AT":
            before = filter_ms(values[0], name)
        else:
            share = values[0]
    overrides = bool(names or definition or after is not None or before is not None)
    return JobFilter(names=names, definition=definition, share=share), after, before, overrides


def _definition_filter(value: str) -> str:
    """A JOB_DEFINITION value in kubatch's terms: the object name, ``name:rev``, or ``prefix*``."""
    if value.endswith("*") and not value.startswith("arn:"):
        return value
    _, obj, revision = definition_reference(value, "JOB_DEFINITION")
    return f"{obj}:{revision}" if revision else obj


def fingerprint(body: Mapping[str, Any]) -> str:
    """What must stay the same across the pages of one listing."""
    scope = {k: body.get(k) for k in ("jobQueue", "arrayJobId", "multiNodeJobId", "jobStatus", "filters")}
    return hashlib.sha256(orjson.dumps(scope, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def encode_token(cursor: tuple[int, int, str], query: ListQuery) -> str:
    return encode_cursor(cursor, query.fingerprint)


def encode_cursor(cursor: tuple[int, int, str], fingerprint: str) -> str:
    """A nextToken: where the next page starts, and the listing it belongs to."""
    raw = orjson.dumps({"c": list(cursor), "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, expected: str) -> tuple[int, int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        created, submitted, key = data["c"]
        if data["f"] != expected:
            raise ValueError("another query")
        return int(created), int(submitted), str(key)
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ClientException("nextToken: invalid or from another listing") from None


def parse_list_jobs(body: Mapping[str, Any]) -> ListQuery:
    queue = optional_str(body, "jobQueue")
    array_job = optional_str(body, "arrayJobId")
    multi_node_job = optional_str(body, "multiNodeJobId")
    scopes = [s for s in (queue, array_job, multi_node_job) if s]
    if len(scopes) != 1:
        raise ClientException("You must specify only one of jobQueue, arrayJobId and multiNodeJobId")
    filters = filter_list(body)
    job_filter, after, before, overrides = _filter(filters)
    status = optional_str(body, "jobStatus")
    if status is not None and status not in STATES:
        raise ClientException(f"jobStatus must be one of {', '.join(STATES)}")
    limit = MAX_RESULTS_WITH_FILTERS if filters else MAX_RESULTS
    max_results = optional_int(body, "maxResults", low=1, high=None) or limit
    fp = fingerprint(body)
    token = optional_str(body, "nextToken")
    return ListQuery(
        queue=queue_name(queue) if queue else None,
        array_job=JobRef.parse(array_job) if array_job else None,
        multi_node_job=JobRef.parse(multi_node_job) if multi_node_job else None,
        status=None if overrides else (status or "RUNNING"),
        filter=job_filter,
        created_after=after,
        created_before=before,
        max_results=min(max_results, limit),
        after=decode_token(token, fp) if token else None,
        fingerprint=fp,
    )


def created_within(created: int | None, query: ListQuery) -> bool:
    if query.created_after is None and query.created_before is None:
        return True
    if created is None:
        return False
    if query.created_after is not None and created < query.created_after:
        return False
    return not (query.created_before is not None and created >= query.created_before)


def sort_key(created_ms: int | None, submitted_ms: int, key: str) -> tuple[int, int, str]:
    """Most recent first (by creation, then by SubmitJob's time in milliseconds), then by key."""
    return (-(created_ms or 0), -submitted_ms, key)


def page(entries: Iterable[tuple[tuple[int, int, str], JSON]], query: ListQuery) -> tuple[list[JSON], str | None]:
    """One page of ``(sort key, summary)`` entries, and the next page's token (None at the end)."""
    ordered = sorted(entries, key=lambda e: e[0])
    if query.after is not None:
        ordered = [e for e in ordered if e[0] > query.after]
    chosen = ordered[: query.max_results]
    more = len(ordered) > len(chosen)
    token = encode_token(chosen[-1][0], query) if more and chosen else None
    return [summary for _, summary in chosen], token
