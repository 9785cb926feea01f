"""What a job uses and who may make it use it (kubatch.core.access): uses of definitions and overrides
with their paths, the rounds of permissions asked, the messages, and a cross-check against the pods
kubatch really builds (every ServiceAccount, Secret, ConfigMap, claim and privilege of the pod is a
checked use)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.core.access import (
    CREATE_PODS,
    JobUse,
    Permission,
    Use,
    batch_job_uses,
    definition_uses,
    definition_violations,
    first_round,
    job_violations,
    new_definition_uses,
    override_uses,
    schedule_uses,
    scheduled_by,
    still_open,
)
from kubatch.core.admission import World
from kubatch.core.podspec import build_pod

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"
IMAGE = "busybox"

CONTAINER: dict[str, Any] = {
    "image": IMAGE,
    "serviceAccountName": "builder",
    "secrets": [
        {"name": "TOKEN", "valueFrom": "api:token"},
        {"name": "PASSWORD", "valueFrom": "db"},  # no ":key": the variable's name is the key
        {"name": "ARN", "valueFrom": "arn:aws:secretsmanager:x"},  # names no Secret (the pod build fails)
    ],
    "volumes": [
        {"name": "creds", "secret": {"secretName": "tls"}},
        {"name": "conf", "configMap": {"name": "settings"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "scratch"}},
        {"name": "logs", "host": {"sourcePath": "/var/log"}},
        {"name": "tmp"},
    ],
    "privileged": True,
}
POD: dict[str, Any] = {
    "serviceAccountName": "runner",
    "hostNetwork": True,
    "imagePullSecrets": [{"name": "registry"}],
    "volumes": [
        {"name": "s", "secret": {"secretName": "certs"}},
        {"name": "h", "hostPath": {"path": "/dev"}},
    ],
    "initContainers": [
        {
            "name": "init",
            "image": IMAGE,
            "env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
        }
    ],
    "containers": [
        {
            "name": "main",
            "image": IMAGE,
            "env": [
                {"name": "A", "value": "plain"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
            "envFrom": [{"secretRef": {"name": "bulk"}}, {"configMapRef": {"name": "bulk-cm"}}],
            "securityContext": {"privileged": True},
        }
    ],
}


SECRET_ENV = {"name": "S", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}


def keys(uses: list[Use]) -> list[tuple[str, str, str]]:
    return [(u.path, u.kind, u.name) for u in uses]


def test_container_properties_uses() -> None:
    assert keys(definition_uses({"containerProperties": CONTAINER})) == [
        ("containerProperties.serviceAccountName", "ServiceAccount", "builder"),
        ("containerProperties.secrets[0].valueFrom", "Secret", "api"),
        ("containerProperties.secrets[1].valueFrom", "Secret", "db"),
        ("containerProperties.volumes[0].secret.secretName", "Secret", "tls"),
        ("containerProperties.volumes[1].configMap.name", "ConfigMap", "settings"),
        ("containerProperties.volumes[2].persistentVolumeClaim.claimName", "PersistentVolumeClaim", "scratch"),
        ("containerProperties.volumes[3].host.sourcePath", "hostPath", ""),
        ("containerProperties.privileged", "privileged", ""),
    ]


def test_pod_properties_uses() -> None:
    assert keys(definition_uses({"podProperties": POD})) == [
        ("podProperties.serviceAccountName", "ServiceAccount", "runner"),
        ("podProperties.volumes[0].secret.secretName", "Secret", "certs"),
        ("podProperties.volumes[1].hostPath", "hostPath", ""),
        ("podProperties.initContainers[0].env[0].valueFrom.configMapKeyRef.name", "ConfigMap", "cm"),
        ("podProperties.containers[0].env[1].valueFrom.secretKeyRef.name", "Secret", "api"),
        ("podProperties.containers[0].envFrom[0].secretRef.name", "Secret", "bulk"),
        ("podProperties.containers[0].envFrom[1].configMapRef.name", "ConfigMap", "bulk-cm"),
        ("podProperties.containers[0].securityContext.privileged", "privileged", ""),
        ("podProperties.imagePullSecrets[0].name", "Secret", "registry"),
        ("podProperties.hostNetwork", "hostNetwork", ""),
    ]


def test_every_node_range_counts() -> None:
    spec = {
        "nodeProperties": {
            "numNodes": 3,
            "nodeRangeProperties": [
                {"targetNodes": "0", "container": {"image": IMAGE, "serviceAccountName": "main-sa"}},
                {"targetNodes": "1:", "podProperties": {"containers": [], "serviceAccountName": "worker-sa"}},
            ],
        }
    }
    assert keys(definition_uses(spec)) == [
        ("nodeProperties.nodeRangeProperties[0].container.serviceAccountName", "ServiceAccount", "main-sa"),
        ("nodeProperties.nodeRangeProperties[1].podProperties.serviceAccountName", "ServiceAccount", "worker-sa"),
    ]


@pytest.mark.parametrize("account", [None, "", "default"])
def test_the_default_service_account_needs_nothing(account: str | None) -> None:
    props = {"image": IMAGE, **({"serviceAccountName": account} if account is not None else {})}
    assert definition_uses({"containerProperties": props}) == []
    assert definition_uses({"podProperties": {"containers": [{"image": IMAGE}], "serviceAccountName": account}}) == []


def test_override_uses() -> None:
    secret_env = {"name": "S", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "k"}}}
    spec = {
        "podOverrides": {"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}, secret_env]}]},
        "containerOverrides": {"environment": [{"name": "A", "value": "1"}]},
        "nodeOverrides": {
            "nodePropertyOverrides": [
                {"targetNodes": "0", "podOverrides": {"initContainers": [{"name": "i", "env": [secret_env]}]}}
            ]
        },
    }
    assert keys(override_uses(spec)) == [
        ("podOverrides.containers[0].env[1].valueFrom.secretKeyRef.name", "Secret", "mine"),
        (
            "nodeOverrides.nodePropertyOverrides[0].podOverrides.initContainers[0].env[0].valueFrom.secretKeyRef.name",
            "Secret",
            "mine",
        ),
    ]


def test_alternatives() -> None:
    assert Use("x", "ServiceAccount", "b").any_of == (CREATE_PODS, Permission("use", "serviceaccounts", "b"))
    assert Use("x", "PersistentVolumeClaim", "c").any_of == (
        CREATE_PODS,
        Permission("use", "persistentvolumeclaims", "c"),
    )
    assert Use("x", "Secret", "s").any_of == (Permission("get", "secrets", "s"),)
    assert Use("x", "ConfigMap", "m").any_of == (Permission("get", "configmaps", "m"),)
    for kind in ("privileged", "hostNetwork", "hostPath"):
        assert Use("x", kind).any_of == (CREATE_PODS,)  # type: ignore[arg-type]
    assert str(Permission("use", "serviceaccounts", "b")) == "use serviceaccounts/b"
    assert str(CREATE_PODS) == "create pods"
    assert str(Permission("get", "widgets", "w", "example.com")) == "get widgets.example.com/w"


def test_rounds_ask_the_shared_permission_first_then_only_what_is_still_open() -> None:
    uses = [Use("a", "ServiceAccount", "b"), Use("b", "privileged"), Use("c", "Secret", "s")]
    first = first_round(uses)
    assert first == {CREATE_PODS, Permission("get", "secrets", "s")}
    assert still_open(uses, dict.fromkeys(first, True)) == set()
    assert still_open(uses, {CREATE_PODS: False, Permission("get", "secrets", "s"): True}) == {
        Permission("use", "serviceaccounts", "b")
    }


def _world(spec: Mapping[str, Any]) -> World:
    return World(namespace="t-1", definitions={"d": {"metadata": {"name": "d"}, "spec": {"type": "container", **spec}}})


def test_job_uses_come_through_the_definition_and_the_overrides() -> None:
    job = {
        "metadata": {"name": "j", "namespace": "t-1"},
        "spec": {
            "jobQueue": "q",
            "jobDefinition": "d",
            "podOverrides": {
                "containers": [{"env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}]
            },
        },
    }
    uses = batch_job_uses(
        job, _world({"podProperties": {"serviceAccountName": "builder", "containers": [{"image": IMAGE}]}})
    )
    assert [(u.field, u.use.kind, u.use.name, u.definition) for u in uses] == [
        ("spec.jobDefinition", "ServiceAccount", "builder", "d:1"),
        ("spec.podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name", "Secret", "x", ""),
    ]
    missing = {**job, "spec": {**job["spec"], "jobDefinition": "absent"}}
    assert [u.field for u in batch_job_uses(missing, _world({}))] == [
        "spec.podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name"
    ]


def test_messages_name_the_field_the_user_and_what_is_needed() -> None:
    sa = Use("containerProperties.serviceAccountName", "ServiceAccount", "builder")
    secret = Use("podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name", "Secret", "db")
    uses = [JobUse("spec.jobDefinition", sa, "d:3"), JobUse(f"spec.{secret.path}", secret)]
    denied = job_violations(uses, {}, "alice", "t-1")
    assert [str(v) for v in denied] == [
        'spec.jobDefinition: user "alice" may not use ServiceAccount "builder" in namespace "t-1" '
        '(job definition "d:3", containerProperties.serviceAccountName; '
        "needs create pods, or use serviceaccounts/builder)",
        'spec.podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name: user "alice" may not read Secret "db" '
        'in namespace "t-1" (needs get secrets/db)',
    ]
    assert job_violations(uses, {Permission("use", "serviceaccounts", "builder"): True}, "alice", "t-1") == denied[1:]
    assert job_violations(uses, {CREATE_PODS: True, Permission("get", "secrets", "db"): True}, "alice", "t-1") == []
    (v,) = definition_violations([sa], {CREATE_PODS: False}, "bob", "t-2")
    assert str(v) == (
        'spec.containerProperties.serviceAccountName: user "bob" may not use ServiceAccount "builder" in namespace '
        '"t-2" (needs create pods, or use serviceaccounts/builder)'
    )


def test_the_same_thing_twice_through_one_field_is_reported_once() -> None:
    spec = {
        "containerProperties": {
            "image": IMAGE,
            "secrets": [{"name": "A", "valueFrom": "s:a"}, {"name": "B", "valueFrom": "s:b"}],
        }
    }
    uses = [JobUse("spec.jobDefinition", u, "d:1") for u in definition_uses(spec)]
    assert len(job_violations(uses, {}, "u", "n")) == 1


def test_a_definition_update_is_checked_for_what_it_adds() -> None:
    old = {"containerProperties": {"image": IMAGE, "serviceAccountName": "builder"}}
    new = {"containerProperties": {**old["containerProperties"], "secrets": [{"name": "A", "valueFrom": "s:a"}]}}
    assert keys(new_definition_uses(new, old)) == [("containerProperties.secrets[0].valueFrom", "Secret", "s")]
    assert new_definition_uses({**old, "deregistered": True}, old) == []
    assert len(new_definition_uses(new, None)) == 2


# ---- cross-check against the pods kubatch builds -----------------------------------------------------------


def pod_references(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What a built pod uses that an access rule covers."""
    spec = pod["spec"]
    out: set[tuple[str, str]] = set()
    if spec.get("serviceAccountName") not in (None, "default"):
        out.add(("ServiceAccount", spec["serviceAccountName"]))
    if spec.get("hostNetwork"):
        out.add(("hostNetwork", ""))
    for ref in spec.get("imagePullSecrets") or []:
        out.add(("Secret", ref["name"]))
    for v in spec.get("volumes") or []:
        if "secret" in v:
            out.add(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            out.add(("ConfigMap", v["configMap"]["name"]))
        if "persistentVolumeClaim" in v:
            out.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
        if "hostPath" in v:
            out.add(("hostPath", ""))
    for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
        for e in c.get("env") or []:
            source = e.get("valueFrom") or {}
            if "secretKeyRef" in source:
                out.add(("Secret", source["secretKeyRef"]["name"]))
            if "configMapKeyRef" in source:
                out.add(("ConfigMap", source["configMapKeyRef"]["name"]))
        for e in c.get("envFrom") or []:
            if "secretRef" in e:
                out.add(("Secret", e["secretRef"]["name"]))
            if "configMapRef" in e:
                out.add(("ConfigMap", e["configMapRef"]["name"]))
        if (c.get("securityContext") or {}).get("privileged"):
            out.add(("privileged", ""))
    return out


def _pods(definition: Mapping[str, Any], job_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    job = {"metadata": {"name": "j", "namespace": "n", "uid": "u"}, "spec": job_spec}
    common = {"job_id": "u", "queue": "q", "compute_environment": "ce", "attempt": 1}
    nodes = (definition.get("nodeProperties") or {}).get("numNodes")
    if not nodes:
        return [build_pod(job, definition, "d:1", **common)]
    return [
        build_pod(job, definition, "d:1", node_index=i, main_node_ip=None if i == 0 else "10.0.0.1", **common)
        for i in range(nodes)
    ]


def _examples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, definition spec, job spec) for every example job, plus the definitions above."""
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    definitions = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "JobDefinition"}
    cases = [
        (d["metadata"]["name"], definitions[d["spec"]["jobDefinition"].split(":")[0]], d["spec"])
        for d in docs
        if d["kind"] == "BatchJob" and d["spec"].get("jobDefinition", "").split(":")[0] in definitions
    ]
    container = {**CONTAINER, "secrets": CONTAINER["secrets"][:2]}
    cases += [
        ("container", {"type": "container", "containerProperties": container}, {}),
        ("pod", {"type": "container", "podProperties": POD}, {}),
        (
            "pod-overrides",
            {"type": "container", "podProperties": POD},
            {
                "podOverrides": {
                    "containers": [
                        {
                            "name": "main",
                            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "k"}}}],
                        }
                    ]
                }
            },
        ),
    ]
    return cases


@pytest.mark.parametrize("case", _examples(), ids=lambda c: c[0])
def test_every_reference_of_the_built_pods_is_a_checked_use(case: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _, definition, job_spec = case
    checked = {u.key for u in definition_uses(definition)} | {u.key for u in override_uses(job_spec)}
    for pod in _pods(definition, job_spec):
        assert pod_references(pod) <= checked


def test_a_schedule_is_judged_by_its_job_template() -> None:
    template = {"jobQueue": "q", "jobDefinition": "d", "podOverrides": {"containers": [{"env": [SECRET_ENV]}]}}
    schedule = {"metadata": {"name": "s", "namespace": "t-1"}, "spec": {"jobTemplate": {"spec": template}}}
    world = _world({"podProperties": {"serviceAccountName": "builder", "containers": [{"image": IMAGE}]}})
    assert [(u.field, u.use.name, u.definition) for u in schedule_uses(schedule, world)] == [
        ("spec.jobTemplate.spec.jobDefinition", "builder", "d:1"),
        ("spec.jobTemplate.spec.podOverrides.containers[0].env[0].valueFrom.secretKeyRef.name", "x", ""),
    ]
    plain = {**schedule, "spec": {"jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}}}}
    assert [u.use.name for u in schedule_uses(schedule, world, old=plain)] == ["x"]  # what the change adds
    assert schedule_uses(schedule, world, old=schedule) == []


def test_runs_of_schedules_are_recognised_by_their_controller_reference() -> None:
    ref = {"apiVersion": "kubatch.dev/v1alpha1", "kind": "JobSchedule", "name": "s", "uid": "u", "controller": True}
    assert scheduled_by({"metadata": {"ownerReferences": [ref]}})
    assert not scheduled_by({"metadata": {"ownerReferences": [{**ref, "controller": False}]}})
    assert not scheduled_by({"metadata": {"ownerReferences": [{**ref, "kind": "BatchJob"}]}})
    assert not scheduled_by({"metadata": {}})
