"""Connection helpers: kubeconfig and namespace resolution, resource paths, running API calls."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import yaml

from kubatch.cluster.client import ApiError, Kube

T = TypeVar("T")
JSON = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])

GROUP_VERSION = "kubatch.dev/v1alpha1"
API_PREFIX = f"/apis/{GROUP_VERSION}"
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

#: Resource plural -> (singular shown in messages, namespaced?)
RESOURCES: dict[str, tuple[str, bool]] = {
    "batchjobs": ("batchjob", True),
    "jobdefinitions": ("jobdefinition", True),
    "jobqueues": ("jobqueue", False),
    "computeenvironments": ("computeenvironment", False),
    "schedulingpolicies": ("schedulingpolicy", False),
    "consumableresources": ("consumableresource", False),
    "jobschedules": ("jobschedule", True),
}


class CliError(click.ClickException):
    """A runtime failure: printed as ``error: <message>`` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def resource_path(plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """API path of a kubatch collection or object; ``namespace=None`` on a namespaced kind = all namespaces."""
    _, namespaced = RESOURCES[plural]
    base = f"{API_PREFIX}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{API_PREFIX}/{plural}"
    return f"{base}/{name}" if name else base


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{sub}" if sub else "")


def default_kubeconfig() -> str | None:
    """$KUBECONFIG (first entry), else ~/.kube/config when it exists, else None (in-cluster)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    home = Path.home() / ".kube" / "config"
    return str(home) if home.exists() else None


def context_namespace(kubeconfig: str | None) -> str:
    """The namespace of the kubeconfig's current context, the pod's namespace in-cluster, or ``default``."""
    if kubeconfig and Path(kubeconfig).is_file():
        try:
            cfg = yaml.safe_load(Path(kubeconfig).read_text()) or {}
        except (OSError, yaml.YAMLError):
            cfg = {}
        current = cfg.get("current-context")
        for ctx in cfg.get("contexts") or []:
            if ctx.get("name") == current:
                ns = (ctx.get("context") or {}).get("namespace")
                if ns:
                    return str(ns)
    elif not kubeconfig and Path(SA_NAMESPACE_FILE).is_file():
        return Path(SA_NAMESPACE_FILE).read_text().strip() or "default"
    return "default"


@dataclass(frozen=True)
class Target:
    """Where a command talks to: kubeconfig (None = in-cluster) and namespace."""

    kubeconfig: str | None
    namespace: str

    @classmethod
    def resolve(cls, kubeconfig: str | None, namespace: str | None) -> Target:
        """Command-level options win over the group's (``kubatch -n x list``)."""
        group = click.get_current_context().find_object(GlobalOptions)
        cfg = kubeconfig or (group.kubeconfig if group else None) or default_kubeconfig()
        ns = namespace or (group.namespace if group else None) or context_namespace(cfg)
        return cls(cfg, ns)

    def run(self, fn: Callable[[Kube], Awaitable[T]]) -> T:
        """Run ``fn(kube)`` on a fresh connection; API and connection failures become ``CliError``."""

        if self.kubeconfig and not Path(self.kubeconfig).is_file():
            raise CliError(f"kubeconfig {self.kubeconfig!r} does not exist")

        async def main() -> T:
            try:
                kube = await Kube.connect(self.kubeconfig)
            except Exception as e:  # the kubeconfig loader raises many types
                raise CliError(f"cannot load kubeconfig {self.kubeconfig!r}: {e}") from e
            try:
                return await fn(kube)
            except ApiError as e:
                raise CliError(describe_api_error(e)) from e
            finally:
                await kube.close()

        return asyncio.run(main())


@dataclass
class GlobalOptions:
    kubeconfig: str | None = None
    namespace: str | None = None


def describe_api_error(e: ApiError) -> str:
    """A one-line human message for an API error."""
    body = e.body if isinstance(e.body, dict) else {}
    if e.status == 0:
        return f"cannot reach the API server: {e.body}"
    if e.status == 404 and not body.get("details"):
        return "the kubatch.dev API is not installed on this cluster (are the CRDs applied?)"
    message = body.get("message") or str(e.body)
    return f"{message} ({e.status} {e.reason})".strip() if e.reason else str(message)


def not_found(plural: str, name: str, namespace: str | None) -> CliError:
    singular, namespaced = RESOURCES[plural]
    where = f' in namespace "{namespace}"' if namespaced and namespace else ""
    return CliError(f'{singular} "{name}" not found{where}')


async def get_object(kube: Kube, plural: str, name: str, namespace: str | None = None) -> JSON:
    """GET one kubatch object; a 404 becomes ``error: <kind> "x" not found in namespace "y"``."""
    try:
        obj: JSON = await kube.get(resource_path(plural, namespace, name))
    except ApiError as e:
        if e.status == 404 and isinstance(e.body, dict) and e.body.get("details"):
            raise not_found(plural, name, namespace) from e
        raise
    return obj


async def get_pod(kube: Kube, namespace: str, name: str) -> JSON | None:
    """The pod, or None when it does not exist (any more)."""
    try:
        pod: JSON = await kube.get(pod_path(namespace, name))
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return pod


def connection_options(f: F) -> F:
    """``--kubeconfig`` and ``-n/--namespace`` on a command."""
    f = click.option(
        "-n", "--namespace", default=None, help="Namespace (default: the kubeconfig context's, or default)."
    )(f)
    f = click.option(
        "--kubeconfig",
        default=None,
        type=click.Path(dir_okay=False),
        help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )(f)
    return f


def output_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``-o/--output`` restricted to ``choices``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )
