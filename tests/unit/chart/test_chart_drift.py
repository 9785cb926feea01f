"""Generated files stay in step with their sources: CRD chart <- models, chart files <- deploy/monitoring,
deploy/ (kustomize) <- `helm template`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from hack.chart import gen_crds, gen_kustomize, gen_monitoring

from kubatch.api.crdgen import all_crds
from tests.unit.chart.chartlib import CRD_CHART, DEPLOY, Obj, helm_path, kubectl_path, template


def strip_chart_metadata(crd: Obj) -> Obj:
    md = crd["metadata"]
    for label in ("chart", "instance", "managed-by", "version"):
        md["labels"].pop("helm.sh/chart" if label == "chart" else f"app.kubernetes.io/{label}")
    assert md.pop("annotations") == {"helm.sh/resource-policy": "keep"}
    return crd


def test_crd_templates_are_generated_from_the_models() -> None:
    assert gen_crds.drift() == [], "run `python hack/chart/gen_crds.py`"


def test_crd_chart_renders_the_models_crds() -> None:
    rendered = template(chart=CRD_CHART, release="kubatch-crds")
    assert [strip_chart_metadata(c) for c in rendered] == sorted(all_crds(), key=lambda c: c["metadata"]["name"])


def test_crd_chart_values() -> None:
    unkept = template(
        "keep=false", chart=CRD_CHART, extra=["--set-string", "annotations.argocd\\.argoproj\\.io/sync-wave=-1"]
    )
    for crd in unkept:
        assert crd["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-1"}


def test_chart_monitoring_files_are_copies() -> None:
    assert gen_monitoring.drift() == [], "run `python hack/chart/gen_monitoring.py`"


def test_kustomize_files_are_generated_from_the_charts() -> None:
    assert gen_kustomize.drift(helm_path()) == [], "run `python hack/chart/gen_kustomize.py`"


def kustomize(path: Path) -> list[Obj]:
    out = subprocess.run([kubectl_path(), "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def normalized(objs: list[Obj]) -> dict[tuple[str, str], Any]:
    """Objects by (kind, name), with container ports in a stable order (a strategic merge reorders them)."""
    out: dict[tuple[str, str], Any] = {}
    for o in objs:
        if o["kind"] == "Deployment":
            for c in o["spec"]["template"]["spec"]["containers"]:
                c["ports"] = sorted(c["ports"], key=lambda p: p["name"])
        out[(o["kind"], o["metadata"]["name"])] = o
    return out


def expected(*values: str) -> dict[tuple[str, str], Any]:
    crds = [gen_kustomize.strip_helm(o) for o in template(chart=CRD_CHART)]
    ops = [gen_kustomize.strip_helm(o) for o in template(*values)]
    return normalized([gen_kustomize.namespace_object(), *crds, *ops])


def test_kustomize_base_renders_the_chart_defaults() -> None:
    base = expected("webhook.enabled=false")
    assert normalized(kustomize(DEPLOY)) == base
    # Everything of the chart's default render but the webhook (and its certificate Secret).
    defaults = {(o["kind"], o["metadata"]["name"]) for o in template()}
    assert defaults - set(base) == {
        ("Secret", "kubatch-webhook-tls"),
        ("Service", "kubatch-webhook"),
        ("ValidatingWebhookConfiguration", "kubatch"),
    }


def test_kustomize_cert_manager_overlay_renders_the_chart_with_cert_manager() -> None:
    assert normalized(kustomize(DEPLOY / "webhook-cert-manager")) == expected(
        "webhook.enabled=true", "webhook.certManager.enabled=true"
    )


def test_kustomize_aws_api_overlay_renders_the_chart_with_the_api() -> None:
    rendered = normalized(kustomize(DEPLOY / "aws-api"))
    assert rendered == expected("webhook.enabled=true", "webhook.certManager.enabled=true", "api.enabled=true")
    # The API server's certificate comes from cert-manager (no private key in the repository), and
    # with no identity listed it may impersonate no one.
    assert ("Certificate", "kubatch-api") in rendered
    assert not [k for k in rendered if k[0] == "Secret"]
    assert "impersonate" not in (DEPLOY / "aws-api" / "api.yaml").read_text()


def test_kustomize_base_has_no_helm_bookkeeping() -> None:
    text = (DEPLOY / "base" / "operator.yaml").read_text() + "".join(
        p.read_text() for p in (DEPLOY / "crds").glob("*.yaml")
    )
    assert "helm.sh/" not in text
    assert "{{" not in text
