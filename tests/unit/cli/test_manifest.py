"""build_batchjob and its parsers: the manifest `kubatch submit` creates."""

from __future__ import annotations

import pytest

from kubatch.cli.manifest import build_batchjob, container_overrides, parse_dependency, parse_pairs
from kubatch.core.jobnames import kubernetes_name


def test_minimal_job_has_name_queue_and_definition() -> None:
    m = build_batchjob(job_name="j1", job_queue="q", job_definition="render:3", namespace="team-a")
    assert m == {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "j1", "namespace": "team-a"},
        "spec": {"jobQueue": "q", "jobDefinition": "render:3"},
    }


def test_without_a_name_the_name_is_generated_from_the_definition() -> None:
    m = build_batchjob(job_queue="q", job_definition="render:3")
    assert m["metadata"] == {"generateName": "render-"}


def test_all_overrides_map_to_the_api_fields() -> None:
    m = build_batchjob(
        job_name="j",
        job_queue="q",
        job_definition="d",
        parameters={"frame": "7"},
        array_size=10,
        depends_on=[{"jobName": "prep"}, {"jobName": "other", "type": "N_TO_N"}],
        depends_on_sequential=True,
        command=["sh", "-c", "echo hi"],
        env={"MODE": "fast"},
        vcpus="0.5",
        memory=2048,
        gpus=1,
        timeout=600,
        retries=3,
        share_identifier="teamA",
        scheduling_priority=10,
        tags={"run": "42"},
        annotations={"sim.kubatch.dev/duration": "5s"},
        labels={"team": "a"},
        propagate_tags=True,
    )
    spec = m["spec"]
    assert spec["parameters"] == {"frame": "7"}
    assert spec["arrayProperties"] == {"size": 10}
    assert spec["dependsOn"] == [{"jobName": "prep"}, {"jobName": "other", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}]
    assert spec["containerOverrides"] == {
        "command": ["sh", "-c", "echo hi"],
        "environment": [{"name": "MODE", "value": "fast"}],
        "resourceRequirements": [
            {"type": "VCPU", "value": "0.5"},
            {"type": "MEMORY", "value": "2048"},
            {"type": "GPU", "value": "1"},
        ],
    }
    assert spec["timeout"] == {"attemptDurationSeconds": 600}
    assert spec["retryStrategy"] == {"attempts": 3}
    assert spec["shareIdentifier"] == "teamA"
    assert spec["schedulingPriorityOverride"] == 10
    assert spec["tags"] == {"run": "42"}
    assert spec["propagateTags"] is True
    assert spec["podMetadata"] == {"labels": {"team": "a"}, "annotations": {"sim.kubatch.dev/duration": "5s"}}


def test_multi_node_overrides_apply_to_every_node() -> None:
    m = build_batchjob(job_name="mpi", job_queue="q", job_definition="d", num_nodes=4, command=["run"])
    assert "containerOverrides" not in m["spec"]
    assert m["spec"]["nodeOverrides"] == {
        "numNodes": 4,
        "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {"command": ["run"]}}],
    }


def test_multi_node_without_overrides_sets_only_num_nodes() -> None:
    m = build_batchjob(job_name="mpi", job_queue="q", job_definition="d", num_nodes=2)
    assert m["spec"]["nodeOverrides"] == {"numNodes": 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_name": "bad.name"}, "job name"),
        ({"job_name": "_leading"}, "job name"),
        ({"job_name": "x" * 129}, "job name"),
        ({"job_definition": "bad def"}, "job definition"),
        ({"job_queue": "Q!"}, "job queue"),
        ({"array_size": 1}, "array size"),
        ({"array_size": 10001}, "array size"),
        ({"array_size": 4, "num_nodes": 2}, "multi-node"),
        ({"depends_on_sequential": True}, "need --array-size"),
        ({"depends_on": [{"jobName": "a", "type": "N_TO_N"}]}, "need --array-size"),
        ({"depends_on": [{"jobName": "a"}, {"jobName": "a"}]}, "only once"),
        ({"depends_on": [{"jobName": f"j{i}"} for i in range(21)]}, "at most 20"),
        ({"timeout": 30}, "at least 60"),
        ({"retries": 11}, "between 1 and 10"),
        ({"scheduling_priority": 10000}, "between 0 and 9999"),
        ({"env": {"AWS_BATCH_JOB_ID": "x"}}, "reserved"),
        ({"command": ["echo", ""]}, "empty"),
        ({"vcpus": "zero"}, "positive number"),
        ({"num_nodes": 0}, "at least 1"),
    ],
)
def test_invalid_input_is_rejected_with_a_clear_message(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"job_name": "j", "job_queue": "q", "job_definition": "d"}
    with pytest.raises(ValueError, match=message):
        build_batchjob(**{**base, **kwargs})  # type: ignore[arg-type]


def test_parse_pairs_keeps_equals_signs_in_values_and_rejects_bare_keys() -> None:
    assert parse_pairs(["a=1", "b=x=y", "a=2"], "--env") == {"a": "2", "b": "x=y"}
    with pytest.raises(ValueError, match="--env 'oops'"):
        parse_pairs(["oops"], "--env")


def test_parse_dependency() -> None:
    assert parse_dependency("prep") == {"jobName": "prep"}
    assert parse_dependency("prep:n_to_n") == {"jobName": "prep", "type": "N_TO_N"}
    with pytest.raises(ValueError, match="--depends-on-sequential"):
        parse_dependency("prep:SEQUENTIAL")
    with pytest.raises(ValueError, match="type must be"):
        parse_dependency("prep:ALL")
    # An AWS name names the object `submit --job-name` made for it.
    assert parse_dependency("Prep_1") == {"jobName": kubernetes_name("Prep_1")}
    with pytest.raises(ValueError, match="not a valid job name"):
        parse_dependency("prep.1")


def test_aws_job_name_goes_to_spec_job_name() -> None:
    plain = build_batchjob(job_name="render-1", job_queue="q", job_definition="d")
    assert plain["metadata"]["name"] == "render-1" and "jobName" not in plain["spec"]
    aws = build_batchjob(job_name="Render_Frames_2024", job_queue="q", job_definition="d")
    assert aws["spec"]["jobName"] == "Render_Frames_2024"
    assert aws["metadata"]["name"] == kubernetes_name("Render_Frames_2024")
    assert aws["metadata"]["name"].startswith("render-frames-2024-")
    assert list(aws["spec"])[:2] == ["jobName", "jobQueue"]


def test_container_overrides_empty_when_nothing_set() -> None:
    assert container_overrides() == {}
