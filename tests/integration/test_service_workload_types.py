"""A service workload type declared by configuration, on the real control plane.

The shared test operator runs with tests/integration/service-workload-types.yaml
(KUBATCH_SERVICE_WORKLOAD_TYPES, set by kubatch.devcluster.operatorproc): the type WIDGET, a custom
resource `widgets.test.kubatch.dev` (widgets-crd.yaml, installed here) with spec.suspend, a pod
template and a replica count, finished by a `Finished` condition and failed by a `Failed` one. No
controller runs widgets: this test plays it, writing their status with kubectl.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.batch import GROUP, Batch
from tests.integration.conftest import IN_CLUSTER
from tests.integration.helpers import Kubectl

if TYPE_CHECKING:
    from kubatch.devcluster.info import ClusterInfo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(IN_CLUSTER, reason="the chart's operator in the cluster is not given the test's types"),
]

HERE = Path(__file__).resolve().parent
PREFIX = "Received status from Widget controller: "
API = "test.kubatch.dev/v1"


@pytest.fixture(scope="module")
def widget_crd(operator: Any, kubectl: Kubectl) -> None:
    """The Widget CRD (left installed: other runs reuse it; the namespaces' widgets go with them)."""
    kubectl("apply", "-f", str(HERE / "widgets-crd.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.test.kubatch.dev")


def widget_payload(replicas: int = 1) -> str:
    return json.dumps(
        {
            "apiVersion": API,
            "kind": "Widget",
            "metadata": {"labels": {"app": "widget"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
            },
        }
    )


def submit(batch: Batch, name: str, queue: str, **spec: Any) -> str:
    body = {"jobQueue": queue, "serviceJobType": "WIDGET", "serviceRequestPayload": widget_payload(), **spec}
    meta = {"name": name, "namespace": batch.ns}
    batch.apply({"apiVersion": GROUP, "kind": "BatchJob", "metadata": meta, "spec": body})
    return name


def widget(batch: Batch, name: str) -> dict[str, Any] | None:
    out = batch.kubectl("get", "widgets.test.kubatch.dev", name, "-n", batch.ns, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def write_status(batch: Batch, name: str, status: dict[str, Any]) -> None:
    """The test as the widgets' controller: a merge patch of the status subresource."""
    batch.kubectl(
        "patch",
        "widgets.test.kubatch.dev",
        name,
        "-n",
        batch.ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}


def setup_queue(batch: Batch, limit: int) -> tuple[str, str]:
    limits = [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": limit}]
    se = batch.cluster_object(
        "ServiceEnvironment", batch.name("wse"), {"serviceEnvironmentType": "WIDGET", "capacityLimits": limits}
    )
    batch.wait_for(
        lambda: (batch.kget("serviceenvironment", se).get("status") or {}).get("status") == "VALID",
        f"{se} VALID",
        timeout=60,
    )
    q = batch.cluster_object(
        "JobQueue",
        batch.name("wq"),
        {"jobQueueType": "WIDGET", "priority": 1, "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": se}]},
    )
    return se, q


def test_widgets_are_queued_started_followed_and_terminated(widget_crd: None, batch: Batch) -> None:
    se, q = setup_queue(batch, 1)
    submit(batch, "j1", q)
    submit(batch, "j2", q)

    # One instance: one job is placed (its widget created, unsuspended), the other waits for the
    # capacity. Which one is not asserted: both are submitted at once, and the one that is RUNNABLE
    # first (the operator may be starting, or listing widgets for the first time) is placed first.
    def placed() -> tuple[str, str] | None:
        now = {n: batch.status(n).get("status") for n in ("j1", "j2")}
        held = [n for n, s in now.items() if s == "SCHEDULED"]
        return (held[0], "j2" if held[0] == "j1" else "j1") if held else None

    one, two = batch.wait_for(placed, "a widget job SCHEDULED", timeout=90)
    first = batch.status(one)
    assert first["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 1}]
    w1 = batch.wait_for(lambda: widget(batch, f"{one}-a1"), f"widget {one}-a1", timeout=30)
    assert w1["spec"]["suspend"] is False and w1["spec"]["replicas"] == 1
    labels = w1["metadata"]["labels"]
    assert labels["kubatch.dev/service-job"] == one and labels["kubatch.dev/service-environment"] == se
    assert labels["app"] == "widget"  # the payload's own labels stay
    assert w1["spec"]["template"]["metadata"]["labels"]["kubatch.dev/service-job"] == one
    owner = w1["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("BatchJob", one)
    assert first["latestAttempt"]["serviceResourceId"] == {"name": "WidgetUid", "value": w1["metadata"]["uid"]}
    blocked = batch.wait_for(
        lambda: (st := batch.status(two)).get("statusReason", "").startswith("CAPACITY:") and st,
        f"{two} blocked for capacity",
        timeout=60,
    )
    assert blocked["status"] == "RUNNABLE"
    assert "instance type [" + se + "]" in blocked["statusReason"]
    assert widget(batch, f"{two}-a1") is None

    # The "controller" starts the first one's pod, then finishes it.
    write_status(batch, f"{one}-a1", {"startTime": "2026-01-01T00:00:00Z", "readyReplicas": 1})
    assert batch.wait_status(one, "RUNNING", timeout=60)["startedAt"]
    finished = condition("Finished", "Done", "1 of 1 done")
    write_status(batch, f"{one}-a1", {"readyReplicas": 0, "conditions": [finished]})
    done = batch.wait_status(one, "SUCCEEDED", "FAILED", timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert done["statusReason"] == PREFIX + "Done: 1 of 1 done"
    (attempt,) = done["attempts"]
    assert attempt["serviceResourceId"] == {"name": "WidgetUid", "value": w1["metadata"]["uid"]}
    assert attempt["startedAt"] == "2026-01-01T00:00:00Z"
    # The capacity is free: the second one's widget is created.
    batch.wait_status(two, "SCHEDULED", timeout=60)
    w2 = batch.wait_for(lambda: widget(batch, f"{two}-a1"), f"widget {two}-a1", timeout=30)
    assert w2["spec"]["suspend"] is False

    # A Failed condition fails it (no retryStrategy: one attempt).
    write_status(batch, f"{two}-a1", {"conditions": [condition("Failed", "Crashed", "exit code 3")]})
    failed = batch.wait_status(two, "SUCCEEDED", "FAILED", timeout=60)
    assert failed["status"] == "FAILED" and failed["statusReason"] == PREFIX + "Crashed: exit code 3", failed

    # Terminate deletes the widget of a SCHEDULED job.
    submit(batch, "w3", q)
    batch.wait_status("w3", "SCHEDULED", timeout=90)
    assert batch.wait_for(lambda: widget(batch, "w3-a1"), "widget w3-a1", timeout=30)
    terminate = json.dumps({"spec": {"terminate": {"reason": "stop it"}}})
    batch.kubectl("patch", "batchjob", "w3", "-n", batch.ns, "--type=merge", "-p", terminate)
    stopped = batch.wait_status("w3", "FAILED", timeout=60)
    assert stopped["statusReason"] == "stop it"
    batch.wait_for(lambda: widget(batch, "w3-a1") is None, "widget w3-a1 deleted", timeout=60)
    batch.wait_for(
        lambda: (
            (batch.kget("serviceenvironment", se).get("status") or {}).get("capacityUsage")
            == [{"capacityUnit": "NUM_INSTANCES", "quantity": 0}]
        ),
        "capacity released",
        timeout=60,
    )


def test_a_suspended_widget_labelled_with_a_queue_is_adopted(widget_crd: None, batch: Batch) -> None:
    _, q = setup_queue(batch, 1)
    manifest = json.loads(widget_payload())
    manifest["metadata"] = {"name": "mine", "namespace": batch.ns, "labels": {"kubatch.dev/job-queue": q}}
    manifest["spec"]["suspend"] = True
    batch.apply(manifest)
    # kubatch adopts it when its watch sees it (the widgets' watch may still be waiting for the CRD
    # it was started without: up to its 10 s retry): a BatchJob named as the widget, owned by it.
    def adopted() -> bool:
        return batch.kubectl("get", "batchjob", "mine", "-n", batch.ns, check=False).returncode == 0

    batch.wait_for(adopted, "the widget adopted", timeout=90)
    # It is placed: kubatch unsuspends the widget.
    st = batch.wait_status("mine", "SCHEDULED", timeout=90)
    assert st["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 1}]
    w = batch.wait_for(lambda: (w := widget(batch, "mine")) and w["spec"]["suspend"] is False and w, "unsuspended")
    assert w["metadata"]["labels"]["kubatch.dev/service-job"] == "mine"
    job = batch.get("mine")
    assert job["spec"]["serviceJobType"] == "WIDGET"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Widget"
    write_status(batch, "mine", {"conditions": [condition("Finished", "Done", "")]})
    done = batch.wait_status("mine", "SUCCEEDED", "FAILED", timeout=60)
    assert done["status"] == "SUCCEEDED" and done["statusReason"] == PREFIX + "Done", done


def test_an_invalid_configuration_stops_the_operator_with_the_reason(cluster: ClusterInfo, tmp_path: Path) -> None:
    """An operator given an invalid types file exits at start, before it touches the cluster, and
    says which entry and field are at fault."""
    from kubatch.devcluster import operatorproc
    from kubatch.devcluster.procs import pid_alive

    bad = tmp_path / "types.yaml"
    bad.write_text((HERE / "service-workload-types.yaml").read_text().replace("plural: widgets", "plural: Widgets"))
    op = operatorproc.start(
        cluster,
        tmp_path,
        extra_env={"KUBATCH_SERVICE_WORKLOAD_TYPES": str(bad), "KUBATCH_LEASE_NAME": "kubatch-bad-types-test"},
        name="operator-bad-types",
        wait=False,
    )
    deadline = time.monotonic() + 60  # a Python start-up and one file read
    while pid_alive(op.pid):
        assert time.monotonic() < deadline, "the operator kept running with an invalid types file"
        time.sleep(0.2)
    log = Path(op.log).read_text()
    assert "kubatch: invalid service workload types (KUBATCH_SERVICE_WORKLOAD_TYPES)" in log, log
    assert "serviceWorkloadTypes[0] (WIDGET).plural" in log, log
    assert "runtime started" not in log


def test_submitting_needs_the_right_to_create_the_workload(
    widget_crd: None, batch: Batch, admission_namespace: str, kubectl: Kubectl
) -> None:
    """The webhook asks, for the user submitting a WIDGET service job, `create widgets` in the
    test.kubatch.dev group (as `create jobs.batch` for KUBERNETES_JOB)."""
    _, q = setup_queue(batch, 1)
    user = f"widget-submitter-{batch.tag}"
    ns = admission_namespace

    def role(name: str, group: str, resource: str) -> None:
        rules = [{"apiGroups": [group], "resources": [resource], "verbs": ["create"]}]
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": name, "namespace": ns},
                    "rules": rules,
                }
            ),
        )
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        kubectl("apply", "-f", "-", input=json.dumps(binding))

    job = {
        "apiVersion": GROUP,
        "kind": "BatchJob",
        "metadata": {"name": "wanted", "namespace": ns},
        "spec": {"jobQueue": q, "serviceJobType": "WIDGET", "serviceRequestPayload": widget_payload()},
    }

    def submit_as_user() -> Any:
        args = ("create", "--dry-run=server", f"--as={user}", "-f", "-")
        return kubectl(*args, input=json.dumps(job), check=False)

    role("submit", "kubatch.dev", "batchjobs")
    refused = batch.wait_for(
        lambda: (out := submit_as_user()).returncode != 0 and "denied the request" in out.stderr and out,
        "the webhook's refusal (RBAC propagates)",
        timeout=30,
    )
    assert "create widgets.test.kubatch.dev" in refused.stderr, refused.stderr
    role("widgets", "test.kubatch.dev", "widgets")
    batch.wait_for(lambda: submit_as_user().returncode == 0, "admitted once the user may create widgets", timeout=30)


def test_a_widget_is_preempted_in_its_share_and_placed_again(widget_crd: None, batch: Batch) -> None:
    """Quota management over a declared type: in-share preemption deletes the low-priority job's
    widget (Foreground), the job goes back to RUNNABLE with a preemption summary, and its next
    widget (<job>-a2) is created once the high-priority one has finished."""
    policy = batch.cluster_object(
        "SchedulingPolicy", batch.name("wqp"), {"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}
    )
    limits = [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}]
    se = batch.cluster_object(
        "ServiceEnvironment", batch.name("wqse"), {"serviceEnvironmentType": "WIDGET", "capacityLimits": limits}
    )
    batch.wait_for(
        lambda: (batch.kget("serviceenvironment", se).get("status") or {}).get("status") == "VALID", "VALID", 60
    )
    share = {
        "quotaShareName": "a",
        "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 1}],
        "resourceSharingConfiguration": {"strategy": "RESERVE"},
        "preemptionConfiguration": {"inSharePreemption": "ENABLED"},
    }
    q = batch.cluster_object(
        "JobQueue",
        batch.name("wqq"),
        {
            "jobQueueType": "WIDGET",
            "priority": 1,
            "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": se}],
            "schedulingPolicy": policy,
            "quotaShares": [share],
        },
    )
    submit(batch, "low", q, quotaShareName="a", schedulingPriority=1)
    batch.wait_status("low", "SCHEDULED", timeout=90)
    first = batch.wait_for(lambda: widget(batch, "low-a1"), "widget low-a1", timeout=30)
    write_status(batch, "low-a1", {"readyReplicas": 1})
    batch.wait_status("low", "RUNNING", timeout=60)
    submit(batch, "high", q, quotaShareName="a", schedulingPriority=9)
    back = batch.wait_for(
        lambda: (st := batch.status("low")).get("preemptionSummary") and st.get("status") == "RUNNABLE" and st,
        "low preempted and RUNNABLE again",
        timeout=90,
    )
    (preempted,) = back["preemptionSummary"]["recentPreemptedAttempts"]
    assert preempted["statusReason"].startswith("PREEMPTION_IN_PROGRESS: In-share preemption"), preempted
    assert preempted["serviceResourceId"] == {"name": "WidgetUid", "value": first["metadata"]["uid"]}
    assert widget(batch, "low-a1") is None  # deleted by the preemption
    batch.wait_status("high", "SCHEDULED", "RUNNING", timeout=60)
    assert batch.wait_for(lambda: widget(batch, "high-a1"), "widget high-a1", timeout=30)
    write_status(batch, "high-a1", {"conditions": [condition("Finished", "Done", "")]})
    assert batch.wait_done("high", timeout=60)["status"] == "SUCCEEDED"
    # The capacity is back: low's second widget.
    batch.wait_status("low", "SCHEDULED", timeout=90)
    assert batch.wait_for(lambda: widget(batch, "low-a2"), "widget low-a2", timeout=30)["spec"]["suspend"] is False
    write_status(batch, "low-a2", {"conditions": [condition("Finished", "Done", "")]})
    done = batch.wait_done("low", timeout=60)
    assert done["status"] == "SUCCEEDED" and done["preemptionSummary"]["preemptedAttemptCount"] == 1, done
