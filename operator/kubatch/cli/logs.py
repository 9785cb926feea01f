"""`kubatch logs NAME[:INDEX|#NODE]`: the logs of an attempt's pod."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import click

from kubatch.cli.children import JobAddress, attempt_pod, parse_address
from kubatch.cli.client import CliError, Target, connection_options, get_object, get_pod, pod_path
from kubatch.cluster.client import Kube
from kubatch.core.podspec import pod_name as first_pod_name

MAIN_CONTAINER = "main"
POLL_SECONDS = 0.25
JSON = dict[str, Any]


def pick_container(pod: Mapping[str, Any], wanted: str | None) -> str:
    """``wanted``, else ``main`` when the pod has it, else its first container."""
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        if wanted not in names:
            raise CliError(f"pod has no container {wanted!r} (containers: {', '.join(names)})")
        return wanted
    return MAIN_CONTAINER if MAIN_CONTAINER in names or not names else names[0]


async def stream_log(kube: Kube, path: str, params: Mapping[str, str]) -> None:
    """Copy the log (followed or not) to stdout as it arrives."""
    async with kube.session.get(
        kube.creds.server + path,
        params=dict(params),
        headers={**kube._headers(), "Accept": "*/*"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
    ) as resp:
        if resp.status >= 300:
            text = await resp.text()
            try:
                message = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                message = text
            raise CliError(f"cannot read logs: {message}")
        async for chunk in resp.content.iter_any():
            click.echo(chunk, nl=False)


def container_started(pod: Mapping[str, Any], container: str) -> bool:
    """Whether ``container`` of ``pod`` runs or ran (its log can be read)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for c in statuses:
        if c.get("name") == container:
            state = c.get("state") or {}
            return bool(state.get("running") or state.get("terminated"))
    return False


async def locate(
    kube: Kube, namespace: str, addr: JobAddress, attempt: int | None, container: str | None, wait: float
) -> tuple[str, int, JSON]:
    """The attempt's pod (name, attempt number, object). With ``wait`` > 0, as `kubectl logs -f`
    with ``--pod-running-timeout``: wait that long for the pod to exist and its container to start
    (a job still SUBMITTED, RUNNABLE or STARTING has none yet)."""
    deadline = time.monotonic() + wait
    while True:
        job = await get_object(kube, "batchjobs", addr.name, namespace)
        status = str((job.get("status") or {}).get("status") or "SUBMITTED")
        try:
            pod_name, n = attempt_pod(job, addr, attempt)
        except ValueError as e:
            if not wait:
                raise CliError(str(e)) from e
            # Not started as far as the (possibly deferred) status says: its first attempt's pod.
            name = str((job.get("metadata") or {}).get("name", addr.name))
            pod_name, n = first_pod_name(name, 1, array_index=addr.index, node_index=addr.node), 1
        pod = await get_pod(kube, namespace, pod_name)
        if pod is not None and (not wait or container_started(pod, pick_container(pod, container))):
            return pod_name, n, pod
        finished = status in ("SUCCEEDED", "FAILED")
        if pod is None and (not wait or finished or time.monotonic() > deadline):
            raise CliError(
                f'pod "{pod_name}" of {addr} (attempt {n}) does not exist: it was deleted '
                "(finished pods may be cleaned up) or not created yet"
            )
        if time.monotonic() > deadline:
            raise CliError(f"{addr} (attempt {n}): its container did not start within {wait:.0f}s (job {status})")
        await asyncio.sleep(POLL_SECONDS)


@click.command("logs")
@connection_options
@click.argument("address", metavar="NAME|NAME:INDEX|NAME#NODE")
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: the latest).")
@click.option(
    "-f", "--follow", is_flag=True, help="Stream new log lines until the container stops (waits for it to start)."
)
@click.option(
    "--pod-running-timeout",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="With --follow: seconds to wait for the attempt's container to start.",
)
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("-c", "--container", help="Container of the pod (default: main).")
def logs(
    kubeconfig: str | None,
    namespace: str | None,
    address: str,
    attempt: int | None,
    follow: bool,
    pod_running_timeout: float,
    tail: int | None,
    container: str | None,
) -> None:
    """Print the logs of a job's attempt (pods of finished jobs may have been deleted). With --follow,
    wait for a job that has not started yet, then stream until its container stops."""
    try:
        addr = parse_address(address)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="ADDRESS") from e
    target = Target.resolve(kubeconfig, namespace)

    async def run(kube: Kube) -> None:
        wait = pod_running_timeout if follow else 0.0
        pod_name, _, pod = await locate(kube, target.namespace, addr, attempt, container, wait)
        params = {"container": pick_container(pod, container)}
        if follow:
            params["follow"] = "true"
        if tail is not None:
            params["tailLines"] = str(tail)
        await stream_log(kube, pod_path(target.namespace, pod_name, "log"), params)

    try:
        target.run(run)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
