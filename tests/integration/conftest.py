"""Fixtures for tests against the real local control plane.

The session brings the cluster up once (reusing a running one; safe under pytest-xdist through a
file lock), installs the CRDs, and hands each test a fresh namespace. A missing binary or a
cluster that cannot start is a loud error, never a skip. Where the machine can run real containers
(root, containerd: `realnodes.unsupported_reason()`), the cluster also has `REAL_NODES` real nodes;
elsewhere the real-node tests are skipped with that reason.

Every test shares one operator (``operator``). The tests that stop or replace it run one after the
other on one xdist worker (``xdist_group("operator-restarts")``), through ``helpers.operator_down``,
which has it back when their block ends; meanwhile no worker's ``operator`` fixture starts another
one, and no test that relies on its webhook refusing (``webhook_up``; the local configuration fails
open) runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster import realnodes
from kubatch.devcluster.cluster import ClusterInfo, LocalCluster, build_binaries, find_repo
from tests.integration.helpers import Kubectl, NodeFactory, fresh_namespace, node_factory, operator_up

REPO = find_repo(Path(__file__).parent)
#: Three real nodes: a multi-node job of three runs one pod per node.
REAL_NODES = int(os.environ.get("KUBATCH_TEST_REAL_NODES", "3"))
REAL_NODES_UNAVAILABLE = (
    "KUBATCH_TEST_REAL_NODES=0" if REAL_NODES == 0 else realnodes.unsupported_reason()
)
#: `make test-in-cluster`: the operator under test is the one the Helm chart deploys on the real nodes
#: from the image the project builds (`kubatch.devcluster.deploy`), not a host process.
IN_CLUSTER = os.environ.get("KUBATCH_TEST_OPERATOR") == "in-cluster"
requires_real_nodes = pytest.mark.skipif(
    REAL_NODES_UNAVAILABLE is not None or bool(os.environ.get("KUBATCH_KUBECONFIG")),
    reason=f"no real nodes on this machine: {REAL_NODES_UNAVAILABLE or 'an external cluster'}",
)


@pytest.fixture(scope="session")
def cluster() -> ClusterInfo:
    external = os.environ.get("KUBATCH_KUBECONFIG")
    if external:
        # Any other cluster (kind, say) with kwok managing `kwok.x-k8s.io/node: fake` nodes.
        return ClusterInfo(
            bin_dir=str(build_binaries(REPO)),
            state_dir="",
            kubeconfig=external,
            server="",
            k8s_version="",
            load_profile=False,
        )
    state = REPO / ".kubatch"
    state.mkdir(exist_ok=True)
    with open(state / ".up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return LocalCluster(REPO).up(real_nodes=0 if REAL_NODES_UNAVAILABLE else REAL_NODES)


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterInfo) -> Kubectl:
    env = cluster.env()

    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [cluster.kubectl, *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def kget(kubectl: Kubectl) -> Callable[..., Any]:
    """kubectl get ... -o json, parsed."""

    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json").stdout)

    return get


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """Install the generated CRDs (server-side apply) and wait until they are Established."""
    crd_dir = REPO / "crds"
    files = sorted(crd_dir.glob("*.yaml"))
    if not files:
        raise AssertionError("crds/ is empty: run `make crds`")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount ready), deleted after the test."""
    yield from fresh_namespace(kubectl, "t")


@pytest.fixture
def make_node(kubectl: Kubectl) -> Iterator[NodeFactory]:
    """Create kwok nodes for one test (unique names, a per-test label); waits until Ready; deletes them after."""
    yield from node_factory(kubectl)


@pytest.fixture(scope="session")
def operator(cluster: ClusterInfo, crds: None) -> Any:
    """The operator under test (current code), shared by every test and xdist worker of the session."""
    from kubatch.devcluster import operatorproc

    if not cluster.state_dir:
        raise AssertionError("operator tests need the local cluster (or run an operator yourself)")
    from kubatch.devcluster import deploy

    state = Path(cluster.state_dir)
    # Not while a test has the shared operator stopped: it would find it gone and start a second one.
    with operator_up(state), open(state / ".operator.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if IN_CLUSTER:
            # One operator acts on the cluster: the host process gives way to the chart's.
            operatorproc.stop(state)
            return deploy.deploy(
                cluster,
                REPO,
                extra_env={
                    "KUBATCH_TIME_LIMIT_SCALE": "0.01",
                    "KUBATCH_START_TIMEOUT_SECONDS": str(operatorproc.TEST_START_TIMEOUT_SECONDS),
                },
            )
        if cluster.real_nodes:
            deploy.undeploy(cluster)  # left by an in-cluster run: it would compete with the host process
        return operatorproc.ensure(cluster, state)


@pytest.fixture
def batch(
    operator: Any, kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory
) -> Iterator[Any]:
    """Helpers to build compute environments, queues, definitions and jobs for one test."""
    from tests.integration.batch import Batch

    b = Batch(kubectl, kget, namespace, make_node)
    yield b
    b.cleanup()


@pytest.fixture(scope="session")
def opt_in_admission(cluster: ClusterInfo, operator: Any, kubectl: Kubectl) -> Callable[[str], None]:
    """Label a namespace so that the shared operator's validating webhook (whose configuration only
    applies to labelled namespaces) checks it; returns once the webhook answers for it."""
    from kubatch.devcluster.operatorproc import WEBHOOK_LABEL

    def opt_in(namespace: str) -> None:
        kubectl("label", "namespace", namespace, f"{WEBHOOK_LABEL}=enabled", "--overwrite")
        probe = {
            "apiVersion": "kubatch.dev/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": "webhook-probe", "namespace": namespace},
            "spec": {"jobQueue": "webhook-probe-absent", "jobDefinition": "webhook-probe-absent"},
        }
        with operator_up(cluster.state_dir):
            deadline = time.monotonic() + 30
            while True:
                out = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False)
                if out.returncode != 0 and "denied the request" in out.stderr:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the validating webhook never answered for namespace {namespace}: {out.stderr}"
                    )
                time.sleep(0.2)

    return opt_in


@pytest.fixture
def webhook_up(cluster: ClusterInfo, operator: Any) -> Iterator[None]:
    """For a test that relies on the shared operator's webhook refusing: no other test stops or
    replaces that operator meanwhile (``helpers.operator_down`` waits for it)."""
    with operator_up(cluster.state_dir):
        yield


@pytest.fixture
def admission_namespace(opt_in_admission: Callable[[str], None], namespace: str, webhook_up: None) -> str:
    """A fresh namespace checked by the validating webhook (which no test restarts meanwhile)."""
    opt_in_admission(namespace)
    return namespace


@pytest.fixture(scope="session")
def karpenter_crds(kubectl: Kubectl) -> str:
    """Install Karpenter's real CRDs from the pinned Go module (additive and idempotent; never
    removed: other tests may use them)."""
    script = REPO / "hack" / "cluster" / "karpenter.sh"
    crd_dir = subprocess.run([str(script)], check=True, capture_output=True, text=True, timeout=300).stdout.strip()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", crd_dir)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crd_dir)
    return crd_dir
