"""The chart's aggregated ClusterRoles, as people get them: impersonated users bound in a namespace.

A viewer reads but cannot create; an editor creates BatchJobs and JobDefinitions in its namespace
only and cannot create cluster-scoped JobQueues or ComputeEnvironments; kubatch-admin can. The roles
also fold into the built-in view/edit/admin roles (aggregation). Writes use `--dry-run=server`:
authorization and admission run in full, nothing is stored, so no operator acts on them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.conftest import REPO
from tests.integration.helpers import Kubectl

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "deploy" / "examples"


@dataclass
class Roles:
    view: str
    edit: str
    admin: str
    tag: str


@pytest.fixture(scope="module")
def roles(cluster: ClusterInfo, kubectl: Kubectl, crds: None) -> Iterator[Roles]:
    """kubatch-view/-edit/-admin from `helm template --show-only`, under a unique release name."""
    tag = uuid.uuid4().hex[:8]
    release = f"rb-{tag}"
    out = subprocess.run(
        [cluster.helm, "template", release, str(REPO / "charts" / "kubatch"),
         "--show-only", "templates/aggregated-roles.yaml"],
        capture_output=True, text=True, check=True, env=cluster.env(),
    ).stdout  # fmt: skip
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(out) if d]
    assert sorted(names) == sorted(f"{release}-kubatch-{r}" for r in ("admin", "edit", "view", "submit"))
    kubectl("apply", "-f", "-", input=out)
    try:
        yield Roles(f"{release}-kubatch-view", f"{release}-kubatch-edit", f"{release}-kubatch-admin", tag)
    finally:
        kubectl("delete", "clusterrole", *names, "--ignore-not-found", check=False)
        kubectl("delete", "clusterrolebinding", f"{release}-admins", "--ignore-not-found", check=False)


def example(file: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The first `kind` object of a deploy/examples file, renamed."""
    doc: dict[str, Any] = next(d for d in yaml.safe_load_all((EXAMPLES / file).read_text()) if d and d["kind"] == kind)
    doc["metadata"] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return doc


def create_as(kubectl: Kubectl, user: list[str], obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl(*user, "create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(obj), check=False)


def allowed(proc: subprocess.CompletedProcess[str]) -> bool:
    if proc.returncode == 0:
        return True
    assert "forbidden" in proc.stderr.lower(), f"failed for another reason than RBAC:\n{proc.stderr}"
    return False


def can_i(kubectl: Kubectl, user: list[str], verb: str, resource: str, *scope: str) -> bool:
    proc = kubectl(*user, "auth", "can-i", verb, resource, *scope, check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


@pytest.fixture
def other_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_viewer_editor_admin(kubectl: Kubectl, roles: Roles, namespace: str, other_namespace: str) -> None:
    tag = roles.tag
    alice = [f"--as=alice-{tag}"]  # a user bound to kubatch-view
    bob = [f"--as=bob-{tag}", f"--as-group=batch-users-{tag}"]  # a group member bound to kubatch-edit
    carol = [f"--as=carol-{tag}"]  # bound cluster-wide to kubatch-admin
    kubectl("create", "rolebinding", "viewers", f"--clusterrole={roles.view}", f"--user=alice-{tag}", "-n", namespace)
    kubectl(
        "create", "rolebinding", "editors", f"--clusterrole={roles.edit}", f"--group=batch-users-{tag}", "-n", namespace
    )  # fmt: skip
    kubectl("create", "clusterrolebinding", f"rb-{tag}-admins", f"--clusterrole={roles.admin}", f"--user=carol-{tag}")

    jd = example("10-hello-world.yaml", "JobDefinition", f"jd-{tag}", namespace)
    bj = example("10-hello-world.yaml", "BatchJob", f"bj-{tag}", namespace)
    jq = example("00-4-job-queues.yaml", "JobQueue", f"jq-{tag}")
    ce = example("00-1-compute-environments.yaml", "ComputeEnvironment", f"ce-{tag}")

    def elsewhere(obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "metadata": {**obj["metadata"], "namespace": other_namespace}}

    # The viewer reads in its namespace, nowhere else, and writes nothing.
    for verb in ("get", "list", "watch"):
        assert can_i(kubectl, alice, verb, "batchjobs.kubatch.dev", "-n", namespace)
        assert can_i(kubectl, alice, verb, "jobdefinitions.kubatch.dev", "-n", namespace)
    assert kubectl(*alice, "get", "batchjobs", "-n", namespace).returncode == 0
    assert not can_i(kubectl, alice, "list", "batchjobs.kubatch.dev", "-n", other_namespace)
    assert not allowed(create_as(kubectl, alice, bj))
    assert not allowed(create_as(kubectl, alice, jd))
    assert not can_i(kubectl, alice, "delete", "batchjobs.kubatch.dev", "-n", namespace)

    # The editor creates jobs and definitions in its namespace only, and no cluster-scoped kinds.
    assert allowed(create_as(kubectl, bob, jd))
    assert allowed(create_as(kubectl, bob, bj))
    for verb in ("update", "patch", "delete", "get", "list", "watch"):
        assert can_i(kubectl, bob, verb, "batchjobs.kubatch.dev", "-n", namespace)
    assert not allowed(create_as(kubectl, bob, elsewhere(bj)))
    assert not allowed(create_as(kubectl, bob, elsewhere(jd)))
    assert not allowed(create_as(kubectl, bob, jq))
    assert not allowed(create_as(kubectl, bob, ce))
    assert not can_i(kubectl, bob, "patch", "batchjobs.kubatch.dev", "--subresource=status", "-n", namespace)
    assert not can_i(kubectl, bob, "get", "secrets", "-n", namespace)

    # kubatch-admin manages the cluster-scoped kinds (and jobs anywhere, bound cluster-wide).
    assert allowed(create_as(kubectl, carol, jq))
    assert allowed(create_as(kubectl, carol, ce))
    assert allowed(create_as(kubectl, carol, elsewhere(bj)))
    for kind in ("schedulingpolicies", "consumableresources"):
        assert can_i(kubectl, carol, "create", f"{kind}.kubatch.dev")
        assert can_i(kubectl, carol, "deletecollection", f"{kind}.kubatch.dev")
    assert not can_i(kubectl, carol, "get", "secrets", "-n", namespace)


def test_roles_aggregate_into_the_builtin_roles(kubectl: Kubectl, roles: Roles, namespace: str) -> None:
    tag = roles.tag
    dave = [f"--as=dave-{tag}"]  # the built-in `edit` role only
    erin = [f"--as=erin-{tag}"]  # the built-in `view` role only
    kubectl("create", "rolebinding", "builtin-edit", "--clusterrole=edit", f"--user=dave-{tag}", "-n", namespace)
    kubectl("create", "rolebinding", "builtin-view", "--clusterrole=view", f"--user=erin-{tag}", "-n", namespace)
    deadline = time.monotonic() + 30  # the clusterrole-aggregation controller folds the rules in
    while not can_i(kubectl, dave, "create", "batchjobs.kubatch.dev", "-n", namespace):
        assert time.monotonic() < deadline, "kubatch-edit never aggregated into edit"
        time.sleep(0.5)
    assert can_i(kubectl, dave, "create", "jobdefinitions.kubatch.dev", "-n", namespace)
    while not can_i(kubectl, erin, "list", "batchjobs.kubatch.dev", "-n", namespace):
        assert time.monotonic() < deadline, "kubatch-view never aggregated into view"
        time.sleep(0.5)
    assert not can_i(kubectl, erin, "create", "batchjobs.kubatch.dev", "-n", namespace)
