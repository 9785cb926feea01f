"""Access keys of the AWS Batch API on the real API server: `kubatch api keys create|list|rotate|delete`
(the Secrets they make, two lines printed, secrets never listed), and requests made as a key's
identity (impersonation): the API server sees the user or the ServiceAccount with its groups, and
RBAC decides."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from kubatch.awsapi.impersonation import Impersonators
from kubatch.awsapi.keys import Identity
from kubatch.awsapi.keystore import KeyStore
from kubatch.cli.main import cli
from kubatch.cluster.client import ApiError, Kube
from kubatch.devcluster.cluster import ClusterInfo
from tests.integration.helpers import Kubectl, fresh_namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def keys_namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from fresh_namespace(kubectl, "keys")


def kubatch(cluster: ClusterInfo, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--kubeconfig", cluster.kubeconfig, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def created(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    assert len(lines) == 2, out
    key = re.fullmatch(r"AWS_ACCESS_KEY_ID=(KBAT[A-Z2-7]{16})", lines[0])
    secret = re.fullmatch(r"AWS_SECRET_ACCESS_KEY=([A-Za-z0-9+/]{40})", lines[1])
    assert key and secret, out
    return key.group(1), secret.group(1)


def test_keys_commands(cluster: ClusterInfo, kubectl: Kubectl, keys_namespace: str, namespace: str) -> None:
    ks = ["--keys-namespace", keys_namespace]
    code, out, err = kubatch(cluster, "api", "keys", "create", "--namespace", namespace, "--user", "alice", *ks)
    assert code == 0, err
    alice, alice_secret = created(out)
    code, out, err = kubatch(
        cluster, "api", "keys", "create", "--namespace", namespace, "--service-account", "builder", *ks
    )
    assert code == 0, err
    builder, _ = created(out)
    secret = json.loads(
        kubectl("get", "secret", f"kubatch-api-key-{alice.lower()}", "-n", keys_namespace, "-o", "json").stdout
    )
    assert secret["type"] == "kubatch.dev/aws-access-key"
    assert secret["metadata"]["labels"] == {"kubatch.dev/api-key": "true", "kubatch.dev/access-key-id": alice}
    assert set(secret["data"]) == {"secretAccessKey", "namespace", "user"}

    code, out, _ = kubatch(cluster, "api", "keys", "list", *ks)
    assert code == 0 and alice_secret not in out
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    assert any(r[:2] == [alice, namespace] and r[2].startswith('user "alice"') for r in rows), out
    assert {r[0] for r in rows} == {alice, builder}
    assert any(r[0] == builder and f"ServiceAccount {namespace}/builder" in r[2] for r in rows), out

    code, out, err = kubatch(cluster, "api", "keys", "rotate", alice, *ks)
    assert code == 0, err
    rotated, rotated_secret = created(out)
    assert rotated != alice and rotated_secret != alice_secret
    code, out, _ = kubatch(cluster, "api", "keys", "list", *ks)
    assert alice not in out and rotated in out and 'user "alice"' in out
    code, out, _ = kubatch(cluster, "api", "keys", "delete", rotated, *ks)
    assert code == 0 and "deleted" in out
    code, _, err = kubatch(cluster, "api", "keys", "delete", rotated, *ks)
    assert code == 1 and "not found" in err
    code, _, err = kubatch(cluster, "api", "keys", "create", "--namespace", namespace, *ks)
    assert code == 2 and "exactly one of --user and --service-account" in err


def test_requests_are_made_as_the_keys_identity(
    cluster: ClusterInfo, kubectl: Kubectl, keys_namespace: str, namespace: str
) -> None:
    kubectl("create", "serviceaccount", "builder", "-n", namespace)
    kubectl(
        "create", "rolebinding", "builder-view", "--clusterrole=view", f"--serviceaccount={namespace}:builder",
        "-n", namespace,
    )

    async def main() -> dict[str, Any]:
        base = await Kube.connect(cluster.kubeconfig)
        store = KeyStore(base, namespace=keys_namespace)
        clients = Impersonators(base)
        try:
            sa_key = await store.create(namespace, Identity(service_account=(namespace, "builder")))
            user_key = await store.create(namespace, Identity(user="carol", groups=("team-x",)))
            found = await store.get(sa_key.access_key_id)
            assert found is not None and found.identity == sa_key.identity
            out: dict[str, Any] = {}
            for label, key in (("sa", sa_key), ("user", user_key)):
                kube = await clients.client(key.identity)
                review = await kube.create(
                    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )
                out[label] = review["status"]["userInfo"]
                try:
                    await kube.get(f"/api/v1/namespaces/{namespace}/configmaps")
                    out[f"{label}-list"] = "allowed"
                except ApiError as e:
                    out[f"{label}-list"] = e.status
            return out
        finally:
            await clients.close()
            await base.close()

    seen = asyncio.run(main())
    assert seen["sa"]["username"] == f"system:serviceaccount:{namespace}:builder"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"} <= set(
        seen["sa"]["groups"]
    )
    assert seen["user"]["username"] == "carol" and "team-x" in seen["user"]["groups"]
    assert seen["sa-list"] == "allowed"  # the view role bound to the ServiceAccount
    assert seen["user-list"] == 403  # nothing bound to carol
