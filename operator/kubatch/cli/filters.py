"""ListJobs-style filters on BatchJob dicts (pure): queue, status, name prefix, definition, creation time, share.

As AWS Batch ListJobs: the queue scopes the listing (ListJobs' ``jobQueue``); a JOB_NAME,
JOB_DEFINITION, BEFORE_CREATED_AT or AFTER_CREATED_AT filter makes the status filter ignored ("When
the filter is used, jobStatus is ignored"); only the share identifier (SHARE_IDENTIFIER) combines
with the status. JOB_NAME and JOB_DEFINITION values ending in ``*`` match by prefix; JOB_NAME looks
at the job's AWS name (``spec.jobName``) when it has one, and at its object name. Unlike
ListJobs, several filters may be given at once: a job must match all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubatch.cli.children import STATES
from kubatch.cli.render import parse_time

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_time_spec(text: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 timestamp, or a duration ago such as ``90s``, ``15m``, ``1h30m``, ``2d``."""
    m = _DURATION.match(text.strip())
    if m and any(m.groups()):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        return (now or datetime.now(UTC)) - timedelta(days=d, hours=h, minutes=mi, seconds=s)
    parsed = parse_time(text.strip())
    if parsed is None:
        raise ValueError(f"{text!r} is neither an RFC 3339 time nor a duration like 1h or 30m")
    return parsed


def parse_statuses(values: Iterable[str]) -> frozenset[str]:
    """Upper-cased job states (``--status running,failed`` and repeats); ValueError on unknown ones."""
    out = {v.strip().upper() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(out - set(STATES))
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}: expected one of {', '.join(STATES)}")
    return frozenset(out)


def _name_matches(pattern: str, name: str) -> bool:
    """AWS JOB_NAME filter: case-insensitive; a trailing ``*`` is a prefix match, otherwise the name
    must be equal."""
    pattern, name = pattern.lower(), name.lower()
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _names(job: Mapping[str, Any]) -> tuple[str, ...]:
    """The names a JOB_NAME filter looks at: the AWS name (``spec.jobName``) when set, and the
    object's name, which ``kubectl`` and the other commands use."""
    name = str((job.get("metadata") or {}).get("name", ""))
    aws = (job.get("spec") or {}).get("jobName")
    return (str(aws), name) if aws else (name,)


def _definition_matches(wanted: str, spec_ref: str, resolved: str) -> bool:
    """AWS JOB_DEFINITION filter: ``name`` matches every revision; ``name:3`` only revision 3
    (resolved, or as submitted); ``prefix*`` every definition whose name starts with ``prefix``."""
    if wanted.endswith("*"):
        prefix = wanted[:-1]
        return any(ref.split(":")[0].startswith(prefix) for ref in (spec_ref, resolved) if ref)
    if ":" in wanted:
        return wanted in (spec_ref, resolved)
    return wanted in (spec_ref.split(":")[0], resolved.split(":")[0])


@dataclass(frozen=True)
class JobFilter:
    """Which BatchJobs to show; empty fields do not filter."""

    names: Sequence[str] = ()
    queue: str | None = None
    statuses: frozenset[str] = field(default_factory=frozenset)
    definition: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    share: str | None = None

    @property
    def status_ignored(self) -> bool:
        """Whether ``statuses`` is set but ignored: a name, definition or creation-time filter is given
        (AWS ListJobs: "When the filter is used, jobStatus is ignored")."""
        return bool(self.statuses) and self.overrides_status

    @property
    def overrides_status(self) -> bool:
        """A JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT or AFTER_CREATED_AT filter is set."""
        return bool(self.names or self.definition or self.created_after or self.created_before)

    def matches(self, job: Mapping[str, Any]) -> bool:
        meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
        if self.names and not any(_name_matches(p, n) for p in self.names for n in _names(job)):
            return False
        if self.queue and spec.get("jobQueue") != self.queue:
            return False
        if (
            self.statuses
            and not self.overrides_status
            and (status.get("status") or "SUBMITTED") not in self.statuses
        ):
            return False
        if self.definition and not _definition_matches(
            self.definition, str(spec.get("jobDefinition", "")), str(status.get("jobDefinition", ""))
        ):
            return False
        if self.share and self.share not in (spec.get("shareIdentifier"), status.get("shareIdentifier")):
            return False
        if self.created_after or self.created_before:
            created = parse_time(status.get("createdAt") or meta.get("creationTimestamp"))
            if created is None:
                return False
            if self.created_after and created < self.created_after:
                return False
            if self.created_before and created >= self.created_before:
                return False
        return True

    def apply(self, jobs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Matching jobs, oldest first (then by namespace and name)."""
        chosen = [j for j in jobs if self.matches(j)]
        return sorted(chosen, key=sort_key)


def sort_key(job: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = job.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))
