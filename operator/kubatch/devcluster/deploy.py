"""`make deploy-local`: the operator as users run it — the image the project builds, installed by the
Helm charts, on the local cluster's real nodes.

The operator image (`images.operator_image`) is loaded into every real node's containerd (there is
no registry: the chart's pull policy is IfNotPresent and the image is already there), then
`helm upgrade --install` of `charts/kubatch-crds` and `charts/kubatch` into `kubatch-system` with
two replicas pinned to the real nodes (they tolerate the real nodes' taint), leader election, the
validating webhook served through its Service with the chart's self-generated certificate, and
the metrics Service. Re-running it upgrades the release in place (a new image tag per code change).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubatch.core.podspec import CE_NODE_KEY
from kubatch.devcluster import realnodes
from kubatch.devcluster.info import ClusterInfo

NAMESPACE = "kubatch-system"
RELEASE = "kubatch"
CRD_RELEASE = "kubatch-crds"
#: The in-cluster operator's Lease: the same name as the host-process test operator's, in its own
#: namespace (the chart puts the Lease in the release namespace).
LEASE = "kubatch-dispatcher"


@dataclass(frozen=True)
class Deployment:
    """Where the in-cluster operator runs."""

    namespace: str
    release: str
    image: str

    @property
    def fullname(self) -> str:
        return f"{self.release}-kubatch" if "kubatch" not in self.release else self.release

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.release},app.kubernetes.io/name=kubatch"


def values(image: str, *, replicas: int, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The chart values of the local deployment."""
    repository, _, tag = image.rpartition(":")
    env = [{"name": k, "value": v} for k, v in (extra_env or {}).items()]
    return {
        "replicaCount": replicas,
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "nodeSelector": realnodes.REALNODE_SELECTOR,
        # The local cluster has few real nodes and the tests give them all to a compute environment
        # (whose taint kubatch adds): the operator shares them with the jobs. On a real cluster it
        # would run on nodes of its own.
        "tolerations": [
            realnodes.REALNODE_TOLERATION,
            {"key": CE_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"},
        ],
        # Spread the replicas over the real nodes, as on a real cluster (one node's loss keeps one).
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kubatch"}},
                    }
                ]
            }
        },
        "provisioners": {"kwok": {"enabled": True}},
        "operator": {"extraEnv": env},
        # The machine is small: the default requests of a production install do not fit beside the jobs.
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    }


def _run(argv: list[str], info: ClusterInfo, timeout: float = 300) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=info.env(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{proc.stderr or proc.stdout}")
    return proc.stdout


def deploy(
    info: ClusterInfo,
    repo: Path,
    *,
    replicas: int = 2,
    namespace: str = NAMESPACE,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Deployment:
    """Build and load the operator image, install (or upgrade) both charts, wait for the rollout."""
    from kubatch.devcluster.images import operator_image

    if not info.real_nodes:
        raise RuntimeError("deploy-local needs real nodes: run `make cluster-up REAL_NODES=2` first")
    state = Path(info.state_dir)
    image, archive = operator_image(repo)
    for index in range(len(info.real_nodes)):
        realnodes.RealNode(state, index).load_image(archive)
    helm_env = state / "helm"
    for sub in ("cache", "config", "data"):
        (helm_env / sub).mkdir(parents=True, exist_ok=True)
    helm = [
        info.helm,
        f"--kubeconfig={info.kubeconfig}",
    ]
    _adopt_crds(info, namespace)
    _run(
        [
            *helm,
            "upgrade",
            "--install",
            CRD_RELEASE,
            str(repo / "charts" / "kubatch-crds"),
            "-n",
            namespace,
            "--create-namespace",
            "--wait",
        ],
        info,
    )
    values_file = state / "deploy-values.json"
    values_file.write_text(json.dumps(values(image, replicas=replicas, extra_env=extra_env), indent=2))
    _run(
        [
            *helm,
            "upgrade",
            "--install",
            RELEASE,
            str(repo / "charts" / "kubatch"),
            "-n",
            namespace,
            "-f",
            str(values_file),
            "--wait",
            f"--timeout={int(timeout)}s",
        ],
        info,
        timeout=timeout + 30,
    )
    deployment = Deployment(namespace, RELEASE, image)
    wait_rolled_out(info, deployment, timeout)
    return deployment


def _adopt_crds(info: ClusterInfo, namespace: str) -> None:
    """Let the CRD release own CRDs applied before it (`kubectl apply -f crds/`, as the tests do):
    Helm adopts objects that carry its ownership label and annotations."""
    from kubatch.api import crdgen

    names = [c["metadata"]["name"] for c in crdgen.all_crds()]
    present = _run([info.kubectl, "get", "crd", "-o", "name"], info).split()
    existing = [n for n in names if f"customresourcedefinition.apiextensions.k8s.io/{n}" in present]
    if not existing:
        return
    _run([info.kubectl, "label", "crd", *existing, "app.kubernetes.io/managed-by=Helm", "--overwrite"], info)
    _run(
        [
            info.kubectl,
            "annotate",
            "crd",
            *existing,
            f"meta.helm.sh/release-name={CRD_RELEASE}",
            f"meta.helm.sh/release-namespace={namespace}",
            "--overwrite",
        ],
        info,
    )


def wait_rolled_out(info: ClusterInfo, deployment: Deployment, timeout: float = 300) -> None:
    """Every replica Ready on the current image, and one of them holding the Lease."""
    _run(
        [
            info.kubectl,
            "rollout",
            "status",
            f"deployment/{deployment.fullname}",
            "-n",
            deployment.namespace,
            f"--timeout={int(timeout)}s",
        ],
        info,
        timeout=timeout + 30,
    )
    deadline = time.monotonic() + timeout
    while not leader(info, deployment):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replica of {deployment.fullname} took the Lease {LEASE}")
        time.sleep(0.5)


def leader(info: ClusterInfo, deployment: Deployment) -> str:
    """The running replica holding the Lease ('' when none: a Lease left by replicas that are gone,
    say a previous install's, is not held)."""
    lease = subprocess.run(
        [info.kubectl, "get", "lease", LEASE, "-n", deployment.namespace, "-o", "json"],
        capture_output=True,
        text=True,
        env=info.env(),
    )
    if lease.returncode != 0:
        return ""
    holder = str(json.loads(lease.stdout).get("spec", {}).get("holderIdentity") or "")
    pods = subprocess.run(
        [info.kubectl, "get", "pods", "-n", deployment.namespace, "-l", deployment.selector, "-o", "json"],
        capture_output=True,
        text=True,
        env=info.env(),
    )
    if pods.returncode != 0:
        return ""
    running = {
        p["metadata"]["name"]
        for p in json.loads(pods.stdout)["items"]
        if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }
    return holder if holder in running else ""


def undeploy(info: ClusterInfo, *, namespace: str = NAMESPACE) -> None:
    """Uninstall the operator release (the CRDs stay: the CRD chart keeps them)."""
    subprocess.run(
        [info.helm, f"--kubeconfig={info.kubeconfig}", "uninstall", RELEASE, "-n", namespace, "--wait"],
        capture_output=True,
        text=True,
        env=info.env(),
        timeout=120,
    )
