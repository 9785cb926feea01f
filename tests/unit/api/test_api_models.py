"""The models on concrete objects: the examples parse, defaults match the CRD defaults, and the
constants match the CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from kubatch.api import (
    BatchJob,
    BatchJobSpec,
    ComputeEnvironment,
    ConsumableResource,
    JobDefinition,
    JobDefinitionSpec,
    JobQueue,
    JobSchedule,
    SchedulingPolicy,
    ServiceEnvironment,
    crdgen,
)
from kubatch.api.batch_job import JOB_STATUSES
from kubatch.api.constants import BATCH_JOB, KINDS_BY_NAME
from tests.unit.api.openapi_subset import validate

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
RESOURCES: dict[str, type[BaseModel]] = {
    "ComputeEnvironment": ComputeEnvironment,
    "JobQueue": JobQueue,
    "SchedulingPolicy": SchedulingPolicy,
    "ConsumableResource": ConsumableResource,
    "JobDefinition": JobDefinition,
    "BatchJob": BatchJob,
    "JobSchedule": JobSchedule,
    "ServiceEnvironment": ServiceEnvironment,
}
SCHEMAS = {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in crdgen.all_crds()}


def example_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("kubatch.dev/"):
                out.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return out


OBJECTS = example_objects()


@pytest.mark.parametrize(("name", "doc"), OBJECTS, ids=[n for n, _ in OBJECTS])
def test_examples_parse_and_validate(name: str, doc: dict[str, Any]) -> None:
    model = RESOURCES[doc["kind"]].model_validate(doc)
    assert validate(doc, SCHEMAS[doc["kind"]]) == []
    assert validate(model.model_dump(mode="json", exclude_none=True), SCHEMAS[doc["kind"]]) == []


def test_examples_cover_every_kind() -> None:
    assert {doc["kind"] for _, doc in OBJECTS} == set(RESOURCES)
    assert len(EXAMPLES) >= 12


def test_model_defaults_are_the_schema_defaults() -> None:
    spec = JobDefinitionSpec.model_validate({"containerProperties": {"image": "busybox"}})
    assert spec.type == "container" and spec.deregistered is False and spec.propagateTags is False
    schema = SCHEMAS["JobDefinition"]["properties"]["spec"]["properties"]
    assert schema["type"]["default"] == "container"
    assert schema["deregistered"]["default"] is False
    ce = ComputeEnvironment.model_validate(
        {"spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 4, "provisioner": "kwok"}}}
    )
    assert ce.spec.state == "ENABLED"
    assert ce.spec.computeResources is not None and ce.spec.computeResources.allocationStrategy == "BEST_FIT"


def test_to_dict_leaves_out_unset_fields() -> None:
    spec = BatchJobSpec(jobQueue="q", jobDefinition="d:2")
    assert spec.to_dict() == {"jobQueue": "q", "jobDefinition": "d:2"}


@pytest.mark.parametrize(
    "spec",
    [
        {"jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 1}},
        {"jobQueue": "q", "jobDefinition": "d:0"},
        {"jobQueue": "Q", "jobDefinition": "d"},
        {"jobQueue": "q", "jobDefinition": "d", "retryStrategy": {"attempts": 11}},
        {"jobQueue": "q", "jobDefinition": "d", "timeout": {"attemptDurationSeconds": 59}},
    ],
)
def test_models_enforce_the_openapi_constraints(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BatchJobSpec.model_validate(spec)


@pytest.mark.parametrize("action", ["RETRY", "EXIT", "retry", "exit", "Retry", "eXiT"])
def test_evaluate_on_exit_action_in_any_case(action: str) -> None:
    strategy = {"attempts": 2, "evaluateOnExit": [{"onReason": "*", "action": action}]}
    spec = {"jobQueue": "q", "jobDefinition": "d", "retryStrategy": strategy}
    assert BatchJobSpec.model_validate(spec).to_dict()["retryStrategy"] == strategy  # kept as written
    assert validate(spec, SCHEMAS["BatchJob"]["properties"]["spec"]) == []


@pytest.mark.parametrize("action", ["IGNORE", "retries", " RETRY", "EXIT ", ""])
def test_evaluate_on_exit_action_rejects_other_words(action: str) -> None:
    strategy = {"attempts": 2, "evaluateOnExit": [{"onReason": "*", "action": action}]}
    spec = {"jobQueue": "q", "jobDefinition": "d", "retryStrategy": strategy}
    with pytest.raises(ValidationError):
        BatchJobSpec.model_validate(spec)
    assert validate(spec, SCHEMAS["BatchJob"]["properties"]["spec"]) != []


def test_status_enum_and_constants() -> None:
    assert JOB_STATUSES == ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
    status = SCHEMAS["BatchJob"]["properties"]["status"]["properties"]["status"]
    # A service job has SCHEDULED between RUNNABLE and STARTING.
    assert tuple(status["enum"]) == (*JOB_STATUSES[:3], "SCHEDULED", *JOB_STATUSES[3:])
    assert KINDS_BY_NAME["BatchJob"] is BATCH_JOB
    assert BATCH_JOB.crd_name == "batchjobs.kubatch.dev" and BATCH_JOB.namespaced


def test_job_definition_revision_reference() -> None:
    for ok in ("render", "render:3", "a.b-c:12"):
        BatchJobSpec(jobQueue="q", jobDefinition=ok)
    for bad in ("render:", "render:x", "Render", "render:01"):
        with pytest.raises(ValidationError):
            BatchJobSpec(jobQueue="q", jobDefinition=bad)
