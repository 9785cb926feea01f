"""The validating admission webhook on the real API server, served by the shared test operator:
cross-object rejections name the field and the value, valid submissions pass (also right after
their definition was created), and with the webhook unreachable (failurePolicy Ignore) a bad job is
accepted and then failed by the controller."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster.cluster import ClusterInfo, free_port
from kubatch.devcluster.operatorproc import WEBHOOK_LABEL
from tests.integration.helpers import Kubectl, delete_cluster_objects

# Its refusals come from the shared operator's webhook: never while another test restarts it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("webhook_up")]

GROUP = "kubatch.dev/v1alpha1"
OPT_IN = {WEBHOOK_LABEL: "enabled"}
CONTAINER = {"image": "busybox:1.36", "command": ["true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}


class Objects:
    """Creates kubatch objects with unique names; deletes the cluster-scoped ones afterwards."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.ns = namespace
        self.tag = uuid.uuid4().hex[:6]
        self.cluster: list[tuple[str, str]] = []

    def name(self, base: str) -> str:
        return f"{base}-{self.tag}"

    def create(self, kind: str, name: str, spec: dict[str, Any], *, namespaced: bool = False) -> str:
        metadata: dict[str, Any] = {"name": name}
        if namespaced:
            metadata["namespace"] = self.ns
        else:
            metadata["labels"] = dict(OPT_IN)  # cluster-scoped objects opt in one by one
        obj = {"apiVersion": GROUP, "kind": kind, "metadata": metadata, "spec": spec}
        self.kubectl("create", "-f", "-", input=json.dumps(obj))
        if not namespaced:
            self.cluster.append((kind.lower(), name))
        return name

    def environment(self, **allow: bool) -> str:
        name = self.name(f"ce{len(self.cluster)}")
        spec = {"type": "UNMANAGED", "nodeSelector": {"kubatch.dev/test-pool": name}, **allow}
        return self.create("ComputeEnvironment", name, spec)

    def queue(self, envs: list[str], **spec: Any) -> str:
        order = [{"order": i + 1, "computeEnvironment": e} for i, e in enumerate(envs)]
        name = self.name(f"q{len(self.cluster)}")
        return self.create("JobQueue", name, {"priority": 1, "computeEnvironmentOrder": order, **spec})

    def definition(self, name: str, **spec: Any) -> str:
        return self.create("JobDefinition", name, {"type": "container", **spec}, namespaced=True)

    def job_manifest(self, name: str, queue: str, definition: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": GROUP,
            "kind": "BatchJob",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"jobQueue": queue, "jobDefinition": definition, **spec},
        }

    def submit(self, name: str, queue: str, definition: str, **spec: Any) -> tuple[int, str]:
        out = self.kubectl(
            "create", "-f", "-", input=json.dumps(self.job_manifest(name, queue, definition, **spec)), check=False
        )
        return out.returncode, out.stderr

    def cleanup(self) -> None:
        delete_cluster_objects(self.kubectl, self.cluster)


@dataclass
class Setup:
    objects: Objects
    fifo: str
    fair: str
    disabled: str
    other_team: str
    open: str
    policy: str


@pytest.fixture(scope="module")
def setup(kubectl: Kubectl, opt_in_admission: Callable[[str], None]) -> Iterator[Setup]:
    """One namespace and one set of queues, environments, definitions and jobs for the table: the
    rejected submissions change nothing."""
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", namespace)
    o = Objects(kubectl, namespace)
    try:
        opt_in_admission(namespace)
        ce = o.environment()
        ce_open = o.environment(allowPrivileged=True, allowHostNetwork=True, allowHostPath=True)
        policy = o.create(
            "SchedulingPolicy", o.name("sp"), {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a"}]}}
        )
        s = Setup(
            objects=o,
            fifo=o.queue([ce]),
            fair=o.queue([ce], schedulingPolicy=policy),
            disabled=o.queue([ce], state="DISABLED"),
            other_team=o.queue([ce], namespaceSelector={"matchLabels": {"team": "other"}}),
            open=o.queue([ce_open], allowPrivileged=True, allowHostNetwork=True, allowHostPath=True),
            policy=policy,
        )
        o.definition("d", containerProperties=CONTAINER)
        o.definition("old", containerProperties=CONTAINER)
        kubectl("patch", "jobdefinition", "old", "-n", o.ns, "--type=merge", "-p", '{"spec":{"deregistered":true}}')
        o.definition("priv", containerProperties={**CONTAINER, "privileged": True})
        o.definition(
            "hostnet", podProperties={"hostNetwork": True, "containers": [{"name": "main", "image": "busybox:1.36"}]}
        )
        for name, spec in (
            ("plain", {}),
            ("arr3", {"arrayProperties": {"size": 3}}),
            ("x", {}),
        ):
            code, err = o.submit(name, s.fifo, "d", **spec)
            assert code == 0, err
        code, err = o.submit("y", s.fifo, "d", dependsOn=[{"jobName": "x"}])
        assert code == 0, err
        kubectl("delete", "batchjob", "x", "-n", o.ns, "--wait=true")
        yield s
    finally:
        o.cleanup()
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclass(frozen=True)
class Case:
    id: str
    queue: str  # a Setup attribute, or a literal queue name
    definition: str
    spec: dict[str, Any]
    field: str
    text: str
    name: str = "new"


CASES = [
    Case("missing-queue", "nope-q", "d", {}, "spec.jobQueue", 'job queue "nope-q" does not exist'),
    Case("disabled-queue", "disabled", "d", {}, "spec.jobQueue", "is DISABLED"),
    Case("namespace-not-selected", "other_team", "d", {}, "spec.jobQueue", "does not accept jobs from namespace"),
    Case("missing-definition", "fifo", "nope", {}, "spec.jobDefinition", 'job definition "nope" does not exist'),
    Case("inactive-definition", "fifo", "old", {}, "spec.jobDefinition", "no ACTIVE revision"),
    Case("inactive-revision", "fifo", "old:1", {}, "spec.jobDefinition", '"old:1" is INACTIVE'),
    Case("missing-revision", "fifo", "d:9", {}, "spec.jobDefinition", 'revision "d:9" does not exist'),
    Case(
        "missing-dependency", "fifo", "d", {"dependsOn": [{"jobName": "ghost"}]}, "spec.dependsOn[0].jobName", '"ghost"'
    ),
    Case("self-dependency", "fifo", "d", {"dependsOn": [{"jobName": "new"}]}, "spec.dependsOn", "itself"),
    Case(
        "cycle-via-existing-job",
        "fifo",
        "d",
        {"dependsOn": [{"jobName": "y"}]},
        "spec.dependsOn",
        '"x" -> "y" -> "x"',
        name="x",
    ),
    Case(
        "n-to-n-on-a-non-array",
        "fifo",
        "d",
        {"arrayProperties": {"size": 3}, "dependsOn": [{"jobName": "plain", "type": "N_TO_N"}]},
        "spec.dependsOn[0].type",
        'job "plain" to be an array job',
    ),
    Case(
        "n-to-n-size-mismatch",
        "fifo",
        "d",
        {"arrayProperties": {"size": 4}, "dependsOn": [{"jobName": "arr3", "type": "N_TO_N"}]},
        "spec.dependsOn[0].type",
        "(3 != 4)",
    ),
    Case("share-missing-on-fair-share", "fair", "d", {}, "spec.shareIdentifier", "required"),
    Case("share-on-fifo", "fifo", "d", {"shareIdentifier": "team-a"}, "spec.shareIdentifier", '"team-a"'),
    Case(
        "priority-override-on-fifo",
        "fifo",
        "d",
        {"schedulingPriorityOverride": 7},
        "spec.schedulingPriorityOverride",
        "FIFO",
    ),
    Case(
        "missing-consumable",
        "fifo",
        "d",
        {
            "consumableResourcePropertiesOverride": {
                "consumableResourceList": [{"consumableResource": "lic-x", "quantity": 1}]
            }
        },
        "spec.consumableResourcePropertiesOverride.consumableResourceList[0].consumableResource",
        '"lic-x"',
    ),
    Case("privileged-without-opt-in", "fifo", "priv", {}, "spec.jobDefinition", "spec.allowPrivileged: true"),
    Case("host-network-without-opt-in", "fifo", "hostnet", {}, "spec.jobDefinition", "spec.allowHostNetwork: true"),
    Case(
        "pod-overrides-on-a-container-definition",
        "fifo",
        "d",
        {"podOverrides": {"containers": [{"name": "main", "image": "x"}]}},
        "spec.podOverrides",
        "no podProperties",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cross_object_rejection(setup: Setup, case: Case) -> None:
    queue = getattr(setup, case.queue, case.queue)
    code, err = setup.objects.submit(case.name, queue, case.definition, **case.spec)
    assert code != 0, f"{case.id}: accepted"
    assert f"{case.field}:" in err and case.text in err, err
    if case.queue not in ("nope-q",) and case.field == "spec.jobQueue":
        assert queue in err


def test_valid_submissions_are_accepted(setup: Setup) -> None:
    o = setup.objects
    accepted = [
        ("fifo-job", setup.fifo, "d", {}),
        ("pinned", setup.fifo, "d:1", {}),
        ("fair-job", setup.fair, "d", {"shareIdentifier": "a", "schedulingPriorityOverride": 3}),
        ("privileged", setup.open, "priv", {}),
        ("host-network", setup.open, "hostnet", {}),
        (
            "n-to-n",
            setup.fifo,
            "d",
            {"arrayProperties": {"size": 3}, "dependsOn": [{"jobName": "arr3", "type": "N_TO_N"}]},
        ),
        ("after", setup.fifo, "d", {"dependsOn": [{"jobName": "plain"}, {"jobName": "y"}]}),
    ]
    for name, queue, definition, spec in accepted:
        code, err = o.submit(name, queue, definition, **spec)
        assert code == 0, f"{name}: {err}"


def test_objects_created_a_moment_ago_are_found(setup: Setup) -> None:
    """No waiting between creating a queue, a definition, a job and its dependent."""
    o = setup.objects
    ce = o.environment()
    queue = o.queue([ce])
    o.definition("fresh", containerProperties=CONTAINER)
    for name, definition, spec in (
        ("first", "fresh:1", {}),
        ("second", "fresh", {"dependsOn": [{"jobName": "first"}]}),
    ):
        code, err = o.submit(name, queue, definition, **spec)
        assert code == 0, f"{name}: {err}"


def test_job_queue_references(setup: Setup) -> None:
    o = setup.objects
    order = [{"order": 1, "computeEnvironment": "ce-absent"}]
    manifest = {
        "apiVersion": GROUP,
        "kind": "JobQueue",
        "metadata": {"name": o.name("bad-q"), "labels": OPT_IN},
        "spec": {"priority": 1, "computeEnvironmentOrder": order, "schedulingPolicy": "sp-absent"},
    }
    out = o.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert out.returncode != 0
    assert 'spec.computeEnvironmentOrder[0].computeEnvironment: compute environment "ce-absent"' in out.stderr
    assert 'spec.schedulingPolicy: scheduling policy "sp-absent" does not exist' in out.stderr


def test_unreachable_webhook_lets_the_controller_fail_the_job(
    operator: Any, cluster: ClusterInfo, kubectl: Kubectl, kget: Callable[..., Any], namespace: str
) -> None:
    """A webhook configuration whose server is down (failurePolicy Ignore, as shipped) does not block
    a bad job; the controller fails it at reconcile time with a clear reason."""
    tag = uuid.uuid4().hex[:6]
    label = "admission.kubatch.dev/dead-webhook"
    ca = (Path(cluster.state_dir) / "pki" / "ca.crt").read_bytes()
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"kubatch-dead-{tag}"},
        "webhooks": [
            {
                "name": "batchjobs.kubatch.dev",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{free_port()}/validate-batchjobs",
                    "caBundle": base64.b64encode(ca).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["kubatch.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE"],
                        "resources": ["batchjobs"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {label: tag}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }
    kubectl("create", "-f", "-", input=json.dumps(config))
    try:
        kubectl("label", "namespace", namespace, f"{label}={tag}")
        definition = {
            "apiVersion": GROUP,
            "kind": "JobDefinition",
            "metadata": {"name": "d", "namespace": namespace},
            "spec": {"type": "container", "containerProperties": CONTAINER},
        }
        kubectl("create", "-f", "-", input=json.dumps(definition))
        time.sleep(1)  # let the API server load the configuration
        job = {
            "apiVersion": GROUP,
            "kind": "BatchJob",
            "metadata": {"name": "orphan", "namespace": namespace},
            "spec": {"jobQueue": f"absent-{tag}", "jobDefinition": "d"},
        }
        kubectl("create", "-f", "-", input=json.dumps(job))
        deadline = time.monotonic() + 60
        while True:
            status = kget("batchjob", "orphan", "-n", namespace).get("status") or {}
            if status.get("status") == "FAILED":
                break
            assert time.monotonic() < deadline, f"job not failed by the controller: {status}"
            time.sleep(0.25)
        assert status.get("statusReason") == f"Job queue absent-{tag} not found"
    finally:
        kubectl("delete", "validatingwebhookconfiguration", f"kubatch-dead-{tag}", "--ignore-not-found", check=False)
