"""Fixtures for the resilience tests: a PRIVATE control plane and operator that tests may break.

These tests kill the operator, restart the API server, freeze etcd and delete nodes, so they never
touch the shared cluster of the other integration tests. One private cluster per pytest process
(`.kubatch/resilience`, or `.kubatch/resilience-<xdist worker>` under xdist) is started with its
own free ports from the shared binary cache, gets the CRDs and one operator of its own, and is torn
down at the end of the session. The `kubectl`, `kget`, `namespace`, `make_node` and `batch`
fixtures mirror tests/integration/conftest.py but are bound to that private cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster import operatorproc
from kubatch.devcluster.certs import issue_client_cert
from kubatch.devcluster.cluster import ClusterInfo, LocalCluster, find_repo, pid_alive
from tests.integration.batch import Batch
from tests.integration.helpers import Kubectl, NodeFactory, fresh_namespace, node_factory

REPO = find_repo(Path(__file__).parent)
OPERATOR_NAME = "resilience-operator"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Request
  resources: [{group: "", resources: ["pods", "pods/binding"]}]
  verbs: ["create"]
- level: None
"""


def _reap(pid: int) -> None:
    """Collect an exited child of this process (the cluster's components are our children)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def kill_and_wait(pid: int, sig: int = signal.SIGKILL, timeout: float = 15) -> None:
    """Signal the process group led by `pid` (started with start_new_session) and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        _reap(pid)
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still alive {timeout:.0f}s after signal {sig}")
        time.sleep(0.02)
    _reap(pid)


@dataclass(frozen=True)
class PodAudit:
    """What the API server's audit log says about the pods of one namespace.

    A pod name counts as created when its create answered 201 OR the scheduler bound it (201): a
    create whose client was SIGKILLed mid-request is logged as 504 "context canceled" although the
    pod was stored, and an API server killed mid-request logs nothing; every pod object is bound
    exactly once (binding a bound pod is a 409), so two successful creates or two successful
    bindings of one name mean that the name was used by two pod objects: an attempt that ran twice."""

    creates: Counter[str]
    bindings: Counter[str]

    def created(self) -> set[str]:
        return set(self.creates) | set(self.bindings)

    def twice(self) -> dict[str, tuple[int, int]]:
        return {
            n: (self.creates[n], self.bindings[n])
            for n in self.created()
            if self.creates[n] > 1 or self.bindings[n] > 1
        }


class PrivateCluster(LocalCluster):
    """A LocalCluster whose components can be restarted, the API server with other flags."""

    def __init__(self, repo: Path, state_dir: Path) -> None:
        super().__init__(repo, state_dir)
        self.apiserver_flags: dict[str, str] = {}  # a test's overrides, on top of the audit flags
        self.audit_log = self.logs / "audit.log"

    def _audit_flags(self) -> dict[str, str]:
        """Audit every pod create (with its request body), the API server's own record of each attempt."""
        policy = self.state / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return {
            "--audit-policy-file": str(policy),
            "--audit-log-path": str(self.audit_log),
            "--audit-log-format": "json",
            "--audit-log-mode": "blocking",
        }

    def pod_creates(self, namespace: str) -> PodAudit:
        """Successful (HTTP 201) pod creates and pod bindings per pod name in `namespace`, from the
        audit log, which survives API server restarts and watch gaps."""
        audit = PodAudit(Counter(), Counter())
        if not self.audit_log.exists():
            return audit
        for line in self.audit_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                ref = ev.get("objectRef") or {}
                if ref.get("namespace") != namespace or (ev.get("responseStatus") or {}).get("code") != 201:
                    continue
                name = ref.get("name") or ((ev.get("requestObject") or {}).get("metadata") or {}).get("name")
                target = audit.bindings if ref.get("subresource") == "binding" else audit.creates
                target[str(name)] += 1
        return audit

    @property
    def info(self) -> ClusterInfo:
        info = self.read_info()
        if info is None:
            raise AssertionError(f"no private cluster recorded in {self.info_file}")
        return info

    def _command(self, name: str, info: ClusterInfo) -> list[str]:
        cmd = super()._command(name, info)
        if name != "kube-apiserver":
            return cmd
        flags = {**self._audit_flags(), **self.apiserver_flags}
        kept = [arg for arg in cmd if arg.split("=", 1)[0] not in flags]
        return kept + [f"{flag}={value}" for flag, value in flags.items()]

    def restart(
        self,
        name: str,
        *,
        downtime: float = 0.0,
        apiserver_flags: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> float:
        """SIGKILL component `name`, stay down `downtime` seconds, start it again with the same command
        line (the API server with `apiserver_flags` replacing or adding flags, when given), wait until it
        is ready and record the new pid in cluster.json. Returns the seconds from kill to ready."""
        info = self.info
        started = time.monotonic()
        kill_and_wait(info.pids[name])
        time.sleep(downtime)
        if apiserver_flags is not None:
            self.apiserver_flags = dict(apiserver_flags)
        deadline = time.monotonic() + timeout
        while True:
            info.pids[name] = self._start(name, info)
            self._save(info)
            try:
                self._wait_ready(name, info, max(1.0, deadline - time.monotonic()))
                return time.monotonic() - started
            except RuntimeError as e:
                # The killed process's sockets may hold its port for a moment (closing connections).
                if "address already in use" not in str(e) or time.monotonic() > deadline:
                    raise
                _reap(info.pids[name])
                time.sleep(0.5)

    def apiserver_ready(self) -> bool:
        code, _ = self._get(f"{self.info.server}/readyz", self._ssl())
        return code == 200


OPERATOR_USER = "kubatch-resilience-operator"


def operator_kubeconfig(cluster: PrivateCluster, kubectl: Kubectl) -> Path:
    """A kubeconfig for the operator as an ordinary user bound to cluster-admin, NOT system:masters:
    the API server exempts system:masters from its in-flight limits, so only a non-master operator
    can ever be answered 429 (as a real deployment, with its ServiceAccount, would be)."""
    pki = cluster.pki
    if not (pki / "operator.crt").exists():
        issue_client_cert(pki, "operator", f"/CN={OPERATOR_USER}")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": OPERATOR_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}],
    }
    kubectl("apply", "-f", "-", input=json.dumps(binding))
    kc = json.loads(Path(cluster.info.kubeconfig).read_text())
    kc["users"][0]["user"] = {
        "client-certificate": str(pki / "operator.crt"),
        "client-key": str(pki / "operator.key"),
    }
    path = cluster.state / "operator-kubeconfig"
    path.write_text(json.dumps(kc, indent=2))
    path.chmod(0o600)
    return path


class Operator:
    """The private cluster's operator process, restarted like a pod with restartPolicy Always.

    The operator exits on purpose when it cannot renew its Lease (an API server or etcd outage longer
    than the lease), as a Deployment's container would; a supervisor thread starts it again so that
    control-plane outages test recovery rather than process supervision. `restarts` counts every
    (re)start after the first, by the supervisor or by `kill()`.
    """

    def __init__(self, cluster: PrivateCluster, kubeconfig: Path) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig
        self.state = cluster.state
        self.lock = threading.Lock()
        self.proc = self._spawn()
        self.restarts = 0
        self.crashes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _spawn(self) -> operatorproc.OperatorProcess:
        op = operatorproc.start(
            self.cluster.info,
            self.state,
            name=OPERATOR_NAME,
            # A fixed identity: a restarted operator takes its own Lease back at once, as a restarted
            # container of the same pod does.
            extra_env={
                "KUBECONFIG": str(self.kubeconfig),
                "KUBATCH_LEADER_IDENTITY": "kubatch-resilience",
                "KUBATCH_LEASE_NAMESPACE": "default",
            },
            wait=False,
        )
        # Recorded where LocalCluster.down() looks, so that even a crashed session cleans it up.
        (self.state / "operator.json").write_text(json.dumps(asdict(op)))
        return op

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                if not pid_alive(self.proc.pid):
                    _reap(self.proc.pid)
                    self.crashes += 1
                    self.restarts += 1
                    self.proc = self._spawn()

    def wait_ready(self, timeout: float = 60) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.proc.metrics_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"operator not ready after {timeout:.0f}s; log: {self.proc.log}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the operator (SIGKILL: no clean-up, no Lease release) and start a fresh one at once."""
        with self.lock:
            kill_and_wait(self.proc.pid, sig)
            self.restarts += 1
            self.proc = self._spawn()

    def metrics(self) -> dict[str, float]:
        """The operator's /metrics as {'name{labels}': value} (empty while it is starting)."""
        try:
            with urllib.request.urlopen(self.proc.metrics_url, timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[key] = float(value)
        return out

    def log_count(self, pattern: str) -> int:
        """How many lines of the operator's log (every process of this session) match `pattern`."""
        text = Path(self.proc.log).read_text(errors="replace")
        return len(re.findall(pattern, text))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self.lock:
            kill_and_wait(self.proc.pid, signal.SIGTERM)
        (self.state / "operator.json").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    state = REPO / ".kubatch" / ("resilience" if not worker else f"resilience-{worker}")
    pc = PrivateCluster(REPO, state)
    if pc.read_info() is not None:
        pc.down()  # left over by a killed session: start from scratch, with the default flags
    log = state / "logs" / f"{OPERATOR_NAME}.log"
    log.unlink(missing_ok=True)
    pc.up()
    try:
        yield pc
    finally:
        pc.down()


@pytest.fixture(scope="session")
def cluster(private_cluster: PrivateCluster) -> ClusterInfo:
    return private_cluster.info


@pytest.fixture(scope="session")
def kubectl(private_cluster: PrivateCluster) -> Kubectl:
    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        info = private_cluster.info  # re-read: restarts change pids, never the kubeconfig
        proc = subprocess.run(
            [info.kubectl, *args], input=input, capture_output=True, text=True, env=info.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def kget(kubectl: Kubectl) -> Callable[..., Any]:
    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json").stdout)

    return get


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    crd_dir = REPO / "crds"
    if not sorted(crd_dir.glob("*.yaml")):
        raise AssertionError("crds/ is empty: run `make crds`")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))


@pytest.fixture(scope="session")
def operator(private_cluster: PrivateCluster, crds: None, kubectl: Kubectl) -> Iterator[Operator]:
    op = Operator(private_cluster, operator_kubeconfig(private_cluster, kubectl))
    try:
        op.wait_ready()
        yield op
    finally:
        op.close()


@pytest.fixture
def healthy(private_cluster: PrivateCluster, operator: Operator) -> Iterator[None]:
    """Every test starts and ends with a healthy control plane (default flags) and a ready operator."""
    yield
    if private_cluster.apiserver_flags or not private_cluster.healthy():
        for name, pid in private_cluster.info.pids.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)  # a test may have failed with etcd stopped
            if not pid_alive(pid) or name == "kube-apiserver":
                private_cluster.restart(name, apiserver_flags={})
    operator.wait_ready()


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from fresh_namespace(kubectl, "r")


@pytest.fixture
def make_node(kubectl: Kubectl) -> Iterator[NodeFactory]:
    yield from node_factory(kubectl, max_pods=1000)


@pytest.fixture
def batch(
    operator: Operator,
    healthy: None,
    kubectl: Kubectl,
    kget: Callable[..., Any],
    namespace: str,
    make_node: NodeFactory,
) -> Iterator[Batch]:
    b = Batch(kubectl, kget, namespace, make_node)
    yield b
    b.cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep every resilience test on one xdist worker (`--dist loadgroup`): one private cluster."""
    for item in items:
        if "tests/resilience/" in str(item.fspath):
            item.add_marker(pytest.mark.xdist_group("resilience"))
