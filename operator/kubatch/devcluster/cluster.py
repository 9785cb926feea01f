"""Start, check and stop the local cluster: the control plane (etcd, API server, controller-manager,
scheduler, kwok) and, on request, real nodes with cluster networking (`realnodes`, `netstack`).

Every process listens on 127.0.0.1 only, on ports picked free at start so that two checkouts do
not clash; with real nodes the API server and cluster DNS listen on the host bridge's address
instead, which only this machine and its pods reach. State lives in one directory (default
`.kubatch/` in the repository): PKI, etcd data, logs, the admin kubeconfig and `cluster.json`
(ports, pids, binaries, real nodes). `up` is idempotent: a healthy running cluster is reused.
`down` stops exactly the processes it started, by pid, and undoes the real nodes' host changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

from kubatch.devcluster import netstack, operatorproc, realnodes
from kubatch.devcluster.certs import ensure_pki
from kubatch.devcluster.host import HostLedger
from kubatch.devcluster.info import ClusterInfo
from kubatch.devcluster.procs import free_port, pid_alive, spawn, stop_pid

__all__ = ["COMPONENTS", "ClusterInfo", "LocalCluster", "build_binaries", "find_repo", "free_port", "pid_alive"]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def components(info: ClusterInfo) -> tuple[str, ...]:
    """The processes a cluster runs: the control plane, and cluster networking with real nodes."""
    return COMPONENTS + (netstack.NETWORK_COMPONENTS if info.real_nodes else ())


def find_repo(start: Path | None = None) -> Path:
    """The kubatch checkout that holds hack/cluster (searched upwards from cwd, then this file)."""
    env = os.environ.get("KUBATCH_REPO")
    if env:
        return Path(env).resolve()
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        for p in (base, *base.parents):
            if (p / "hack" / "cluster" / "build.sh").is_file():
                return p
    raise RuntimeError("cannot find the kubatch repository (hack/cluster/build.sh); set KUBATCH_REPO")


def default_state_dir(repo: Path) -> Path:
    return Path(os.environ.get("KUBATCH_STATE_DIR", repo / ".kubatch")).resolve()


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_binaries(repo: Path) -> Path:
    """Run hack/cluster/build.sh (a no-op when the cache is warm) and return the bin directory."""
    out = subprocess.run(
        ["bash", str(repo / "hack" / "cluster" / "build.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


class LocalCluster:
    """The local control plane rooted at one state directory."""

    def __init__(self, repo: Path | None = None, state_dir: Path | None = None) -> None:
        self.repo = repo or find_repo()
        self.state = state_dir or default_state_dir(self.repo)
        self.pki = self.state / "pki"
        self.logs = self.state / "logs"
        self.info_file = self.state / "cluster.json"
        #: How long the last start of real nodes took (DNS, containerd, images, kubelets → Ready).
        self.real_nodes_seconds: float | None = None

    # ---- status -------------------------------------------------------------------------------
    def read_info(self) -> ClusterInfo | None:
        try:
            return ClusterInfo(**json.loads(self.info_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _get(self, url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode(errors="replace")
        except (OSError, ssl.SSLError) as e:
            return 0, str(e)

    def healthy(self, info: ClusterInfo | None = None) -> bool:
        info = info or self.read_info()
        if info is None or set(info.pids) != set(components(info)):
            return False
        if not all(pid_alive(p) for p in info.pids.values()):
            return False
        if not all(realnodes.RealNode(self.state, i).running() for i in range(len(info.real_nodes))):
            return False
        code, _ = self._get(f"{info.server}/readyz", self._ssl())
        return code == 200

    # ---- up -----------------------------------------------------------------------------------
    def up(self, *, load_profile: bool = False, real_nodes: int = 0, timeout: float = 120.0) -> ClusterInfo:
        """Start the cluster, or reuse a healthy one (adding real nodes up to `real_nodes`). Returns
        its description."""
        if real_nodes:
            reason = realnodes.unsupported_reason()
            if reason:
                raise RuntimeError(f"cannot start real nodes: {reason}")
            if HostLedger(self.state).foreign_bridge(netstack.HOST_BRIDGE):
                raise RuntimeError(
                    "another local cluster on this machine runs real nodes (bridge "
                    f"{netstack.HOST_BRIDGE} is not this cluster's): stop it first (make cluster-down there)"
                )
        info = self.read_info()
        if info is not None and self.healthy(info):
            if real_nodes and info.host_ip != netstack.HOST_IP:
                log("the running cluster serves loopback only; restarting it so that pods reach it")
                self.down()
            else:
                log(f"reusing the running cluster at {info.server}")
                if real_nodes > len(info.real_nodes):
                    self._start_real_nodes(info, real_nodes, timeout)
                return info
        elif info is not None or realnodes.existing(self.state):
            log("found a stale or unhealthy cluster; stopping it first")
            self.down()
        bin_dir = build_binaries(self.repo)
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        ensure_pki(self.pki)
        k8s_version = (self.repo / "hack" / "cluster" / "versions.env").read_text()
        k8s_version = next(
            line.split("=", 1)[1].strip() for line in k8s_version.splitlines() if line.startswith("K8S_VERSION=")
        )
        host_ip = netstack.HOST_IP if real_nodes else "127.0.0.1"
        if real_nodes:
            HostLedger(self.state).add_bridge(netstack.HOST_BRIDGE, f"{host_ip}/32")
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "controller-manager", "scheduler")}
        ports["apiserver"] = free_port(host_ip)
        server = f"https://{host_ip}:{ports['apiserver']}"
        info = ClusterInfo(
            bin_dir=str(bin_dir),
            state_dir=str(self.state),
            kubeconfig=str(self.state / "kubeconfig"),
            server=server,
            k8s_version=k8s_version,
            load_profile=load_profile,
            ports=ports,
            host_ip=host_ip,
        )
        self._write_kubeconfig(info)
        try:
            for name in COMPONENTS:
                self._launch(name, info, timeout)
            log(f"control plane ready at {server} in {time.monotonic() - started:.1f}s (kubeconfig: {info.kubeconfig})")
            if real_nodes:
                self._start_real_nodes(info, real_nodes, timeout)
        except BaseException:
            self.down()
            raise
        return info

    def _launch(self, name: str, info: ClusterInfo, timeout: float) -> None:
        info.pids[name] = self._start(name, info)
        self._save(info)
        self._wait_ready(name, info, timeout)

    def _start_real_nodes(self, info: ClusterInfo, count: int, timeout: float) -> None:
        """Cluster DNS, then real nodes `realnode-<len(info.real_nodes)>` .. `realnode-<count-1>`, then
        kube-proxy (which wants to find its Node)."""
        from kubatch.devcluster.images import node_images

        started = time.monotonic()
        if "coredns" not in info.pids:
            info.ports.update({name: free_port() for name in netstack.port_names()})
            self._launch("coredns", info, timeout)
        archives = node_images(self.repo)
        for index in range(len(info.real_nodes), count):
            node = realnodes.RealNode(self.state, index)
            node.start(server=info.server, pki=self.pki, images=archives, cluster_dns=info.host_ip)
            info.real_nodes.append(node.name)
            self._save(info)
        for index in range(count):
            realnodes.RealNode(self.state, index).wait_ready(info.kubectl, info.env(), timeout)
        if "kube-proxy" not in info.pids:
            self._launch("kube-proxy", info, timeout)
        self.real_nodes_seconds = time.monotonic() - started
        log(f"real nodes {', '.join(info.real_nodes)} Ready in {self.real_nodes_seconds:.1f}s")

    def _save(self, info: ClusterInfo) -> None:
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2))
        tmp.replace(self.info_file)

    def _write_kubeconfig(self, info: ClusterInfo) -> None:
        kc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubatch-local",
                    "cluster": {"server": info.server, "certificate-authority": str(self.pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "kubatch-admin",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "kubatch-local", "context": {"cluster": "kubatch-local", "user": "kubatch-admin"}}],
            "current-context": "kubatch-local",
        }
        Path(info.kubeconfig).write_text(json.dumps(kc, indent=2))
        Path(info.kubeconfig).chmod(0o600)

    def _command(self, name: str, info: ClusterInfo) -> list[str]:
        b = Path(info.bin_dir)
        p = info.ports
        pki = self.pki
        kc = info.kubeconfig
        qps = (
            ["--kube-api-qps=1000", "--kube-api-burst=2000"]
            if info.load_profile
            else ["--kube-api-qps=200", "--kube-api-burst=400"]
        )
        if name == "etcd":
            return [
                str(b / "etcd"),
                "--name=node0",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-cluster=node0=http://127.0.0.1:{p['etcd-peer']}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
                "--listen-metrics-urls=",
                "--snapshot-count=50000",
            ]
        if name == "kube-apiserver":
            inflight = (
                [
                    "--max-requests-inflight=0",
                    "--max-mutating-requests-inflight=0",
                    "--enable-priority-and-fairness=false",
                ]
                if info.load_profile
                else ["--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"]
            )
            return [
                str(b / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                f"--bind-address={info.host_ip}",
                f"--advertise-address={info.host_ip}",
                f"--secure-port={p['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={netstack.SERVICE_CIDR}",
                "--allow-privileged=true",
                # The `kubernetes` Service leads to the API server only where pods can reach it.
                f"--endpoint-reconciler-type={'lease' if info.real_nodes or info.host_ip != '127.0.0.1' else 'none'}",
                # Real nodes: logs and exec through the node IP (the node name does not resolve), as the
                # admin (the kubelets accept client certificates of the cluster CA); Service-backed
                # webhooks dialled at their endpoints (never through a Service IP that leaves the host).
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                "--enable-aggregator-routing=true",
                "--enable-admission-plugins=NodeRestriction",
                # The load profile (benchmarks) serves /debug/pprof to admins, to see where the time goes.
                f"--profiling={'true' if info.load_profile else 'false'}",
                "--watch-cache=true",
                "--event-ttl=1h",
                *inflight,
            ]
        common = [
            f"--kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            *qps,
        ]
        if name == "kube-controller-manager":
            return [
                str(b / "kube-controller-manager"),
                *common,
                f"--secure-port={p['controller-manager']}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--controllers=*",
                "--concurrent-gc-syncs=50",
                "--concurrent-namespace-syncs=10",
                "--node-monitor-grace-period=60s",
            ]
        if name == "kube-scheduler":
            return [str(b / "kube-scheduler"), *common, f"--secure-port={p['scheduler']}"]
        if name in netstack.NETWORK_COMPONENTS:
            return netstack.command(name, b, self.state, kc, p)
        if name == "kwok":
            stages = self.repo / "hack" / "cluster" / "kwok-stages.yaml"
            return [
                str(b / "kwok"),
                f"--kubeconfig={kc}",
                f"--config={stages}",
                *([f"--config={self._kwok_load_config()}"] if info.load_profile else []),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.0.0.0/16",
                "--node-ip=127.0.0.1",
            ]
        raise ValueError(name)

    def _kwok_load_config(self) -> Path:
        """kwok options for load tests: its default of 4 parallel pod stage plays caps pod transitions."""
        path = self.state / "kwok-load.yaml"
        path.write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
            "kind: KwokConfiguration\n"
            "options:\n"
            "  podPlayStageParallelism: 32\n"
            "  nodePlayStageParallelism: 8\n"
            "  nodeLeaseParallelism: 8\n"
        )
        return path

    def _start(self, name: str, info: ClusterInfo) -> int:
        env = dict(os.environ)
        kwok_home = self.state / "kwok-home"
        kwok_home.mkdir(exist_ok=True)
        env["KWOK_WORKDIR"] = str(kwok_home)  # so ~/.kwok/kwok.yaml never leaks in
        pid = spawn(self._command(name, info), self.logs / f"{name}.log", env=env, cwd=self.state)
        log(f"started {name} (pid {pid})")
        return pid

    def _wait_ready(self, name: str, info: ClusterInfo, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid = info.pids[name]
        p = info.ports
        checks: dict[str, tuple[str, ssl.SSLContext | None]] = {
            "etcd": (f"http://127.0.0.1:{p['etcd']}/health", None),
            "kube-apiserver": (f"{info.server}/readyz", self._ssl()),
        }
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        checks["kube-controller-manager"] = (f"https://127.0.0.1:{p['controller-manager']}/healthz", insecure)
        checks["kube-scheduler"] = (f"https://127.0.0.1:{p['scheduler']}/healthz", insecure)
        for component in netstack.NETWORK_COMPONENTS:
            if component in info.pids:
                checks[component] = (netstack.ready_url(component, p), None)
        last = ""
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited during start-up; last log lines:\n{tail}")
            if name == "kwok":
                # kwok has no health endpoint; staying up for a moment after loading its stages is its check.
                time.sleep(1.0)
                if pid_alive(pid):
                    return
                continue
            url, ctx = checks[name]
            code, body = self._get(url, ctx)
            if code == 200:
                return
            last = f"{code} {body[:200]}"
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout:.0f}s (last answer: {last})")

    # ---- down ---------------------------------------------------------------------------------
    def down(self, *, keep_state: bool = False) -> None:
        """Stop every process this cluster started (by pid), its real nodes and the host changes they
        made, and remove its state."""
        operatorproc.stop(self.state)
        info = self.read_info()
        if realnodes.existing(self.state):
            left = realnodes.stop_all(self.state)
            log("stopped the real nodes" + (f"; cgroups left in use: {', '.join(left)}" if left else ""))
        if info is not None:
            for name in reversed(components(info)):
                pid = info.pids.get(name)
                if pid and pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for name in reversed(components(info)):
                pid = info.pids.get(name)
                if pid:
                    stop_pid(pid, timeout=max(0.0, deadline - time.monotonic()))
            log("stopped " + ", ".join(f"{n} ({p})" for n, p in info.pids.items()))
            if "kube-proxy" in info.pids:
                subprocess.run(netstack.cleanup_command(Path(info.bin_dir)), capture_output=True, check=False)
        HostLedger(self.state).undo_all()
        if not keep_state:
            for sub in ("etcd", "kwok-home", "cluster.json", "kubeconfig", "realnodes", "net"):
                path = self.state / sub
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()

    def status(self) -> str:
        info = self.read_info()
        if info is None:
            return "no local cluster"
        lines = [f"server: {info.server}", f"kubeconfig: {info.kubeconfig}", f"kubernetes: {info.k8s_version}"]
        for name, pid in info.pids.items():
            lines.append(f"{name:<24} pid {pid:<8} {'running' if pid_alive(pid) else 'STOPPED'}")
        for index, node in enumerate(info.real_nodes):
            running = realnodes.RealNode(self.state, index).running()
            lines.append(f"{node:<24} {'':<12} {'running' if running else 'STOPPED'} (kubelet + containerd)")
        lines.append("healthy" if self.healthy(info) else "UNHEALTHY")
        return "\n".join(lines)
