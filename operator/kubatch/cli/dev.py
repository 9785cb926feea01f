"""`kubatch dev`: helpers for the local development cluster and the demo."""

from __future__ import annotations

import click

from kubatch.devcluster.cluster import LocalCluster


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
@click.option("--timeout", type=float, default=300.0, show_default=True, help="seconds to follow the jobs")
def demo(kubeconfig: str | None, timeout: float) -> None:
    """Local cluster + operator + a realistic mix of jobs, shown live, with a summary."""
    from kubatch.cli.demo import run_demo
    from kubatch.devcluster.cluster import find_repo

    raise SystemExit(run_demo(find_repo(), timeout=timeout))
