"""Metrics against a real Prometheus (Debian's `prometheus`, started on loopback by the test):
it scrapes the operator during a workload; every PromQL expression of the shipped Grafana
dashboard and recording rule returns data, every alert expression evaluates and reads series
that exist, and `promtool check rules` accepts the rules file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.devcluster import operatorproc
from kubatch.devcluster.cluster import find_repo, free_port
from tests.integration.batch import Batch

# Never beside tests that kill the shared operator (same xdist worker, one after the other).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operator-restarts")]

REPO = find_repo(Path(__file__).parent)
MONITORING = REPO / "deploy" / "monitoring"
METRIC_NAME = re.compile(r"\b(kubatch_[a-z_]+)\b")


def dashboard_exprs() -> list[str]:
    board = json.loads((MONITORING / "kubatch-dashboard.json").read_text())
    out: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            out.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(board.get("panels", []))
    return out


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "kubatch-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def grafana_to_promql(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace('=~"$queue"', '=~".*"')
        .replace('=~"$compute_environment"', '=~".*"')
    )


@pytest.fixture
def prometheus(operator: Any, cluster: Any) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError("prometheus is not installed (.ci/run installs Debian's prometheus package)")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="kubatch-prom-"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "kubatch-rules.yaml")],
        # File-based discovery follows the shared operator if another test restarts it elsewhere.
        "scrape_configs": [
            {
                "job_name": "kubatch",
                "file_sd_configs": [{"files": [str(work / "targets.json")], "refresh_interval": "1s"}],
            }
        ],
    }
    state = Path(cluster.state_dir)
    stop = threading.Event()

    def follow_operator() -> None:
        last = None
        while not stop.is_set():
            current = operatorproc.read(state)
            port = current.metrics_port if current else operator.metrics_port
            if port != last:
                targets = [{"targets": [f"127.0.0.1:{port}"], "labels": {"pod": "kubatch-0"}}]
                tmp = work / "targets.json.tmp"
                tmp.write_text(json.dumps(targets))
                tmp.replace(work / "targets.json")
                last = port
            stop.wait(0.5)

    threading.Thread(target=follow_operator, daemon=True).start()
    while not (work / "targets.json").exists():
        time.sleep(0.05)
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(work / "prometheus.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (work / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed"
    out = subprocess.run(
        [promtool, "check", "rules", str(MONITORING / "kubatch-rules.yaml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_dashboard_and_rule_expression_returns_data(batch: Batch, prometheus: str) -> None:
    # A workload that moves every metric: fair share, a consumable, retries, a blocked queue, GPUs.
    ce = batch.environment(cpu=4, gpus=1)
    policy = batch.cluster_object(
        "SchedulingPolicy",
        batch.name("fs"),
        {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "teamA", "weightFactor": 1.0}]}},
    )
    q = batch.queue([ce], policy=policy)
    lic = batch.cluster_object(
        "ConsumableResource", batch.name("lic"), {"resourceType": "REPLENISHABLE", "totalQuantity": 2}
    )
    batch.container_definition(
        "work",
        retryStrategy={"attempts": 2},
        consumableResourceProperties={"consumableResourceList": [{"consumableResource": lic, "quantity": 1}]},
    )
    batch.container_definition("huge", vcpus="64")
    for i in range(6):
        batch.job(
            f"m-{i}",
            q,
            "work",
            duration="2s",
            shareIdentifier="teamA",
            annotations={"sim.kubatch.dev/exit-code-attempt-1": "1"} if i == 0 else None,
        )
    blocked_q = batch.queue([ce], name=batch.name("blocked"))
    batch.job("too-big", blocked_q, "huge")
    for i in range(6):
        batch.wait_done(f"m-{i}", timeout=120)
    batch.wait_for(
        lambda: batch.status("too-big").get("statusReason", "").startswith("MISCONFIGURATION"), "blocked head"
    )
    # Several scrapes and rule evaluations after the workload (other tests may restart the shared
    # operator meanwhile: its counters then start again, so poll rather than look once).
    deadline = time.monotonic() + 90
    while True:
        empty = [e for e in dashboard_exprs() if not query(prometheus, grafana_to_promql(e))]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(2)
    if empty:
        with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=10) as r:
            targets = [
                (t["scrapeUrl"], t["health"], t.get("lastError")) for t in json.loads(r.read())["data"]["activeTargets"]
            ]
        probe = {q: query(prometheus, q) for q in ("up", 'count({__name__=~"kubatch_.+"})', "kubatch_leader")}
        raise AssertionError(f"dashboard expressions without data: {empty}; scrape targets: {targets}; {probe}")
    for rule in rules():
        expr = rule["expr"]
        result = query(prometheus, expr)  # evaluates (status success) for every rule
        if "record" in rule:
            assert result, f"recording rule {rule['record']} has no data"
            continue
        for name in set(METRIC_NAME.findall(expr)):
            series = query(prometheus, f'count({{__name__=~"{name}(_bucket)?"}})')
            assert series, f"alert {rule['alert']} reads {name}, which has no series"
    # Recording rules are evaluated every 30 s (the group's interval): wait for the first round.
    records = [r["record"] for r in rules() if "record" in r]
    deadline = time.monotonic() + 75
    while (missing := [rec for rec in records if not query(prometheus, rec)]) and time.monotonic() < deadline:
        time.sleep(2)
    assert not missing, f"recorded series missing: {missing}"
