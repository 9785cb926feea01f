"""`kubatch submit`: create a BatchJob, as `aws batch submit-job`."""

from __future__ import annotations

import shlex

import click

from kubatch.cli.client import JSON, Target, connection_options, output_option, resource_path
from kubatch.cli.manifest import build_batchjob, parse_dependency, parse_pairs
from kubatch.cli.render import dump
from kubatch.cluster.client import Kube
from kubatch.core.jobnames import job_name as job_name_of


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    try:
        return parse_pairs(items, flag)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=flag) from e


@click.command("submit")
@connection_options
@click.option(
    "--job-name",
    help="Job name: up to 128 letters, digits, '-' and '_' (default: generated from the definition's name). "
    "A name that cannot be a Kubernetes name (upper case, '_', over 63 characters) is kept in spec.jobName "
    "and the BatchJob is named after it (lower case, '-', a short hash).",
)
@click.option("--job-queue", required=True, help="JobQueue to submit to.")
@click.option("--job-definition", required=True, help="JobDefinition: NAME (latest ACTIVE revision) or NAME:REV.")
@click.option("--parameters", "parameters", multiple=True, metavar="K=V", help="Ref:: parameter (repeatable).")
@click.option("--array-size", type=int, help="Run as an array job of N children (2-10000).")
@click.option("--depends-on", multiple=True, metavar="NAME[:N_TO_N]", help="Wait for this job to succeed (repeatable).")
@click.option("--depends-on-sequential", is_flag=True, help="Array children run one after another (SEQUENTIAL).")
@click.option("--command", "command_line", metavar="STRING", help="Container command, split like a shell would.")
@click.option("--command-arg", multiple=True, metavar="ARG", help="Container command, one argument each (repeatable).")
@click.option("--env", multiple=True, metavar="K=V", help="Container environment variable (repeatable).")
@click.option("--vcpus", help="vCPUs (fractions allowed, e.g. 0.5).")
@click.option("--memory", type=click.IntRange(min=1), help="Memory in MiB.")
@click.option("--gpus", type=click.IntRange(min=0), help="Number of GPUs.")
@click.option("--timeout", type=int, metavar="SECONDS", help="attemptDurationSeconds (at least 60).")
@click.option("--retries", type=int, metavar="N", help="retryStrategy.attempts (1-10).")
@click.option("--share-identifier", help="Fair-share identifier.")
@click.option("--scheduling-priority", type=int, help="schedulingPriorityOverride (0-9999).")
@click.option("--tag", multiple=True, metavar="K=V", help="Job tag (repeatable).")
@click.option("--propagate-tags/--no-propagate-tags", default=None, help="Copy tags onto the job's pods.")
@click.option("--annotation", multiple=True, metavar="K=V", help="Pod annotation, e.g. sim.kubatch.dev/* (repeatable).")
@click.option("--label", multiple=True, metavar="K=V", help="Pod label (repeatable).")
@click.option("--num-nodes", type=int, help="Nodes of a multi-node job (nodeOverrides.numNodes).")
@click.option("--dry-run", is_flag=True, help="Print the manifest instead of creating it.")
@output_option("table", "json", "yaml")
def submit(
    kubeconfig: str | None,
    namespace: str | None,
    job_name: str | None,
    job_queue: str,
    job_definition: str,
    parameters: tuple[str, ...],
    array_size: int | None,
    depends_on: tuple[str, ...],
    depends_on_sequential: bool,
    command_line: str | None,
    command_arg: tuple[str, ...],
    env: tuple[str, ...],
    vcpus: str | None,
    memory: int | None,
    gpus: int | None,
    timeout: int | None,
    retries: int | None,
    share_identifier: str | None,
    scheduling_priority: int | None,
    tag: tuple[str, ...],
    propagate_tags: bool | None,
    annotation: tuple[str, ...],
    label: tuple[str, ...],
    num_nodes: int | None,
    dry_run: bool,
    output: str,
) -> None:
    """Submit a job: create a BatchJob from a job definition, with overrides.

    Prints the job's name and jobId, and the BatchJob's name when it differs from the job name
    (-o json|yaml for the created object)."""
    if command_line is not None and command_arg:
        raise click.UsageError("use either --command or --command-arg, not both")
    try:
        command = shlex.split(command_line) if command_line is not None else list(command_arg) or None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--command") from e
    try:
        deps = [parse_dependency(d) for d in depends_on]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--depends-on") from e
    target = Target.resolve(kubeconfig, namespace)
    try:
        manifest = build_batchjob(
            job_definition=job_definition,
            job_queue=job_queue,
            job_name=job_name,
            namespace=target.namespace,
            parameters=_pairs(parameters, "--parameters"),
            array_size=array_size,
            depends_on=deps,
            depends_on_sequential=depends_on_sequential,
            command=command,
            env=_pairs(env, "--env"),
            vcpus=vcpus,
            memory=memory,
            gpus=gpus,
            timeout=timeout,
            retries=retries,
            share_identifier=share_identifier,
            scheduling_priority=scheduling_priority,
            tags=_pairs(tag, "--tag"),
            annotations=_pairs(annotation, "--annotation"),
            labels=_pairs(label, "--label"),
            num_nodes=num_nodes,
            propagate_tags=propagate_tags,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if dry_run:
        click.echo(dump(manifest, "json" if output == "json" else "yaml"))
        return

    async def create(kube: Kube) -> JSON:
        return await kube.create(resource_path("batchjobs", target.namespace), manifest)

    created = target.run(create)
    if output != "table":
        click.echo(dump(created, output))
        return
    meta = created.get("metadata") or {}
    lines = [f"jobName: {job_name_of(created)}", f"jobId: {meta.get('uid')}"]
    if (created.get("spec") or {}).get("jobName"):
        lines.append(f"name: {meta.get('name')}")  # the BatchJob's name, for kubectl and the other commands
    click.echo("\n".join(lines))
