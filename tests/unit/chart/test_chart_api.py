"""The chart's AWS Batch API server (api.enabled): what `helm template` renders, and that it grants the
server's ServiceAccount exactly what `kubatch api serve` needs (tests/integration/test_chart.py checks
the same rules against the real API server)."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import pytest

from tests.unit.chart.chartlib import (
    CHART,
    Grant,
    Obj,
    assert_schema_rejects,
    expand,
    find,
    grants,
    kinds,
    run_helm,
    template,
)

API = "kubatch-api"  # release `kubatch`: fullname kubatch, the API's objects kubatch-api
LISTED = [
    "api.enabled=true",
    "api.impersonate.users={alice,bob}",
    "api.impersonate.groups={devs}",
    "api.impersonate.serviceAccounts={team-a/submitter,team-b/pipeline,team-a/nightly}",
]


@pytest.fixture(scope="module")
def listed() -> list[Obj]:
    return template(*LISTED)


def api_objects(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "api"]


def api_container(objs: list[Obj]) -> dict[str, Any]:
    pod = find(objs, "Deployment", API)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["api"]
    return dict(pod["containers"][0])


def rules_of(objs: list[Obj], kind: str, name: str, namespace: str | None = None) -> set[Grant]:
    matches = [
        o
        for o in objs
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(matches) == 1, f"{kind} {namespace}/{name}: {len(matches)}"
    return grants(matches[0]["rules"])


def impersonation(objs: list[Obj]) -> set[tuple[str | None, Grant]]:
    """Every impersonate grant of every Role and ClusterRole, with the Role's namespace."""
    return {
        (o["metadata"].get("namespace"), g)
        for o in objs
        if o["kind"] in ("Role", "ClusterRole")
        for g in grants(o["rules"])
        if g.verb == "impersonate"
    }


# ---- off by default -----------------------------------------------------------------------------------


def test_disabled_renders_nothing() -> None:
    default = template()
    assert api_objects(default) == []
    assert not [o for o in default if o["metadata"]["name"].startswith(API)]
    assert not impersonation(default)
    assert "Issuer" not in kinds(template("webhook.enabled=false", "webhook.certManager.enabled=true"))
    # The identity lists alone change nothing (without the webhook, whose certificate is new at every render).
    assert template("webhook.enabled=false", *LISTED[1:]) == template("webhook.enabled=false")


# ---- the Deployment, the Service, the ServiceAccount ------------------------------------------------


def test_deployment_runs_kubatch_api_serve(listed: list[Obj]) -> None:
    dep = find(listed, "Deployment", API)
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == API
    c = api_container(listed)
    operator = find(listed, "Deployment", "kubatch")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == operator["image"]  # the same image
    assert c["command"] == ["kubatch"]
    assert c["args"] == [
        "api", "serve", "--listen", "0.0.0.0:8443", "--cert-dir", "/etc/kubatch/api-tls",
        "--keys-namespace", "kubatch", "--region", "us-east-1", "--account-id", "000000000000",
    ]  # fmt: skip
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/kubatch/api-tls")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "kubatch-api-tls"
    # The operator's hardening.
    assert c["securityContext"] == operator["securityContext"]
    assert (
        pod["securityContext"] == find(listed, "Deployment", "kubatch")["spec"]["template"]["spec"]["securityContext"]
    )
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert set(c["resources"]) == {"requests", "limits"}


def test_values_reach_the_server() -> None:
    objs = template(
        "api.enabled=true", "api.port=9000", "api.region=eu-west-1", "api.replicas=1", "api.verbose=true",
        "api.keysNamespace=batch-keys", "api.service.port=8443", "api.service.type=LoadBalancer",
    )  # fmt: skip
    args = api_container(objs)["args"]
    assert args[args.index("--listen") + 1] == "0.0.0.0:9000"
    assert args[args.index("--region") + 1] == "eu-west-1"
    assert args[args.index("--keys-namespace") + 1] == "batch-keys"
    assert args[-1] == "--verbose"
    assert api_container(objs)["ports"][0]["containerPort"] == 9000
    svc = find(objs, "Service", API)
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"}]
    # One replica: no PodDisruptionBudget of the API (the operator's stays).
    assert [p["metadata"]["name"] for p in objs if p["kind"] == "PodDisruptionBudget"] == ["kubatch"]
    # The keys Role moves with the keys.
    assert rules_of(objs, "Role", f"{API}-keys", "batch-keys") == {Grant("", "secrets", "get")}
    account = template("api.enabled=true", extra=["--set-string", "api.accountId=123456789012"])
    args = api_container(account)["args"]
    assert args[args.index("--account-id") + 1] == "123456789012"


def test_api_pods_are_apart_from_the_operators(listed: list[Obj]) -> None:
    """The operator's Services, PDB and Deployment select name+instance: an API pod must not match."""
    api_labels = find(listed, "Deployment", API)["spec"]["template"]["metadata"]["labels"]
    op_labels = find(listed, "Deployment", "kubatch")["spec"]["template"]["metadata"]["labels"]
    for o in listed:
        selector = (o.get("spec") or {}).get("selector")
        if not isinstance(selector, dict):
            continue
        selector = selector.get("matchLabels", selector)
        mine = o["metadata"]["name"].startswith(API)
        assert (selector.items() <= api_labels.items()) == mine, o["metadata"]["name"]
        assert (selector.items() <= op_labels.items()) != mine, o["metadata"]["name"]
    svc = find(listed, "Service", API)
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    pdb = next(o for o in listed if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == API)
    assert pdb["spec"]["maxUnavailable"] == 1
    sa = find(listed, "ServiceAccount", API)
    assert sa["metadata"]["namespace"] == "kubatch"


# ---- RBAC ------------------------------------------------------------------------------------------------


def test_rbac_grants_exactly_the_listed_identities(listed: list[Obj]) -> None:
    assert rules_of(listed, "ClusterRole", API) == (
        {Grant("kubatch.dev", "jobqueues", "get")}
        | {Grant("", "users", "impersonate", u) for u in ("alice", "bob")}
        | {
            Grant("", "groups", "impersonate", g)
            for g in (
                "devs",
                "system:serviceaccounts",
                "system:serviceaccounts:team-a",
                "system:serviceaccounts:team-b",
            )
        }
    )
    # A ServiceAccount's impersonation is checked in its namespace: a Role there, with its names only.
    assert rules_of(listed, "Role", f"{API}-impersonate", "team-a") == {
        Grant("", "serviceaccounts", "impersonate", "nightly"),
        Grant("", "serviceaccounts", "impersonate", "submitter"),
    }
    assert rules_of(listed, "Role", f"{API}-impersonate", "team-b") == {
        Grant("", "serviceaccounts", "impersonate", "pipeline")
    }
    assert rules_of(listed, "Role", f"{API}-keys", "kubatch") == {Grant("", "secrets", "get")}
    # Every impersonate grant names its object; the API's are the only ones in the chart.
    for ns, g in impersonation(listed):
        assert g.name, (ns, g)
    assert {ns for ns, _ in impersonation(listed)} == {None, "team-a", "team-b"}
    # Each role is bound to the API's ServiceAccount and nothing else.
    bindings = [
        o
        for o in listed
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding") and o["metadata"]["name"].startswith(API)
    ]
    assert sorted((o["kind"], o["metadata"].get("namespace", "")) for o in bindings) == [
        ("ClusterRoleBinding", ""),
        ("RoleBinding", "kubatch"),
        ("RoleBinding", "team-a"),
        ("RoleBinding", "team-b"),
    ]
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": API, "namespace": "kubatch"}]
        assert b["roleRef"]["name"] == b["metadata"]["name"]
    # Nothing else: no list/watch of Secrets, no wildcards, no other verb on other objects.
    every = {g for o in listed if o["metadata"]["name"].startswith(API) and "rules" in o for g in grants(o["rules"])}
    assert not [g for g in every if "*" in (g.group, g.resource, g.verb)]
    assert {g.verb for g in every} == {"get", "impersonate"}


def test_empty_lists_grant_no_impersonation() -> None:
    """An RBAC rule without resourceNames would allow every name: with no identity listed there is none."""
    objs = template("api.enabled=true")
    assert impersonation(objs) == set()
    assert rules_of(objs, "ClusterRole", API) == {Grant("kubatch.dev", "jobqueues", "get")}
    assert "impersonate" not in repr(find(objs, "ClusterRole", API))
    users_only = template("api.enabled=true", "api.impersonate.users={carol}")
    assert impersonation(users_only) == {(None, Grant("", "users", "impersonate", "carol"))}
    sa_only = template("api.enabled=true", "api.impersonate.serviceAccounts={ml/trainer}")
    assert impersonation(sa_only) == {
        ("ml", Grant("", "serviceaccounts", "impersonate", "trainer")),
        *((None, g) for g in expand("", ["groups"], ["impersonate"], "system:serviceaccounts")),
        (None, Grant("", "groups", "impersonate", "system:serviceaccounts:ml")),
    }


def test_a_service_account_as_a_user_is_refused() -> None:
    proc = run_helm(
        "template", "x", str(CHART), "--set", "api.enabled=true",
        "--set", "api.impersonate.users={system:serviceaccount:team-a:submitter}", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "list it as namespace/name in api.impersonate.serviceAccounts" in proc.stderr


BAD = [
    ("api.enabled=maybe", "enabled"),
    ("api.accountId=123456789012", "accountId"),  # a number: --set-string
    ("api.region=Mars", "region"),
    ("api.port=0", "port"),
    ("api.impersonate.serviceAccounts={submitter}", "serviceAccounts"),
    ("api.impersonate.serviceAccounts={Team/x}", "serviceAccounts"),
    ("api.keysNamespace=Not_A_Namespace", "keysNamespace"),
    ("api.service.type=Ingress", "type"),
    ("api.unknown=1", "unknown"),
]


@pytest.mark.parametrize(("value", "mentions"), BAD, ids=[b[0] for b in BAD])
def test_schema_rejects(value: str, mentions: str) -> None:
    assert_schema_rejects(value, mentions)


def test_lint_strict_with_the_api() -> None:
    run_helm("lint", "--strict", str(CHART), *(a for s in LISTED for a in ("--set", s)))
    run_helm("lint", "--strict", str(CHART), "--set", "api.enabled=true", "--set", "webhook.certManager.enabled=true")


# ---- TLS -------------------------------------------------------------------------------------------------


def _openssl(b64: str, *args: str) -> str:
    pem = base64.b64decode(b64).decode()
    return subprocess.run(
        ["openssl", "x509", "-noout", *args], input=pem, capture_output=True, text=True, check=True
    ).stdout


def test_self_generated_certificate() -> None:
    objs = template("api.enabled=true", "api.tls.extraDnsNames={batch.example.com}")
    secret = find(objs, "Secret", "kubatch-api-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    sans = [s.strip() for s in _openssl(secret["data"]["tls.crt"], "-ext", "subjectAltName").splitlines()[1].split(",")]
    assert sans == [
        f"DNS:{n}"
        for n in (API, f"{API}.kubatch", f"{API}.kubatch.svc", f"{API}.kubatch.svc.cluster.local", "batch.example.com")
    ]
    issuer = _openssl(secret["data"]["tls.crt"], "-issuer").split("=", 1)[1].strip()
    assert issuer == _openssl(secret["data"]["ca.crt"], "-subject").split("=", 1)[1].strip()
    assert "Certificate" not in kinds(objs)


@pytest.mark.parametrize("webhook", [True, False])
def test_cert_manager_certificate(webhook: bool) -> None:
    objs = template("api.enabled=true", "webhook.certManager.enabled=true", f"webhook.enabled={str(webhook).lower()}")
    assert "kubatch-api-tls" not in [o["metadata"]["name"] for o in objs if o["kind"] == "Secret"]
    cert = find(objs, "Certificate", API)
    assert cert["spec"]["secretName"] == "kubatch-api-tls"
    assert f"{API}.kubatch.svc" in cert["spec"]["dnsNames"]
    # The chart's self-signed Issuer, made for the API alone when the webhook is off.
    issuer = find(objs, "Issuer", "kubatch-selfsigned")
    assert cert["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    certificates = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Certificate")
    assert certificates == ([API, "kubatch-webhook"] if webhook else [API])
    external = template(
        "api.enabled=true", "webhook.certManager.enabled=true", "webhook.certManager.issuerRef.kind=ClusterIssuer",
        "webhook.certManager.issuerRef.name=corp-ca",
    )  # fmt: skip
    assert "Issuer" not in kinds(external)
    assert find(external, "Certificate", API)["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}
