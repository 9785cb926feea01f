"""Helpers for the chart tests: the pinned helm binary, `helm template` as objects, RBAC rules as sets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kubatch.devcluster.cluster import build_binaries, find_repo

REPO = find_repo(Path(__file__).parent)
CHARTS = REPO / "charts"
CHART = CHARTS / "kubatch"
CRD_CHART = CHARTS / "kubatch-crds"
DEPLOY = REPO / "deploy"

Obj = dict[str, Any]


@cache
def bin_dir() -> Path:
    return build_binaries(REPO)


def helm_path() -> str:
    return str(bin_dir() / "helm")


def kubectl_path() -> str:
    return str(bin_dir() / "kubectl")


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_path(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def assert_schema_rejects(value: str, mentions: str) -> None:
    """`helm template` with ``--set value`` fails on the chart's values schema, naming ``mentions``."""
    proc = run_helm("template", "x", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0, f"{value} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert mentions in proc.stderr, proc.stderr


def template(
    *sets: str, chart: Path = CHART, release: str = "kubatch", namespace: str = "kubatch", extra: Iterable[str] = ()
) -> list[Obj]:
    """`helm template` with `--set` values, as a list of objects."""
    args = ["template", release, str(chart), "--namespace", namespace, *extra]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(run_helm(*args).stdout) if d]


def find(objs: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(objs: Iterable[Obj]) -> list[str]:
    return sorted(o["kind"] for o in objs)


@dataclass(frozen=True, order=True)
class Grant:
    """One (group, resource, verb) permission, with an optional resource name."""

    group: str
    resource: str
    verb: str
    name: str = ""


def grants(rules: Iterable[Obj]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    for name in rule.get("resourceNames") or [""]:
                        out.add(Grant(group, resource, verb, name))
    return out


def expand(group: str, resources: Iterable[str], verbs: Iterable[str], name: str = "") -> set[Grant]:
    return {Grant(group, r, v, name) for r in resources for v in verbs}
