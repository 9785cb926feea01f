"""No privilege escalation through jobs (kubatch's iam:PassRole) on the real API server.

The shared test operator's webhook checks, with SubjectAccessReviews on behalf of the user creating a
BatchJob (impersonated here with `kubectl --as --as-group`), that the user may use what the job uses
beyond its own containers: its ServiceAccount, its Secrets, privileges. The users:

- alice: bound to the chart's submit-only role (`<release>-kubatch-submit`) in the namespace;
- bob: bound to the built-in `edit` ClusterRole (which the chart's kubatch-edit aggregates into);
- carol: submit-only plus a Role granting `use` on the ServiceAccount `builder` and `get` on the
  Secret `db-creds`, by name;
- dave: bound to the chart's `kubatch-edit` only (jobs and definitions, no pods, no secrets).

Jobs are created with `--dry-run=server` (authorization and admission run in full, nothing is
stored). The last test measures what a review costs per admission.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from kubatch.cluster.client import Kube
from kubatch.controllers.admission import AccessReviewer
from kubatch.core.access import Permission
from kubatch.devcluster.cluster import ClusterInfo
from kubatch.devcluster.operatorproc import WEBHOOK_LABEL
from tests.integration.conftest import REPO
from tests.integration.helpers import Kubectl

# Every check here is a server-side dry run through the shared operator's webhook, which the local
# configuration lets fail open while another test restarts the operator (a refusal would pass).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("webhook_up")]

GROUP = "kubatch.dev/v1alpha1"
CONTAINER = {"image": "busybox:1.36", "command": ["true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
POD = {"containers": [{"name": "main", "image": "busybox:1.36"}]}


@dataclass
class Team:
    ns: str
    tag: str
    queue: str
    open_queue: str
    alice: list[str]
    bob: list[str]
    carol: list[str]
    dave: list[str]
    kubectl: Kubectl

    def user(self, who: list[str]) -> str:
        return who[0].removeprefix("--as=")

    def job(self, name: str, definition: str, queue: str | None = None, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": GROUP,
            "kind": "BatchJob",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"jobQueue": queue or self.queue, "jobDefinition": definition, **spec},
        }

    def create_as(self, who: list[str], obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            *who, "create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(obj), check=False
        )

    def submit(self, who: list[str], definition: str, queue: str | None = None, **spec: Any) -> tuple[bool, str]:
        proc = self.create_as(who, self.job(f"j-{uuid.uuid4().hex[:6]}", definition, queue, **spec))
        if proc.returncode != 0:
            assert "denied the request" in proc.stderr, f"refused for another reason:\n{proc.stderr}"
        return proc.returncode == 0, proc.stderr


def _apply(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    kubectl("create", "-f", "-", input=json.dumps(obj))


def _cluster_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": kind,
        "metadata": {"name": name, "labels": {WEBHOOK_LABEL: "enabled"}},
        "spec": spec,
    }


def _wait_can_i(kubectl: Kubectl, who: list[str], verb: str, resource: str, ns: str) -> None:
    """Role aggregation is asynchronous: wait until the built-in role carries the kubatch grants."""
    deadline = time.monotonic() + 30
    while kubectl(*who, "auth", "can-i", verb, resource, "-n", ns, check=False).stdout.strip() != "yes":
        assert time.monotonic() < deadline, f"{who} never got {verb} {resource} in {ns}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def team(cluster: ClusterInfo, kubectl: Kubectl, opt_in_admission: Callable[[str], None]) -> Iterator[Team]:
    tag = uuid.uuid4().hex[:6]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    release = f"ac-{tag}"
    rendered = subprocess.run(
        [cluster.helm, "template", release, str(REPO / "charts" / "kubatch"),
         "--show-only", "templates/aggregated-roles.yaml"],
        capture_output=True, text=True, check=True, env=cluster.env(),
    ).stdout  # fmt: skip
    roles = [d["metadata"]["name"] for d in yaml.safe_load_all(rendered) if d]
    assert f"{release}-kubatch-submit" in roles
    cluster_objects: list[tuple[str, str]] = []
    kubectl("create", "namespace", ns)
    try:
        kubectl("apply", "-f", "-", input=rendered)
        opt_in_admission(ns)
        ce, ce_open = f"ce-{tag}", f"ce-open-{tag}"
        allow = {"allowPrivileged": True, "allowHostNetwork": True, "allowHostPath": True}
        for name, extra in ((ce, {}), (ce_open, allow)):
            spec = {"type": "UNMANAGED", "nodeSelector": {"kubatch.dev/test-pool": name}, **extra}
            _apply(kubectl, _cluster_object("ComputeEnvironment", name, spec))
            cluster_objects.append(("computeenvironment", name))
        queue, open_queue = f"q-{tag}", f"q-open-{tag}"
        for name, env, extra in ((queue, ce, {}), (open_queue, ce_open, allow)):
            spec = {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": env}], **extra}
            _apply(kubectl, _cluster_object("JobQueue", name, spec))
            cluster_objects.append(("jobqueue", name))

        # Definitions, registered by the admin (system:masters may use anything).
        definitions = {
            "plain": {"containerProperties": CONTAINER},
            "explicit-default": {"containerProperties": {**CONTAINER, "serviceAccountName": "default"}},
            "builder": {"containerProperties": {**CONTAINER, "serviceAccountName": "builder"}},
            "reads-secret": {
                "containerProperties": {**CONTAINER, "secrets": [{"name": "PW", "valueFrom": "db-creds:pw"}]}
            },
            "pod": {"podProperties": POD},
            "priv": {"containerProperties": {**CONTAINER, "privileged": True}},
        }
        for name, spec in definitions.items():
            body = {"type": "container", **spec}
            _apply(
                kubectl,
                {
                    "apiVersion": GROUP,
                    "kind": "JobDefinition",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": body,
                },
            )
        kubectl("create", "serviceaccount", "builder", "-n", ns)
        kubectl("create", "secret", "generic", "db-creds", "--from-literal=pw=hunter2", "-n", ns)

        names = {w: f"{w}-{tag}" for w in ("alice", "bob", "carol", "dave")}
        submit, edit = f"{release}-kubatch-submit", f"{release}-kubatch-edit"
        kubectl("create", "rolebinding", "submitters", f"--clusterrole={submit}",
                f"--user={names['alice']}", f"--user={names['carol']}", "-n", ns)  # fmt: skip
        kubectl("create", "rolebinding", "editors", "--clusterrole=edit", f"--user={names['bob']}", "-n", ns)
        kubectl(
            "create", "rolebinding", "kubatch-editors", f"--clusterrole={edit}", f"--user={names['dave']}", "-n", ns
        )
        # `use` is no verb of the API (kubectl create role refuses it), but RBAC grants any verb.
        for role, rule in (
            ("builder-user", {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["use"]}),
            ("db-reader", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
        ):
            name = "builder" if role == "builder-user" else "db-creds"
            body = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": role, "namespace": ns},
                "rules": [{**rule, "resourceNames": [name]}],
            }
            _apply(kubectl, body)
            kubectl("create", "rolebinding", role, f"--role={role}", f"--user={names['carol']}", "-n", ns)
        t = Team(
            ns=ns,
            tag=tag,
            queue=queue,
            open_queue=open_queue,
            alice=[f"--as={names['alice']}"],
            bob=[f"--as={names['bob']}", "--as-group=system:authenticated"],
            carol=[f"--as={names['carol']}"],
            dave=[f"--as={names['dave']}"],
            kubectl=kubectl,
        )
        _wait_can_i(kubectl, t.bob, "create", "batchjobs.kubatch.dev", ns)
        yield t
    finally:
        for kind, name in reversed(cluster_objects):
            kubectl("delete", kind, name, "--wait=false", "--ignore-not-found", check=False)
        kubectl("delete", "clusterrole", *roles, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_a_submit_only_user_runs_plain_jobs(team: Team) -> None:
    for definition in ("plain", "explicit-default", "pod"):
        ok, err = team.submit(team.alice, definition)
        assert ok, f"{definition}: {err}"
    # ... but cannot register definitions or change jobs at all (RBAC, before any webhook).
    jd = {"apiVersion": GROUP, "kind": "JobDefinition", "metadata": {"name": "mine", "namespace": team.ns},
          "spec": {"type": "container", "containerProperties": CONTAINER}}  # fmt: skip
    assert "forbidden" in team.create_as(team.alice, jd).stderr


def test_a_submit_only_user_may_not_pass_another_service_account(team: Team) -> None:
    ok, err = team.submit(team.alice, "builder")
    assert not ok
    alice = team.user(team.alice)
    assert (
        f'spec.jobDefinition: user "{alice}" may not use ServiceAccount "builder" in namespace "{team.ns}" '
        '(job definition "builder:1", containerProperties.serviceAccountName; '
        "needs create pods, or use serviceaccounts/builder)"
    ) in err, err


def test_a_submit_only_user_may_not_read_a_secret_through_a_job(team: Team) -> None:
    ok, err = team.submit(team.alice, "reads-secret")
    assert not ok
    alice = team.user(team.alice)
    assert (
        f'spec.jobDefinition: user "{alice}" may not read Secret "db-creds" in namespace "{team.ns}" '
        '(job definition "reads-secret:1", containerProperties.secrets[0].valueFrom; needs get secrets/db-creds)'
    ) in err, err
    # Through the job's own overrides too.
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "pw"}}}]
    ok, err = team.submit(team.alice, "pod", podOverrides={"containers": [{"name": "main", "env": env}]})
    assert not ok
    assert (
        f'spec.podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name: user "{alice}" may not read '
        f'Secret "db-creds" in namespace "{team.ns}" (needs get secrets/db-creds)'
    ) in err, err


def test_a_submit_only_user_may_not_run_privileged_jobs(team: Team) -> None:
    ok, err = team.submit(team.alice, "priv", team.open_queue)
    assert not ok
    assert f'may not run privileged containers in namespace "{team.ns}"' in err and "needs create pods" in err, err


def test_an_edit_user_may_use_everything_of_the_namespace(team: Team) -> None:
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "pw"}}}]
    for definition, queue, spec in (
        ("plain", None, {}),
        ("builder", None, {}),
        ("reads-secret", None, {}),
        ("pod", None, {"podOverrides": {"containers": [{"name": "main", "env": env}]}}),
        ("priv", team.open_queue, {}),
    ):
        ok, err = team.submit(team.bob, definition, queue, **spec)
        assert ok, f"{definition}: {err}"


def test_use_and_get_by_name_are_enough(team: Team) -> None:
    """carol may not create pods, but was granted `use` on the account and `get` on the secret."""
    for definition in ("builder", "reads-secret", "plain"):
        ok, err = team.submit(team.carol, definition)
        assert ok, f"{definition}: {err}"
    ok, err = team.submit(team.carol, "priv", team.open_queue)
    assert not ok and "privileged" in err


def test_definitions_are_checked_for_their_author(team: Team) -> None:
    """dave may create definitions and jobs (kubatch-edit) but not pods or secrets: a definition
    naming another account is refused to him (AWS checks iam:PassRole at RegisterJobDefinition), and
    so is a job through a definition that someone else registered with it."""
    dave = team.user(team.dave)
    props = {**CONTAINER, "serviceAccountName": "builder"}
    jd = {"apiVersion": GROUP, "kind": "JobDefinition", "metadata": {"name": f"d-{team.tag}", "namespace": team.ns},
          "spec": {"type": "container", "containerProperties": props}}  # fmt: skip
    proc = team.create_as(team.dave, jd)
    assert proc.returncode != 0
    assert (
        f'spec.containerProperties.serviceAccountName: user "{dave}" may not use ServiceAccount "builder" '
        f'in namespace "{team.ns}" (needs create pods, or use serviceaccounts/builder)'
    ) in proc.stderr, proc.stderr
    plain = {**jd, "spec": {"type": "container", "containerProperties": CONTAINER}}
    assert team.create_as(team.dave, plain).returncode == 0
    ok, err = team.submit(team.dave, "builder")
    assert not ok and f'user "{dave}" may not use ServiceAccount "builder"' in err


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_review_latency(cluster: ClusterInfo, team: Team) -> None:
    """What a SubjectAccessReview costs, measured with the webhook's own reviewer against the real
    API server: uncached (a new secret name each time) and cached (the same permission again), and
    end to end, a job that needs two reviews against a plain one (same user, dry run)."""

    async def measure() -> tuple[list[float], list[float]]:
        kube = await Kube.connect(cluster.kubeconfig)
        try:
            reviewer = AccessReviewer(kube)
            user = {"username": team.user(team.bob), "groups": ["system:authenticated"]}
            await reviewer.answers(user, team.ns, [Permission("create", "pods")])  # warm the connection
            uncached, cached = [], []
            for i in range(40):
                started = time.perf_counter()
                answer = await reviewer.answers(user, team.ns, [Permission("get", "secrets", f"s-{i}")])
                uncached.append(time.perf_counter() - started)
                assert list(answer.values()) == [True]  # edit may read every secret
                started = time.perf_counter()
                await reviewer.answers(user, team.ns, [Permission("get", "secrets", f"s-{i}")])
                cached.append(time.perf_counter() - started)
            assert reviewer.reviews == 41
            return uncached, cached
        finally:
            await kube.close()

    uncached, cached = asyncio.run(measure())
    p50, p95 = statistics.median(uncached), _percentile(uncached, 0.95)
    print(
        f"SubjectAccessReview: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms; "
        f"cached {statistics.median(cached) * 1e6:.0f} us"
    )
    assert p95 < 0.5, uncached
    assert statistics.median(cached) < 0.001

    # End to end: kubectl dry-run creations as bob, alternating a plain job and one whose secret
    # (a new name each time: no cache) and account (create pods, cached after the first) are checked.
    plain, checked = [], []
    for i in range(10):
        for definition, spec, out in (
            ("plain", {}, plain),
            ("pod", {"podOverrides": {"containers": [{"name": "main", "env": [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": f"x-{i}", "key": "k"}}}]}]}}, checked),
        ):  # fmt: skip
            started = time.perf_counter()
            ok, err = team.submit(team.bob, definition, **spec)
            out.append(time.perf_counter() - started)
            assert ok, err
    added = statistics.median(checked) - statistics.median(plain)
    print(
        f"kubectl create --dry-run=server: plain job p50 {statistics.median(plain) * 1000:.0f} ms, "
        f"with a reviewed Secret p50 {statistics.median(checked) * 1000:.0f} ms (difference {added * 1000:.0f} ms)"
    )


def test_a_schedule_is_checked_for_its_author(team: Team) -> None:
    """The operator submits a JobSchedule's runs, so the schedule's author is checked for what its
    job template would use when the schedule is created (kubatch-edit may create schedules)."""
    dave = team.user(team.dave)

    def schedule(definition: str) -> dict[str, Any]:
        template = {"spec": {"jobQueue": team.queue, "jobDefinition": definition}}
        return {
            "apiVersion": GROUP,
            "kind": "JobSchedule",
            "metadata": {"name": f"s-{uuid.uuid4().hex[:6]}", "namespace": team.ns},
            "spec": {"schedule": "@daily", "jobTemplate": template},
        }

    proc = team.create_as(team.dave, schedule("builder"))
    assert proc.returncode != 0
    assert (
        f'spec.jobTemplate.spec.jobDefinition: user "{dave}" may not use ServiceAccount "builder" in namespace '
        f'"{team.ns}" (job definition "builder:1", containerProperties.serviceAccountName; '
        "needs create pods, or use serviceaccounts/builder)"
    ) in proc.stderr, proc.stderr
    assert team.create_as(team.dave, schedule("plain")).returncode == 0
    assert team.create_as(team.bob, schedule("builder")).returncode == 0
