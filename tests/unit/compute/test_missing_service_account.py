"""Which refused pod creations fail a job: only a ServiceAccount the job asked for that does not exist."""

from __future__ import annotations

from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.runtime.dispatcher import missing_service_account

SA_MESSAGE = 'pods "j-a1" is forbidden: error looking up service account ns/{sa}: serviceaccount "{sa}" not found'


def refused(status: int, message: str) -> ApiError:
    return ApiError(status, {"reason": "Forbidden", "message": message}, "POST", "/api/v1/namespaces/ns/pods")


def pod(sa: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main"}]}
    if sa is not None:
        spec["serviceAccountName"] = sa
    return {"metadata": {"name": "j-a1", "namespace": "ns"}, "spec": spec}


def test_a_missing_named_service_account_is_a_reason() -> None:
    assert missing_service_account(refused(403, SA_MESSAGE.format(sa="s3")), pod("s3")) == (
        "ServiceAccount s3 not found in namespace ns: the job's pod cannot be created"
    )


def test_other_refusals_are_not() -> None:
    # The default account of a brand-new namespace appears a moment later.
    assert missing_service_account(refused(403, SA_MESSAGE.format(sa="default")), pod(None)) is None
    assert missing_service_account(refused(403, SA_MESSAGE.format(sa="default")), pod("default")) is None
    assert missing_service_account(refused(403, 'exceeded quota: pods, requested: pods=1'), pod("s3")) is None
    assert missing_service_account(refused(409, "already exists"), pod("s3")) is None
