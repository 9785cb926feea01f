"""Cluster networking for real workloads: the host address pods reach, kube-proxy and cluster DNS.

With real nodes the control plane cannot stay on 127.0.0.1: pods reach the host only through their
bridge's gateway. So the API server and CoreDNS listen on `HOST_IP`, held by a bridge of its own
(`kubatch0`, no ports, reachable from this machine and its pods only), and the API server advertises
it, so the `kubernetes` Service (`KUBERNETES_SERVICE_IP`) leads there. kube-proxy (iptables mode,
one for the host: every real node shares this network namespace) makes Service IPs work for pods and
the host; it masquerades all Service traffic, because pods of one node share a bridge and replies
from a backend on the same bridge would otherwise bypass the reverse NAT. CoreDNS (a host process)
answers `cluster.local` from the API server for the kubelets' `clusterDNS`; it forwards nothing
(there is no network beyond this machine).

Addresses: pods 10.244.<i>.0/24 on node i's bridge `rn<i>` (gateway and node IP 10.244.<i>.1),
Services 10.96.0.0/16, the host 10.244.255.1.
"""

from __future__ import annotations

import json
from pathlib import Path

HOST_BRIDGE = "kubatch0"
HOST_IP = "10.244.255.1"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"

NETWORK_COMPONENTS = ("coredns", "kube-proxy")


def node_subnet(index: int) -> str:
    return f"10.244.{index}.0/24"


def node_ip(index: int) -> str:
    return f"10.244.{index}.1"


def write_corefile(path: Path, *, kubeconfig: str, ready_port: int, health_port: int) -> Path:
    path.write_text(
        f""".:53 {{
    bind {HOST_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} kubatch-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""
    )
    return path


def write_kube_proxy_config(path: Path, *, kubeconfig: str, healthz_port: int, metrics_port: int) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig, "qps": 50, "burst": 100},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "hostnameOverride": "realnode-0",
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        # 0 = leave the kernel's conntrack tunables alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "nodePortAddresses": ["127.0.0.1/32"],
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def command(name: str, bin_dir: Path, state: Path, kubeconfig: str, ports: dict[str, int]) -> list[str]:
    """The command line of a network component (its config written under `<state>/net/`)."""
    net = state / "net"
    net.mkdir(parents=True, exist_ok=True)
    if name == "coredns":
        corefile = write_corefile(
            net / "Corefile",
            kubeconfig=kubeconfig,
            ready_port=ports["coredns-ready"],
            health_port=ports["coredns-health"],
        )
        return [str(bin_dir / "coredns"), "-conf", str(corefile)]
    if name == "kube-proxy":
        config = write_kube_proxy_config(
            net / "kube-proxy.json",
            kubeconfig=kubeconfig,
            healthz_port=ports["kube-proxy-healthz"],
            metrics_port=ports["kube-proxy-metrics"],
        )
        return [str(bin_dir / "kube-proxy"), f"--config={config}", "--v=1"]
    raise ValueError(name)


def ready_url(name: str, ports: dict[str, int]) -> str:
    if name == "coredns":
        return f"http://127.0.0.1:{ports['coredns-ready']}/ready"
    if name == "kube-proxy":
        return f"http://127.0.0.1:{ports['kube-proxy-healthz']}/healthz"
    raise ValueError(name)


def port_names() -> tuple[str, ...]:
    return ("coredns-ready", "coredns-health", "kube-proxy-healthz", "kube-proxy-metrics")


def cleanup_command(bin_dir: Path) -> list[str]:
    """kube-proxy's own removal of every rule it made."""
    return [str(bin_dir / "kube-proxy"), "--cleanup"]
