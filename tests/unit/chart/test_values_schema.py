"""values.schema.json: Helm refuses bad values before rendering anything."""

from __future__ import annotations

import json

import pytest

from tests.unit.chart.chartlib import CHART, CRD_CHART, assert_schema_rejects, run_helm

BAD = [
    ("replicaCount=two", "replicaCount"),
    ("replicaCount=-1", "replicaCount"),
    ("webhook.failurePolicy=Sometimes", "failurePolicy"),
    ("webhook.timeoutSeconds=60", "timeoutSeconds"),
    ("webhook.operations={DELETE,EXPLODE}", "operations"),
    ("image.pullPolicy=Sometimes", "pullPolicy"),
    ("image.digest=latest", "digest"),
    ("leaderElection.leaseName=Not_A_Name", "leaseName"),
    ("provisioners.kwok.enabled=yes", "enabled"),
    ("metrics.port=70000", "port"),
    ("metrics.serviceMonitor.interval=often", "interval"),
    ("unknownTopLevel=1", "unknownTopLevel"),
    ("webhook.certManager.issuerRef.kind=Cluster", "kind"),
    ("operator.jobEvents=loud", "jobEvents"),
]


@pytest.mark.parametrize(("value", "mentions"), BAD, ids=[b[0] for b in BAD])
def test_schema_rejects(value: str, mentions: str) -> None:
    assert_schema_rejects(value, mentions)


def test_schema_accepts_the_defaults_and_real_overrides() -> None:
    run_helm(
        "template", "x", str(CHART),
        "--set", "replicaCount=3",
        "--set", "webhook.failurePolicy=Fail",
        "--set", "webhook.operations={CREATE,UPDATE,DELETE}",
        "--set", "image.digest=sha256:" + "a" * 64,
        "--set", "podDisruptionBudget.maxUnavailable=50%",
        "--set", "metrics.serviceMonitor.interval=15s",
    )  # fmt: skip


def test_crd_chart_schema() -> None:
    assert run_helm("template", "x", str(CRD_CHART), "--set", "keep=maybe", check=False).returncode != 0
    assert run_helm("template", "x", str(CRD_CHART), "--set", "other=1", check=False).returncode != 0


def test_schema_is_valid_json_with_every_value_described() -> None:
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(v: object, s: dict[str, object], path: str) -> None:
        if isinstance(v, dict) and s.get("additionalProperties") is False:
            props = s.get("properties")
            assert isinstance(props, dict), path
            for k, sub in v.items():
                assert k in props, f"{path}.{k} is not in the schema"
                check(sub, props[k], f"{path}.{k}")

    check(values, schema, "")
