"""Run the operator as a background process against the local cluster (tests, demo).

One shared operator per cluster: its pid, metrics port and a hash of the code it runs are
recorded in `<state>/operator.json`, so later callers reuse it while the code is unchanged and
replace it when the code changed. `stop` kills it by pid.

The shared operator also serves the validating admission webhook (`webhook_env`): a serving
certificate from the cluster CA, and a ValidatingWebhookConfiguration `kubatch-test` that the operator
points at itself. That configuration only applies to namespaces (namespaced kinds) and objects
(cluster-scoped kinds) labelled `WEBHOOK_LABEL=enabled`, so tests that deliberately create objects
naming absent queues or definitions are not affected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from kubatch.devcluster.certs import serving_cert_dir
from kubatch.devcluster.info import ClusterInfo
from kubatch.devcluster.procs import free_port, pid_alive, stop_pid

PACKAGE = Path(__file__).resolve().parents[1]
#: The service workload types of the shared test operator (a repository checkout's test file: a
#: custom resource the integration tests install and queue as service jobs).
TEST_WORKLOAD_TYPES = PACKAGE.parents[1] / "tests" / "integration" / "service-workload-types.yaml"
WEBHOOK_CONFIGURATION = "kubatch-test"
WEBHOOK_LABEL = "admission.kubatch.dev/test"
#: The shared test operator's KUBATCH_START_TIMEOUT_SECONDS; with KUBATCH_TIME_LIMIT_SCALE=0.01 a pod
#: that shows a start problem fails its attempt after 10 s.
TEST_START_TIMEOUT_SECONDS = 1000


def code_hash() -> str:
    """A hash of the code, and of the test workload types the shared operator is started with."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode())
        h.update(path.read_bytes())
    if TEST_WORKLOAD_TYPES.is_file():
        h.update(TEST_WORKLOAD_TYPES.read_bytes())
    return h.hexdigest()[:16]


def shared_workload_types_env() -> dict[str, str]:
    """KUBATCH_SERVICE_WORKLOAD_TYPES for the shared operator, when the checkout has the test file."""
    return {"KUBATCH_SERVICE_WORKLOAD_TYPES": str(TEST_WORKLOAD_TYPES)} if TEST_WORKLOAD_TYPES.is_file() else {}


@dataclass
class OperatorProcess:
    pid: int
    metrics_port: int
    code: str
    log: str
    webhook_port: int | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def _record(state: Path) -> Path:
    return state / "operator.json"


def read(state: Path) -> OperatorProcess | None:
    try:
        return OperatorProcess(**json.loads(_record(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def webhook_env(state: Path) -> dict[str, str]:
    """Environment for an operator serving the validating webhook on a free local port, with a
    serving certificate signed by the cluster CA (`<state>/pki`)."""
    pki = state / "pki"
    cert_dir = serving_cert_dir(pki, "webhook", ["127.0.0.1", "localhost"], state / "webhook")
    return {
        "KUBATCH_WEBHOOK_PORT": str(free_port()),
        "KUBATCH_WEBHOOK_ADDR": "127.0.0.1",
        "KUBATCH_WEBHOOK_CERT_DIR": str(cert_dir),
        "KUBATCH_WEBHOOK_CA_FILE": str(pki / "ca.crt"),
        "KUBATCH_WEBHOOK_CONFIGURE": WEBHOOK_CONFIGURATION,
        "KUBATCH_WEBHOOK_SELECTOR": f"{WEBHOOK_LABEL}=enabled",
    }


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def start(
    info: ClusterInfo,
    state: Path,
    *,
    extra_env: dict[str, str] | None = None,
    name: str = "operator",
    lease_name: str | None = None,
    wait: bool = True,
    timeout: float = 60,
    metrics_port: int | None = None,
) -> OperatorProcess:
    """Start one operator process (not recorded as the shared one)."""
    port = metrics_port or free_port()
    log = state / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = info.env()
    env.update(
        {
            "KUBATCH_METRICS_PORT": str(port),
            "KUBATCH_LEASE_NAMESPACE": "default",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    if lease_name:
        env["KUBATCH_LEASE_NAME"] = lease_name
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubatch"],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    webhook = env.get("KUBATCH_WEBHOOK_PORT")
    op = OperatorProcess(proc.pid, port, code_hash(), str(log), int(webhook) if webhook else None)
    if wait:
        deadline = time.monotonic() + timeout
        while not _ready(port) or (op.webhook_port is not None and not _listening(op.webhook_port)):
            if not pid_alive(proc.pid):
                raise RuntimeError(f"operator exited during start-up; see {log}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator not ready after {timeout:.0f}s; see {log}")
            time.sleep(0.1)
    return op


def port_free(port: int) -> bool:
    """Whether a server may listen on ``port`` again (SO_REUSEADDR, as aiohttp binds: connections
    of the previous process left in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure(info: ClusterInfo, state: Path) -> OperatorProcess:
    """The shared operator for this cluster: reuse a live one running the current code and serving the
    webhook, else (re)start it."""
    current = read(state)
    if (
        current is not None
        and pid_alive(current.pid)
        and current.code == code_hash()
        and current.webhook_port is not None
        and _ready(current.metrics_port)
    ):
        return current
    port = None
    if current is not None:
        stop_pid(current.pid)
        port = current.metrics_port if port_free(current.metrics_port) else None
    # The same metrics port across restarts: a scraper (the metrics test's Prometheus) keeps working.
    # Tests of jobStateTimeLimitActions must not wait 10 real minutes: the shared test operator
    # runs the time limits 100 times faster. The start bound scales with them: its base of 1000 s
    # makes 10 s (30 s for a pod that is only slow), so that a pod the scheduler briefly cannot place
    # while other pods of a busy test finish, or one waiting for a kwok node, is not failed.
    # A fixed identity lets a restarted shared operator take its Lease back without waiting for it
    # to expire.
    op = start(
        info,
        state,
        extra_env={
            "KUBATCH_TIME_LIMIT_SCALE": "0.01",
            "KUBATCH_START_TIMEOUT_SECONDS": str(TEST_START_TIMEOUT_SECONDS),
            "KUBATCH_LEADER_IDENTITY": "kubatch-test",
            **shared_workload_types_env(),
            **webhook_env(state),
        },
        metrics_port=port,
    )
    _record(state).write_text(json.dumps(asdict(op)))
    return op


def stop(state: Path) -> None:
    current = read(state)
    if current is not None:
        stop_pid(current.pid)
        _record(state).unlink(missing_ok=True)
