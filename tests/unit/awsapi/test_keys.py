"""Access keys: the Secret's shape and round trip, identities and their impersonation headers (as
sent on the wire), the key store's cache, and the front door with the real boto3 client: a signed
request acts as its key's identity; an unsigned one, an unknown key, a wrong secret and a stale
date are refused with AWS's codes."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from kubatch.awsapi.authn import KeyAuthenticator
from kubatch.awsapi.impersonation import ImpersonatingKube, Impersonators
from kubatch.awsapi.keys import (
    AccessKey,
    Identity,
    from_secret,
    generate,
    secret_name,
    service_account,
    to_secret,
)
from kubatch.awsapi.keystore import KeyStore
from kubatch.awsapi.protocol import Call
from kubatch.awsapi.server import ApiConfig, ApiServer, Context
from kubatch.cluster.client import ApiError, Credentials, Kube
from tests.unit.awsapi.conftest import serve


def stored(secret: dict[str, Any]) -> dict[str, Any]:
    """A Secret as the API server returns it: stringData moved to base64 data."""
    out = {k: v for k, v in secret.items() if k != "stringData"}
    out["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    out["metadata"] = {**secret["metadata"], "creationTimestamp": "2024-01-01T00:00:00Z"}
    return out


def test_generated_keys_look_like_aws_keys_and_round_trip() -> None:
    key = generate("team-a", Identity(user="alice", groups=("devs", "ops")))
    assert re.fullmatch(r"KBAT[A-Z2-7]{16}", key.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", key.secret_access_key)
    assert key.secret_access_key not in repr(key) and key.secret_access_key not in str(key)
    secret = to_secret(key, "kubatch-system")
    name = secret_name(key.access_key_id)
    assert secret["metadata"]["name"] == name == "kubatch-api-key-" + key.access_key_id.lower()
    labels = {"kubatch.dev/api-key": "true", "kubatch.dev/access-key-id": key.access_key_id}
    assert secret["metadata"]["labels"] == labels
    assert secret["type"] == "kubatch.dev/aws-access-key"
    back = from_secret(stored(secret))
    assert (back.access_key_id, back.secret_access_key, back.namespace, back.identity) == (
        key.access_key_id,
        key.secret_access_key,
        "team-a",
        key.identity,
    )
    sa = generate("team-a", service_account("team-b/builder", "team-a"))
    assert from_secret(stored(to_secret(sa, "k"))).identity == Identity(service_account=("team-b", "builder"))
    assert generate("a", Identity(user="u")).access_key_id != generate("a", Identity(user="u")).access_key_id


def test_identities() -> None:
    sa = service_account("builder", "team-a")
    assert sa.username == "system:serviceaccount:team-a:builder"
    assert sa.impersonation_headers() == [
        ("Impersonate-User", "system:serviceaccount:team-a:builder"),
        ("Impersonate-Group", "system:serviceaccounts"),
        ("Impersonate-Group", "system:serviceaccounts:team-a"),
    ]
    assert sa.describe() == "ServiceAccount team-a/builder"
    user = Identity(user="alice", groups=("devs",))
    assert user.impersonation_headers() == [("Impersonate-User", "alice"), ("Impersonate-Group", "devs")]
    for bad in (
        lambda: Identity(),
        lambda: Identity(user="a", service_account=("n", "s")),
        lambda: Identity(user="system:serviceaccount:a:b"),
        lambda: Identity(service_account=("Bad_NS", "x")),
        lambda: Identity(service_account=("ns", "x"), groups=("g",)),
        lambda: generate("Not A Namespace", Identity(user="u")),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError):
        from_secret({"metadata": {"name": "x", "labels": {"kubatch.dev/access-key-id": "KBATX"}}})


async def test_impersonation_headers_on_the_wire() -> None:
    seen: list[list[tuple[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append([(k, v) for k, v in request.headers.items() if k.lower().startswith(("impersonate", "authoriz"))])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    with serve(app) as url:
        base = Kube(Credentials(url, False, token="server-token"))
        clients = Impersonators(base, size=1)
        alice = await clients.client(Identity(user="alice", groups=("devs", "ops")))
        assert await clients.client(Identity(user="alice", groups=("devs", "ops"))) is alice
        await alice.get("/api/v1/namespaces")
        await alice.create("/api/v1/namespaces/x/things", {"a": 1})
        sa = await clients.client(service_account("builder", "team-a"))
        await sa.get("/x")
        await base.get("/y")
        assert alice._session is not None and alice._session.closed  # evicted (size 1)
        await clients.close()
        await base.close()
    assert sorted(seen[0]) == [
        ("Authorization", "Bearer server-token"),
        ("Impersonate-Group", "devs"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-User", "alice"),
    ]
    assert seen[1] == seen[0]
    assert ("Impersonate-User", "system:serviceaccount:team-a:builder") in seen[2]
    assert seen[3] == [("Authorization", "Bearer server-token")]  # the server's own client impersonates no one


class SecretsKube:
    """Answers GETs of key Secrets from a dict; counts them."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets
        self.gets = 0

    async def get(self, path: str, **params: Any) -> Any:
        self.gets += 1
        name = path.rsplit("/", 1)[1]
        if name not in self.secrets:
            raise ApiError(404, {"reason": "NotFound", "details": {}}, "GET", path)
        return self.secrets[name]


def key_store(*keys: AccessKey, clock: Any = None) -> tuple[KeyStore, SecretsKube]:
    kube = SecretsKube({secret_name(k.access_key_id): stored(to_secret(k, "ks")) for k in keys})
    store = KeyStore(kube, namespace="ks", **({"clock": clock} if clock else {}))  # type: ignore[arg-type]
    return store, kube


async def test_key_store_caches_briefly() -> None:
    now = [0.0]
    key = generate("team-a", Identity(user="alice"))
    store, kube = key_store(key, clock=lambda: now[0])
    assert (await store.get(key.access_key_id)) is not None
    assert (await store.get(key.access_key_id)) is not None
    assert kube.gets == 1
    kube.secrets.clear()  # deleted
    now[0] = 4.9
    assert (await store.get(key.access_key_id)) is not None
    now[0] = 5.1
    assert (await store.get(key.access_key_id)) is None
    assert (await store.get("KBATNOSUCHKEY0000000")) is None
    assert kube.gets == 3
    for hostile in ("../../../api/v1/namespaces", "KBAT?watch=1", "kbatlowercase0000000", ""):
        assert (await store.get(hostile)) is None
    assert kube.gets == 3  # never put in a path


def test_the_front_door_with_boto3() -> None:
    key = generate("team-a", service_account("builder", "team-a"))
    store, _ = key_store(key)
    offset = [timedelta(0)]
    seen: list[tuple[str, str, str]] = []

    async def list_jobs(ctx: Context, call: Call) -> dict[str, Any]:
        assert isinstance(ctx.user, ImpersonatingKube)
        seen.append((ctx.principal.access_key_id, ctx.namespace, ctx.principal.identity))
        return {"jobSummaryList": []}

    base = Kube(Credentials("http://127.0.0.1:1", False))
    authn = KeyAuthenticator(store, Impersonators(base), ApiConfig(), clock=lambda: datetime.now(UTC) + offset[0])
    server = ApiServer(base, authn, {"ListJobs": list_jobs})

    def client(url: str, key_id: str, secret: str, **config: Any) -> Any:
        return boto3.client(
            "batch",
            endpoint_url=url,
            region_name=config.pop("region", "us-east-1"),
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    def code(call: Any) -> tuple[str, str, int]:
        with pytest.raises(ClientError) as e:
            call()
        err = e.value.response["Error"]
        return err["Code"], err["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    with serve(server.app()) as url:
        good = client(url, key.access_key_id, key.secret_access_key)
        assert good.list_jobs(jobQueue="q")["jobSummaryList"] == []
        assert seen == [(key.access_key_id, "team-a", "ServiceAccount team-a/builder")]
        assert code(lambda: client(url, key.access_key_id, "x" * 40).list_jobs(jobQueue="q"))[0] == (
            "InvalidSignatureException"
        )
        assert code(lambda: client(url, "KBATUNKNOWN000000000", "x" * 40).list_jobs(jobQueue="q")) == (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            403,
        )
        unsigned = client(url, "a", "b", signature_version=UNSIGNED)
        assert code(lambda: unsigned.list_jobs(jobQueue="q")) == (
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
            403,
        )
        elsewhere = client(url, key.access_key_id, key.secret_access_key, region="eu-west-1")
        assert "valid region" in code(lambda: elsewhere.list_jobs(jobQueue="q"))[1]
        offset[0] = timedelta(minutes=20)
        expired = code(lambda: good.list_jobs(jobQueue="q"))
        assert expired[0] == "InvalidSignatureException" and expired[1].startswith("Signature expired: ")
    assert len(seen) == 1
