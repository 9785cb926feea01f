"""AWS's error shapes, and how a refusal of the Kubernetes API server becomes one.

AWS Batch answers an error with an HTTP status, the header ``x-amzn-ErrorType: <code>:<namespace>``
and a JSON body ``{"__type": <code>, "message": ...}``; the SDKs read the code from either and raise
it (boto3: ``botocore.exceptions.ClientError`` with ``response["Error"]["Code"]``, and the modelled
``client.exceptions.ClientException`` / ``ServerException``). The codes used here:

- ``ClientException`` (400): the request is wrong (a missing queue, a bad field, a refusal of the
  validating webhook or of the CRD's schema).
- ``ServerException`` (500): kubatch or the Kubernetes API server failed; the SDKs retry it.
- ``AccessDeniedException`` (403): Kubernetes RBAC refused the key's identity.
- ``TooManyRequestsException`` (429): the Kubernetes API server kept throttling; the SDKs retry it.
- The front door's (403): ``MissingAuthenticationTokenException`` (no signature),
  ``UnrecognizedClientException`` (unknown access key), ``InvalidSignatureException`` (a signature
  that does not match, or a stale or future date), as AWS's endpoints answer.
- ``UnknownOperationException`` (404), ``SerializationException`` (400: a body that is not a JSON
  object).

Messages never hold a secret: they are built from the request's operation and the identity's name.
"""

from __future__ import annotations

from typing import Any

import orjson

from kubatch.cluster.client import ApiError

#: The namespace AWS's service front end appends to the error code in ``x-amzn-ErrorType``.
ERROR_TYPE_NAMESPACE = "http://internal.amazon.com/coral/com.amazonaws.batch.v20160810/"


class AwsError(Exception):
    """An error answered in AWS's shape: ``status``, ``code`` and ``message``."""

    status = 400
    code = "ClientException"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": f"{self.code}:{ERROR_TYPE_NAMESPACE}", "Content-Type": "application/json"}

    def body(self) -> bytes:
        return orjson.dumps({"__type": self.code, "message": self.message})


class ClientException(AwsError):
    """The request is wrong (400)."""


class ServerException(AwsError):
    """kubatch or the Kubernetes API server failed (500)."""

    status = 500
    code = "ServerException"


class AccessDenied(AwsError):
    """Kubernetes RBAC refused the key's identity (403)."""

    status = 403
    code = "AccessDeniedException"


class TooManyRequests(AwsError):
    status = 429
    code = "TooManyRequestsException"


class MissingAuthenticationToken(AwsError):
    status = 403
    code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class UnrecognizedClient(AwsError):
    status = 403
    code = "UnrecognizedClientException"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


class InvalidSignature(AwsError):
    status = 403
    code = "InvalidSignatureException"

    def __init__(self, message: str = SIGNATURE_MISMATCH) -> None:
        super().__init__(message)


class UnknownOperation(AwsError):
    status = 404
    code = "UnknownOperationException"


class SerializationError(AwsError):
    code = "SerializationException"


class NotSupported(ClientException):
    """An AWS Batch operation kubatch does not offer (docs/aws-api.md says why)."""

    def __init__(self, operation: str, why: str) -> None:
        super().__init__(f"{operation} is not supported by kubatch: {why}")


def kube_message(e: ApiError) -> str:
    """The API server's message of a refusal."""
    body: Any = e.body
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or e)
    return str(body or e)


def from_kube(e: ApiError, action: str = "") -> AwsError:
    """The AWS error for a refusal of the Kubernetes API server.

    ``action`` (``batch:SubmitJob`` ...) goes into an access denial's message, as AWS names the
    action it refused. Not-found answers are the caller's to translate (AWS words them per kind);
    here they are a ClientException with the API server's message."""
    message = kube_message(e)
    if e.status == 403 and not e.namespace_terminating and "denied the request" not in message:
        what = f" to perform: {action}" if action else ""
        return AccessDenied(f"not authorized{what}: {message}")
    if e.status == 401:
        return ServerException("kubatch could not authenticate to the Kubernetes API server")
    if e.status == 429:
        return TooManyRequests(f"Too Many Requests: {message}")
    if e.status == 0 or e.status >= 500:
        return ServerException(f"the Kubernetes API server failed: {message}")
    return ClientException(message)
