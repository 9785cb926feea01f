"""AWS Batch's REST-JSON protocol (API version 2016-08-10): which operation a request is, and the
bodies in and out.

Every operation is ``POST /v1/<operation in lower case>`` with a JSON body, except the three tag
operations on ``/v1/tags/{resourceArn}`` (``POST`` TagResource, ``GET`` ListTagsForResource,
``DELETE`` UntagResource with ``?tagKeys=``). Answers are JSON objects whose absent fields are left
out, as AWS leaves them out; times are Unix milliseconds. ``OPERATIONS`` lists every operation of
the API (botocore's model of it is the reference the unit tests compare with), whether kubatch
implements it or not: an operation it does not implement is still recognised, and answered with a
ClientException that says so, not with "unknown operation".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from kubatch.awsapi.errors import ClientException, SerializationError, UnknownOperation

JSON = dict[str, Any]
TAGS_PREFIX = "/v1/tags/"

#: Every operation of AWS Batch 2016-08-10 served as ``POST /v1/<name in lower case>``.
POST_OPERATIONS: tuple[str, ...] = (
    "CancelJob",
    "CancelJobs",
    "CreateComputeEnvironment",
    "CreateConsumableResource",
    "CreateJobQueue",
    "CreateQuotaShare",
    "CreateSchedulingPolicy",
    "CreateServiceEnvironment",
    "DeleteComputeEnvironment",
    "DeleteConsumableResource",
    "DeleteJobQueue",
    "DeleteQuotaShare",
    "DeleteSchedulingPolicy",
    "DeleteServiceEnvironment",
    "DeregisterJobDefinition",
    "DescribeComputeEnvironments",
    "DescribeConsumableResource",
    "DescribeJobDefinitions",
    "DescribeJobQueues",
    "DescribeJobs",
    "DescribeQuotaShare",
    "DescribeSchedulingPolicies",
    "DescribeServiceEnvironments",
    "DescribeServiceJob",
    "GetJobQueueSnapshot",
    "ListConsumableResources",
    "ListJobs",
    "ListJobsByConsumableResource",
    "ListQuotaShares",
    "ListSchedulingPolicies",
    "ListServiceJobs",
    "RegisterJobDefinition",
    "SubmitJob",
    "SubmitServiceJob",
    "TerminateJob",
    "TerminateJobs",
    "TerminateServiceJob",
    "TerminateServiceJobs",
    "UpdateComputeEnvironment",
    "UpdateConsumableResource",
    "UpdateJobQueue",
    "UpdateQuotaShare",
    "UpdateSchedulingPolicy",
    "UpdateServiceEnvironment",
    "UpdateServiceJob",
)
#: The tag operations: HTTP method -> operation, on ``/v1/tags/{resourceArn}``.
TAG_OPERATIONS: dict[str, str] = {"POST": "TagResource", "GET": "ListTagsForResource", "DELETE": "UntagResource"}


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    uri: str


OPERATIONS: dict[str, Operation] = {
    **{name: Operation(name, "POST", f"/v1/{name.lower()}") for name in POST_OPERATIONS},
    **{name: Operation(name, method, "/v1/tags/{resourceArn}") for method, name in TAG_OPERATIONS.items()},
}
_BY_PATH: dict[str, str] = {op.uri: op.name for op in OPERATIONS.values() if op.method == "POST" and "{" not in op.uri}


@dataclass(frozen=True)
class Call:
    """A recognised request: the operation, its body and its URI and query parameters."""

    operation: str
    body: JSON
    resource_arn: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    def query_values(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


def match(method: str, raw_path: str) -> tuple[str, str | None]:
    """The operation of a request (``raw_path`` as sent, percent-encoded, without the query) and
    its ``resourceArn``; UnknownOperation otherwise."""
    path = raw_path.rstrip("/") or "/"
    if path.startswith(TAGS_PREFIX) and len(path) > len(TAGS_PREFIX):
        name = TAG_OPERATIONS.get(method.upper())
        if name is not None:
            return name, unquote(path[len(TAGS_PREFIX) :])
    elif method.upper() == "POST":
        name = _BY_PATH.get(path.lower())
        if name is not None:
            return name, None
    raise UnknownOperation(f"no AWS Batch operation is {method.upper()} {path}")


def parse_body(raw: bytes) -> JSON:
    """The request's JSON object (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise SerializationError(f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise SerializationError("the request body must be a JSON object")
    return body


def parse_call(method: str, raw_path_and_query: str, raw_body: bytes) -> Call:
    """A request's operation and parameters."""
    path, _, query = raw_path_and_query.partition("?")
    operation, arn = match(method, path)
    return Call(operation, parse_body(raw_body), arn, tuple(parse_qsl(query, keep_blank_values=True)))


def prune(value: Any) -> Any:
    """``value`` without None members (AWS leaves absent fields out)."""
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def encode(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(prune(dict(body)))


def epoch_ms(timestamp: str | datetime | None) -> int | None:
    """An RFC 3339 time (as the Kubernetes API writes it) in Unix milliseconds."""
    if timestamp is None or timestamp == "":
        return None
    if isinstance(timestamp, datetime):
        when = timestamp
    else:
        try:
            when = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


# ---- reading request members ---------------------------------------------------------------------


def required_str(body: Mapping[str, Any], name: str) -> str:
    """A required string member; ClientException when it is missing or not a non-empty string."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ClientException(f"{name} is required and must be a non-empty string")
    return value


def optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ClientException(f"{name} must be a string")
    return value


def optional_int(body: Mapping[str, Any], name: str, *, low: int | None = None, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClientException(f"{name} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ClientException(f"{name} must be between {low} and {high}")
    return value


def string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClientException(f"{name} must be a list of strings")
    return list(value)


def string_map(body: Mapping[str, Any], name: str) -> dict[str, str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ClientException(f"{name} must be a map of strings to strings")
    return dict(value)
