"""core.workload_types: service workload types declared by configuration (parsing, checking, status)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.core.service_jobs import (
    FAILED,
    RUNNABLE,
    RUNNING,
    SCHEDULED,
    STARTING,
    SUCCEEDED,
    WORKLOAD_TYPES,
    PayloadError,
    ServiceContext,
    build_workload,
    environment_validity,
    payload_instances,
    reconcile_service,
    type_of,
    unsuspend_patch,
    workload_unit,
)
from kubatch.core.workload_types import (
    WorkloadTypeConfigError,
    configured,
    parse_workload_types,
    register,
)

REPO = Path(__file__).resolve().parents[3]
NOW = 1_700_000_000.0

WIDGET = """
- name: WIDGET
  apiVersion: test.kubatch.dev/v1
  kind: Widget
  plural: widgets
  service: Widget controller
  timeoutPath: spec.deadlineSeconds
  podTemplates:
    - {templatePath: spec.template, replicasPath: spec.replicas}
    - {templatePath: spec.helpers.0.template, replicas: 2}
  succeeded: {conditions: [Finished]}
  failed: {path: status.phase, values: [Failed, Lost], messagePath: status.message}
  running: {path: status.readyReplicas}
  starting: {conditions: [Started]}
  startedAtPath: status.startTime
"""


@pytest.fixture
def widget() -> Iterator[Any]:
    (wtype,) = parse_workload_types(WIDGET, "test")
    register([wtype])
    yield wtype
    register([])


def widget_payload(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.kubatch.dev/v1",
        "kind": "Widget",
        "spec": {
            "replicas": 3,
            "template": {"spec": {"nodeSelector": {"node.kubernetes.io/instance-type": "m5.large"}}},
            "helpers": [{"template": {"metadata": {"labels": {"own": "x"}}}}],
            **spec,
        },
    }


def widget_job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "wj", "namespace": "ns", "uid": "uid-1", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "jobQueue": "wq",
            "serviceJobType": "WIDGET",
            "serviceRequestPayload": json.dumps(widget_payload()),
            **spec,
        },
        "status": status or {},
    }


def test_a_declared_type_is_known_while_registered(widget: Any) -> None:
    assert WORKLOAD_TYPES["WIDGET"] is widget and configured() == [widget]
    assert environment_validity({"spec": {"serviceEnvironmentType": "WIDGET"}}) == ("VALID", "")
    assert type_of({"apiVersion": "test.kubatch.dev/v1", "kind": "Widget"}) is widget
    assert widget.collection_path("ns") == "/apis/test.kubatch.dev/v1/namespaces/ns/widgets"
    assert widget.cluster_path() == "/apis/test.kubatch.dev/v1/widgets"
    assert widget.resource_id_name == "WidgetUid"
    assert widget.status_reason("x") == "Received status from Widget controller: x"
    register([])
    assert "WIDGET" not in WORKLOAD_TYPES and "KUBERNETES_JOB" in WORKLOAD_TYPES
    status, reason = environment_validity({"spec": {"serviceEnvironmentType": "WIDGET"}})
    assert status == "INVALID" and "known: KUBERNETES_JOB" in reason


def test_defaults_and_other_spellings() -> None:
    text = json.dumps(
        {
            "serviceWorkloadTypes": [
                {
                    "name": "TRAINER",
                    "apiVersion": "ml.example.com/v1beta1",
                    "kind": "Trainer",
                    "plural": "trainers",
                    "succeeded": {"conditions": ["Succeeded"]},
                    "failed": {"conditions": ["Failed"]},
                }
            ]
        }
    )
    (t,) = parse_workload_types(text)
    assert t.suspend_path == ("spec", "suspend") and t.service == "Trainer"
    assert t.instances({"spec": {}}) == 1  # one template at spec.template, one pod
    assert t.observe({"status": {}}).state == SCHEDULED  # neither running nor starting declared
    assert parse_workload_types("") == [] and parse_workload_types("[]") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "KUBERNETES_JOB"}, "built in and cannot be redefined"),
        ({"name": "widget"}, "upper-case letters"),
        ({"apiVersion": "v1beta"}, "group/version"),
        ({"plural": "Widgets"}, "plural in lower case"),
        ({"kind": "widget"}, "a Kind"),
        ({"succeeded": None}, "required"),
        ({"failed": {"conditions": []}}, "non-empty list of condition types"),
        ({"failed": {"conditions": ["F"], "path": "status.phase"}}, "exactly one of conditions and path"),
        ({"failed": {"path": "status..phase"}}, "empty segment"),
        ({"failed": {"path": "status.phase", "values": []}}, "non-empty list"),
        ({"running": {"condition": ["R"]}}, "unknown field(s) condition"),
        ({"suspendPath": "spec.0.suspend"}, "field names only"),
        ({"suspendPath": ""}, "dotted field path"),
        ({"podTemplates": []}, "non-empty list"),
        ({"podTemplates": [{"templatePath": "spec.t", "replicas": -1}]}, "whole number"),
        ({"podTemplates": [{"replicasPath": "spec.n"}]}, "templatePath: must be a dotted field path"),
        ({"unknownField": 1}, "unknown field(s) unknownField"),
    ],
)
def test_invalid_entries_say_where_and_why(entry: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "name": "WIDGET",
        "apiVersion": "test.kubatch.dev/v1",
        "kind": "Widget",
        "plural": "widgets",
        "succeeded": {"conditions": ["Finished"]},
        "failed": {"conditions": ["Failed"]},
    }
    raw = {**base, **entry}
    if entry.get("succeeded", 0) is None:
        del raw["succeeded"]
    with pytest.raises(WorkloadTypeConfigError) as e:
        parse_workload_types(json.dumps([raw]), "types.yaml")
    assert message in str(e.value) and str(e.value).startswith("types.yaml: serviceWorkloadTypes[0]")


def test_whole_file_errors() -> None:
    with pytest.raises(WorkloadTypeConfigError, match="must be a list"):
        parse_workload_types("a: b")
    with pytest.raises(WorkloadTypeConfigError, match="not YAML or JSON"):
        parse_workload_types("[unclosed")
    entry = {
        "name": "A",
        "apiVersion": "x.io/v1",
        "kind": "A",
        "plural": "as",
        "succeeded": {"conditions": ["Done"]},
        "failed": {"conditions": ["Failed"]},
    }
    with pytest.raises(WorkloadTypeConfigError, match="declared twice"):
        parse_workload_types(json.dumps([entry, entry]))
    with pytest.raises(WorkloadTypeConfigError, match=r"x\.io/v1 A is another type's workload"):
        parse_workload_types(json.dumps([entry, {**entry, "name": "B"}]))
    with pytest.raises(WorkloadTypeConfigError, match="batch/v1 Job is another type's workload"):
        parse_workload_types(json.dumps([{**entry, "apiVersion": "batch/v1", "kind": "Job", "plural": "jobs"}]))


def test_status_mapping(widget: Any) -> None:
    def obs(status: dict[str, Any]) -> Any:
        return widget.observe({"status": {"startTime": "2024-01-01T00:01:00Z", **status}})

    assert obs({}).state == SCHEDULED and obs({}).started_at == "2024-01-01T00:01:00Z"
    started = {"type": "Started", "status": "True"}
    assert obs({"conditions": [started]}).state == STARTING
    assert obs({"conditions": [{**started, "status": "False"}]}).state == SCHEDULED
    assert obs({"conditions": [started], "readyReplicas": 0}).state == STARTING  # 0 counts as absent
    assert obs({"conditions": [started], "readyReplicas": 2}).state == RUNNING
    finished = {
        "type": "Finished",
        "status": "True",
        "reason": "AllDone",
        "message": "3 of 3 ",
        "lastTransitionTime": "2024-01-01T00:05:00Z",
    }
    done = obs({"conditions": [started, finished], "readyReplicas": 2})
    assert (done.state, done.reason, done.stopped_at) == (SUCCEEDED, "AllDone: 3 of 3", "2024-01-01T00:05:00Z")
    bare = obs({"conditions": [{"type": "Finished", "status": "True"}]})
    assert bare.reason == "Finished"  # no reason: the condition type
    failed = obs({"phase": "Lost", "message": "node went away"})
    assert (failed.state, failed.reason) == (FAILED, "Lost: node went away")
    assert obs({"phase": "Pending"}).state == SCHEDULED


def test_instances_prepare_and_labels(widget: Any) -> None:
    payload = widget_payload()
    assert widget.instances(payload) == 3 + 2  # spec.replicas, then the helper's fixed 2
    assert widget.instances({"spec": {}}) == 1 + 2  # replicasPath absent: replicas (1)
    assert payload_instances(widget_job(), widget) == 5
    job = widget_job(timeoutConfig={"attemptDurationSeconds": 600})
    w = build_workload(job, widget, 1, service_environment="wse")
    assert (w["apiVersion"], w["kind"], w["metadata"]["name"]) == ("test.kubatch.dev/v1", "Widget", "wj-a1")
    assert w["spec"]["suspend"] is False and w["spec"]["deadlineSeconds"] == 600
    ours = {"kubatch.dev/service-job": "wj", "kubatch.dev/service-environment": "wse", "kubatch.dev/attempt": "1"}
    for labels in (
        w["metadata"]["labels"],
        w["spec"]["template"]["metadata"]["labels"],
        w["spec"]["helpers"][0]["template"]["metadata"]["labels"],
    ):
        assert ours.items() <= labels.items()
    assert w["spec"]["helpers"][0]["template"]["metadata"]["labels"]["own"] == "x"
    shorter = widget_job(serviceRequestPayload=json.dumps(widget_payload(deadlineSeconds=60)))
    assert build_workload(shorter, widget, 1, service_environment="wse")["spec"]["deadlineSeconds"] == 60
    other = widget_job(serviceRequestPayload=json.dumps({"apiVersion": "batch/v1", "kind": "Job"}))
    with pytest.raises(PayloadError, match=r"WIDGET payload is a test\.kubatch\.dev/v1 Widget"):
        build_workload(other, widget, 1, service_environment="wse")
    # The instance-type unit (quota management) is read from the type's first pod template.
    assert workload_unit(widget_job()) == "m5.large"


def test_suspend_path_patches() -> None:
    (t,) = parse_workload_types(WIDGET.replace("timeoutPath", "suspendPath: spec.control.paused\n  timeoutPath"))
    assert t.suspend_path == ("spec", "control", "paused")
    assert t.suspend_patch(True) == {"spec": {"control": {"paused": True}}}
    assert t.suspended({"spec": {"control": {"paused": True}}}) and not t.suspended({"spec": {}})
    assert unsuspend_patch("se", 2, t) == {
        "metadata": {"labels": {"kubatch.dev/service-environment": "se", "kubatch.dev/attempt": "2"}},
        "spec": {"control": {"paused": False}},
    }
    w: dict[str, Any] = {"spec": {}}
    t.prepare(w, None)
    assert w == {"spec": {"control": {"paused": False}}}


def widget_workload(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.kubatch.dev/v1",
        "kind": "Widget",
        "metadata": {
            "name": "wj-a1",
            "namespace": "ns",
            "uid": "widget-uid",
            "labels": {"kubatch.dev/service-environment": "wse"},
        },
        "spec": {"suspend": False, "replicas": 1, "helpers": []},
        "status": {"conditions": list(conditions), **status},
    }


def test_state_machine_follows_a_declared_workload(widget: Any) -> None:
    ctx = ServiceContext(now=NOW)
    job = widget_job({"status": RUNNABLE})
    d = reconcile_service(job, {"wj-a1": widget_workload()}, widget, ctx)
    assert d.status is not None and d.status["status"] == SCHEDULED
    assert d.status["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 1 + 2}]
    assert d.status["latestAttempt"] == {"serviceResourceId": {"name": "WidgetUid", "value": "widget-uid"}}
    job["status"] = d.status
    d = reconcile_service(job, {"wj-a1": widget_workload(readyReplicas=1)}, widget, ctx)
    assert d.status is not None and d.status["status"] == RUNNING
    job["status"] = d.status
    finished = {"type": "Finished", "status": "True", "reason": "Done", "lastTransitionTime": "2024-01-01T00:05:00Z"}
    d = reconcile_service(job, {"wj-a1": widget_workload(finished)}, widget, ctx)
    assert d.status is not None and d.status["status"] == SUCCEEDED
    assert d.status["statusReason"] == "Received status from Widget controller: Done"
    assert d.status["attempts"][0]["serviceResourceId"] == {"name": "WidgetUid", "value": "widget-uid"}
    # failed (path and values), no retries left -> FAILED with the workload's words
    job = widget_job({"status": RUNNABLE})
    d = reconcile_service(job, {"wj-a1": widget_workload()}, widget, ctx)
    job["status"] = d.status
    d = reconcile_service(job, {"wj-a1": widget_workload(phase="Failed", message="boom")}, widget, ctx)
    assert d.status is not None and d.status["status"] == FAILED
    assert d.status["statusReason"] == "Received status from Widget controller: Failed: boom"
    # vanished: the kind in the words
    job = widget_job({"status": RUNNABLE})
    d = reconcile_service(job, {"wj-a1": widget_workload()}, widget, ctx)
    job["status"] = d.status
    d = reconcile_service(job, {}, widget, ctx)
    assert d.status is not None
    assert d.status["statusReason"] == "Received status from Widget controller: Widget wj-a1 was deleted"
    # terminate deletes the workload
    job = widget_job({"status": RUNNABLE})
    d = reconcile_service(job, {"wj-a1": widget_workload()}, widget, ctx)
    job["status"] = d.status
    job["spec"]["terminate"] = {"reason": "stop"}
    d = reconcile_service(job, {"wj-a1": widget_workload()}, widget, ctx)
    assert [x.name for x in d.delete] == ["wj-a1"] and d.status is not None and d.status["status"] == FAILED


def test_the_operator_reads_the_file_at_start(tmp_path: Path) -> None:
    from kubatch.controllers.operator import configure_workload_types

    good = tmp_path / "types.yaml"
    good.write_text(WIDGET)
    try:
        configure_workload_types({"KUBATCH_SERVICE_WORKLOAD_TYPES": str(good)})
        assert [t.name for t in configured()] == ["WIDGET"]
    finally:
        register([])
    bad = tmp_path / "bad.yaml"
    bad.write_text(WIDGET.replace("plural: widgets", "plural: Widgets"))
    with pytest.raises(SystemExit, match=r"invalid service workload types .*plural in lower case"):
        configure_workload_types({"KUBATCH_SERVICE_WORKLOAD_TYPES": str(bad)})
    with pytest.raises(SystemExit, match="cannot read"):
        configure_workload_types({"KUBATCH_SERVICE_WORKLOAD_TYPES": str(tmp_path / "missing.yaml")})
    configure_workload_types({})  # unset: nothing to read
    assert configured() == []


def test_the_test_configuration_parses() -> None:
    text = (REPO / "tests/integration/service-workload-types.yaml").read_text()
    assert [t.name for t in parse_workload_types(text)] == ["WIDGET"]


def test_listed_workloads_are_given_their_kind() -> None:
    """A list of batch/v1 Jobs names no apiVersion or kind on its items: the runtime's workload
    informers add their type's, so such a Job counts as a live workload of KUBERNETES_JOB."""
    from kubatch.core.service_jobs import KUBERNETES_JOB
    from kubatch.runtime.app import typed

    seen: list[dict[str, Any]] = []
    handle = typed(lambda _typ, obj: seen.append(obj), KUBERNETES_JOB)
    handle("ADDED", {"metadata": {"name": "j"}})
    handle("MODIFIED", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "k"}})
    assert [type_of(o) for o in seen] == [KUBERNETES_JOB, KUBERNETES_JOB]
