"""Access keys of the AWS Batch API as Kubernetes Secrets (pure: the Secret's shape, generation).

A key is a Secret in the API's keys namespace (the operator's, by default ``kubatch-system``),
named ``kubatch-api-key-<access key id in lower case>`` so that a request's key is one GET away,
of type ``kubatch.dev/aws-access-key`` and labelled ``kubatch.dev/api-key=true`` and
``kubatch.dev/access-key-id=<id>``. It maps the access key id to:

- ``secretAccessKey``: the secret that signs requests (SigV4);
- ``namespace``: the key's namespace, where its jobs and job definitions are;
- the Kubernetes identity every request of the key is made as (impersonation): ``user`` (a user
  name, with optional ``groups``, comma-separated) or ``serviceAccount`` (``<namespace>/<name>``,
  impersonated as ``system:serviceaccount:<namespace>:<name>`` with the groups the API server
  gives a ServiceAccount: ``system:serviceaccounts`` and ``system:serviceaccounts:<namespace>``).

Access key ids are 20 characters, ``KBAT`` and 16 of ``A-Z2-7``, like AWS's; secrets 40 characters
of letters, digits, ``+`` and ``/``, like AWS's. Both come from ``secrets`` (the OS's CSPRNG).
"""

from __future__ import annotations

import base64
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

SECRET_TYPE = "kubatch.dev/aws-access-key"
LABEL_API_KEY = "kubatch.dev/api-key"
LABEL_ACCESS_KEY_ID = "kubatch.dev/access-key-id"
SECRET_NAME_PREFIX = "kubatch-api-key-"
KEY_ID_PREFIX = "KBAT"
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
ACCESS_KEY_ID_PATTERN = re.compile(r"^[A-Z0-9]{16,128}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Identity:
    """The Kubernetes identity a key's requests are made as: a user (with groups) or a
    ServiceAccount."""

    user: str | None = None
    service_account: tuple[str, str] | None = None  # (namespace, name)
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.user is None) == (self.service_account is None):
            raise ValueError("an identity is a user or a ServiceAccount, not both or neither")
        if self.user is not None and (not self.user.strip() or self.user.startswith(SA_PREFIX)):
            raise ValueError(f"user {self.user!r}: give a user name (a ServiceAccount as service_account)")
        if self.service_account is not None:
            namespace, name = self.service_account
            if not _DNS_LABEL.match(namespace) or not _DNS_SUBDOMAIN.match(name):
                raise ValueError(f"ServiceAccount {namespace}/{name}: not a namespace and a ServiceAccount name")
            if self.groups:
                raise ValueError("a ServiceAccount has the groups Kubernetes gives it; groups are for users")

    @property
    def username(self) -> str:
        if self.service_account is not None:
            namespace, name = self.service_account
            return f"{SA_PREFIX}{namespace}:{name}"
        assert self.user is not None
        return self.user

    @property
    def impersonated_groups(self) -> tuple[str, ...]:
        """The groups sent with Impersonate-Group (the API server adds ``system:authenticated``)."""
        if self.service_account is not None:
            return ("system:serviceaccounts", f"system:serviceaccounts:{self.service_account[0]}")
        return self.groups

    def impersonation_headers(self) -> list[tuple[str, str]]:
        return [("Impersonate-User", self.username), *(("Impersonate-Group", g) for g in self.impersonated_groups)]

    def describe(self) -> str:
        if self.service_account is not None:
            return f"ServiceAccount {self.service_account[0]}/{self.service_account[1]}"
        groups = f" (groups {', '.join(self.groups)})" if self.groups else ""
        return f'user "{self.user}"{groups}'


def service_account(text: str, default_namespace: str) -> Identity:
    """``NAME`` (in ``default_namespace``) or ``NAMESPACE/NAME`` as a ServiceAccount identity."""
    namespace, sep, name = text.partition("/")
    return Identity(service_account=(namespace, name) if sep else (default_namespace, text))


@dataclass(frozen=True)
class AccessKey:
    """One access key: its id and secret, its namespace and its identity."""

    access_key_id: str
    secret_access_key: str
    namespace: str
    identity: Identity
    created: str | None = None

    def __repr__(self) -> str:  # never print the secret by accident
        return f"AccessKey({self.access_key_id}, namespace={self.namespace}, {self.identity.describe()})"

    __str__ = __repr__


def new_access_key_id() -> str:
    return KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))


def new_secret_access_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def generate(namespace: str, identity: Identity) -> AccessKey:
    """A new key for ``identity``, acting in ``namespace``."""
    if not _DNS_LABEL.match(namespace):
        raise ValueError(f"namespace {namespace!r} is not a namespace name")
    return AccessKey(new_access_key_id(), new_secret_access_key(), namespace, identity)


def secret_name(access_key_id: str) -> str:
    return SECRET_NAME_PREFIX + access_key_id.lower()


def to_secret(key: AccessKey, keys_namespace: str) -> JSON:
    """The Secret that holds ``key``."""
    data = {"secretAccessKey": key.secret_access_key, "namespace": key.namespace}
    if key.identity.service_account is not None:
        data["serviceAccount"] = "/".join(key.identity.service_account)
    else:
        assert key.identity.user is not None
        data["user"] = key.identity.user
        if key.identity.groups:
            data["groups"] = ",".join(key.identity.groups)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": secret_name(key.access_key_id),
            "namespace": keys_namespace,
            "labels": {LABEL_API_KEY: "true", LABEL_ACCESS_KEY_ID: key.access_key_id},
        },
        "stringData": data,
    }


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


def from_secret(secret: Mapping[str, Any]) -> AccessKey:
    """The key a Secret holds; ValueError when it is not a well-formed key Secret."""
    meta = secret.get("metadata") or {}
    key_id = (meta.get("labels") or {}).get(LABEL_ACCESS_KEY_ID)
    if not key_id or not ACCESS_KEY_ID_PATTERN.match(str(key_id)):
        raise ValueError(f"Secret {meta.get('name')}: no {LABEL_ACCESS_KEY_ID} label with an access key id")
    try:
        data = _decoded(secret)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"Secret {meta.get('name')}: undecodable data") from e
    secret_key, namespace = data.get("secretAccessKey"), data.get("namespace")
    if not secret_key or not namespace:
        raise ValueError(f"Secret {meta.get('name')}: secretAccessKey and namespace are required")
    if data.get("serviceAccount"):
        identity = service_account(data["serviceAccount"], namespace)
    elif data.get("user"):
        groups = tuple(g.strip() for g in data.get("groups", "").split(",") if g.strip())
        identity = Identity(user=data["user"], groups=groups)
    else:
        raise ValueError(f"Secret {meta.get('name')}: user or serviceAccount is required")
    return AccessKey(str(key_id), secret_key, namespace, identity, created=meta.get("creationTimestamp"))
