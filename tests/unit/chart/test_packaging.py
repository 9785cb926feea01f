"""The Dockerfile (it cannot be built here: parsed for the essentials) and the Argo CD Applications."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

from tests.unit.chart.chartlib import CHARTS, DEPLOY, REPO, template


def instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_essentials() -> None:
    ins = instructions()
    froms = [arg for op, arg in ins if op == "FROM"]
    assert froms[-1].split()[0] == "python:3.11-slim"
    runs = " ".join(arg for op, arg in ins if op == "RUN")
    assert re.search(r"useradd .*--uid 10001", runs)
    assert re.search(r"\bpip install (--[\w-]+ )*\.(\s|$)", runs)
    users = [arg for op, arg in ins if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001", "the final stage runs as uid 10001"
    (entrypoint,) = [arg for op, arg in ins if op == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "kubatch"]
    # Everything `pip install .` needs is copied in.
    copied = " ".join(arg for op, arg in ins if op == "COPY")
    for path in ("pyproject.toml", "README.md", "operator"):
        assert path in shlex.split(copied)
    assert (REPO / "operator" / "kubatch" / "__main__.py").exists()


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)


def test_chart_ports_match_the_image() -> None:
    exposed = " ".join(arg for op, arg in instructions() if op == "EXPOSE").split()
    dep = next(o for o in template() if o["kind"] == "Deployment")
    ports = {str(p["containerPort"]) for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == set(exposed)


def applications() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "argocd" / "application.yaml").read_text()) if d]


def test_argocd_applications() -> None:
    apps = {a["metadata"]["name"]: a for a in applications()}
    assert set(apps) == {"kubatch-crds", "kubatch"}
    waves = {n: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for n, a in apps.items()}
    assert waves["kubatch-crds"] == -1 < waves["kubatch"]
    for app in apps.values():
        spec = app["spec"]
        assert {"ServerSideApply=true", "CreateNamespace=true"} <= set(spec["syncPolicy"]["syncOptions"])
        assert (CHARTS.parent / spec["source"]["path"]).is_dir()
    crd_values = apps["kubatch-crds"]["spec"]["source"]["helm"]["valuesObject"]
    assert crd_values["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    text = (DEPLOY / "argocd" / "application.yaml").read_text()
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "Replace=true" not in body and "Force=true" not in body
    # The CRD Application never deletes CRDs: no resources finalizer, Delete=false on the CRDs.
    assert "finalizers" not in apps["kubatch-crds"]["metadata"]
    assert "Delete=false" in crd_values["annotations"]["argocd.argoproj.io/sync-options"]


def test_argocd_values_render() -> None:
    apps = {a["metadata"]["name"]: a for a in applications()}
    values = apps["kubatch"]["spec"]["source"]["helm"]["valuesObject"]
    sets = []

    def flatten(prefix: str, v: object) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                flatten(f"{prefix}.{k}" if prefix else k, sub)
        else:
            sets.append(f"{prefix}={str(v).lower() if isinstance(v, bool) else v}")

    flatten("", values)
    objs = template(*sets)
    ignored = {d["kind"]: d["name"] for d in apps["kubatch"]["spec"]["ignoreDifferences"]}
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert set(ignored.items()) <= names
