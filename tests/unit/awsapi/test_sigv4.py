"""SigV4 verification against signatures made by botocore's own signer (``botocore.auth.SigV4Auth``):
valid requests pass, whatever their path, query and body; a changed byte, a wrong secret, a stale or
future date, another region or service, and a missing or incomplete header are refused with AWS's
codes and messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kubatch.awsapi import sigv4
from kubatch.awsapi.errors import AwsError

KEY, SECRET = "KBATEXAMPLEKEY000001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SIGNED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def signed(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    secret: str = SECRET,
    region: str = "us-east-1",
    service: str = "batch",
    at: datetime = SIGNED_AT,
    headers: dict[str, str] | None = None,
) -> tuple[str, str, str, list[tuple[str, str]], bytes]:
    """A request signed by botocore: (method, raw path, raw query, headers as sent, body)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.headers["Content-Type"] = "application/x-amz-json-1.1"
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY, secret), service, region).add_auth(request)
    parts = urlsplit(url)
    sent = [("Host", parts.netloc), *request.headers.items()]
    return method, parts.path, parts.query, sent, body


def check(
    method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes, *, now: datetime = SIGNED_AT
) -> None:
    auth = sigv4.parse(headers)
    assert auth.access_key_id == KEY
    sigv4.verify(
        auth,
        secret=SECRET,
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers,
        body=body,
        now=now,
        region="us-east-1",
    )


def refusal(request: tuple[str, str, str, list[tuple[str, str]], bytes], now: datetime = SIGNED_AT) -> AwsError:
    with pytest.raises(AwsError) as e:
        check(*request, now=now)
    return e.value


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "http://127.0.0.1:8443/v1/submitjob", b'{"jobName": "j", "jobQueue": "q", "jobDefinition": "d"}'),
        ("POST", "https://batch.example.com/v1/describejobs", b'{"jobs": ["a"]}'),
        ("POST", "http://localhost:1/v1/listjobs", b""),
        ("GET", "http://127.0.0.1:9/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A000000000000%3Ajob-queue%2Fq", b""),
        ("DELETE", "http://127.0.0.1:9/v1/tags/arn%3Aaws%3Abatch%3Aus%3A0%3Ajob%2F1?tagKeys=b&tagKeys=a%20c", b""),
        ("POST", "http://127.0.0.1:9/prefix/./v1//x/../submitjob", b"{}"),
        ("POST", "http://127.0.0.1:9/v1/submitjob", '{"jobName": "ü ✓"}'.encode()),
    ],
)
def test_botocore_signatures_verify(method: str, url: str, body: bytes) -> None:
    check(*signed(url, body, method=method))


def test_the_date_may_be_anywhere_within_15_minutes() -> None:
    request = signed("http://h/v1/listjobs", b"{}")
    check(*request, now=SIGNED_AT + timedelta(minutes=14, seconds=59))
    check(*request, now=SIGNED_AT - timedelta(minutes=14, seconds=59))
    stale = refusal(request, now=SIGNED_AT + timedelta(minutes=16))
    assert (stale.code, stale.status) == ("InvalidSignatureException", 403)
    assert stale.message == (
        "Signature expired: 20240506T070809Z is now earlier than 20240506T070909Z (20240506T072409Z - 15 min.)"
    )
    future = refusal(request, now=SIGNED_AT - timedelta(minutes=16))
    assert future.code == "InvalidSignatureException"
    assert future.message.startswith("Signature not yet current: 20240506T070809Z is still later than")


def test_any_change_breaks_the_signature() -> None:
    method, path, query, headers, body = signed("http://h:1/v1/submitjob", b'{"jobQueue": "q"}')
    mismatch = [
        (method, path, query, headers, b'{"jobQueue": "r"}'),
        (method, "/v1/canceljob", query, headers, body),
        ("PUT", path, query, headers, body),
        (method, path, "a=b", headers, body),
        (method, path, query, [(k, "other:2" if k == "Host" else v) for k, v in headers], body),
        signed("http://h:1/v1/submitjob", b'{"jobQueue": "q"}', secret="wrong"),
    ]
    for request in mismatch:
        error = refusal(request)
        assert (error.code, error.status) == ("InvalidSignatureException", 403)
        assert error.message.startswith("The request signature we calculated does not match")


def test_scope_and_header_refusals() -> None:
    assert "valid region" in refusal(signed("http://h/v1/listjobs", region="eu-west-1")).message
    assert "correct service" in refusal(signed("http://h/v1/listjobs", service="ecs")).message
    no_auth = [(k, v) for k, v in signed("http://h/v1/listjobs")[3] if k.lower() != "authorization"]
    missing = refusal(("POST", "/v1/listjobs", "", no_auth, b""))
    assert (missing.code, missing.status, missing.message) == (
        "MissingAuthenticationTokenException",
        403,
        "Missing Authentication Token",
    )
    for bad in ("AWS3 whatever", "AWS4-HMAC-SHA256 Credential=K/20240506/us-east-1/batch/aws4_request"):
        headers = [*no_auth, ("Authorization", bad)]
        assert refusal(("POST", "/v1/listjobs", "", headers, b"")).code == "IncompleteSignatureException"
    dateless = [(k, v) for k, v in signed("http://h/v1/listjobs")[3] if k.lower() != "x-amz-date"]
    assert refusal(("POST", "/v1/listjobs", "", dateless, b"")).code == "IncompleteSignatureException"
    token = signed("http://h/v1/listjobs", headers={"X-Amz-Security-Token": "t"})
    assert "session tokens" in refusal(token).message
    tampered_hash = signed("http://h/v1/listjobs", b"{}", headers={"X-Amz-Content-SHA256": sigv4.EMPTY_SHA256})
    assert "x-amz-content-sha256" in refusal(tampered_hash).message


def test_canonical_pieces() -> None:
    assert sigv4.remove_dot_segments("/a/./b/../c//d/") == "/a/c/d/"
    assert sigv4.canonical_uri("/v1/tags/arn%3Aaws") == "/v1/tags/arn%253Aaws"
    assert sigv4.canonical_query("b=2&a=x%20y&a=1") == "a=1&a=x%20y&b=2"
