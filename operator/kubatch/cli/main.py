"""Entry point of the `kubatch` command."""

from __future__ import annotations

import click

from kubatch import __version__
from kubatch.cli.api import api
from kubatch.cli.client import GlobalOptions
from kubatch.cli.describe import describe
from kubatch.cli.dev import dev
from kubatch.cli.jobs import cancel, list_jobs, terminate
from kubatch.cli.logs import logs
from kubatch.cli.operator_cmd import operator_cmd
from kubatch.cli.queues import queue
from kubatch.cli.schedules import schedules
from kubatch.cli.submit import submit
from kubatch.cli.watch import watch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubatch")
@click.option(
    "--kubeconfig",
    default=None,
    type=click.Path(dir_okay=False),
    help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
)
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig context's, or default).")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: str | None, namespace: str | None) -> None:
    """kubatch: AWS Batch semantics on Kubernetes."""
    ctx.obj = GlobalOptions(kubeconfig=kubeconfig, namespace=namespace)


for command in (submit, list_jobs, describe, cancel, terminate, logs, queue, watch, schedules):
    cli.add_command(command)
cli.add_command(dev)
cli.add_command(operator_cmd)
cli.add_command(api)


def main() -> None:
    cli()
