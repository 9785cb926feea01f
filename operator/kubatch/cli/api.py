"""`kubatch api`: the AWS Batch API server and its access keys.

``kubatch api serve --listen HOST:PORT`` serves the API over TLS: the certificate in ``--cert-dir``
(``tls.crt``, ``tls.key``; made there, self-signed, when it has none), else a self-signed one made
at start; ``--insecure-http`` serves plain HTTP, and only on a loopback address (tests, a local
try-out). The server acts with ``--kubeconfig`` (or its in-cluster ServiceAccount), which needs to
read the key Secrets, impersonate the keys' identities, read JobQueues and label BatchJobs.
``--ce-provisioner`` and ``--ce-defaults FILE`` say what CreateComputeEnvironment puts into a
compute environment beyond AWS's request (``kubatch.awsapi.environments``).

``kubatch api keys create --namespace NS (--user NAME | --service-account [NS/]NAME)`` prints
exactly two lines, ``AWS_ACCESS_KEY_ID=...`` and ``AWS_SECRET_ACCESS_KEY=...`` (ready for ``export``
or an env file); ``list`` shows the keys without their secrets; ``delete`` removes one; ``rotate``
replaces one by a new key of the same namespace and identity (printed like ``create``) and deletes
the old one. Keys live in ``--keys-namespace`` (``$KUBATCH_API_KEYS_NAMESPACE``, else
``$KUBATCH_NAMESPACE``, else ``kubatch-system``), where the server reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
import yaml

from kubatch.awsapi.environments import PROVISIONERS, EnvironmentDefaults
from kubatch.awsapi.keys import AccessKey, Identity, service_account
from kubatch.awsapi.keystore import DEFAULT_KEYS_NAMESPACE, KeyStore
from kubatch.awsapi.server import DEFAULT_ACCOUNT, DEFAULT_REGION, ApiConfig
from kubatch.cli.client import CliError, Target
from kubatch.cli.render import age, table
from kubatch.cluster.client import Kube

T = TypeVar("T")


def keys_namespace_default() -> str:
    return os.environ.get("KUBATCH_API_KEYS_NAMESPACE") or os.environ.get("KUBATCH_NAMESPACE") or DEFAULT_KEYS_NAMESPACE


@click.group("api")
def api() -> None:
    """The AWS Batch API: point aws-cli or boto3 at kubatch (docs/aws-api.md)."""


F = TypeVar("F", bound=Callable[..., object])


def key_options(f: F) -> F:
    """``--keys-namespace`` and ``--kubeconfig`` on a keys command."""
    f = click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False), help="Kubeconfig file.")(f)
    f = click.option(
        "--keys-namespace",
        default=keys_namespace_default,
        show_default="$KUBATCH_API_KEYS_NAMESPACE, $KUBATCH_NAMESPACE or kubatch-system",
        help="Namespace of the access key Secrets.",
    )(f)
    return f


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--listen")
    return host.strip("[]") or "0.0.0.0", int(port)


@api.command("serve")
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="Address and port to serve on (HOST:PORT).")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory with tls.crt and tls.key (made there, self-signed, when missing). Default: a self-signed "
    "certificate made at start.",
)
@click.option("--insecure-http", is_flag=True, help="Serve plain HTTP instead of TLS: loopback addresses only.")
@click.option(
    "--region", default=lambda: os.environ.get("KUBATCH_API_REGION") or DEFAULT_REGION, show_default=DEFAULT_REGION,
    help="The region of ARNs, which requests must be signed for.",
)
@click.option(
    "--account-id", default=lambda: os.environ.get("KUBATCH_API_ACCOUNT_ID") or DEFAULT_ACCOUNT,
    show_default=DEFAULT_ACCOUNT, help="The account id of ARNs.",
)
@click.option(
    "--ce-provisioner", type=click.Choice(PROVISIONERS), default=lambda: os.environ.get("KUBATCH_API_CE_PROVISIONER"),
    help="The provisioner of the MANAGED compute environments CreateComputeEnvironment makes (unset: the request "
    "must carry the tag kubatch.dev/provisioner). $KUBATCH_API_CE_PROVISIONER.",
)
@click.option(
    "--ce-defaults", type=click.Path(dir_okay=False, exists=True), default=None,
    help="YAML or JSON file of what CreateComputeEnvironment puts into a compute environment beyond AWS's request: "
    "provisioner, nodeClassRef, minScaleDownDelayMinutes, unmanagedNodeSelector, tolerations, allowPrivileged, "
    "allowHostNetwork, allowHostPath (docs/aws-api.md).",
)
@key_options
@click.option("--verbose", "-v", is_flag=True, help="Debug logging (one line per request).")
def serve(
    listen: str,
    cert_dir: str | None,
    insecure_http: bool,
    region: str,
    account_id: str,
    ce_provisioner: str | None,
    ce_defaults: str | None,
    keys_namespace: str,
    kubeconfig: str | None,
    verbose: bool,
) -> None:
    """Serve the AWS Batch API (aws-cli, boto3: --endpoint-url https://HOST:PORT)."""
    from kubatch.awsapi import tls
    from kubatch.awsapi.app import serve as run

    host, port = parse_listen(listen)
    environments = environment_defaults(ce_defaults, ce_provisioner)
    if insecure_http and not tls.is_loopback(host):
        raise click.UsageError(
            f"--insecure-http serves plain HTTP on loopback addresses only, not {host}: request signatures and "
            "job data would cross the network in the clear"
        )
    if cert_dir is not None and insecure_http:
        raise click.UsageError("--cert-dir and --insecure-http exclude each other")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    for noisy in ("aiohttp.access", "kubatch.cluster.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    directory = None if insecure_http else tls.certificate_dir(cert_dir, host)
    kubeconfig = kubeconfig or Target.resolve(None, None).kubeconfig
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run(
                host=host,
                port=port,
                kubeconfig=kubeconfig,
                config=ApiConfig(region=region, account=account_id, environments=environments),
                keys_namespace=keys_namespace,
                cert_dir=Path(directory) if directory else None,
            )
        )


def environment_defaults(path: str | None, provisioner: str | None) -> EnvironmentDefaults:
    """``--ce-defaults`` and ``--ce-provisioner`` read and checked (a usage error when invalid)."""
    data: object = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise click.BadParameter(str(e), param_hint="--ce-defaults") from None
    if not isinstance(data, dict):
        raise click.BadParameter("expected an object (YAML or JSON)", param_hint="--ce-defaults")
    try:
        return EnvironmentDefaults.parse(data, provisioner)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--ce-defaults") from None


@api.group("keys")
def keys() -> None:
    """Access keys: each maps to a namespace and a Kubernetes identity whose RBAC rights it has."""


def _run(keys_namespace: str, kubeconfig: str | None, fn: Callable[[KeyStore], Awaitable[T]]) -> T:
    target = Target.resolve(kubeconfig, keys_namespace)

    async def call(kube: Kube) -> T:
        return await fn(KeyStore(kube, namespace=keys_namespace))

    return target.run(call)


def _print_key(key: AccessKey) -> None:
    click.echo(f"AWS_ACCESS_KEY_ID={key.access_key_id}")
    click.echo(f"AWS_SECRET_ACCESS_KEY={key.secret_access_key}")


@keys.command("create")
@click.option("--namespace", "namespace", required=True, help="The key's namespace: where its jobs go.")
@click.option("--user", default=None, help="Act as this Kubernetes user.")
@click.option("--group", "groups", multiple=True, help="A group of --user (repeatable).")
@click.option(
    "--service-account",
    "service_account_name",
    default=None,
    metavar="[NAMESPACE/]NAME",
    help="Act as this ServiceAccount (of --namespace unless NAMESPACE/ is given).",
)
@key_options
def create(
    namespace: str,
    user: str | None,
    groups: tuple[str, ...],
    service_account_name: str | None,
    keys_namespace: str,
    kubeconfig: str | None,
) -> None:
    """Create an access key; prints AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=..."""
    identity = _identity(namespace, user, groups, service_account_name)

    async def go(store: KeyStore) -> AccessKey:
        return await store.create(namespace, identity)

    _print_key(_run(keys_namespace, kubeconfig, go))


def _identity(namespace: str, user: str | None, groups: tuple[str, ...], sa: str | None) -> Identity:
    if (user is None) == (sa is None):
        raise click.UsageError("give exactly one of --user and --service-account")
    if groups and user is None:
        raise click.UsageError("--group goes with --user (a ServiceAccount has the groups Kubernetes gives it)")
    try:
        return service_account(sa, namespace) if sa is not None else Identity(user=user, groups=groups)
    except ValueError as e:
        raise click.UsageError(str(e)) from e


@keys.command("list")
@key_options
def list_keys(keys_namespace: str, kubeconfig: str | None) -> None:
    """List the access keys (never their secrets)."""

    async def go(store: KeyStore) -> list[AccessKey]:
        return await store.list_keys()

    found = _run(keys_namespace, kubeconfig, go)
    rows = [[k.access_key_id, k.namespace, k.identity.describe(), age(k.created)] for k in found]
    click.echo(table(["ACCESS KEY ID", "NAMESPACE", "IDENTITY", "AGE"], rows))


@keys.command("delete")
@click.argument("access_key_id")
@key_options
def delete(access_key_id: str, keys_namespace: str, kubeconfig: str | None) -> None:
    """Delete an access key (requests signed with it are refused within 5 seconds)."""

    async def go(store: KeyStore) -> bool:
        return await store.delete(access_key_id)

    if not _run(keys_namespace, kubeconfig, go):
        raise CliError(f"access key {access_key_id} not found")
    click.echo(f"access key {access_key_id} deleted")


@keys.command("rotate")
@click.argument("access_key_id")
@key_options
def rotate(access_key_id: str, keys_namespace: str, kubeconfig: str | None) -> None:
    """Replace an access key by a new one of the same namespace and identity (printed like create);
    the old key is deleted."""

    async def go(store: KeyStore) -> AccessKey | None:
        return await store.rotate(access_key_id)

    key = _run(keys_namespace, kubeconfig, go)
    if key is None:
        raise CliError(f"access key {access_key_id} not found")
    _print_key(key)
