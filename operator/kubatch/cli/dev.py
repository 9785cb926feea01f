"""`kubatch dev`: helpers for the local development cluster and the demo."""

from __future__ import annotations

import json
import subprocess

import click

from kubatch.devcluster.cluster import LocalCluster
from kubatch.devcluster.nodes import kwok_node

DEMO_NODES = (
    ("demo-cpu-0", 8, "32Gi", 0),
    ("demo-cpu-1", 8, "32Gi", 0),
    ("demo-gpu-0", 8, "61Gi", 1),
)


@click.group()
def dev() -> None:
    """Local development cluster helpers."""


@dev.command("up")
def up() -> None:
    """Start the local cluster (or reuse a healthy one) and print its kubeconfig path."""
    click.echo(LocalCluster().up().kubeconfig)


@dev.command("down")
def down() -> None:
    """Stop the local cluster and remove its state."""
    LocalCluster().down()


@dev.command("demo")
@click.option("--kubeconfig", type=click.Path(), default=None, help="ignored: the demo uses the local cluster")
def demo(kubeconfig: str | None) -> None:
    """Bring the local cluster up, add simulated nodes, and show them."""
    info = LocalCluster().up()
    for name, cpu, memory, gpus in DEMO_NODES:
        manifest = kwok_node(name, cpu=cpu, memory=memory, gpus=gpus, labels={"kubatch.dev/demo": "true"})
        subprocess.run(
            [info.kubectl, "apply", "-f", "-"],
            input=json.dumps(manifest),
            text=True,
            check=True,
            env=info.env(),
            capture_output=True,
        )
    subprocess.run(
        [info.kubectl, "wait", "--for=condition=Ready", "node", "-l", "kubatch.dev/demo=true", "--timeout=60s"],
        check=True,
        env=info.env(),
        capture_output=True,
    )
    click.echo(f"Local cluster {info.server} (Kubernetes {info.k8s_version}); kubeconfig {info.kubeconfig}\n")
    subprocess.run([info.kubectl, "get", "nodes", "-o", "wide"], check=True, env=info.env())
