"""JobDefinition revision helpers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.revisions import (
    DefinitionRef,
    ResolutionError,
    RevisionRecord,
    definition_uid,
    deletable_revisions,
    latest_active,
    next_revision,
    parse_reference,
    resolve,
    resolved_name,
    revision_name,
    spec_hash,
    stored_records,
)


def test_parse_reference() -> None:
    assert parse_reference("render") == DefinitionRef("render", None)
    assert parse_reference("render:3") == DefinitionRef("render", 3)
    assert str(parse_reference("render:3")) == "render:3"
    arn = "arn:aws:batch:us-east-1:012345678910:job-definition/JobA-list-and-validate:1"
    assert parse_reference(arn) == DefinitionRef("JobA-list-and-validate", 1)
    for bad in ("", "render:", "render:0", "render:x", "a b", "arn:aws:batch:x:y:job-queue/q"):
        with pytest.raises(ValueError):
            parse_reference(bad)


RECORDS = [(1, True, {"v": 1}), (2, False, {"v": 2}), (3, True, {"v": 3}), (4, False, {"v": 4})]


def test_latest_active_and_resolve() -> None:
    latest = latest_active(RECORDS)
    assert latest is not None and latest.revision == 3
    assert resolve("render", RECORDS).spec == {"v": 3}
    assert resolve("render:1", RECORDS).revision == 1
    with pytest.raises(ResolutionError, match="INACTIVE"):
        resolve("render:2", RECORDS)
    with pytest.raises(ResolutionError, match="not found"):
        resolve("render:9", RECORDS)
    with pytest.raises(ResolutionError, match="no ACTIVE"):
        resolve("render", [RevisionRecord(1, False, {})])
    assert latest_active([]) is None


def test_next_revision_never_reuses() -> None:
    assert next_revision([]) == 1
    assert next_revision([1, 2, 5]) == 6


def test_spec_hash_is_canonical() -> None:
    a = {"type": "container", "containerProperties": {"image": "busybox", "command": ["a", "b"]}}
    b = {"containerProperties": {"command": ["a", "b"], "image": "busybox"}, "type": "container", "x": None}
    assert spec_hash(a) == spec_hash(b)
    assert spec_hash(a) != spec_hash({**a, "containerProperties": {"image": "busybox", "command": ["b", "a"]}})
    assert spec_hash(a) == "ab0a26da7433c9a6"  # pinned: stable across runs and processes


def test_names() -> None:
    assert revision_name("render", 3) == "render-3"
    long = revision_name("x" * 260, 12)
    assert len(long) <= 253 and long.endswith("-12")
    assert resolved_name("render", 1) == "render:1"


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=4), kids, max_size=3)),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=5), _json, max_size=5))
def test_property_hash_ignores_key_order(spec: dict[str, Any]) -> None:
    reordered = dict(reversed(list(spec.items())))
    assert spec_hash(spec) == spec_hash(reordered)


def _cr(rev: int, *, uid: str | None = None, owner: str | None = None, status: str | None = None) -> dict[str, Any]:
    labels = {"kubatch.dev/job-definition": "d"}
    if uid:
        labels["kubatch.dev/job-definition-uid"] = uid
    if status:
        labels["kubatch.dev/revision-status"] = status
    md: dict[str, Any] = {"name": f"d-{rev}", "labels": labels}
    if owner:
        md["ownerReferences"] = [{"kind": "JobDefinition", "name": "d", "uid": owner, "controller": True}]
    return {"metadata": md, "revision": rev, "data": {"spec": {"v": rev}}}


def test_definition_uid_from_label_or_legacy_owner() -> None:
    assert definition_uid(_cr(1, uid="a")) == "a"
    assert definition_uid(_cr(1, owner="b")) == "b"  # recorded before the label existed
    assert definition_uid(_cr(1, uid="a", owner="b")) == "a"
    assert definition_uid(_cr(1)) is None


def test_stored_records_retire_revisions_of_another_definition_object() -> None:
    jd = {"metadata": {"name": "d", "uid": "new"}}
    crs = [_cr(1, owner="old"), _cr(2, uid="old"), _cr(3, uid="new"), _cr(4, uid="new", status="INACTIVE")]
    records = {r.revision: r for r in stored_records(crs, jd)}
    assert [(r.active, r.current) for r in records.values()] == [
        (False, False),
        (False, False),
        (True, True),
        (False, True),
    ]
    assert records[2].spec == {"v": 2}  # still readable by the jobs pinned to it
    # The definition is gone: every revision is retired.
    assert not any(r.active or r.current for r in stored_records(crs, None))
    # Retired revisions keep the numbering going and never resolve for a new submission.
    assert resolve("d", records.values()).revision == 3
    with pytest.raises(ResolutionError, match="INACTIVE"):
        resolve("d:2", records.values())
    assert next_revision(records) == 5


def test_deletable_revisions_keep_pinned_ones_and_the_count() -> None:
    # Definition deleted: 1..3 retired, 2 runs a job; 3 is the highest and carries the count.
    assert deletable_revisions([1, 2, 3], [1, 2, 3], in_use=[2]) == [1]
    assert deletable_revisions([1, 2, 3], [1, 2, 3], in_use=[]) == [1, 2]
    # Re-created and registered as 4: the old highest can go once no job runs it.
    assert deletable_revisions([3, 4], [3], in_use=[]) == [3]
    assert deletable_revisions([3, 4], [3], in_use=[3]) == []
    assert deletable_revisions([], [], in_use=[]) == []


@given(
    st.sets(st.integers(1, 30), min_size=1, max_size=12),
    st.data(),
)
def test_property_deletion_never_loses_the_count_or_a_pinned_revision(revs: set[int], data: st.DataObject) -> None:
    retired = data.draw(st.sets(st.sampled_from(sorted(revs))))
    in_use = data.draw(st.sets(st.sampled_from(sorted(revs))))
    doomed = set(deletable_revisions(revs, retired, in_use))
    assert doomed <= retired
    assert not doomed & in_use
    assert max(revs) not in doomed
    assert next_revision(revs - doomed) == next_revision(revs)
