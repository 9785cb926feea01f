"""The kubatch chart: lint, and the objects `helm template` renders with default and toggled values."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.unit.chart.chartlib import (
    CHART,
    CRD_CHART,
    DEPLOY,
    Grant,
    Obj,
    expand,
    find,
    grants,
    kinds,
    run_helm,
    template,
)

KUBATCH = "kubatch.dev"
CLUSTER_KINDS = ["computeenvironments", "jobqueues", "schedulingpolicies", "consumableresources", "serviceenvironments"]
ALL_KINDS = [*CLUSTER_KINDS, "jobdefinitions", "batchjobs", "jobschedules"]
# webhook name -> (resource, handler path, operations)
WEBHOOKS = {
    "batchjobs.validate.kubatch.dev": ("batchjobs", "/validate-batchjobs", ["CREATE", "UPDATE"]),
    "jobqueues.validate.kubatch.dev": ("jobqueues", "/validate-jobqueues", ["CREATE", "UPDATE"]),
    # a JobQueue can be deleted only once it is DISABLED
    "jobqueues-delete.validate.kubatch.dev": ("jobqueues", "/validate-jobqueues-delete", ["DELETE"]),
    "jobdefinitions.validate.kubatch.dev": ("jobdefinitions", "/validate-jobdefinitions", ["CREATE", "UPDATE"]),
    "jobschedules.validate.kubatch.dev": ("jobschedules", "/validate-jobschedules", ["CREATE", "UPDATE"]),
}

# What the operator reads and writes (the brief's list), and nothing more.
OPERATOR_GRANTS: set[Grant] = (
    # get: the webhook reads what its view lacks (a just-created object)
    expand(KUBATCH, ["batchjobs", "jobdefinitions"], ["get", "list", "watch"])
    | expand(KUBATCH, ["batchjobs/status", "jobdefinitions/status"], ["patch"])
    | expand(KUBATCH, CLUSTER_KINDS, ["get", "list", "watch", "patch"])
    | expand(KUBATCH, [f"{k}/status" for k in CLUSTER_KINDS], ["patch"])
    # JobSchedules: their runs' BatchJobs are created, terminated (Replace) and deleted (history)
    | expand(KUBATCH, ["jobschedules"], ["list", "watch"])
    | expand(KUBATCH, ["jobschedules/status"], ["patch"])
    | expand(KUBATCH, ["batchjobs"], ["create", "patch", "delete"])
    | expand("", ["pods"], ["list", "watch", "create", "delete"])
    # service jobs of type KUBERNETES_JOB: their batch/v1 Jobs
    | expand("batch", ["jobs"], ["list", "watch", "create", "patch", "delete"])
    | expand("", ["services"], ["create", "delete"])
    | expand("", ["events"], ["create", "patch"])
    | expand("apps", ["controllerrevisions"], ["list", "watch", "create", "patch", "delete"])
    | expand("", ["nodes"], ["list", "watch", "patch"])
    | expand("", ["namespaces"], ["get"])
    # the webhook asks what the user creating a job may use
    | expand("authorization.k8s.io", ["subjectaccessreviews"], ["create"])
)
KWOK_GRANTS = expand("", ["nodes"], ["create", "delete"])
KARPENTER_GRANTS = expand("karpenter.sh", ["nodepools"], ["get", "list", "watch", "create", "patch", "delete"])
LEASE_GRANTS = expand("coordination.k8s.io", ["leases"], ["create"]) | expand(
    "coordination.k8s.io", ["leases"], ["get", "update"], "kubatch-dispatcher"
)
EDIT_VERBS = ["create", "update", "patch", "delete", "get", "list", "watch"]

TOGGLES = [
    "provisioners.kwok.enabled",
    "provisioners.karpenter.enabled",
    "webhook.enabled",
    "webhook.certManager.enabled",
    "metrics.serviceMonitor.enabled",
    "metrics.prometheusRule.enabled",
    "metrics.dashboard.enabled",
    "rbac.aggregatedRoles",
    "leaderElection.enabled",
]


@pytest.fixture(scope="module")
def default() -> list[Obj]:
    return template()


def container(objs: list[Obj]) -> Obj:
    pod = find(objs, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    return dict(pod["containers"][0])


def env(objs: list[Obj]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objs)["env"]}


def all_rules(objs: list[Obj]) -> list[Obj]:
    return [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o.get("rules", [])]


# ---- lint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chart", [CHART, CRD_CHART], ids=lambda p: p.name)
def test_helm_lint_strict(chart: Any) -> None:
    run_helm("lint", "--strict", str(chart))


def test_helm_lint_with_every_toggle_on() -> None:
    args = list(itertools.chain.from_iterable(("--set", f"{t}=true") for t in TOGGLES))
    run_helm("lint", "--strict", str(CHART), *args)


# ---- the Deployment ----------------------------------------------------------------------------------


def test_default_objects(default: list[Obj]) -> None:
    assert kinds(default) == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    for o in default:
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert o["metadata"]["namespace"] == "kubatch", o["kind"]


def test_deployment_security(default: list[Obj]) -> None:
    dep = find(default, "Deployment", "kubatch")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubatch"
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(default)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    # A read-only root needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_probes_and_ports(default: list[Obj]) -> None:
    c = container(default)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "liveness": 8081, "webhook": 9443}
    assert c["args"] == ["--liveness", "http://0.0.0.0:8081/healthz"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_operator_environment(default: list[Obj]) -> None:
    e = env(default)
    assert e["KUBATCH_LEASE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert e["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert e["KUBATCH_LEASE_NAME"] == "kubatch-dispatcher"
    assert e["KUBATCH_LEADER_ELECTION"] == "true"
    assert e["KUBATCH_METRICS_HOST"] == "0.0.0.0"
    assert e["KUBATCH_METRICS_PORT"] == "8080"
    assert e["KUBATCH_DELETE_FINISHED_PODS"] == "true"
    assert e["KUBATCH_JOB_EVENTS"] == "notable"
    assert e["KUBATCH_START_TIMEOUT_SECONDS"] == "300"
    assert "KUBATCH_FINISHED_JOB_TTL_SECONDS" not in e  # finished jobs are kept unless asked
    assert e["KUBATCH_WEBHOOK_PORT"] == "9443"
    cert_dir = e["KUBATCH_WEBHOOK_CERT_DIR"]
    mount = next(m for m in container(default)["volumeMounts"] if m["mountPath"] == cert_dir)
    assert mount["readOnly"] is True
    volumes = find(default, "Deployment")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "kubatch-webhook-tls"


def test_values_reach_the_environment() -> None:
    objs = template(
        "leaderElection.enabled=false",
        "operator.deleteFinishedPods=false",
        "metrics.port=9090",
        "webhook.enabled=false",
        "operator.verbose=true",
        "operator.jobEvents=all",
        "operator.startTimeoutSeconds=0",
        "operator.finishedJobTTLSeconds=604800",
    )
    e = env(objs)
    assert e["KUBATCH_JOB_EVENTS"] == "all"
    assert e["KUBATCH_START_TIMEOUT_SECONDS"] == "0"
    assert e["KUBATCH_FINISHED_JOB_TTL_SECONDS"] == "604800"
    zero = env(template("operator.finishedJobTTLSeconds=0"))
    assert zero["KUBATCH_FINISHED_JOB_TTL_SECONDS"] == "0"
    assert e["KUBATCH_LEADER_ELECTION"] == "false"
    assert e["KUBATCH_DELETE_FINISHED_PODS"] == "false"
    assert e["KUBATCH_METRICS_PORT"] == "9090"
    assert "KUBATCH_WEBHOOK_PORT" not in e and "KUBATCH_WEBHOOK_CERT_DIR" not in e
    assert "--verbose" in container(objs)["args"]
    assert "Role" not in kinds(objs) and "ValidatingWebhookConfiguration" not in kinds(objs)
    assert "Secret" not in kinds(objs)


def test_pod_anti_affinity_preferred(default: list[Obj]) -> None:
    affinity = find(default, "Deployment")["spec"]["template"]["spec"]["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == find(default, "Deployment")["spec"][
        "selector"
    ]["matchLabels"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"]


def test_single_replica_has_no_pdb() -> None:
    assert "PodDisruptionBudget" not in kinds(template("replicaCount=1"))


def test_services_select_the_operator_pods(default: list[Obj]) -> None:
    labels = find(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    metrics = find(default, "Service", "kubatch-metrics")
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    webhook = find(default, "Service", "kubatch-webhook")
    assert webhook["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    for svc in (metrics, webhook):
        assert svc["spec"]["selector"].items() <= labels.items()


# ---- RBAC --------------------------------------------------------------------------------------------


def test_operator_cluster_role_is_exactly_what_it_needs(default: list[Obj]) -> None:
    assert grants(find(default, "ClusterRole", "kubatch")["rules"]) == OPERATOR_GRANTS
    crb = find(default, "ClusterRoleBinding", "kubatch")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubatch"}
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "kubatch", "namespace": "kubatch"}]


def test_provisioner_flags_add_their_grants() -> None:
    kwok = grants(find(template("provisioners.kwok.enabled=true"), "ClusterRole", "kubatch")["rules"])
    assert kwok == OPERATOR_GRANTS | KWOK_GRANTS
    karpenter = grants(find(template("provisioners.karpenter.enabled=true"), "ClusterRole", "kubatch")["rules"])
    assert karpenter == OPERATOR_GRANTS | KARPENTER_GRANTS


def test_lease_role_in_release_namespace_only(default: list[Obj]) -> None:
    role = find(default, "Role", "kubatch-leader-election")
    assert role["metadata"]["namespace"] == "kubatch"
    assert grants(role["rules"]) == LEASE_GRANTS
    rb = find(default, "RoleBinding", "kubatch-leader-election")
    assert rb["roleRef"]["kind"] == "Role" and rb["roleRef"]["name"] == "kubatch-leader-election"
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "kubatch", "namespace": "kubatch"}]
    renamed = find(template("leaderElection.leaseName=other"), "Role")
    assert Grant("coordination.k8s.io", "leases", "update", "other") in grants(renamed["rules"])
    assert find(template("leaderElection.leaseName=other"), "Deployment")  # renders


@pytest.mark.parametrize("on", [(), *([t] for t in TOGGLES), TOGGLES], ids=lambda v: ",".join(v) or "defaults")
def test_no_secrets_and_no_wildcards_anywhere(on: Any) -> None:
    objs = template(*(f"{t}=true" for t in on))
    for g in grants(all_rules(objs)):
        assert g.resource not in ("secrets", "*"), g
        assert g.verb not in ("*", "escalate", "bind", "impersonate"), g
        assert g.group != "*", g
        assert g.resource not in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations", "pods/log"), g


def test_aggregated_roles(default: list[Obj]) -> None:
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    admin = find(default, "ClusterRole", "kubatch-admin")
    edit = find(default, "ClusterRole", "kubatch-edit")
    view = find(default, "ClusterRole", "kubatch-view")
    submit = find(default, "ClusterRole", "kubatch-submit")

    def levels(role: Obj) -> set[str]:
        return {k.removeprefix(agg) for k, v in role["metadata"]["labels"].items() if k.startswith(agg) and v == "true"}

    assert levels(admin) == {"admin"}
    assert levels(edit) == {"admin", "edit"}
    assert levels(view) == {"admin", "edit", "view"}
    assert levels(submit) == set()  # bound where it is meant, never folded into the built-in roles
    assert grants(submit["rules"]) == expand(KUBATCH, ["batchjobs"], ["create", "get", "list", "watch"]) | expand(
        KUBATCH, ["jobdefinitions"], ["get", "list", "watch"]
    )
    edit_grants = expand(KUBATCH, ["jobdefinitions", "batchjobs", "jobschedules"], EDIT_VERBS)
    assert grants(edit["rules"]) == edit_grants
    assert grants(view["rules"]) == expand(KUBATCH, ALL_KINDS, ["get", "list", "watch"])
    assert grants(admin["rules"]) == edit_grants | expand(KUBATCH, CLUSTER_KINDS, [*EDIT_VERBS, "deletecollection"])
    assert "ClusterRole" in kinds(template("rbac.aggregatedRoles=false"))
    assert len([o for o in template("rbac.aggregatedRoles=false") if o["kind"] == "ClusterRole"]) == 1


def test_role_names_follow_the_release() -> None:
    objs = template(release="team-a")
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRole"}
    assert names == {
        "team-a-kubatch",
        "team-a-kubatch-admin",
        "team-a-kubatch-edit",
        "team-a-kubatch-view",
        "team-a-kubatch-submit",
    }


# ---- the validating webhook ----------------------------------------------------------------------------


def test_webhook_configuration(default: list[Obj]) -> None:
    vwc = find(default, "ValidatingWebhookConfiguration", "kubatch")
    by_name = {w["name"]: w for w in vwc["webhooks"]}
    assert set(by_name) == set(WEBHOOKS)
    for name, w in by_name.items():
        resource, path, operations = WEBHOOKS[name]
        # BatchJobs fail closed: what a job may use is checked for its submitter there, and nowhere else.
        assert w["failurePolicy"] == ("Fail" if resource == "batchjobs" else "Ignore")
        assert w["sideEffects"] == "None"
        assert w["admissionReviewVersions"] == ["v1"]
        assert w["clientConfig"]["service"] == {
            "name": "kubatch-webhook",
            "namespace": "kubatch",
            "path": path,
            "port": 443,
        }
        (rule,) = w["rules"]
        assert rule["apiGroups"] == [KUBATCH] and rule["apiVersions"] == ["v1alpha1"]
        assert rule["resources"] == [resource]
        assert rule["operations"] == operations
        namespaced = resource in ("batchjobs", "jobdefinitions", "jobschedules")
        assert rule["scope"] == ("Namespaced" if namespaced else "Cluster")
        assert "url" not in w["clientConfig"]
    fail = find(template("webhook.failurePolicy=Fail"), "ValidatingWebhookConfiguration")
    assert {w["failurePolicy"] for w in fail["webhooks"]} == {"Fail"}
    ignore = find(template("webhook.batchJobsFailurePolicy=Ignore"), "ValidatingWebhookConfiguration")
    assert {w["failurePolicy"] for w in ignore["webhooks"]} == {"Ignore"}


def _pem(b64: str) -> str:
    return base64.b64decode(b64).decode()


def _openssl(pem: str, *args: str) -> str:
    cmd = ["openssl", "x509", "-noout", *args]
    return subprocess.run(cmd, input=pem, capture_output=True, text=True, check=True).stdout


def test_self_generated_certificates(default: list[Obj]) -> None:
    secret = find(default, "Secret", "kubatch-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    vwc = find(default, "ValidatingWebhookConfiguration")
    assert {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]} == {secret["data"]["ca.crt"]}
    assert "annotations" not in vwc["metadata"]
    cert = _pem(secret["data"]["tls.crt"])
    sans = _openssl(cert, "-ext", "subjectAltName")
    for name in ("kubatch-webhook", "kubatch-webhook.kubatch", "kubatch-webhook.kubatch.svc"):
        assert f"DNS:{name}," in sans or sans.rstrip().endswith(f"DNS:{name}")
    # The serving certificate is signed by the CA in the bundle.
    ca = _pem(secret["data"]["ca.crt"])
    assert _openssl(cert, "-issuer").split("=", 1)[1].strip() == _openssl(ca, "-subject").split("=", 1)[1].strip()


def test_cert_manager_certificates() -> None:
    objs = template("webhook.certManager.enabled=true")
    assert "Secret" not in kinds(objs)
    cert = find(objs, "Certificate", "kubatch-webhook")
    assert cert["spec"]["secretName"] == "kubatch-webhook-tls"
    assert "kubatch-webhook.kubatch.svc" in cert["spec"]["dnsNames"]
    issuer = find(objs, "Issuer", "kubatch-selfsigned")
    assert cert["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    vwc = find(objs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "kubatch/kubatch-webhook"}
    assert all("caBundle" not in w["clientConfig"] for w in vwc["webhooks"])
    external = template(
        "webhook.certManager.enabled=true", "webhook.certManager.issuerRef.kind=ClusterIssuer",
        "webhook.certManager.issuerRef.name=corp-ca",
    )
    assert "Issuer" not in kinds(external)
    assert find(external, "Certificate")["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}


def test_webhook_selectors() -> None:
    objs = template("webhook.objectSelector.matchLabels.team=a", "webhook.namespaceSelector.matchLabels.batch=on")
    for w in find(objs, "ValidatingWebhookConfiguration")["webhooks"]:
        assert w["objectSelector"] == {"matchLabels": {"team": "a"}}
        assert w["namespaceSelector"] == {"matchLabels": {"batch": "on"}}


# ---- monitoring ----------------------------------------------------------------------------------------


def test_monitoring_toggles_off_by_default(default: list[Obj]) -> None:
    assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & set(kinds(default))


def test_service_monitor() -> None:
    objs = template("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    sm = find(objs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    svc = find(objs, "Service", "kubatch-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_prometheus_rule_and_dashboard_are_the_deploy_monitoring_files() -> None:
    objs = template("metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true")
    rules = yaml.safe_load((DEPLOY / "monitoring" / "kubatch-rules.yaml").read_text())
    assert find(objs, "PrometheusRule")["spec"] == rules
    cm = find(objs, "ConfigMap", "kubatch-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads((DEPLOY / "monitoring" / "kubatch-dashboard.json").read_text())
    assert json.loads(cm["data"]["kubatch-dashboard.json"]) == dashboard
    assert find(template("metrics.dashboard.enabled=true", "metrics.dashboard.namespace=grafana"), "ConfigMap")[
        "metadata"
    ]["namespace"] == "grafana"
