"""BatchJob + JobDefinition -> Pod manifest, headless Service and resource needs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.podspec import (
    ANNOTATION_TAGS,
    PodSettings,
    PodSpecError,
    build_headless_service,
    build_pod,
    cpu_quantity,
    environment_tolerations,
    headless_service_name,
    memory_quantity,
    parse_quantity,
    parse_target_nodes,
    pod_name,
    propagated_tags,
    resource_needs,
    scheduling_priority,
    select_node_range,
    tolerates,
    untolerated_taints,
)

UID = "6f1c2a9e-0000-4000-8000-000000000001"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _job(name: str = "render-all", **spec: Any) -> dict[str, Any]:
    base = {"jobQueue": "high-priority", "jobDefinition": "render"}
    base.update(spec)
    return {"metadata": {"name": name, "namespace": "team-a", "uid": UID}, "spec": base}


# api.md's JobDefinition example
RENDER: dict[str, Any] = {
    "type": "container",
    "parameters": {"frame": "0"},
    "containerProperties": {
        "image": "busybox:1.36",
        "command": ["sh", "-c", "render --frame Ref::frame"],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "2048"},
            {"type": "GPU", "value": "1"},
        ],
        "environment": [{"name": "MODE", "value": "fast"}],
    },
    "podMetadata": {"labels": {"team": "render", "tier": "def"}, "annotations": {"a": "def"}},
    "propagateTags": True,
    "tags": {"project": "x"},
}


def _build(job: dict[str, Any], definition: dict[str, Any] = RENDER, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_id": UID,
        "queue": "high-priority",
        "compute_environment": "cpu-ondemand",
        "attempt": 1,
    }
    args.update(kw)
    return build_pod(job, definition, "render:1", **args)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_single_container_pod() -> None:
    pod = _build(_job(parameters={"frame": "7"}, podMetadata={"labels": {"tier": "job"}}))
    meta, spec = pod["metadata"], pod["spec"]
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert meta["name"] == "render-all-a1" and meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubatch.dev/v1alpha1",
            "kind": "BatchJob",
            "name": "render-all",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    labels = meta["labels"]
    assert labels["kubatch.dev/job-name"] == "render-all"
    assert labels["kubatch.dev/job-id"] == UID
    assert labels["kubatch.dev/job-queue"] == "high-priority"
    assert labels["kubatch.dev/compute-environment"] == "cpu-ondemand"
    assert labels["kubatch.dev/attempt"] == "1"
    assert "kubatch.dev/array-index" not in labels and "kubatch.dev/node-index" not in labels
    assert labels["team"] == "render" and labels["tier"] == "job"  # job podMetadata wins
    assert labels["project"] == "x"  # propagated tag
    assert meta["annotations"]["kubatch.dev/job-definition"] == "render:1"
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["nodeSelector"] == {"kubatch.dev/compute-environment": "cpu-ondemand"}
    assert {"key": "kubatch.dev/compute-environment", "operator": "Equal", "value": "cpu-ondemand",
            "effect": "NoSchedule"} in spec["tolerations"]  # fmt: skip
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    (c,) = spec["containers"]
    assert c["name"] == "main" and c["image"] == "busybox:1.36"
    assert "command" not in c  # AWS command is Docker CMD -> Kubernetes args
    assert c["args"] == ["sh", "-c", "render --frame 7"]
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "2048Mi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "2048Mi", "nvidia.com/gpu": "1"},
    }
    names = [e["name"] for e in c["env"]]
    assert names == [
        "MODE",
        "AWS_BATCH_JOB_ID",
        "AWS_BATCH_JOB_ATTEMPT",
        "AWS_BATCH_JQ_NAME",
        "AWS_BATCH_CE_NAME",
        "AWS_BATCH_JOB_KUBERNETES_NODE_NAME",
    ]
    assert _env(c) == {
        "MODE": "fast",
        "AWS_BATCH_JOB_ID": UID,
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "AWS_BATCH_JQ_NAME": "high-priority",
        "AWS_BATCH_CE_NAME": "cpu-ondemand",
        "AWS_BATCH_JOB_KUBERNETES_NODE_NAME": "",
    }
    # The node is known only once the pod is bound: its name comes through the downward API.
    assert c["env"][-1] == {
        "name": "AWS_BATCH_JOB_KUBERNETES_NODE_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
    }
    assert "affinity" not in spec and "hostname" not in spec


def test_container_overrides() -> None:
    job = _job(
        containerOverrides={
            "command": ["echo", "Ref::frame"],
            "environment": [{"name": "MODE", "value": "slow"}, {"name": "EXTRA", "value": "1"}],
            "resourceRequirements": [{"type": "MEMORY", "value": "4096"}, {"type": "VCPU", "value": "0.25"}],
        }
    )
    (c,) = _build(job, attempt=3)["spec"]["containers"]
    assert c["args"] == ["echo", "0"]  # definition default
    assert [e["name"] for e in c["env"]][:2] == ["MODE", "EXTRA"]
    assert _env(c)["MODE"] == "slow" and _env(c)["AWS_BATCH_JOB_ATTEMPT"] == "3"
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "4096Mi", "nvidia.com/gpu": "1"}


def test_user_cannot_shadow_batch_env() -> None:
    jd = {"containerProperties": {"image": "x", "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "fake"}]}}
    (c,) = _build(_job(), jd)["spec"]["containers"]
    assert [e["value"] for e in c["env"] if e["name"] == "AWS_BATCH_JOB_ID"] == [UID]
    assert not any(t["key"] == "nvidia.com/gpu" for t in _build(_job(), jd)["spec"]["tolerations"])


def test_array_child() -> None:
    pod = _build(_job(arrayProperties={"size": 100}), array_index=42, array_size=100, attempt=2)
    assert pod["metadata"]["name"] == "render-all-42-a2"
    assert pod["metadata"]["labels"]["kubatch.dev/array-index"] == "42"
    env = _env(pod["spec"]["containers"][0])
    assert env["AWS_BATCH_JOB_ID"] == f"{UID}:42"
    assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == "42" and env["AWS_BATCH_JOB_ARRAY_SIZE"] == "100"
    with pytest.raises(PodSpecError):
        _build(_job(), array_index=1)


def test_quantities() -> None:
    assert cpu_quantity("0.25") == "250m" and cpu_quantity("1") == "1" and cpu_quantity("2.0") == "2"
    assert cpu_quantity("1.5") == "1500m" and cpu_quantity(4) == "4"
    assert memory_quantity("2048") == "2048Mi" and memory_quantity("0.5") == "1Mi"
    assert parse_quantity("250m") == parse_quantity("0.25")
    assert parse_quantity("2Gi") == 2 * 2**30 and parse_quantity("1e3") == 1000
    with pytest.raises(PodSpecError):
        cpu_quantity("abc")
    with pytest.raises(PodSpecError):
        parse_quantity("12 cores")


def test_secrets_volumes_linux_parameters_user() -> None:
    jd = {
        "containerProperties": {
            "image": "x",
            "secrets": [
                {"name": "TOKEN", "valueFrom": "api-creds:token"},
                {"name": "PASS", "valueFrom": "db"},
            ],
            "volumes": [
                {"name": "Data_Vol", "host": {"sourcePath": "/mnt/data"}},
                {"name": "scratch", "host": {}},
                {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "shared"}},
            ],
            "mountPoints": [
                {"sourceVolume": "Data_Vol", "containerPath": "/data", "readOnly": True},
                {"sourceVolume": "claim", "containerPath": "/shared"},
            ],
            "linuxParameters": {
                "sharedMemorySize": 64,
                "tmpfs": [{"containerPath": "/run", "size": 16}],
                "devices": [{"hostPath": "/dev/fuse"}],
            },
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "user": "1000:2000",
            "privileged": True,
            "readonlyRootFilesystem": True,
            "vcpus": 2,
            "memory": 512,
        }
    }
    spec = _build(_job(), jd)["spec"]
    (c,) = spec["containers"]
    secret_env = [e for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert secret_env == [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-creds", "key": "token"}}},
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "PASS"}}},
    ]
    vols = {v["name"]: v for v in spec["volumes"]}
    data_name = next(n for n in vols if n.startswith("data-vol"))
    assert DNS_LABEL.match(data_name)
    assert vols[data_name]["hostPath"] == {"path": "/mnt/data"}
    assert vols["scratch"]["emptyDir"] == {} and vols["efs"]["emptyDir"] == {}
    assert vols["claim"] == {"name": "claim", "persistentVolumeClaim": {"claimName": "shared"}}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert vols["tmpfs-0"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/data"] == {"name": data_name, "mountPath": "/data", "readOnly": True}
    assert mounts["/dev/shm"]["name"] == "dshm" and mounts["/run"]["name"] == "tmpfs-0"
    assert c["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "privileged": True,
        "readOnlyRootFilesystem": True,
    }
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "512Mi"}  # deprecated keys
    with pytest.raises(PodSpecError):
        _build(
            _job(),
            {"containerProperties": {"image": "x", "secrets": [{"name": "A", "valueFrom": "arn:aws:x"}]}},
        )


# multi-node -------------------------------------------------------------------------------------
MNP: dict[str, Any] = {
    "type": "multinode",
    "nodeProperties": {
        "numNodes": 12,
        "mainNode": 0,
        "nodeRangeProperties": [
            {"targetNodes": "0:10", "container": {"image": "wide", "command": ["run", "Ref::mode"]}},
            {"targetNodes": "4:5", "container": {"image": "narrow"}},
            {"targetNodes": "11", "container": {"image": "last"}},
        ],
    },
    "parameters": {"mode": "mpi"},
}


def test_target_nodes_syntax() -> None:
    assert parse_target_nodes("3", 10) == (3, 3)
    assert parse_target_nodes("3:", 10) == (3, 9)
    assert parse_target_nodes(":4", 10) == (0, 4)
    assert parse_target_nodes("2:4", 10) == (2, 4)
    assert parse_target_nodes(":", 10) == (0, 9)
    for bad in ("a", "4:2", "-1"):
        with pytest.raises(PodSpecError):
            parse_target_nodes(bad, 10)
    ranges = MNP["nodeProperties"]["nodeRangeProperties"]
    # the guide: 0:10 plus 4:5 -> nodes 4-5 use the 4:5 properties
    picked = [select_node_range(ranges, i, 12)["container"]["image"] for i in range(12)]  # type: ignore[index]
    assert picked == ["wide"] * 4 + ["narrow"] * 2 + ["wide"] * 5 + ["last"]


def test_multinode_pods() -> None:
    job = _job("mpi")
    main = _build(job, MNP, node_index=0)
    child = _build(job, MNP, node_index=4, main_node_ip="10.0.0.5")
    assert main["metadata"]["name"] == "mpi-n0-a1" and child["metadata"]["name"] == "mpi-n4-a1"
    assert child["metadata"]["labels"]["kubatch.dev/node-index"] == "4"
    menv, cenv = _env(main["spec"]["containers"][0]), _env(child["spec"]["containers"][0])
    assert menv["AWS_BATCH_JOB_ID"] == f"{UID}#0" and cenv["AWS_BATCH_JOB_ID"] == f"{UID}#4"
    for env, idx in ((menv, "0"), (cenv, "4")):
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == idx
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "12" and env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in menv
    assert cenv["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "10.0.0.5"
    assert main["spec"]["containers"][0]["args"] == ["run", "mpi"]
    assert child["spec"]["containers"][0]["image"] == "narrow"
    anti = child["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [
        {
            "labelSelector": {"matchLabels": {"kubatch.dev/job-id": UID}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    assert child["spec"]["hostname"] == "mpi-n4-a1" and child["spec"]["subdomain"] == "mpi"
    with pytest.raises(PodSpecError):
        _build(job, MNP, node_index=3)  # child without the main node's IP
    with pytest.raises(PodSpecError):
        _build(job, MNP)  # multinode needs a node index
    with pytest.raises(PodSpecError):
        _build(job, MNP, node_index=12, main_node_ip="1.2.3.4")


def test_node_overrides() -> None:
    job = _job(
        "mpi",
        nodeOverrides={
            "numNodes": 5,
            "nodePropertyOverrides": [
                {"targetNodes": "0:", "containerOverrides": {"command": ["all"]}},
                {"targetNodes": "1:", "containerOverrides": {"command": ["children"]}},
            ],
        },
    )
    main = _build(job, MNP, node_index=0)
    child = _build(job, MNP, node_index=4, main_node_ip="10.0.0.5")
    assert _env(main["spec"]["containers"][0])["AWS_BATCH_JOB_NUM_NODES"] == "5"
    assert main["spec"]["containers"][0]["args"] == ["all"]
    assert child["spec"]["containers"][0]["args"] == ["children"]


def test_headless_service() -> None:
    svc = build_headless_service(_job("mpi"), UID)
    assert svc["kind"] == "Service" and svc["metadata"]["name"] == "mpi"
    assert svc["metadata"]["namespace"] == "team-a"
    assert svc["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {"kubatch.dev/job-id": UID},
    }
    assert svc["metadata"]["ownerReferences"][0]["uid"] == UID
    assert headless_service_name("1st-job")[0].isalpha()


# podProperties ----------------------------------------------------------------------------------
POD_JD: dict[str, Any] = {
    "parameters": {"n": "3"},
    "podProperties": {
        "serviceAccountName": "runner",
        "hostNetwork": False,
        "dnsPolicy": "ClusterFirst",
        "metadata": {"labels": {"from": "template", "team": "template"}},
        "initContainers": [{"name": "fetch", "image": "curl", "command": ["get", "Ref::n"]}],
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "command": ["app"],
                "args": ["--n=Ref::n"],
                "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"}},
            },
            {
                "name": "side",
                "image": "side:1",
                "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
            },
        ],
        "volumes": [{"name": "work", "emptyDir": {}}],
        "tolerations": [{"key": "own", "operator": "Exists"}],
    },
    "podMetadata": {"labels": {"team": "definition"}},
}


def test_pod_properties_passthrough() -> None:
    pod = _build(_job("eks", parameters={"n": "9"}), POD_JD)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "runner" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["hostNetwork"] is False and spec["volumes"] == [{"name": "work", "emptyDir": {}}]
    app, side = spec["containers"]
    assert app["command"] == ["app"] and app["args"] == ["--n=9"]
    assert spec["initContainers"][0]["command"] == ["get", "9"]
    for c in (app, side, spec["initContainers"][0]):
        assert _env(c)["AWS_BATCH_JOB_ID"] == UID
    assert _env(app)["A"] == "1"
    labels = pod["metadata"]["labels"]
    assert labels["from"] == "template" and labels["team"] == "definition"
    assert {"key": "own", "operator": "Exists"} in spec["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert "metadata" not in spec
    assert POD_JD["podProperties"]["containers"][0]["args"] == ["--n=Ref::n"]  # input untouched


def test_pod_overrides() -> None:
    job = _job(
        "eks",
        podOverrides={
            "containers": [
                {
                    "name": "app",
                    "args": ["--fast"],
                    "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}],
                },
                {"name": "side", "resources": {"requests": {"cpu": "1"}}},
            ],
            "metadata": {"labels": {"over": "yes"}},
        },
    )
    pod = _build(job, POD_JD)
    app, side = pod["spec"]["containers"]
    assert app["args"] == ["--fast"] and _env(app)["A"] == "2" and _env(app)["B"] == "3"
    assert side["resources"]["requests"] == {"cpu": "1", "memory": "256Mi"}
    assert pod["metadata"]["labels"]["over"] == "yes"
    with pytest.raises(PodSpecError):
        _build(_job("eks", podOverrides={"containers": [{"name": "nope", "args": []}]}), POD_JD)


def test_unnamed_pod_container_is_main() -> None:
    jd = {"podProperties": {"containers": [{"image": "x", "command": ["Ref::a"]}]}}
    pod = _build(_job(parameters={"a": "b"}), jd)
    (c,) = pod["spec"]["containers"]
    assert c["name"] == "main" and c["command"] == ["b"]


def test_no_properties_is_an_error() -> None:
    with pytest.raises(PodSpecError):
        _build(_job(), {"type": "container"})
    with pytest.raises(PodSpecError):
        _build(_job(), {"containerProperties": {}})


# tags -----------------------------------------------------------------------------------------
def test_tag_propagation() -> None:
    jd = {
        **RENDER,
        "tags": {"project": "x", "owner": "team a", "kubernetes.io/evil": "1", "Cost Center": "42"},
    }
    job = _job(tags={"run": "42", "project": "y"})
    meta = _build(job, jd)["metadata"]
    assert meta["labels"]["project"] == "y" and meta["labels"]["run"] == "42"  # job wins
    assert "owner" not in meta["labels"] and meta["annotations"]["owner"] == "team a"  # invalid label value
    assert "kubernetes.io/evil" not in meta["labels"] and "kubernetes.io/evil" not in meta["annotations"]
    recorded = json.loads(meta["annotations"][ANNOTATION_TAGS])
    assert recorded["Cost Center"] == "42" and recorded["project"] == "y"
    off = _build(_job(propagateTags=False, tags={"run": "1"}), jd)["metadata"]
    assert "run" not in off["labels"] and ANNOTATION_TAGS not in off["annotations"]
    assert len(propagated_tags(jd, job["spec"])) == 5
    assert len(propagated_tags(jd, {"tags": {f"k{i}": "v" for i in range(50)}})) == 54


def test_settings() -> None:
    pod = _build(
        _job(),
        settings=PodSettings(
            termination_grace_period_seconds=10,
            priority_class_name="batch",
            service_account_name="sa",
            extra_labels={"x": "y"},
        ),
    )
    assert pod["spec"]["terminationGracePeriodSeconds"] == 10
    assert pod["spec"]["priorityClassName"] == "batch" and pod["spec"]["serviceAccountName"] == "sa"
    assert pod["metadata"]["labels"]["x"] == "y"


# names ----------------------------------------------------------------------------------------
def test_long_names_are_cut_with_a_hash() -> None:
    long_a, long_b = "a" * 100, "a" * 99 + "b"
    na, nb = pod_name(long_a, 1), pod_name(long_b, 1)
    assert len(na) <= 63 and na != nb and na.endswith("-a1")
    pod = _build(_job(long_a))
    assert len(pod["metadata"]["labels"]["kubatch.dev/job-name"]) <= 63
    assert pod_name("my.job", 2) != pod_name("my-job", 2)


_job_names = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,120}[a-z0-9])?", fullmatch=True)


@given(_job_names, st.integers(1, 10), st.one_of(st.none(), st.integers(0, 9999)), st.booleans())
def test_property_pod_names_are_dns_labels(name: str, attempt: int, index: int | None, node: bool) -> None:
    kw = {"node_index": index} if node else {"array_index": index}
    result = pod_name(name, attempt, **kw)
    assert len(result) <= 63 and DNS_LABEL.match(result)
    assert pod_name(name, attempt, **kw) == result  # deterministic
    svc = headless_service_name(name)
    assert len(svc) <= 63 and DNS_LABEL.match(svc) and svc[0].isalpha()


@given(st.sets(_job_names, min_size=2, max_size=6), st.integers(1, 3))
def test_property_pod_names_unique(names: set[str], attempt: int) -> None:
    assert len({pod_name(n, attempt) for n in names}) == len(names)


# needs ----------------------------------------------------------------------------------------
def test_resource_needs_container() -> None:
    job_spec = {
        "containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.5"}]},
        "consumableResourcePropertiesOverride": {
            "consumableResourceList": [{"consumableResource": "matlab-licenses", "quantity": 2}]
        },
    }
    licenses = [
        {"consumableResource": "matlab-licenses", "quantity": 1},
        {"consumableResource": "db", "quantity": 3},
    ]
    jd = {**RENDER, "consumableResourceProperties": {"consumableResourceList": licenses}}
    needs = resource_needs(jd, job_spec)
    assert (needs.vcpus, needs.memory_mib, needs.gpus, needs.num_nodes) == (0.5, 2048, 1, 1)
    assert needs.consumables == {"matlab-licenses": 2, "db": 3}
    assert len(needs.per_node) == 1


def test_resource_needs_pod_and_multinode() -> None:
    needs = resource_needs(POD_JD, {})
    assert needs.vcpus == 1.5 and needs.memory_mib == 1024 + 256 and needs.gpus == 2
    mnp = {
        "nodeProperties": {
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0:", "container": {"image": "x", "resourceRequirements": [
                    {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "1000"}]}},
                {"targetNodes": "0", "container": {"image": "x", "resourceRequirements": [
                    {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "500"}]}},
            ],
        }
    }  # fmt: skip
    needs = resource_needs(mnp, {})
    assert needs.num_nodes == 3 and needs.vcpus == 5 and needs.memory_mib == 2500
    assert [p.vcpus for p in needs.per_node] == [1, 2, 2]
    assert resource_needs(mnp, {"nodeOverrides": {"numNodes": 2}}).num_nodes == 2


def test_scheduling_priority() -> None:
    assert scheduling_priority({"schedulingPriority": 5}, {}) == 5
    assert scheduling_priority({"schedulingPriority": 5}, {"schedulingPriorityOverride": 10}) == 10
    assert scheduling_priority({}, {}) == 0


# compute environment tolerations ---------------------------------------------------------------
DEDICATED = {"key": "example.com/dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
EVICT = {"key": "example.com/maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}


def _ce_tolerations(pod: dict[str, Any]) -> list[dict[str, Any]]:
    own = {"key": "kubatch.dev/compute-environment", "operator": "Equal", "value": "cpu-ondemand",
           "effect": "NoSchedule"}  # fmt: skip
    tolerations = pod["spec"]["tolerations"]
    assert own in tolerations
    return [t for t in tolerations if t.get("key") not in ("kubatch.dev/compute-environment", "nvidia.com/gpu")]


def test_environment_tolerations_reach_every_kind_of_pod() -> None:
    tolerations = [DEDICATED, EVICT, {"operator": "Exists"}]
    single = _build(_job(), environment_tolerations=tolerations)
    child = _build(_job(arrayProperties={"size": 3}), array_index=2, array_size=3, environment_tolerations=tolerations)
    main = _build(_job("mpi"), MNP, node_index=0, environment_tolerations=tolerations)
    other = _build(_job("mpi"), MNP, node_index=4, main_node_ip="10.0.0.5", environment_tolerations=tolerations)
    pod_based = _build(_job(), POD_JD, environment_tolerations=tolerations)
    for pod in (single, child, main, other):
        assert _ce_tolerations(pod) == tolerations
    # podProperties tolerations (not part of the CRD, but accepted by the builder) are kept.
    assert _ce_tolerations(pod_based) == [{"key": "own", "operator": "Exists"}, *tolerations]
    # The GPU toleration still comes with GPU requests (RENDER asks for one).
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in single["spec"]["tolerations"]


def test_environment_tolerations_are_copied_field_by_field() -> None:
    given = [{"key": "a", "operator": "Exists", "value": None, "effect": "NoSchedule", "junk": 1}]
    pod = _build(_job(), environment_tolerations=given)
    assert _ce_tolerations(pod) == [{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]
    assert _ce_tolerations(_build(_job())) == []
    assert environment_tolerations({"spec": {"tolerations": [DEDICATED]}}) == [DEDICATED]
    assert environment_tolerations(None) == [] and environment_tolerations({"spec": {}}) == []


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (DEDICATED, {"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"}, True),
        (DEDICATED, {"key": "example.com/dedicated", "value": "other", "effect": "NoSchedule"}, False),
        (DEDICATED, {"key": "example.com/dedicated", "value": "batch", "effect": "NoExecute"}, False),
        (DEDICATED, {"key": "example.com/other", "value": "batch", "effect": "NoSchedule"}, False),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),  # no effect: all
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "x", "effect": "NoSchedule"}, True),
        ({"key": "k", "operator": "Exists"}, {"key": "j", "effect": "NoSchedule"}, False),
        ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
        ({"operator": "Exists", "effect": "NoSchedule"}, {"key": "anything", "effect": "NoExecute"}, False),
        ({"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, True),  # both values empty
    ],
)
def test_toleration_matching_follows_kubernetes(
    toleration: dict[str, Any], taint: dict[str, Any], expected: bool
) -> None:
    assert tolerates(toleration, taint) is expected


def test_untolerated_taints_ignore_prefer_no_schedule() -> None:
    soft = {"key": "soft", "value": "x", "effect": "PreferNoSchedule"}
    hard = {"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"}
    evict = {"key": "gone", "effect": "NoExecute"}
    assert untolerated_taints([soft, hard, evict], []) == [hard, evict]
    assert untolerated_taints([soft, hard, evict], [DEDICATED]) == [evict]
    assert untolerated_taints(None, []) == []


# service accounts --------------------------------------------------------------------------------
def _with_sa(props: dict[str, Any], sa: str) -> dict[str, Any]:
    return {**props, "serviceAccountName": sa}


def test_container_service_account_name() -> None:
    jd = {**RENDER, "containerProperties": _with_sa(RENDER["containerProperties"], "s3-reader")}
    assert _build(_job(), jd)["spec"]["serviceAccountName"] == "s3-reader"
    # The definition's account wins over the operator's default; the default fills in otherwise.
    settings = PodSettings(service_account_name="operator-default")
    assert _build(_job(), jd, settings=settings)["spec"]["serviceAccountName"] == "s3-reader"
    assert _build(_job(), settings=settings)["spec"]["serviceAccountName"] == "operator-default"
    assert "serviceAccountName" not in _build(_job())["spec"]
    # containerOverrides do not touch it; array children and retries carry it too.
    over = _build(_job(containerOverrides={"command": ["x"]}), jd, array_index=1, array_size=2, attempt=3)
    assert over["spec"]["serviceAccountName"] == "s3-reader"


def test_multinode_ranges_have_their_own_service_account() -> None:
    ranges = MNP["nodeProperties"]["nodeRangeProperties"]
    jd = {
        **MNP,
        "nodeProperties": {
            **MNP["nodeProperties"],
            "nodeRangeProperties": [
                {**ranges[0], "container": _with_sa(ranges[0]["container"], "wide-sa")},
                ranges[1],
                {**ranges[2], "container": _with_sa(ranges[2]["container"], "last-sa")},
            ],
        },
    }
    sa = {
        i: _build(_job("mpi"), jd, node_index=i, main_node_ip="10.0.0.1")["spec"].get("serviceAccountName")
        for i in (0, 4, 11)
    }
    assert sa == {0: "wide-sa", 4: None, 11: "last-sa"}


def test_pod_properties_service_account_is_kept() -> None:
    jd = {"podProperties": {**POD_JD["podProperties"], "serviceAccountName": "eks-sa"}}
    settings = PodSettings(service_account_name="operator-default")  # containerProperties jobs only
    assert _build(_job(), jd, settings=settings)["spec"]["serviceAccountName"] == "eks-sa"


def test_instance_type_is_a_node_selector_and_the_override_replaces_it() -> None:
    jd = {**RENDER, "containerProperties": {**RENDER["containerProperties"], "instanceType": "m5.large"}}
    key = "node.kubernetes.io/instance-type"
    assert _build(_job(), jd)["spec"]["nodeSelector"][key] == "m5.large"
    over = _job(containerOverrides={"instanceType": "c6i.xlarge"})
    assert _build(over, jd)["spec"]["nodeSelector"][key] == "c6i.xlarge"
    assert key not in (_build(_job())["spec"].get("nodeSelector") or {})


def test_init_process_enabled_shares_the_process_namespace() -> None:
    props = {**RENDER["containerProperties"], "linuxParameters": {"initProcessEnabled": True}}
    assert _build(_job(), {**RENDER, "containerProperties": props})["spec"]["shareProcessNamespace"] is True
    assert "shareProcessNamespace" not in _build(_job())["spec"]
    # devices and logConfiguration are accepted and change nothing in the pod.
    ignored = {
        **RENDER["containerProperties"],
        "linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]},
        "logConfiguration": {"logDriver": "awslogs"},
    }
    assert _build(_job(), {**RENDER, "containerProperties": ignored}) == _build(_job())


def test_deprecated_vcpus_and_memory_and_their_overrides() -> None:
    props = {"image": "busybox", "vcpus": 2, "memory": 512}
    c = _build(_job(), {"type": "container", "containerProperties": props})["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "512Mi"}
    over = _job(containerOverrides={"vcpus": 1, "memory": 256})
    c = _build(over, {"type": "container", "containerProperties": props})["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "256Mi"}


def test_eks_properties_are_not_a_pod_source() -> None:
    # The CRDs take podProperties only (AWS's eksProperties.podProperties under kubatch's name).
    with pytest.raises(PodSpecError):
        _build(_job(), {"type": "container", "eksProperties": {"podProperties": POD_JD["podProperties"]}})
