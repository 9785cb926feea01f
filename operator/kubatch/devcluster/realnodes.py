"""Real nodes in the local cluster: a real kubelet with Debian's containerd, runc and the CNI bridge.

Node `realnode-<i>` is a kubelet (built from the same Kubernetes pin as the control plane) and a
containerd of its own (root, state and socket under `<state>/realnodes/realnode-<i>/`), registered
with the label `kubatch.dev/realnode: "true"` and the taint `kubatch.dev/realnode=true:NoSchedule`,
so only pods that ask for real containers land there. Its pods live on the bridge `rn<i>`
(10.244.<i>.0/24; the bridge's 10.244.<i>.1 is also the node IP, which must not be loopback); pods of
different nodes reach each other through the host's routing between bridges.

Settings that this machine kind needs (cgroup v1 hybrid, no CAP_SYS_RESOURCE): the kubelet with
`failCgroupV1: false`, the cgroupfs driver and its own cgroupRoot `/realnode-<i>`; containerd with
`restrict_oom_score_adj` and no AppArmor; the netns mounts under containerd's state (so `stop`
finds them). The host changes are recorded in the `host.HostLedger` and undone by `stop_all`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubatch.devcluster import netstack
from kubatch.devcluster.certs import issue_node_cert
from kubatch.devcluster.host import HostLedger
from kubatch.devcluster.procs import free_port, pid_alive, spawn, stop_pid

REALNODE_PREFIX = "realnode-"
REALNODE_LABEL = "kubatch.dev/realnode"
REALNODE_TAINT = {"key": REALNODE_LABEL, "value": "true", "effect": "NoSchedule"}
#: The pod toleration and node selector that put a pod on a real node.
REALNODE_TOLERATION = {"key": REALNODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
REALNODE_SELECTOR = {REALNODE_LABEL: "true"}
PAUSE_IMAGE = "localhost/pause:1"
#: The busybox image for jobs on real nodes. `localhost/busybox:latest` is there too, but the kubelet
#: always pulls a `:latest` image (there is no registry), so jobs name this tag of the same image.
BUSYBOX_TEST_IMAGE = "localhost/busybox:1"
IMAGE_ALIASES = {"localhost/busybox:latest": (BUSYBOX_TEST_IMAGE,)}
CNI_BIN_DIR = Path("/usr/lib/cni")
MAX_PODS = 60


def unsupported_reason() -> str | None:
    """Why real nodes cannot run on this machine, or None when they can."""
    if os.name != "posix" or not Path("/proc/mounts").exists():
        return "real nodes need Linux"
    if os.geteuid() != 0:
        return "real nodes need root (containerd, bridges, cgroups)"
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (run `make system-deps`)"
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN_DIR / plugin).exists():
            return f"the CNI plugin {CNI_BIN_DIR / plugin} is missing (run `make system-deps`)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system at /sys/fs/cgroup"
    return None


def node_name(index: int) -> str:
    return f"{REALNODE_PREFIX}{index}"


@dataclass
class RealNode:
    """One real node's files and processes."""

    state: Path
    index: int

    @property
    def name(self) -> str:
        return node_name(self.index)

    @property
    def dir(self) -> Path:
        return self.state / "realnodes" / self.name

    @property
    def ip(self) -> str:
        return netstack.node_ip(self.index)

    @property
    def bridge(self) -> str:
        return f"rn{self.index}"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.dir / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return all((pid := self._pid(p)) is not None and pid_alive(pid) for p in ("containerd", "kubelet"))

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "-a", str(self.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    # ---- start --------------------------------------------------------------------------------
    def start(self, *, server: str, pki: Path, images: list[Path], cluster_dns: str) -> None:
        """Start containerd (with `images` imported) and the kubelet; returns once the kubelet runs
        (`wait_ready` waits for the Node)."""
        ledger = HostLedger(self.state)
        ledger.save_sysctls()
        ledger.save_chains()
        ledger.mount_hugetlb()
        ledger.make_cgroup_root(self.name)
        ledger.add_bridge(self.bridge, f"{self.ip}/24")
        for sub in ("containerd/root", "containerd/state", "cni/net.d", "opt", "kubelet", "pod-logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_cni_config()
        self._start_containerd()
        for archive in images:
            self.load_image(archive)
        cert, key = issue_node_cert(pki, self.name, self.ip)
        kubeconfig = self._write_kubeconfig(server, pki / "ca.crt", cert, key)
        config = self._write_kubelet_config(pki / "ca.crt", cert, key, cluster_dns)
        kubelet = Path(_bin_dir(self.state)) / "kubelet"
        pid = spawn(
            [
                str(kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.dir / 'kubelet' / 'root'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.ip}",
                f"--node-labels={REALNODE_LABEL}=true",
                "--v=1",
            ],
            self.dir / "kubelet.log",
        )
        (self.dir / "kubelet.pid").write_text(str(pid))

    def _write_cni_config(self) -> None:
        conf = {
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": netstack.node_subnet(self.index)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (self.dir / "cni" / "net.d" / "10-realnode.conflist").write_text(json.dumps(conf, indent=2))

    def _start_containerd(self) -> None:
        cd = self.dir / "containerd"
        config = cd / "config.toml"
        config.write_text(
            f"""version = 2
root = "{cd / "root"}"
state = "{cd / "state"}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[debug]
  address = "{cd / "debug.sock"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc") or "/usr/bin/runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.dir / "cni" / "net.d"}"
    max_conf_num = 1
"""
        )
        pid = spawn(["containerd", "--config", str(config)], self.dir / "containerd.log")
        (self.dir / "containerd.pid").write_text(str(pid))
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            if not pid_alive(pid):
                tail = (self.dir / "containerd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"containerd of {self.name} exited during start-up:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"containerd of {self.name} not answering after 30s")
            time.sleep(0.1)

    def load_image(self, archive: Path) -> None:
        """Import an OCI archive into this node's containerd (the kubelet's `k8s.io` namespace), with
        the tags of `IMAGE_ALIASES`."""
        self.ctr("images", "import", "--no-unpack", str(archive), timeout=600)
        present = set(self.ctr("images", "ls", "-q").stdout.split())
        for ref, aliases in IMAGE_ALIASES.items():
            if ref in present:
                for alias in aliases:
                    self.ctr("images", "tag", "--force", ref, alias)

    def _write_kubeconfig(self, server: str, ca: Path, cert: Path, key: Path) -> Path:
        path = self.dir / "kubelet" / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
                    "users": [{"name": "node", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
                    "contexts": [{"name": "node", "context": {"cluster": "local", "user": "node"}}],
                    "current-context": "node",
                }
            )
        )
        return path

    def _write_kubelet_config(self, ca: Path, cert: Path, key: Path, cluster_dns: str) -> Path:
        sock = f"unix://{self.containerd_socket}"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.name}",
            "containerRuntimeEndpoint": sock,
            "imageServiceEndpoint": sock,
            "failSwapOn": False,
            "serializeImagePulls": False,
            "address": self.ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.pod_logs),
            "registerNode": True,
            "registerWithTaints": [REALNODE_TAINT],
            "maxPods": MAX_PODS,
            "podCIDR": netstack.node_subnet(self.index),
            "resolvConf": "",
            "clusterDNS": [cluster_dns],
            "clusterDomain": netstack.CLUSTER_DOMAIN,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "localStorageCapacityIsolation": True,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "5s",
        }
        path = self.dir / "kubelet" / "config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def wait_ready(self, kubectl: str, env: dict[str, str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(
                [kubectl, "get", "node", self.name, "-o", "json"], capture_output=True, text=True, env=env
            )
            if out.returncode == 0:
                conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                    return
            pid = self._pid("kubelet")
            if pid is None or not pid_alive(pid):
                tail = (self.dir / "kubelet.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the kubelet of {self.name} exited:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not Ready after {timeout:.0f}s; see {self.dir / 'kubelet.log'}")
            time.sleep(0.5)

    # ---- stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the kubelet, every container and containerd; unmount what they mounted. The node's
        bridge, cgroups and tunables are the ledger's (`stop_all`)."""
        kubelet = self._pid("kubelet")
        if kubelet is not None:
            stop_pid(kubelet, timeout=10)
        containerd = self._pid("containerd")
        if containerd is not None and pid_alive(containerd):
            tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.ctr("tasks", "delete", "-f", container, check=False)
                self.ctr("containers", "delete", container, check=False)
            stop_pid(containerd, timeout=10)
        self._kill_shims()
        for name in ("kubelet", "containerd"):
            (self.dir / f"{name}.pid").unlink(missing_ok=True)
        HostLedger(self.state).unmount_all_under(self.dir)

    def _kill_shims(self) -> None:
        """Shims outlive containerd: kill the ones serving this node's socket."""
        needle = str(self.containerd_socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline and needle in cmdline:
                    os.kill(int(proc.name), signal.SIGKILL)


def _bin_dir(state: Path) -> str:
    return str(json.loads((state / "cluster.json").read_text())["bin_dir"])


def existing(state: Path) -> list[RealNode]:
    """The real nodes that have files under this state directory (running or not)."""
    root = state / "realnodes"
    if not root.is_dir():
        return []
    nodes = []
    for d in sorted(root.iterdir()):
        suffix = d.name.removeprefix(REALNODE_PREFIX)
        if d.name.startswith(REALNODE_PREFIX) and suffix.isdigit():
            nodes.append(RealNode(state, int(suffix)))
    return nodes


def stop_all(state: Path) -> list[str]:
    """Stop every real node of this state directory and undo the host changes; returns what was left
    (cgroup directories still in use)."""
    for node in existing(state):
        node.stop()
        shutil.rmtree(node.dir, ignore_errors=True)
    return HostLedger(state).undo_all()
