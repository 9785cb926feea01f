"""JobDefinition revisions (spec section 0 and 3, checklist E.42-43).

Owns: parsing a job definition reference (``name``, ``name:3`` or an AWS-style ARN
``arn:aws:batch:<region>:<acct>:job-definition/name:3``), choosing the revision a reference
resolves to (a bare name = the latest ACTIVE revision; ``name:N`` = exactly N, which must be
ACTIVE to be submitted), the next revision number (revisions are never reused), a deterministic
spec hash (to detect "the spec changed, register a new revision") and ControllerRevision names
``<jd>-<rev>``.

Revisions outlive their definition object: a ControllerRevision records the uid of the
JobDefinition that registered it, and one whose definition was deleted (or deleted and re-created
under the same name) is *retired*: INACTIVE for new submissions, still readable by the jobs pinned
to it, and removed only once no unfinished job runs it (``deletable_revisions``). The highest
revision number of a name is never removed, so a definition re-created with that name continues
the numbering instead of starting again at 1.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")
LABEL_JOB_DEFINITION = "kubatch.dev/job-definition"
LABEL_DEFINITION_UID = "kubatch.dev/job-definition-uid"
LABEL_REVISION_STATUS = "kubatch.dev/revision-status"
_ARN_MARKER = ":job-definition/"


@dataclass(frozen=True)
class DefinitionRef:
    name: str
    revision: int | None  # None = latest ACTIVE

    def __str__(self) -> str:
        return self.name if self.revision is None else f"{self.name}:{self.revision}"


@dataclass(frozen=True)
class RevisionRecord:
    """One stored revision of a JobDefinition."""

    revision: int
    active: bool
    spec: Mapping[str, Any]
    #: Registered by the definition object that exists now; False for a retired revision (its
    #: definition was deleted, or deleted and re-created), which stays only for its pinned jobs.
    current: bool = True


class ResolutionError(ValueError):
    """A reference that names no usable revision; ``str(e)`` is the statusReason to show."""


def parse_reference(reference: str) -> DefinitionRef:
    """``"render"`` -> (render, None); ``"render:3"`` -> (render, 3); ARNs accepted."""
    text = reference.strip()
    if text.startswith("arn:"):
        if _ARN_MARKER not in text:
            raise ValueError(f"not a job definition ARN: {reference!r}")
        text = text.split(_ARN_MARKER, 1)[1]
    name, sep, rev = text.partition(":")
    if not _NAME.match(name):
        raise ValueError(f"invalid job definition name in {reference!r}")
    if not sep:
        return DefinitionRef(name, None)
    if not rev.isdigit() or int(rev) < 1:
        raise ValueError(f"invalid job definition revision in {reference!r}")
    return DefinitionRef(name, int(rev))


def _records(records: Iterable[RevisionRecord | tuple[int, bool, Mapping[str, Any]]]) -> list[RevisionRecord]:
    return [r if isinstance(r, RevisionRecord) else RevisionRecord(int(r[0]), bool(r[1]), r[2]) for r in records]


def latest_active(
    records: Iterable[RevisionRecord | tuple[int, bool, Mapping[str, Any]]],
) -> RevisionRecord | None:
    """The ACTIVE record with the highest revision, or None."""
    active = [r for r in _records(records) if r.active]
    return max(active, key=lambda r: r.revision) if active else None


def resolve(
    reference: str | DefinitionRef,
    records: Iterable[RevisionRecord | tuple[int, bool, Mapping[str, Any]]],
) -> RevisionRecord:
    """The revision a reference names, for submission; raises ``ResolutionError``."""
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    recs = _records(records)
    if ref.revision is None:
        found = latest_active(recs)
        if found is None:
            raise ResolutionError(f"Job definition {ref.name} has no ACTIVE revision")
        return found
    match = next((r for r in recs if r.revision == ref.revision), None)
    if match is None:
        raise ResolutionError(f"Job definition {ref} not found")
    if not match.active:
        raise ResolutionError(f"Job definition {ref} is INACTIVE")
    return match


def definition_uid(revision: Mapping[str, Any]) -> str | None:
    """The uid of the JobDefinition that registered a ControllerRevision: its label, or (revisions
    recorded before the label existed) its owner reference to the JobDefinition."""
    md = revision.get("metadata") or {}
    uid = (md.get("labels") or {}).get(LABEL_DEFINITION_UID)
    if uid:
        return str(uid)
    for owner in md.get("ownerReferences") or []:
        if owner.get("kind") == "JobDefinition" and owner.get("uid"):
            return str(owner["uid"])
    return None


def stored_records(
    revisions: Iterable[Mapping[str, Any]], definition: Mapping[str, Any] | None
) -> list[RevisionRecord]:
    """ControllerRevisions of one definition name as records. A revision is ACTIVE unless its
    ``kubatch.dev/revision-status`` label says otherwise or it is retired (not registered by
    ``definition``, the JobDefinition that exists now, or None). Deregistration
    (``spec.deregistered``) is left to the caller."""
    uid = str(((definition or {}).get("metadata") or {}).get("uid") or "") or None
    records = []
    for cr in revisions:
        labels = (cr.get("metadata") or {}).get("labels") or {}
        current = uid is not None and definition_uid(cr) == uid
        active = current and labels.get(LABEL_REVISION_STATUS, "ACTIVE") == "ACTIVE"
        spec = (cr.get("data") or {}).get("spec") or {}
        records.append(RevisionRecord(int(cr.get("revision") or 0), active, spec, current))
    return records


def deletable_revisions(revisions: Iterable[int], retired: Iterable[int], in_use: Iterable[int]) -> list[int]:
    """The retired revisions that can be deleted: those no unfinished job is pinned to, except the
    highest revision number of the name, which keeps the count (a re-created definition continues
    from it; once it registers a higher revision, the old highest can go too)."""
    numbers = set(revisions)
    top = max(numbers, default=0)
    busy = set(in_use)
    return sorted(r for r in set(retired) if r != top and r not in busy)


def next_revision(existing: Iterable[int]) -> int:
    """One more than the highest revision ever used (never reused); 1 for the first."""
    return max(existing, default=0) + 1


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def spec_hash(spec: Mapping[str, Any], length: int = 16) -> str:
    """Deterministic hex digest of a spec: key order and ``null`` fields do not matter, list order
    does. Same spec -> same hash, on every Python run."""
    text = json.dumps(_canonical(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def revision_name(definition_name: str, revision: int) -> str:
    """ControllerRevision name ``<jd>-<rev>`` (object names may be up to 253 characters; longer
    JD names are cut and made unique with a short hash)."""
    suffix = f"-{revision}"
    if len(definition_name) + len(suffix) <= 253:
        return f"{definition_name}{suffix}"
    digest = hashlib.sha256(definition_name.encode()).hexdigest()[:8]
    keep = 253 - len(suffix) - len(digest) - 1
    return f"{definition_name[:keep].rstrip('-.')}-{digest}{suffix}"


def resolved_name(definition_name: str, revision: int) -> str:
    """``name:rev`` as recorded in ``BatchJob.status.jobDefinition``."""
    return f"{definition_name}:{revision}"
