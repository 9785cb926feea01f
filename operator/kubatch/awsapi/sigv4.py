"""Verification of AWS Signature Version 4 (``AWS4-HMAC-SHA256`` in the Authorization header), pure.

``parse`` reads the Authorization header (which access key, which scope, which headers are signed);
the caller looks the key up; ``verify`` rebuilds the canonical request exactly as the SDKs sign it
(botocore's ``SigV4Auth``: the path as sent, normalised and percent-encoded once more; the query
sorted; the signed headers lower-cased with their values trimmed; the body's SHA-256) and compares
signatures in constant time. Refusals are AWS's:

- no Authorization header: ``MissingAuthenticationTokenException`` ("Missing Authentication Token");
- a header that is not a complete SigV4 one: ``IncompleteSignatureException``;
- a date more than 15 minutes from the server's clock: ``InvalidSignatureException`` "Signature
  expired: <date> is now earlier than <now - 15 min> (<now> - 15 min.)" (or "not yet current" for
  a date in the future);
- a scope of another region or service, or a signature that does not match:
  ``InvalidSignatureException`` (AWS's message for a mismatch).

Presigned URLs (the signature in the query string) and session tokens are not accepted: kubatch
issues only long-term keys. Nothing here logs; the secret is only ever an HMAC key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from kubatch.awsapi.errors import AwsError, InvalidSignature, MissingAuthenticationToken

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "batch"
MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class IncompleteSignature(AwsError):
    status = 403
    code = "IncompleteSignatureException"


@dataclass(frozen=True)
class Authorization:
    """What an Authorization header says."""

    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


Headers = Iterable[tuple[str, str]]


def _header_values(headers: Headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def parse(headers: Headers) -> Authorization:
    """The request's Authorization header, read; refusals as the module docstring says."""
    values = _header_values(headers, "authorization")
    if not values:
        raise MissingAuthenticationToken()
    header = values[0].strip()
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported authorization type: only {ALGORITHM} is accepted")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
    if missing:
        raise IncompleteSignature(
            f"Authorization header requires '{missing[0]}' parameter. Authorization={algorithm} {rest}"[:400]
        )
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or not credential[0]:
        raise IncompleteSignature(
            "Authorization header requires a Credential of the form <access key>/<date>/<region>/<service>/aws4_request"
        )
    key, date, region, service, _ = credential
    return Authorization(
        access_key_id=key,
        date=date,
        region=region,
        service=service,
        signed_headers=tuple(h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()),
        signature=fields["Signature"].lower(),
    )


def request_time(headers: Headers) -> tuple[datetime, str]:
    """When the request was signed: X-Amz-Date (``20240102T030405Z``), else the Date header; and
    the header's name."""
    amz = _header_values(headers, "x-amz-date")
    if amz:
        try:
            return datetime.strptime(amz[0].strip(), AMZ_DATE_FORMAT).replace(tzinfo=UTC), "x-amz-date"
        except ValueError:
            raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{amz[0].strip()}'.") from None
    date = _header_values(headers, "date")
    if date:
        try:
            when = parsedate_to_datetime(date[0].strip())
        except (TypeError, ValueError, IndexError):
            raise IncompleteSignature(f"Date header is not an HTTP date: '{date[0].strip()}'") from None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC), "date"
    raise IncompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def check_time(signed_at: datetime, now: datetime) -> None:
    """InvalidSignatureException, in AWS's words, for a date more than 15 minutes off."""
    if signed_at < now - MAX_SKEW:
        raise InvalidSignature(
            f"Signature expired: {_stamp(signed_at)} is now earlier than {_stamp(now - MAX_SKEW)} "
            f"({_stamp(now)} - 15 min.)"
        )
    if signed_at > now + MAX_SKEW:
        raise InvalidSignature(
            f"Signature not yet current: {_stamp(signed_at)} is still later than {_stamp(now + MAX_SKEW)} "
            f"({_stamp(now)} + 15 min.)"
        )


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, and consecutive slashes collapsed, as the SDKs normalise the signed path."""
    if not path:
        return "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_uri(raw_path: str) -> str:
    """The path as sent (percent-encoded), normalised and encoded once more (every AWS service but
    S3 signs the doubly encoded path)."""
    return quote(remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    """Each name and value decoded and encoded again (RFC 3986 unreserved characters kept), sorted."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_headers(headers: Headers, signed: Iterable[str]) -> str:
    lines = []
    for name in signed:
        values = _header_values(headers, name)
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    return "\n".join(lines) + "\n"


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Headers, signed: tuple[str, ...], payload_hash: str
) -> str:
    headers = list(headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify(
    auth: Authorization,
    *,
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    body: bytes,
    now: datetime,
    region: str,
    service: str = SERVICE,
) -> None:
    """Check a parsed request's signature with the key's ``secret``; returns when it is valid."""
    headers = list(headers)
    signed_at, date_header = request_time(headers)
    check_time(signed_at, now)
    if auth.date != signed_at.strftime("%Y%m%d"):
        raise InvalidSignature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date}' != '{signed_at.strftime('%Y%m%d')}', from '{date_header}'."
        )
    if auth.region != region:
        raise InvalidSignature(f"Credential should be scoped to a valid region, not '{auth.region}'. ")
    if auth.service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'. ")
    if "host" not in auth.signed_headers:
        raise InvalidSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    if date_header not in auth.signed_headers:
        raise InvalidSignature(f"'{date_header}' must be a 'SignedHeader' in the AWS Authorization.")
    if _header_values(headers, "x-amz-security-token"):
        raise InvalidSignature("session tokens are not accepted: kubatch issues long-term access keys only")
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    declared = _header_values(headers, "x-amz-content-sha256")
    if declared and declared[0].strip().lower() != payload_hash:
        raise InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.")
    request = canonical_request(method, raw_path, raw_query, headers, auth.signed_headers, payload_hash)
    string_to_sign = "\n".join(
        [ALGORITHM, _stamp(signed_at), auth.scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    expected = hmac.new(
        signing_key(secret, auth.date, auth.region, auth.service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise InvalidSignature()
