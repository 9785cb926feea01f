"""deploy/monitoring: the rules and the dashboard use only metrics the operator exports.

Every PromQL expression is checked here for the metric names it uses and basic shape; checking each
expression against a real Prometheus is a separate test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.unit.chart.chartlib import DEPLOY

# Names as exported (prometheus_client adds _total to counters and _bucket/_sum/_count to histograms).
METRICS = {
    "kubatch_jobs",
    "kubatch_job_state_transitions_total",
    "kubatch_job_attempts_total",
    "kubatch_job_retries_total",
    "kubatch_pods_created_total",
    "kubatch_api_errors_total",
    "kubatch_queue_blocked_total",
    "kubatch_compute_environment_desired_vcpus",
    "kubatch_compute_environment_used_vcpus",
    "kubatch_compute_environment_max_vcpus",
    "kubatch_compute_environment_used_gpus",
    "kubatch_compute_environment_max_gpus",
    "kubatch_share_running_vcpus",
    "kubatch_consumable_in_use",
    "kubatch_consumable_available",
    "kubatch_queue_blocked",
    "kubatch_leader",
    "kubatch_api_requests",
    "kubatch_api_throttled",
} | {
    f"kubatch_{h}_bucket"
    for h in ("job_runnable_seconds", "job_submit_to_start_seconds", "scheduling_cycle_seconds")
}
NAME = re.compile(r"\b(kubatch_[a-z_]+)\b")
RECORDED = re.compile(r"\b(kubatch:[a-z_:0-9]+)\b")


def rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "monitoring" / "kubatch-rules.yaml").read_text())
    return data


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "monitoring" / "kubatch-dashboard.json").read_text())
    return data


def dashboard_exprs() -> Iterator[str]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in expr:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_rules_use_only_exported_metrics() -> None:
    recorded = {r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r}
    for group in rules()["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            assert balanced(expr), expr
            assert set(NAME.findall(expr)) <= METRICS, expr
            assert set(RECORDED.findall(expr)) <= recorded, expr
            assert NAME.findall(expr) or RECORDED.findall(expr), expr


def test_alerts_are_complete() -> None:
    alerts = [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    assert len({a["alert"] for a in alerts}) == len(alerts)
    for a in alerts:
        assert a["labels"]["severity"] in ("critical", "warning", "info"), a["alert"]
        assert a["annotations"]["summary"], a["alert"]
        assert re.fullmatch(r"\d+[smh]", a.get("for", "0s")), a["alert"]
    for r in (r for g in rules()["groups"] for r in g["rules"] if "record" in r):
        assert re.fullmatch(r"kubatch:[a-z_0-9]+:[a-z_0-9]+", r["record"]), r["record"]


def test_dashboard_uses_only_exported_metrics() -> None:
    exprs = list(dashboard_exprs())
    assert len(exprs) >= 20
    used: set[str] = set()
    for expr in exprs:
        assert balanced(expr), expr
        names = set(NAME.findall(expr))
        assert names, expr
        assert names <= METRICS, expr
        used |= names
    # Every metric of the operator is on the dashboard.
    assert used == METRICS


def test_dashboard_shape() -> None:
    d = dashboard()
    assert d["uid"] == "kubatch-overview"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "queue", "compute_environment"} <= variables
    for p in d["panels"]:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"])
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}"
            assert all(t["refId"] for t in p["targets"])
