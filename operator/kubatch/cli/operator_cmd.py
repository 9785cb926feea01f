"""`kubatch operator`: run the operator in the foreground (also `python -m kubatch`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import click

#: (generation 0 allocations, gen 1 per gen 0, gen 2 per gen 1) for the operator process.
GC_THRESHOLDS = (100_000, 50, 100)


@click.command("operator")
@click.option("--kubeconfig", type=click.Path(), default=None, help="kubeconfig (default: $KUBECONFIG or in-cluster)")
@click.option("--lease-namespace", default=None, help="namespace of the leader-election Lease")
@click.option("--metrics-port", type=int, default=None, help="port of /metrics, /healthz, /readyz (default 8080)")
@click.option("--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
@click.option("--verbose", "-v", is_flag=True, help="debug logging")
def operator_cmd(
    kubeconfig: str | None, lease_namespace: str | None, metrics_port: int | None, liveness: str | None, verbose: bool
) -> None:
    """Run the kubatch operator against the current cluster."""
    import kopf

    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    if lease_namespace:
        os.environ["KUBATCH_LEASE_NAMESPACE"] = lease_namespace
    if metrics_port is not None:
        os.environ["KUBATCH_METRICS_PORT"] = str(metrics_port)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("kopf.objects", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import kubatch.controllers.operator  # noqa: F401 - registers the handlers

    # The view holds every job and pod as plain dicts (millions of objects at 100,000 jobs), and a
    # cycle allocates a tuple per queued job: with the default thresholds the cyclic GC re-scans
    # that heap so often that it doubled the cost of a cycle. The objects are acyclic JSON, so
    # collecting young cycles less often costs little memory.
    gc.set_threshold(*GC_THRESHOLDS)

    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=True,
            liveness_endpoint=liveness,
        )
    )
