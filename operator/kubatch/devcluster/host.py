"""The host changes real nodes need, recorded so that `down` undoes exactly them.

Real nodes share this machine's kernel: bridges, cgroup directories, a cgroup mount, packet
filter chains and kernel tunables (the kubelet rewrites `vm.overcommit_memory`, `kernel.panic` and more; it has no
warn-only mode). Each change is written to a ledger under `<state>/host/` before it is made, so an
interrupted `up` or a crashed test run is still undone by the next `down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

from kubatch.devcluster.procs import pid_alive

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SYS = Path("/proc/sys")

#: Tunables that the kubelet and kube-proxy set, and the CNI bridge plugin (ip_forward).
TOUCHED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def bridge_owner(name: str) -> Path | None:
    """The state directory of the local cluster that made bridge `name` (its alias), if any."""
    out = _ip("-o", "link", "show", name, check=False).stdout
    if not out:
        return None
    words = out.split()
    if "alias" in words:
        return Path(words[words.index("alias") + 1])
    return Path("/unknown")  # made without an alias: some other tool's bridge


def _cluster_runs(state: Path) -> bool:
    """Whether a process recorded in `<state>/cluster.json` is alive (the owner of a bridge runs)."""
    try:
        pids = json.loads((state / "cluster.json").read_text()).get("pids", {})
    except (OSError, ValueError):
        return state == Path("/unknown")
    return any(pid_alive(int(pid)) for pid in pids.values())


def _chains() -> set[str]:
    """Every iptables chain of every table, as `<tool> <table> <chain>` (IPv4 and IPv6)."""
    found = set()
    for tool in ("iptables", "ip6tables"):
        out = subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=False).stdout
        table = ""
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                found.add(f"{tool} {table} {line[1:].split()[0]}")
    return found


def _remove_chain(tool: str, table: str, chain: str) -> None:
    """Remove the rules that jump to `chain`, then the chain itself."""
    out = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True, check=False).stdout
    for rule in out.splitlines():
        words = rule.split()
        if words[:1] == ["-A"] and "-j" in words and words[words.index("-j") + 1] == chain:
            subprocess.run([tool, "-t", table, "-D", *words[1:]], capture_output=True, check=False)
    subprocess.run([tool, "-t", table, "-F", chain], capture_output=True, check=False)
    subprocess.run([tool, "-t", table, "-X", chain], capture_output=True, check=False)


def _v1_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (the kubelet's cgroupRoot must exist in each)."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup" and parts[1].startswith(str(CGROUP_ROOT)):
            found.append(Path(parts[1]))
    return found


class HostLedger:
    """The record of host changes for one local cluster's state directory."""

    def __init__(self, state: Path) -> None:
        self.dir = state / "host"

    def _lines(self, name: str) -> list[str]:
        path = self.dir / name
        return path.read_text().splitlines() if path.exists() else []

    def _append(self, name: str, line: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if line not in self._lines(name):
            with open(self.dir / name, "a") as f:
                f.write(line + "\n")

    # ---- kernel tunables ----------------------------------------------------------------------
    def save_sysctls(self) -> None:
        """Remember the tunables' values before anything of ours runs (only the first time)."""
        if (self.dir / "sysctls").exists():
            return
        for key in TOUCHED_SYSCTLS:
            with contextlib.suppress(OSError):
                self._append("sysctls", f"{key}={(PROC_SYS / key).read_text().strip()}")

    def restore_sysctls(self) -> None:
        for line in self._lines("sysctls"):
            key, _, value = line.partition("=")
            with contextlib.suppress(OSError):
                if (PROC_SYS / key).read_text().strip() != value:
                    (PROC_SYS / key).write_text(value)
        (self.dir / "sysctls").unlink(missing_ok=True)

    # ---- packet filter chains ------------------------------------------------------------------
    def save_chains(self) -> None:
        """Remember the iptables chains that exist before the kubelets and kube-proxy add theirs
        (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-SERVICES, ...), only the first time."""
        if (self.dir / "chains").exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "chains").write_text("".join(f"{c}\n" for c in sorted(_chains())))

    def remove_new_chains(self) -> None:
        """Remove the KUBE-* chains that were not there before (kube-proxy's own cleanup runs first)."""
        if not (self.dir / "chains").exists():
            return
        before = set(self._lines("chains"))
        for entry in sorted(_chains() - before):
            tool, table, chain = entry.split()
            if chain.startswith("KUBE-"):
                _remove_chain(tool, table, chain)
        (self.dir / "chains").unlink(missing_ok=True)

    # ---- bridges ------------------------------------------------------------------------------
    def add_bridge(self, name: str, address: str) -> None:
        """A Linux bridge holding `address` (CIDR form), up, labelled (its alias) with this state
        directory. A bridge left by a cluster that no longer runs (its processes were ended without a
        `down`) is adopted: recorded here, so this cluster's `down` removes it."""
        if _ip("link", "show", name, check=False).returncode != 0:
            self._append("bridges", name)
            _ip("link", "add", name, "type", "bridge")
        elif self.foreign_bridge(name):
            raise RuntimeError(f"bridge {name} belongs to the running local cluster at {bridge_owner(name)}")
        else:
            self._append("bridges", name)
        _ip("link", "set", name, "alias", str(self.state))
        _ip("addr", "replace", address, "dev", name)
        _ip("link", "set", name, "up")

    @property
    def state(self) -> Path:
        return self.dir.parent

    def foreign_bridge(self, name: str) -> bool:
        """Whether bridge `name` exists and belongs to another local cluster that still runs."""
        owner = bridge_owner(name)
        if owner is None or owner == self.state:
            return False
        return _cluster_runs(owner)

    def remove_bridges(self) -> None:
        for name in self._lines("bridges"):
            _ip("link", "del", name, check=False)
        (self.dir / "bridges").unlink(missing_ok=True)

    # ---- cgroups ------------------------------------------------------------------------------
    def mount_hugetlb(self) -> None:
        """Mount the hugetlb v1 hierarchy when the kernel has it unmounted: without it runc cannot
        place the container's cgroups and the shim gets no OOM events (OOMKilled reads as Error)."""
        target = CGROUP_ROOT / "hugetlb"
        mounted = any(h == target for h in _v1_hierarchies())
        known = "hugetlb" in Path("/proc/cgroups").read_text()
        if mounted or not known:
            return
        self._append("mounts", str(target))
        target.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)], check=True)

    def make_cgroup_root(self, name: str) -> None:
        """`/<name>` in every v1 hierarchy (cpuset's cpus and mems copied from its parent)."""
        self._append("cgroups", name)
        for hierarchy in _v1_hierarchies():
            path = hierarchy / name
            path.mkdir(exist_ok=True)
            if (hierarchy / "cpuset.cpus").exists():
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / knob).read_text().strip():
                        (path / knob).write_text((hierarchy / knob).read_text())

    def remove_cgroup_roots(self) -> list[str]:
        """Remove our cgroup trees (deepest first), in the v1 hierarchies and in the unified one where
        the kubelet also makes them; returns the directories that could not go."""
        left = []
        unified = [CGROUP_ROOT / "unified"] if (CGROUP_ROOT / "unified").is_dir() else []
        for name in self._lines("cgroups"):
            for hierarchy in [*_v1_hierarchies(), *unified]:
                root = hierarchy / name
                if not root.exists():
                    continue
                for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(dirpath)
                if root.exists():
                    left.append(str(root))
        if not left:
            (self.dir / "cgroups").unlink(missing_ok=True)
        return left

    def unmount_all_under(self, prefix: Path) -> None:
        """Lazily unmount everything mounted under `prefix` (pod volumes, netns files, overlays)."""
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(str(prefix))), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, check=False)

    def undo_mounts(self) -> None:
        for target in reversed(self._lines("mounts")):
            if subprocess.run(["umount", target], capture_output=True, check=False).returncode == 0:
                with contextlib.suppress(OSError):
                    Path(target).rmdir()
        (self.dir / "mounts").unlink(missing_ok=True)

    def undo_all(self) -> list[str]:
        """Undo every recorded change; returns what could not be undone (cgroup directories in use)."""
        left = self.remove_cgroup_roots()
        self.undo_mounts()
        self.remove_new_chains()
        self.remove_bridges()
        self.restore_sysctls()
        return left
