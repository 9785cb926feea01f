"""Types and small helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from kubatch.devcluster import operatorproc, procs
from kubatch.devcluster.info import ClusterInfo
from kubatch.devcluster.nodes import kwok_node


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


class NodeFactory(Protocol):
    def __call__(
        self,
        *,
        cpu: str | int = ...,
        memory: str = ...,
        gpus: int = ...,
        labels: dict[str, str] | None = ...,
        taints: list[dict[str, str]] | None = ...,
    ) -> str: ...


#: Kinds that can be deleted only once DISABLED (AWS Batch's rule: the webhook refuses the DELETE of
#: an ENABLED JobQueue, and an ENABLED ComputeEnvironment's or ServiceEnvironment's deletion waits on
#: its finalizer).
DISABLE_BEFORE_DELETE = ("jobqueue", "computeenvironment", "serviceenvironment")


def delete_cluster_objects(kubectl: Kubectl, objects: list[tuple[str, str]]) -> None:
    """Delete cluster-scoped kubatch objects (kind, name), the last created first, without waiting;
    queues and compute environments are DISABLED first, so that they can go."""
    for kind, name in reversed(objects):
        if kind.lower() in DISABLE_BEFORE_DELETE:
            patch = json.dumps({"spec": {"state": "DISABLED"}})
            kubectl("patch", kind, name, "--type=merge", "-p", patch, check=False)
        kubectl("delete", kind, name, "--wait=false", "--ignore-not-found", check=False)


#: Held exclusively while a test has stopped or replaced the shared operator (``operator_down``), and
#: shared by what must not overlap that (``operator_up``): a worker's first ``operator`` fixture (it
#: would start a second shared operator beside the test's stand-in) and the tests that rely on the
#: webhook refusing (the local configuration fails open: a bad object would be admitted).
DOWN_LOCK = ".operator-down.lock"


@contextlib.contextmanager
def operator_up(state: str | Path) -> Iterator[None]:
    """While held, no test stops or replaces the shared operator (none to hold without a local
    cluster's state directory: an external cluster's operator is not the tests' to restart)."""
    if not state:
        yield
        return
    with open(Path(state) / DOWN_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


@contextlib.contextmanager
def operator_down(cluster: ClusterInfo, sig: int = signal.SIGTERM) -> Iterator[None]:
    """The shared operator stopped by ``sig`` (SIGTERM: it gives its Lease up; SIGKILL: a crash) for
    the block, and back when it ends (``operatorproc.ensure``: ready, its webhook listening). Waits
    for what holds ``operator_up`` now, and holds new holders off until the operator is back."""
    state = Path(cluster.state_dir)
    with open(state / DOWN_LOCK, "w") as down:
        fcntl.flock(down, fcntl.LOCK_EX)
        current = operatorproc.read(state)
        assert current is not None, "no shared operator"
        procs.stop_pid(current.pid, sig)
        try:
            yield
        finally:
            with open(state / ".operator.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                operatorproc.ensure(cluster, state)


def fresh_namespace(kubectl: Kubectl, prefix: str) -> Iterator[str]:
    """Yield a new namespace whose default ServiceAccount is ready; delete it afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    created = False
    while kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        if not created and time.monotonic() > deadline - 20:
            # The ServiceAccount controller makes it within a second, unless its watch is still
            # coming back from an API server restart (the resilience tests restart theirs): make it
            # as that controller would (whichever comes second is refused as existing).
            kubectl("create", "serviceaccount", "default", "-n", name, check=False)
            created = True
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {name}: default ServiceAccount never appeared")
        time.sleep(0.1)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def node_factory(kubectl: Kubectl, *, max_pods: int = 110) -> Iterator[NodeFactory]:
    """Yield a factory of kwok nodes (unique names, a per-test label, Ready when returned); delete
    them afterwards."""
    created: list[str] = []
    tag = uuid.uuid4().hex[:8]

    def make(
        *,
        cpu: str | int = 4,
        memory: str = "16Gi",
        gpus: int = 0,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> str:
        name = f"kwok-{tag}-{len(created)}"
        manifest = kwok_node(
            name,
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            pods=max_pods,
            labels={"kubatch.dev/test": tag, **(labels or {})},
            taints=taints,
        )
        kubectl("create", "-f", "-", input=json.dumps(manifest))
        created.append(name)
        kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
        return name

    yield make
    if created:
        kubectl("delete", "node", *created, "--wait=false", "--ignore-not-found", check=False)
