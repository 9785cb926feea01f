"""The chart's serviceWorkloadTypes and rbac.extraRules: the ConfigMap the operator reads at start,
its mount and environment variable, the RBAC of each type's workloads, extra rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.core.workload_types import parse_workload_types
from tests.unit.chart.chartlib import CHART, expand, find, grants, run_helm, template

TYPES: list[dict[str, Any]] = [
    {
        "name": "WIDGET",
        "apiVersion": "test.kubatch.dev/v1",
        "kind": "Widget",
        "plural": "widgets",
        "podTemplates": [{"templatePath": "spec.template", "replicasPath": "spec.replicas"}],
        "succeeded": {"conditions": ["Finished"]},
        "failed": {"path": "status.phase", "values": ["Failed"], "messagePath": "status.message"},
        "running": {"path": "status.readyReplicas"},
    },
    {
        "name": "CORE_THING",
        "apiVersion": "v1",
        "kind": "Thing",
        "plural": "things",
        "succeeded": {"conditions": ["Done"]},
        "failed": {"conditions": ["Failed"]},
    },
]
EXTRA = [{"apiGroups": ["example.com"], "resources": ["gadgets"], "verbs": ["get", "list"]}]


def render(tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    return template(extra=["-f", str(f)])


def operator_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    dep = find(objs, "Deployment", "kubatch")
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def test_declared_types_reach_the_operator(tmp_path: Path) -> None:
    objs = render(tmp_path, {"serviceWorkloadTypes": TYPES})
    cm = find(objs, "ConfigMap", "kubatch-workload-types")
    text = cm["data"]["workload-types.yaml"]
    assert [t.name for t in parse_workload_types(text, "chart")] == ["WIDGET", "CORE_THING"]
    assert yaml.safe_load(text) == TYPES
    c = operator_container(objs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KUBATCH_SERVICE_WORKLOAD_TYPES"] == "/etc/kubatch/workload-types/workload-types.yaml"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "workload-types")
    assert mount == {"name": "workload-types", "mountPath": "/etc/kubatch/workload-types", "readOnly": True}
    pod = find(objs, "Deployment", "kubatch")["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "workload-types")
    assert volume["configMap"] == {"name": "kubatch-workload-types"}
    checksum = pod["metadata"]["annotations"]["checksum/workload-types"]
    changed = render(tmp_path, {"serviceWorkloadTypes": TYPES[:1]})
    # A change of the types changes the pod template: the operator restarts and reads them.
    assert find(changed, "Deployment", "kubatch")["spec"]["template"]["metadata"]["annotations"][
        "checksum/workload-types"
    ] != checksum


def test_each_type_gets_the_rbac_of_its_workloads_and_extra_rules_are_added(tmp_path: Path) -> None:
    objs = render(tmp_path, {"serviceWorkloadTypes": TYPES, "rbac": {"extraRules": EXTRA}})
    base = grants(find(template(), "ClusterRole", "kubatch")["rules"])
    added = grants(find(objs, "ClusterRole", "kubatch")["rules"]) - base
    verbs = ("list", "watch", "create", "patch", "delete")
    want = expand("test.kubatch.dev", ["widgets"], verbs) | expand("", ["things"], verbs)
    want |= expand("example.com", ["gadgets"], ["get", "list"])
    assert added == want


def test_nothing_by_default() -> None:
    objs = template()
    assert not [o for o in objs if o["kind"] == "ConfigMap" and "workload-types" in o["metadata"]["name"]]
    c = operator_container(objs)
    assert "KUBATCH_SERVICE_WORKLOAD_TYPES" not in {e["name"] for e in c["env"]}
    pod = find(objs, "Deployment", "kubatch")["spec"]["template"]
    assert "checksum/workload-types" not in (pod["metadata"].get("annotations") or {})


@pytest.mark.parametrize(
    ("entry", "mentions"),
    [
        ({"name": "KUBERNETES_JOB"}, "name"),
        ({"name": "lower"}, "name"),
        ({"plural": "Widgets"}, "plural"),
        ({"succeeded": {"condition": ["X"]}}, "condition"),
        ({"podTemplates": [{"replicasPath": "spec.n"}]}, "templatePath"),
        ({"typo": 1}, "typo"),
    ],
)
def test_the_schema_refuses_bad_types(tmp_path: Path, entry: dict[str, Any], mentions: str) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump({"serviceWorkloadTypes": [{**TYPES[0], **entry}]}))
    proc = run_helm("template", "x", str(CHART), "-f", str(f), check=False)
    assert proc.returncode != 0 and "values don't meet the specifications of the schema" in proc.stderr
    assert mentions in proc.stderr, proc.stderr
