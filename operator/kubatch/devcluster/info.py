"""What `cluster.json` records about a running local cluster, and the environment for tools pointed at it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClusterInfo:
    """What `cluster.json` records about a running local cluster.

    `host_ip` is the address the API server (and cluster DNS) listen on: 127.0.0.1, or, when the
    cluster has real nodes, the host bridge's address that pods can reach (see `netstack`).
    """

    bin_dir: str
    state_dir: str
    kubeconfig: str
    server: str
    k8s_version: str
    load_profile: bool
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    host_ip: str = "127.0.0.1"
    real_nodes: list[str] = field(default_factory=list)

    @property
    def kubectl(self) -> str:
        return str(Path(self.bin_dir) / "kubectl")

    @property
    def helm(self) -> str:
        return str(Path(self.bin_dir) / "helm")

    def env(self) -> dict[str, str]:
        """Environment for tools pointed at this cluster (KUBECONFIG, PATH with our binaries first)."""
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env
