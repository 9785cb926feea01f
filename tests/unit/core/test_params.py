"""Ref:: parameter substitution."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.params import merge_parameters, references, substitute, substitute_all, unresolved


def test_guide_ffmpeg_example() -> None:
    command = ["ffmpeg", "-i", "Ref::inputfile", "-c", "Ref::codec", "-o", "Ref::outputfile"]
    params = merge_parameters({"codec": "mp4"}, {"inputfile": "in.mov", "outputfile": "out.mp4"})
    assert substitute_all(command, params) == ["ffmpeg", "-i", "in.mov", "-c", "mp4", "-o", "out.mp4"]


def test_job_parameters_override_definition_defaults() -> None:
    params = merge_parameters({"codec": "mp4", "frame": "0"}, {"frame": "7"})
    assert params == {"codec": "mp4", "frame": "7"}
    assert substitute_all(["sh", "-c", "render --frame Ref::frame"], params) == [
        "sh",
        "-c",
        "render --frame 7",
    ]


def test_unknown_reference_is_left_as_is() -> None:
    assert substitute("Ref::missing and Ref::a", {"a": "1"}) == "Ref::missing and 1"
    assert unresolved(["Ref::missing", "Ref::a"], {"a": "1"}) == {"missing"}


def test_exact_token_no_partial_names() -> None:
    # Ref::ab is the parameter "ab", never "a" followed by "b"
    assert substitute("Ref::ab", {"a": "X"}) == "Ref::ab"
    assert substitute("Ref::ab", {"a": "X", "ab": "Y"}) == "Y"
    assert substitute("Ref::a.txt", {"a": "X"}) == "X.txt"
    assert substitute("s3://bucket/Ref::key/out", {"key": "k1"}) == "s3://bucket/k1/out"
    assert substitute("Ref::my-param", {"my": "no", "my-param": "yes"}) == "yes"


def test_single_pass_and_edge_cases() -> None:
    assert substitute("Ref::a", {"a": "Ref::b", "b": "2"}) == "Ref::b"
    assert substitute("Ref::", {"": "x"}) == "Ref::"
    assert substitute("Ref::a Ref::a", {"a": "1"}) == "1 1"
    assert substitute_all(None, {"a": "1"}) is None
    assert references(["Ref::a Ref::b-c", "x"]) == {"a", "b-c"}


_name = st.text(alphabet="abcXY_-0", min_size=1, max_size=6)
_value = st.text(alphabet="abc xyz/.:=", max_size=8)  # values without "Ref::"
_params = st.dictionaries(_name, _value, max_size=4)
_piece = st.one_of(st.text(alphabet="ab /.=", max_size=5), _name.map(lambda n: f"Ref::{n}"))
_string = st.lists(_piece, max_size=6).map(lambda parts: " ".join(parts))


@given(_string, _params)
def test_property_idempotent_when_values_have_no_refs(text: str, params: dict[str, str]) -> None:
    once = substitute(text, params)
    assert substitute(once, params) == once


@given(_string, _params)
def test_property_no_params_changes_nothing(text: str, params: dict[str, str]) -> None:
    assert substitute(text, {}) == text
    unknown = {k: v for k, v in params.items() if k not in references([text])}
    assert substitute(text, unknown) == text


@given(st.lists(_name, min_size=1, max_size=5, unique=True), _params)
def test_property_whole_elements(names: list[str], params: dict[str, str]) -> None:
    command = [f"Ref::{n}" for n in names]
    result = substitute_all(command, params)
    assert result == [params.get(n, f"Ref::{n}") for n in names]


@given(_params, _params)
def test_property_merge_job_wins(defaults: dict[str, str], job: dict[str, str]) -> None:
    merged = merge_parameters(defaults, job)
    assert set(merged) == set(defaults) | set(job)
    for k, v in job.items():
        assert merged[k] == v
