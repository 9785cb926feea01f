"""Command line for the local cluster: `python -m kubatch.devcluster up [--real-nodes N]|down|status|env|node`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from kubatch.devcluster.cluster import LocalCluster, build_binaries, find_repo
from kubatch.devcluster.nodes import kwok_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubatch.devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the local cluster (reuses a healthy one)")
    up.add_argument("--load", action="store_true", help="raise API server inflight limits and client QPS")
    up.add_argument(
        "--real-nodes",
        type=int,
        default=int(os.environ.get("REAL_NODES") or 0),
        metavar="N",
        help="also start N real nodes (kubelet + containerd; needs root) with kube-proxy and cluster DNS",
    )
    sub.add_parser("down", help="stop the local cluster and remove its state")
    deploy = sub.add_parser("deploy", help="build the operator image and helm-install it on the real nodes")
    deploy.add_argument("--replicas", type=int, default=2)
    sub.add_parser("status", help="show the local cluster's processes")
    sub.add_parser("real-nodes-check", help="exit 0 when this machine can run real nodes, else print why and exit 1")
    sub.add_parser("build", help="build (or find cached) control plane binaries and print their directory")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH")
    node = sub.add_parser("node", help="create a kwok node")
    node.add_argument("name")
    node.add_argument("--cpu", default="4")
    node.add_argument("--memory", default="16Gi")
    node.add_argument("--gpus", type=int, default=0)
    node.add_argument("--label", action="append", default=[], help="key=value")
    node.add_argument("--taint", action="append", default=[], help="key=value:Effect")
    args = parser.parse_args(argv)

    cluster = LocalCluster()
    if args.cmd == "up":
        print(cluster.up(load_profile=args.load, real_nodes=args.real_nodes).kubeconfig)
    elif args.cmd == "down":
        cluster.down()
    elif args.cmd == "deploy":
        from kubatch.devcluster.deploy import deploy as deploy_local

        info = cluster.read_info()
        if info is None:
            print("no local cluster: run `make cluster-up REAL_NODES=2`", file=sys.stderr)
            return 1
        done = deploy_local(info, cluster.repo, replicas=args.replicas)
        print(f"kubatch {done.image} running in namespace {done.namespace} (release {done.release})")
    elif args.cmd == "real-nodes-check":
        from kubatch.devcluster.realnodes import unsupported_reason

        reason = unsupported_reason()
        print(reason or "real nodes can run here")
        return 1 if reason else 0
    elif args.cmd == "status":
        print(cluster.status())
    elif args.cmd == "build":
        print(build_binaries(find_repo()))
    elif args.cmd == "env":
        current = cluster.read_info()
        if current is None:
            print("no local cluster: run `make cluster-up`", file=sys.stderr)
            return 1
        print(f"export KUBECONFIG={current.kubeconfig}\nexport PATH={current.bin_dir}:$PATH")
    elif args.cmd == "node":
        info = cluster.read_info()
        if info is None:
            print("no local cluster: run `make cluster-up`", file=sys.stderr)
            return 1
        labels = dict(kv.split("=", 1) for kv in args.label)
        taints = []
        for t in args.taint:
            kv, effect = t.rsplit(":", 1)
            key, _, value = kv.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
        manifest = kwok_node(args.name, cpu=args.cpu, memory=args.memory, gpus=args.gpus, labels=labels, taints=taints)
        subprocess.run(
            [info.kubectl, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True, env=info.env()
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
