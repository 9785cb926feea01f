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
    latest_active,
    next_revision,
    parse_reference,
    resolve,
    resolved_name,
    revision_name,
    spec_hash,
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
