"""The REST-JSON protocol and AWS's error shapes, checked against botocore's model of AWS Batch and
with the real boto3 client: every operation is recognised at the method and path botocore sends it
to, and an error becomes the ClientError (and modelled exception) with the right code."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.serialize import create_serializer

from kubatch.awsapi.errors import (
    AccessDenied,
    AwsError,
    ClientException,
    ServerException,
    UnknownOperation,
)
from kubatch.awsapi.protocol import OPERATIONS, Call, epoch_ms, parse_body, parse_call, prune
from kubatch.awsapi.server import ApiServer, Context, Principal, Request
from kubatch.cluster.client import ApiError
from tests.unit.awsapi.conftest import batch_model, serve

MODEL = ServiceModel(batch_model(), "batch")


def test_every_operation_of_the_model_is_known_at_its_method_and_path() -> None:
    assert set(OPERATIONS) == set(MODEL.operation_names)
    for name in MODEL.operation_names:
        http = MODEL.operation_model(name).http
        assert (OPERATIONS[name].method, OPERATIONS[name].uri) == (http["method"], http["requestUri"]), name


def _serialized(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = create_serializer("rest-json").serialize_to_request(
        params, MODEL.operation_model(operation)
    )
    return request


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("SubmitJob", {"jobName": "j", "jobQueue": "q", "jobDefinition": "d"}),
        ("DescribeJobs", {"jobs": ["a", "b"]}),
        ("ListJobs", {"jobQueue": "q", "maxResults": 3}),
        ("TagResource", {"resourceArn": "arn:aws:batch:us-east-1:000000000000:job-queue/q", "tags": {"a": "b"}}),
        ("ListTagsForResource", {"resourceArn": "arn:aws:batch:us-east-1:000000000000:job/1234"}),
        ("UntagResource", {"resourceArn": "arn:aws:batch:us-east-1:000000000000:job-queue/q", "tagKeys": ["a", "b"]}),
    ],
)
def test_requests_as_botocore_serializes_them_are_recognised(operation: str, params: dict[str, Any]) -> None:
    request = _serialized(operation, params)
    body = request["body"] if isinstance(request["body"], bytes) else str(request["body"] or "").encode()
    pairs = [(k, v) for k, vs in request["query_string"].items() for v in (vs if isinstance(vs, list) else [vs])]
    query = "&".join(f"{k}={v}" for k, v in pairs)
    call = parse_call(request["method"], request["url_path"] + (f"?{query}" if query else ""), body)
    assert call.operation == operation
    if "resourceArn" in params:
        assert "%" in request["url_path"]  # the ARN travels percent-encoded
        assert call.resource_arn == params["resourceArn"]
    expected = {k: v for k, v in params.items() if k not in ("resourceArn", "tagKeys")}
    assert call.body == expected
    if "tagKeys" in params:
        assert call.query_values("tagKeys") == params["tagKeys"]


def test_unknown_paths_and_methods() -> None:
    for method, path in (("POST", "/v1/nosuchthing"), ("GET", "/v1/submitjob"), ("PUT", "/v1/tags/x"), ("POST", "/")):
        with pytest.raises(UnknownOperation):
            parse_call(method, path, b"")


def test_bodies() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", b"[1]", b'"x"'):
        with pytest.raises(AwsError) as e:
            parse_body(bad)
        assert e.value.code == "SerializationException"
    assert prune({"a": None, "b": [{"c": None, "d": 1}], "e": {}}) == {"b": [{"d": 1}], "e": {}}
    assert epoch_ms("2024-01-02T03:04:05Z") == 1704164645000
    assert epoch_ms("2024-01-02T03:04:05.250000+00:00") == 1704164645250
    assert epoch_ms(None) is None and epoch_ms("nonsense") is None


class _Kube:
    """Stands for the Kubernetes client; the handlers below never use it."""


def _server(handlers: dict[str, Any]) -> ApiServer:
    async def accept_all(request: Request) -> Principal:
        return Principal("KBATTEST", "ns", 'user "test"', _Kube())  # type: ignore[arg-type]

    return ApiServer(_Kube(), accept_all, handlers)  # type: ignore[arg-type]


def _client(url: str) -> Any:
    return boto3.client(
        "batch",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="KBATTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_boto3_raises_the_modelled_exceptions_and_codes() -> None:
    async def client_error(ctx: Context, call: Call) -> dict[str, Any]:
        raise ClientException("JobQueue q not found.")

    async def server_error(ctx: Context, call: Call) -> dict[str, Any]:
        raise ServerException("boom")

    async def denied(ctx: Context, call: Call) -> dict[str, Any]:
        raise ApiError(403, {"reason": "Forbidden", "message": 'user "x" cannot list'}, "GET", "/x")

    async def crash(ctx: Context, call: Call) -> dict[str, Any]:
        raise RuntimeError("secret-looking detail")

    async def describe(ctx: Context, call: Call) -> dict[str, Any]:
        return {"jobs": [{"jobId": call.body["jobs"][0], "jobName": "n", "status": "RUNNING", "createdAt": 5}]}

    handlers = {
        "SubmitJob": client_error,
        "ListJobs": server_error,
        "CancelJob": denied,
        "TerminateJob": crash,
        "DescribeJobs": describe,
    }
    with serve(_server(handlers).app()) as url:
        client = _client(url)
        with pytest.raises(client.exceptions.ClientException) as ce:
            client.submit_job(jobName="j", jobQueue="q", jobDefinition="d")
        assert ce.value.response["Error"] == {"Code": "ClientException", "Message": "JobQueue q not found."}
        assert ce.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert ce.value.response["ResponseMetadata"]["RequestId"]
        with pytest.raises(client.exceptions.ServerException):
            client.list_jobs(jobQueue="q")
        with pytest.raises(ClientError) as de:
            client.cancel_job(jobId="x", reason="r")
        assert de.value.response["Error"]["Code"] == AccessDenied.code
        assert de.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(client.exceptions.ServerException) as se:
            client.terminate_job(jobId="x", reason="r")
        assert "secret-looking" not in str(se.value)
        with pytest.raises(client.exceptions.ClientException) as ns:
            client.describe_job_queues()
        assert "not supported by kubatch" in ns.value.response["Error"]["Message"]
        out = client.describe_jobs(jobs=["abc"])
        assert out["jobs"][0]["jobId"] == "abc" and out["jobs"][0]["status"] == "RUNNING"
        assert out["jobs"][0]["createdAt"] == 5
