"""Entry point of the `kubatch` command."""

from __future__ import annotations

import click

from kubatch import __version__
from kubatch.cli.dev import dev


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubatch")
def cli() -> None:
    """kubatch: AWS Batch semantics on Kubernetes."""


cli.add_command(dev)


def main() -> None:
    cli()
