"""`kubatch api`: the AWS Batch API server and its access keys.

``kubatch api keys create --namespace NS (--user NAME | --service-account [NS/]NAME)`` prints
exactly two lines, ``AWS_ACCESS_KEY_ID=...`` and ``AWS_SECRET_ACCESS_KEY=...`` (ready for ``export``
or an env file); ``list`` shows the keys without their secrets; ``delete`` removes one; ``rotate``
replaces one by a new key of the same namespace and identity (printed like ``create``) and deletes
the old one. Keys live in ``--keys-namespace`` (``$KUBATCH_API_KEYS_NAMESPACE``, else
``$KUBATCH_NAMESPACE``, else ``kubatch-system``), where the server reads them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from kubatch.awsapi.keys import AccessKey, Identity, service_account
from kubatch.awsapi.keystore import DEFAULT_KEYS_NAMESPACE, KeyStore
from kubatch.cli.client import CliError, Target
from kubatch.cli.render import age, table
from kubatch.cluster.client import Kube

T = TypeVar("T")


def keys_namespace_default() -> str:
    return os.environ.get("KUBATCH_API_KEYS_NAMESPACE") or os.environ.get("KUBATCH_NAMESPACE") or DEFAULT_KEYS_NAMESPACE


@click.group("api")
def api() -> None:
    """The AWS Batch API: point aws-cli or boto3 at kubatch (docs/aws-api.md)."""


@api.group("keys")
def keys() -> None:
    """Access keys: each maps to a namespace and a Kubernetes identity whose RBAC rights it has."""


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
