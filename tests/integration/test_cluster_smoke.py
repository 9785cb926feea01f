"""Smoke tests of the local control plane itself: real scheduling, kwok's simulated lifecycle
(durations and exit codes from annotations), taints and selectors, GPUs, garbage collection,
CRD schema enforcement. Every later feature stands on these behaving like a real cluster."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.helpers import Kubectl, NodeFactory

pytestmark = pytest.mark.integration
# Tests of the local control plane's own processes (not run against an external cluster such as kind).
LOCAL_ONLY = pytest.mark.skipif(bool(os.environ.get("KUBATCH_KUBECONFIG")), reason="external cluster")


def pod(
    name: str,
    *,
    node_selector: dict[str, str],
    cpu: str = "1",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    gpus: int = 0,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
    meta: dict[str, Any] = {"name": name, "annotations": annotations or {}, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": node_selector,
            "tolerations": tolerations or [],
            "containers": [{"name": "main", "image": "busybox:1.36", "resources": resources}],
        },
    }


def wait_pod(
    kget: Callable[..., Any], ns: str, name: str, cond: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = kget("pod", name, "-n", ns)
        if cond(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"pod {ns}/{name} did not reach the expected state: {json.dumps(last.get('status'))}")


def finished(p: dict[str, Any]) -> bool:
    return p.get("status", {}).get("phase") in ("Succeeded", "Failed")


def terminated(p: dict[str, Any]) -> dict[str, Any]:
    return dict(p["status"]["containerStatuses"][0]["state"]["terminated"])


def test_pod_is_bound_runs_and_succeeds(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    node = make_node(cpu=2)
    sel = {"kubernetes.io/hostname": node}
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(pod("hello", node_selector=sel, annotations={"sim.kubatch.dev/duration": "2s"})),
    )
    running = wait_pod(kget, namespace, "hello", lambda p: p.get("status", {}).get("phase") == "Running")
    assert running["spec"]["nodeName"] == node
    assert running["status"]["podIP"]
    done = wait_pod(kget, namespace, "hello", finished)
    assert done["status"]["phase"] == "Succeeded"
    term = terminated(done)
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"


def test_exit_code_annotation_fails_the_pod(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    node = make_node()
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            pod(
                "fails",
                node_selector={"kubernetes.io/hostname": node},
                annotations={"sim.kubatch.dev/exit-code": "3", "sim.kubatch.dev/duration": "100ms"},
            )
        ),
    )
    done = wait_pod(kget, namespace, "fails", finished)
    assert done["status"]["phase"] == "Failed"
    term = terminated(done)
    assert term["exitCode"] == 3
    assert term["reason"] == "Error"


def test_index_node_and_attempt_overrides_take_precedence(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    node = make_node(cpu=8)
    sel = {"kubernetes.io/hostname": node}
    ann = {
        "sim.kubatch.dev/duration": "100ms",
        "sim.kubatch.dev/exit-code": "1",
        "sim.kubatch.dev/exit-code-index-2": "22",
        "sim.kubatch.dev/exit-code-node-1": "11",
        "sim.kubatch.dev/exit-code-attempt-3": "33",
        "sim.kubatch.dev/duration-attempt-3": "3s",
    }
    cases = {
        # name: (labels, expected exit code)
        "plain": ({}, 1),
        "index": ({"kubatch.dev/array-index": "2", "kubatch.dev/node-index": "1", "kubatch.dev/attempt": "3"}, 22),
        "other-index": ({"kubatch.dev/array-index": "5", "kubatch.dev/attempt": "1"}, 1),
        "node": ({"kubatch.dev/node-index": "1", "kubatch.dev/attempt": "3"}, 11),
        "attempt": ({"kubatch.dev/attempt": "3"}, 33),
        "index-zero": ({"kubatch.dev/array-index": "0"}, 1),
    }
    for name, (labels, _) in cases.items():
        kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(pod(name, node_selector=sel, cpu="100m", annotations=ann, labels=labels)),
        )
    for name, (_, code) in cases.items():
        done = wait_pod(kget, namespace, name, finished)
        assert terminated(done)["exitCode"] == code, name
    # The attempt-3 duration override (3s) applies to the attempt pod only.
    slow = terminated(kget("pod", "attempt", "-n", namespace))
    fast = terminated(kget("pod", "plain", "-n", namespace))

    def secs(t: dict[str, Any]) -> float:
        from datetime import datetime

        f = "%Y-%m-%dT%H:%M:%SZ"
        return (datetime.strptime(t["finishedAt"], f) - datetime.strptime(t["startedAt"], f)).total_seconds()

    assert secs(slow) >= 2
    assert secs(fast) <= 1


def test_taints_and_selectors_keep_pods_apart(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    taint = {"key": "kubatch.dev/compute-environment", "value": pool, "effect": "NoSchedule"}
    tainted = make_node(labels={"kubatch.dev/compute-environment": pool}, taints=[taint])
    sel = {"kubatch.dev/compute-environment": pool}
    tol = [{"key": "kubatch.dev/compute-environment", "operator": "Equal", "value": pool, "effect": "NoSchedule"}]
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            pod("tolerates", node_selector=sel, tolerations=tol, annotations={"sim.kubatch.dev/duration": "1h"})
        ),
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod("intolerant", node_selector=sel)))
    bound = wait_pod(kget, namespace, "tolerates", lambda p: p.get("status", {}).get("phase") == "Running")
    assert bound["spec"]["nodeName"] == tainted
    unsched = wait_pod(
        kget,
        namespace,
        "intolerant",
        lambda p: any(
            c.get("type") == "PodScheduled" and c.get("status") == "False"
            for c in p.get("status", {}).get("conditions", [])
        ),
    )
    assert not unsched["spec"].get("nodeName")
    cond = next(c for c in unsched["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["reason"] == "Unschedulable"
    assert "untolerated taint" in cond["message"]


def test_gpu_pod_lands_only_on_gpu_node(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    group = f"g-{uuid.uuid4().hex[:6]}"
    make_node(labels={"group": group})
    gpu_node = make_node(gpus=2, labels={"group": group})
    for i in range(3):
        kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(
                pod(
                    f"gpu-{i}",
                    node_selector={"group": group},
                    cpu="100m",
                    gpus=1,
                    annotations={"sim.kubatch.dev/duration": "1h"},
                )
            ),
        )
    placed = [
        wait_pod(
            kget,
            namespace,
            f"gpu-{i}",
            lambda p: (
                bool(p["spec"].get("nodeName"))
                or any(c.get("reason") == "Unschedulable" for c in p.get("status", {}).get("conditions", []))
            ),
        )
        for i in range(3)
    ]
    nodes = [p["spec"].get("nodeName") for p in placed]
    # Two GPUs: exactly two pods fit, both on the GPU node; the third cannot be placed anywhere.
    assert sorted(n for n in nodes if n) == [gpu_node, gpu_node]
    assert nodes.count(None) == 1


def test_garbage_collector_removes_owned_pods(
    kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> None:
    node = make_node()
    cm = json.loads(kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json").stdout)
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": cm["metadata"]["uid"]}
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            pod(
                "owned",
                node_selector={"kubernetes.io/hostname": node},
                annotations={"sim.kubatch.dev/duration": "1h"},
                owner=owner,
            )
        ),
    )
    wait_pod(kget, namespace, "owned", lambda p: p.get("status", {}).get("phase") == "Running")
    kubectl("delete", "configmap", "owner", "-n", namespace)
    deadline = time.monotonic() + 60
    while kubectl("get", "pod", "owned", "-n", namespace, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the garbage collector never removed the owned pod"
        time.sleep(0.2)


def test_crd_schema_is_enforced(kubectl: Kubectl, namespace: str) -> None:
    group = f"smoke{uuid.uuid4().hex[:6]}.kubatch.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")

        def widget(size: int) -> str:
            return json.dumps(
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": f"w{size}"},
                    "spec": {"size": size},
                }
            )

        ok = kubectl("apply", "-n", namespace, "-f", "-", input=widget(3), check=False)
        deadline = time.monotonic() + 30
        while ok.returncode != 0 and "the server could not find" in ok.stderr and time.monotonic() < deadline:
            time.sleep(0.3)
            ok = kubectl("apply", "-n", namespace, "-f", "-", input=widget(3), check=False)
        assert ok.returncode == 0, ok.stderr
        bad = kubectl("apply", "-n", namespace, "-f", "-", input=widget(11), check=False)
        assert bad.returncode != 0
        assert "spec.size" in bad.stderr and "less than or equal to 10" in bad.stderr
    finally:
        kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


@LOCAL_ONLY
def test_kwok_stages_render_without_errors(cluster: Any) -> None:
    """kwok swallows template and jq errors (a broken stage still 'works', wrongly): its log must be clean."""
    from pathlib import Path

    text = (Path(cluster.state_dir) / "logs" / "kwok.log").read_text(errors="replace")
    for needle in ("Failed to get delay", "failed to render", "template:", "stage match"):
        assert needle not in text, f"kwok log reports {needle!r}"


@LOCAL_ONLY
def test_nothing_listens_beyond_loopback(cluster: Any) -> None:
    """Every socket the local cluster listens on is bound to 127.0.0.1 (or ::1), or, with real nodes,
    to the host bridge's address that only this machine and its pods reach."""
    import socket
    from pathlib import Path

    listening: dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                listening[parts[9]] = parts[1].split(":")[0]
    loopback = {"0100007F", "00000000000000000000000001000000"}
    if cluster.host_ip != "127.0.0.1":
        assert cluster.host_ip == "10.244.255.1", cluster.host_ip
        loopback.add(socket.inet_aton(cluster.host_ip)[::-1].hex().upper())
    for name, pid in cluster.pids.items():
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for inode in inodes & set(listening):
            assert listening[inode] in loopback, f"{name} listens on {listening[inode]}"
