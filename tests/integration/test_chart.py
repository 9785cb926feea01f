"""The Helm charts on the real local control plane.

- kubatch-crds adopts the CRDs the session installed, upgrades idempotently, and `helm uninstall`
  keeps them (helm.sh/resource-policy: keep): they are never deleted here, other tests use them.
- kubatch installs into a fresh namespace under a unique release name. Its operator pod stays
  Pending (a nodeSelector no node has), its webhook matches no object (an objectSelector), so the
  release cannot disturb the other tests.
- The chart's ServiceAccount (a TokenRequest token) can do everything the operator does and
  nothing more: `kubectl auth can-i`, and the operator itself run locally with that token syncs its
  view without a single 403. It runs as a standby (its Lease is held by a placeholder), so it never
  acts on the jobs of the shared test operator.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hack.chart import gen_crds

from kubatch.api import crdgen
from kubatch.devcluster import operatorproc, procs
from kubatch.devcluster.cluster import ClusterInfo, pid_alive
from tests.integration.conftest import REPO
from tests.integration.helpers import Kubectl

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "kubatch"
CRD_CHART = REPO / "charts" / "kubatch-crds"
CRD_NAMES = [c["metadata"]["name"] for c in crdgen.all_crds()]

Helm = Callable[..., Any]


@pytest.fixture(scope="module")
def helm(cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    import subprocess

    home = tmp_path_factory.mktemp("helm-home")
    env = cluster.env()
    env.update({f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")})

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([cluster.helm, *args], capture_output=True, text=True, env=env, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    lease: str
    sets: list[str]

    @property
    def fullname(self) -> str:
        return f"{self.name}-kubatch"

    def helm_args(self, *extra: str) -> list[str]:
        args = [self.name, str(CHART), "--namespace", self.namespace]
        for s in [*self.sets, *extra]:
            args += ["--set", s]
        return args


@pytest.fixture(scope="module")
def release(kubectl: Kubectl, helm: Helm, crds: None) -> Iterator[Release]:
    # A letter first: helm's --set reads an all-digit value as a number, and a label value must be a string.
    tag = f"c{uuid.uuid4().hex[:7]}"
    ns = f"t-chart-{tag}"
    kubectl("create", "namespace", ns)
    rel = Release(
        name=f"kt-{tag}",
        namespace=ns,
        lease=f"chart-test-{tag}",
        sets=[
            "replicaCount=1",
            "image.repository=kubatch-chart-test",
            # Keep the pod Pending (no node has this label) and the webhook away from every other test.
            "nodeSelector.kubatch\\.dev/chart-test=unschedulable",
            f"webhook.objectSelector.matchLabels.kubatch\\.dev/chart-test={tag}",
            f"leaderElection.leaseName=chart-test-{tag}",
        ],
    )
    try:
        helm("install", *rel.helm_args())
        yield rel
    finally:
        helm("uninstall", rel.name, "--namespace", ns, "--wait", "--timeout", "60s", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


# ---- kubatch-crds ------------------------------------------------------------------------------------


def test_crd_chart_adopts_upgrades_and_keeps_the_crds(
    kubectl: Kubectl, kget: Callable[..., Any], helm: Helm, crds: None, namespace: str
) -> None:
    # Never apply CRDs other than the ones the session installed from crds/.
    assert gen_crds.drift() == [], "charts/kubatch-crds is stale: run `python hack/chart/gen_crds.py`"
    assert crdgen.drift(REPO / "crds") == [], "crds/ is stale: run `python -m kubatch.api.crdgen`"
    rendered = helm("template", "x", str(CRD_CHART)).stdout
    assert rendered.count("helm.sh/resource-policy: keep") == len(CRD_NAMES)

    name = f"crds-{uuid.uuid4().hex[:8]}"
    # Adoption of CRDs applied by kubectl: Helm's ownership label and annotations.
    kubectl("label", "crd", *CRD_NAMES, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    kubectl(
        "annotate", "crd", *CRD_NAMES, f"meta.helm.sh/release-name={name}",
        f"meta.helm.sh/release-namespace={namespace}", "--overwrite",
    )  # fmt: skip
    uids = {n: kget("crd", n)["metadata"]["uid"] for n in CRD_NAMES}
    helm("install", name, str(CRD_CHART), "--namespace", namespace)
    helm("upgrade", name, str(CRD_CHART), "--namespace", namespace)  # idempotent
    for n in CRD_NAMES:
        crd = kget("crd", n)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == name
        assert crd["metadata"]["uid"] == uids[n], "the CRD was replaced, not updated"

    helm("uninstall", name, "--namespace", namespace)
    kubectl("wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{n}" for n in CRD_NAMES))
    assert {n: kget("crd", n)["metadata"]["uid"] for n in CRD_NAMES} == uids


# ---- kubatch -------------------------------------------------------------------------------------------


def test_chart_objects_exist(kget: Callable[..., Any], release: Release) -> None:
    ns, full = release.namespace, release.fullname
    dep = kget("deployment", full, "-n", ns)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == full
    kget("serviceaccount", full, "-n", ns)
    kget("service", f"{full}-metrics", "-n", ns)
    kget("service", f"{full}-webhook", "-n", ns)
    kget("role", f"{full}-leader-election", "-n", ns)
    kget("rolebinding", f"{full}-leader-election", "-n", ns)
    for role in (full, f"{full}-admin", f"{full}-edit", f"{full}-view"):
        kget("clusterrole", role)
    assert kget("clusterrolebinding", full)["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": full,
        "namespace": ns,
    }
    secret = kget("secret", f"{full}-webhook-tls", "-n", ns)
    vwc = kget("validatingwebhookconfiguration", full)
    assert {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]} == {secret["data"]["ca.crt"]}
    assert {w["clientConfig"]["service"]["path"] for w in vwc["webhooks"]} == {
        "/validate-batchjobs",
        "/validate-jobqueues",
        "/validate-jobqueues-delete",
        "/validate-jobdefinitions",
        "/validate-jobschedules",
    }
    # The operator pod exists; it stays Pending here (no node matches its nodeSelector).
    deadline = time.monotonic() + 30
    while not (pods := kget("pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release.name}")["items"]):
        assert time.monotonic() < deadline, "the Deployment made no pod"
        time.sleep(0.5)
    assert pods[0]["status"].get("phase") == "Pending"


def test_webhook_certificate_survives_upgrades(
    kget: Callable[..., Any], helm: Helm, release: Release, kubectl: Kubectl
) -> None:
    ns, full = release.namespace, release.fullname
    before = kget("secret", f"{full}-webhook-tls", "-n", ns)["data"]
    helm("upgrade", *release.helm_args("webhook.failurePolicy=Fail"))
    after = kget("secret", f"{full}-webhook-tls", "-n", ns)["data"]
    assert after == before
    vwc = kget("validatingwebhookconfiguration", full)
    assert {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]} == {before["ca.crt"]}
    assert {w["failurePolicy"] for w in vwc["webhooks"]} == {"Fail"}
    helm("upgrade", *release.helm_args())
    vwc = kget("validatingwebhookconfiguration", full)
    # Back to the defaults: Ignore, except BatchJobs (webhook.batchJobsFailurePolicy: the access
    # checks must not be skipped when the webhook is down).
    policies = {w["clientConfig"]["service"]["path"]: w["failurePolicy"] for w in vwc["webhooks"]}
    assert policies.pop("/validate-batchjobs") == "Fail"
    assert set(policies.values()) == {"Ignore"}


# ---- the ServiceAccount's permissions ------------------------------------------------------------------


def token_kubeconfig(kubectl: Kubectl, release: Release, directory: Path, service_account: str = "") -> Path:
    """A kubeconfig with a TokenRequest token of the chart's ServiceAccount (the operator's, or
    ``service_account``), server and CA from ours."""
    sa = service_account or release.fullname
    token = kubectl("create", "token", sa, "-n", release.namespace, "--duration=30m").stdout.strip()
    current = json.loads(kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout)
    cluster = current["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "chart-sa", "user": {"token": token}}],
        "contexts": [{"name": "chart-sa", "context": {"cluster": cluster["name"], "user": "chart-sa"}}],
        "current-context": "chart-sa",
    }
    path = directory / f"{sa}.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def can_i(kubectl: Kubectl, kubeconfig: Path, verb: str, resource: str, *scope: str) -> bool:
    proc = kubectl("--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource, *scope, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


def expectations(release: Release) -> list[tuple[bool, str, str, tuple[str, ...]]]:
    """(allowed, verb, resource, scope) for the chart's ServiceAccount."""
    ns, other, lease = release.namespace, "kube-system", release.lease
    all_ns = ("--all-namespaces",)
    yes: list[tuple[str, str, tuple[str, ...]]] = [
        ("get", "batchjobs.kubatch.dev", ("-n", other)),  # the webhook reads what its view lacks
        ("get", "jobdefinitions.kubatch.dev", ("-n", other)),
        ("list", "batchjobs.kubatch.dev", all_ns),
        ("watch", "batchjobs.kubatch.dev", all_ns),
        ("patch", "batchjobs.kubatch.dev", ("--subresource=status", "-n", other)),
        ("list", "jobdefinitions.kubatch.dev", all_ns),
        ("watch", "jobdefinitions.kubatch.dev", all_ns),
        ("patch", "jobdefinitions.kubatch.dev", ("--subresource=status", "-n", other)),
        # JobSchedules: the runs' BatchJobs are created, terminated (Replace) and deleted (history).
        ("list", "jobschedules.kubatch.dev", all_ns),
        ("watch", "jobschedules.kubatch.dev", all_ns),
        ("patch", "jobschedules.kubatch.dev", ("--subresource=status", "-n", other)),
        ("create", "batchjobs.kubatch.dev", ("-n", other)),
        ("patch", "batchjobs.kubatch.dev", ("-n", other)),
        ("delete", "batchjobs.kubatch.dev", ("-n", other)),
        *(
            (verb, f"{kind}.kubatch.dev", scope)
            for kind in ("jobqueues", "computeenvironments", "schedulingpolicies", "consumableresources")
            for verb, scope in (
                ("get", ()),
                ("list", ()),
                ("watch", ()),
                ("patch", ()),
                ("patch", ("--subresource=status",)),
            )
        ),
        ("list", "pods", all_ns),
        ("watch", "pods", all_ns),
        ("create", "pods", ("-n", other)),
        ("delete", "pods", ("-n", other)),  # job pods live in every namespace
        ("create", "services", ("-n", other)),
        ("delete", "services", ("-n", other)),
        ("create", "events", ("-n", other)),
        ("patch", "events", ("-n", other)),
        ("list", "controllerrevisions.apps", all_ns),
        ("watch", "controllerrevisions.apps", all_ns),
        ("create", "controllerrevisions.apps", ("-n", other)),
        ("patch", "controllerrevisions.apps", ("-n", other)),  # a revision's definition-uid label
        ("delete", "controllerrevisions.apps", ("-n", other)),  # retired revisions of deleted definitions
        ("list", "nodes", ()),
        ("watch", "nodes", ()),
        ("patch", "nodes", ()),
        ("get", "namespaces", ()),
        # the webhook asks whether the user creating a job may use its ServiceAccount, Secrets, ...
        ("create", "subjectaccessreviews.authorization.k8s.io", ()),
        ("create", "leases.coordination.k8s.io", ("-n", ns)),
        ("get", f"leases.coordination.k8s.io/{lease}", ("-n", ns)),
        ("update", f"leases.coordination.k8s.io/{lease}", ("-n", ns)),
    ]
    no: list[tuple[str, str, tuple[str, ...]]] = [
        ("get", "secrets", ("-n", ns)),
        ("list", "secrets", ("-n", ns)),
        ("list", "secrets", all_ns),
        ("watch", "secrets", all_ns),
        ("get", "configmaps", ("-n", ns)),
        ("update", "batchjobs.kubatch.dev", ("-n", other)),
        ("create", "jobschedules.kubatch.dev", ("-n", other)),
        ("patch", "jobschedules.kubatch.dev", ("-n", other)),
        ("delete", "jobschedules.kubatch.dev", ("-n", other)),
        ("create", "jobdefinitions.kubatch.dev", ("-n", other)),
        ("create", "jobqueues.kubatch.dev", ()),
        ("delete", "computeenvironments.kubatch.dev", ()),
        ("update", "pods", ("-n", other)),
        ("patch", "pods", ("-n", other)),
        ("get", "pods", ("--subresource=log", "-n", other)),
        ("create", "pods", ("--subresource=exec", "-n", other)),
        ("list", "services", all_ns),
        ("create", "nodes", ()),  # provisioners.kwok.enabled is false
        ("delete", "nodes", ()),
        ("list", "nodepools.karpenter.sh", ()),  # provisioners.karpenter.enabled is false
        ("list", "namespaces", ()),
        ("get", "leases.coordination.k8s.io/kubatch-dispatcher", ("-n", "default")),
        ("create", "leases.coordination.k8s.io", ("-n", "default")),
        ("get", "leases.coordination.k8s.io/someone-else", ("-n", ns)),
        ("delete", f"leases.coordination.k8s.io/{lease}", ("-n", ns)),
        ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io", ()),
        ("patch", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{release.fullname}", ()),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", ()),
        ("bind", "clusterroles.rbac.authorization.k8s.io", ()),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", ()),
        ("impersonate", "users", ()),
        ("create", "serviceaccounts/token", ("-n", ns)),
        ("*", "*", all_ns),
    ]
    return [(True, *e) for e in yes] + [(False, *e) for e in no]


def test_service_account_can_do_exactly_what_the_operator_needs(
    kubectl: Kubectl, helm: Helm, release: Release, tmp_path: Path, karpenter_crds: str
) -> None:
    kubeconfig = token_kubeconfig(kubectl, release, tmp_path)
    wrong = [
        f"{'expected' if allowed else 'unexpected'}: {verb} {resource} {' '.join(scope)}"
        for allowed, verb, resource, scope in expectations(release)
        if can_i(kubectl, kubeconfig, verb, resource, *scope) != allowed
    ]
    assert wrong == []

    # The provisioner flags widen the role by exactly their own needs.
    helm("upgrade", *release.helm_args("provisioners.kwok.enabled=true", "provisioners.karpenter.enabled=true"))
    try:
        for verb in ("create", "delete"):
            assert can_i(kubectl, kubeconfig, verb, "nodes")
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert can_i(kubectl, kubeconfig, verb, "nodepools.karpenter.sh")
        assert not can_i(kubectl, kubeconfig, "update", "nodes")
        assert not can_i(kubectl, kubeconfig, "list", "secrets", "--all-namespaces")
    finally:
        helm("upgrade", *release.helm_args())
    assert not can_i(kubectl, kubeconfig, "create", "nodes")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), ""


def test_operator_runs_with_the_chart_service_account(
    cluster: ClusterInfo, kubectl: Kubectl, kget: Callable[..., Any], release: Release, tmp_path: Path
) -> None:
    kubeconfig = token_kubeconfig(kubectl, release, tmp_path)
    ns = release.namespace
    # A placeholder holds the chart's Lease, so the operator under test stays a standby: it lists and
    # watches everything (its view syncs) but never dispatches or writes.
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": release.lease, "namespace": ns},
        "spec": {"holderIdentity": "chart-test-placeholder", "leaseDurationSeconds": 3600, "renewTime": _micro_now()},
    }
    kubectl("apply", "-f", "-", input=json.dumps(lease))
    info = dataclasses.replace(cluster, kubeconfig=str(kubeconfig))
    state = Path(cluster.state_dir) if cluster.state_dir else Path(tempfile.mkdtemp(dir=tmp_path))
    op = operatorproc.start(
        info,
        state,
        extra_env={
            "KUBATCH_LEASE_NAMESPACE": ns,
            "KUBATCH_LEADER_ELECTION": "true",
            "KUBATCH_LEADER_IDENTITY": f"chart-test-{release.name}",
        },
        name=f"chart-operator-{release.name}",
        lease_name=release.lease,
        wait=True,
        timeout=90,
    )
    try:
        assert _get(f"http://127.0.0.1:{op.metrics_port}/readyz")[0] == 200
        time.sleep(4)  # a few leader-election rounds (get on the Lease every second)
        code, metrics = _get(op.metrics_url)
        assert code == 200
        assert "kubatch_leader 0.0" in metrics
        assert pid_alive(op.pid)
    finally:
        procs.stop_pid(op.pid)
    log = Path(op.log).read_text(errors="replace")
    assert "view synced" in log
    # A refused request shows as an HTTP 403 (not the milliseconds of a log line's time, ",403").
    refusals = re.findall(r"(?<![\d,.])403(?!\d)|Forbidden|forbidden|Not enough permissions", log)
    assert not refusals, f"{refusals} in {op.log}:\n{log[-3000:]}"
    holder = kget("lease", release.lease, "-n", ns)["spec"]["holderIdentity"]
    assert holder == "chart-test-placeholder"


def test_token_is_the_service_accounts(kubectl: Kubectl, release: Release, tmp_path: Path) -> None:
    kubeconfig = token_kubeconfig(kubectl, release, tmp_path)
    review = json.loads(kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json").stdout)
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{release.namespace}:{release.fullname}"


# ---- the AWS Batch API server (api.enabled) ---------------------------------------------------------


@dataclasses.dataclass
class ApiRelease:
    release: Release
    team: str  # the namespace of the ServiceAccounts keys map to
    user: str
    group: str

    @property
    def service_account(self) -> str:
        return f"{self.release.fullname}-api"

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.release.namespace}:{self.service_account}"


@pytest.fixture(scope="module")
def api_release(kubectl: Kubectl, helm: Helm, crds: None) -> Iterator[ApiRelease]:
    """A second release with only the API server's objects in use: the API lists one ServiceAccount
    of `team` (`listed`; `other` is not listed), one user and one group. Its pods stay Pending (no node
    matches the nodeSelector); the operator has no replica and no webhook."""
    tag = f"a{uuid.uuid4().hex[:7]}"
    ns, team = f"t-chart-{tag}", f"t-chart-{tag}-team"
    for n in (ns, team):
        kubectl("create", "namespace", n)
    for sa in ("listed", "other"):
        kubectl("create", "serviceaccount", sa, "-n", team)
    rel = Release(
        name=f"kt-{tag}",
        namespace=ns,
        lease=f"chart-test-{tag}",
        sets=[
            "replicaCount=0",
            "webhook.enabled=false",
            "image.repository=kubatch-chart-test",
            "nodeSelector.kubatch\\.dev/chart-test=unschedulable",
            f"leaderElection.leaseName=chart-test-{tag}",
            "api.enabled=true",
            "api.replicas=1",
            f"api.impersonate.serviceAccounts={{{team}/listed}}",
            f"api.impersonate.users={{alice-{tag}}}",
            f"api.impersonate.groups={{devs-{tag}}}",
        ],
    )
    try:
        helm("install", *rel.helm_args())
        yield ApiRelease(rel, team, f"alice-{tag}", f"devs-{tag}")
    finally:
        helm("uninstall", rel.name, "--namespace", ns, "--wait", "--timeout", "60s", check=False)
        for n in (ns, team):
            kubectl("delete", "namespace", n, "--wait=false", check=False)


def can_i_as(kubectl: Kubectl, subject: str, verb: str, resource: str, *scope: str) -> bool:
    proc = kubectl("auth", "can-i", verb, resource, *scope, f"--as={subject}", check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


def test_api_objects_exist(kget: Callable[..., Any], api_release: ApiRelease) -> None:
    rel, name = api_release.release, api_release.service_account
    dep = kget("deployment", name, "-n", rel.namespace)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == name
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kubatch"] and container["args"][:2] == ["api", "serve"]
    assert kget("service", name, "-n", rel.namespace)["spec"]["ports"][0]["targetPort"] == "https"
    secret = kget("secret", f"{name}-tls", "-n", rel.namespace)
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    kget("role", f"{name}-impersonate", "-n", api_release.team)


def test_api_service_account_may_impersonate_exactly_the_listed_identities(
    kubectl: Kubectl, api_release: ApiRelease
) -> None:
    """`kubectl auth can-i --as=<the API's ServiceAccount>` against the real API server's RBAC."""
    team, ns = api_release.team, api_release.release.namespace
    yes: list[tuple[str, str, tuple[str, ...]]] = [
        ("impersonate", "serviceaccounts/listed", ("-n", team)),
        ("impersonate", "groups/system:serviceaccounts", ()),
        ("impersonate", f"groups/system:serviceaccounts:{team}", ()),
        ("impersonate", f"users/{api_release.user}", ()),
        ("impersonate", f"groups/{api_release.group}", ()),
        ("get", "secrets", ("-n", ns)),  # the access keys
        ("get", "jobqueues.kubatch.dev", ()),
    ]
    no: list[tuple[str, str, tuple[str, ...]]] = [
        ("impersonate", "serviceaccounts/other", ("-n", team)),
        ("impersonate", "serviceaccounts", ("-n", team)),
        ("impersonate", "serviceaccounts/listed", ("-n", ns)),  # the same name in another namespace
        ("impersonate", "serviceaccounts/listed", ("-n", "kube-system")),
        ("impersonate", "serviceaccounts/default", ("-n", "kube-system")),
        ("impersonate", "users/admin", ()),
        ("impersonate", "users", ()),
        ("impersonate", "users/system:admin", ()),
        ("impersonate", "groups/system:masters", ()),
        ("impersonate", "groups/system:serviceaccounts:kube-system", ()),
        ("impersonate", "userextras/scopes", ()),
        ("list", "secrets", ("-n", ns)),
        ("watch", "secrets", ("-n", ns)),
        ("get", "secrets", ("-n", team)),
        ("get", "secrets", ("-n", "kube-system")),
        ("list", "jobqueues.kubatch.dev", ()),
        ("create", "batchjobs.kubatch.dev", ("-n", team)),
        ("list", "batchjobs.kubatch.dev", ("-n", team)),
        ("create", "serviceaccounts/token", ("-n", team)),
    ]
    expected = [(True, *e) for e in yes] + [(False, *e) for e in no]
    wrong = [
        f"{'expected' if allowed else 'unexpected'}: {verb} {resource} {' '.join(scope)}"
        for allowed, verb, resource, scope in expected
        if can_i_as(kubectl, api_release.subject, verb, resource, *scope) != allowed
    ]
    assert wrong == []


def test_api_token_impersonates_the_listed_service_account_only(
    kubectl: Kubectl, api_release: ApiRelease, tmp_path: Path
) -> None:
    """The API's own token, with the headers `kubatch api serve` sends (Impersonate-User and the
    ServiceAccount's groups): the API server accepts the listed identity and refuses another."""
    kubeconfig = token_kubeconfig(kubectl, api_release.release, tmp_path, api_release.service_account)
    team = api_release.team

    def flags(user: str, *groups: str) -> list[str]:
        return ["--kubeconfig", str(kubeconfig), f"--as={user}", *(f"--as-group={g}" for g in groups)]

    def whoami(user: str, *groups: str) -> subprocess.CompletedProcess[str]:
        return kubectl(*flags(user, *groups), "auth", "whoami", "-o", "json", check=False)

    def discovery(user: str, *groups: str) -> subprocess.CompletedProcess[str]:
        """A request any authenticated identity may make (kubectl's whoami hides the refusal)."""
        return kubectl(*flags(user, *groups), "get", "--raw", "/api", check=False)

    sa_groups = ("system:serviceaccounts", f"system:serviceaccounts:{team}")
    listed = whoami(f"system:serviceaccount:{team}:listed", *sa_groups)
    assert listed.returncode == 0, listed.stderr
    info = json.loads(listed.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{team}:listed"
    assert set(sa_groups) <= set(info["groups"])
    user = whoami(api_release.user, api_release.group)
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["status"]["userInfo"]["username"] == api_release.user
    assert discovery(f"system:serviceaccount:{team}:listed", *sa_groups).returncode == 0
    for refused in (
        discovery(f"system:serviceaccount:{team}:other", *sa_groups),
        discovery(
            f"system:serviceaccount:{team}:listed", "system:serviceaccounts", "system:serviceaccounts:kube-system"
        ),
        discovery(api_release.user, "system:masters"),
        discovery("bob"),
    ):
        assert refused.returncode != 0
        assert "cannot impersonate" in refused.stderr, refused.stderr


def test_api_server_with_the_chart_service_account_refuses_keys_of_unlisted_identities(
    cluster: ClusterInfo, kubectl: Kubectl, api_release: ApiRelease, tmp_path: Path
) -> None:
    """`kubatch api serve`'s application, acting with the chart's API ServiceAccount: a key of the
    listed ServiceAccount works; `kubatch api keys create` makes a key for an unlisted one just the
    same, and every request with it fails with AccessDeniedException."""
    from botocore.exceptions import ClientError

    from tests.integration.awsapi import client, create_key, in_process

    rel, team = api_release.release, api_release.team
    # Both ServiceAccounts may look at jobs in their namespace: only the impersonation differs.
    for sa in ("listed", "other"):
        kubectl(
            "create", "rolebinding", f"submit-{sa}", f"--clusterrole={rel.fullname}-submit",
            f"--serviceaccount={team}:{sa}", "-n", team,
        )  # fmt: skip
    kubeconfig = token_kubeconfig(kubectl, rel, tmp_path, api_release.service_account)
    listed = create_key(cluster.kubeconfig, rel.namespace, team, "--service-account", "listed")
    other = create_key(cluster.kubeconfig, rel.namespace, team, "--service-account", "other")
    unknown_id = "00000000-0000-0000-0000-000000000000"
    with in_process(str(kubeconfig), rel.namespace) as url:
        assert client(url, listed).describe_jobs(jobs=[unknown_id])["jobs"] == []
        with pytest.raises(ClientError) as refused:
            client(url, other).describe_jobs(jobs=[unknown_id])
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert "impersonate" in error["Message"], error
