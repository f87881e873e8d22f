"""AWS Signature Version 4 for S3-compatible storage (pure): header-signed requests and
presigned URLs. Small enough to own instead of pulling an SDK for three calls (PUT, DELETE,
presigned GET); checked against the examples in AWS's S3 SigV4 documentation."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # S3 refuses longer presigned URLs


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    region: str
    service: str = "s3"

    def scope(self, day: str) -> str:
        return f"{day}/{self.region}/{self.service}/aws4_request"


def encode(value: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 wants it: unreserved characters kept, hex upper-case."""
    return quote(value, safe="-_.~/" if keep_slash else "-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((encode(k), encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def signing_key(creds: Credentials, day: str) -> bytes:
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (day, creds.region, creds.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _stamp(now: datetime) -> tuple[str, str]:
    return now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")


def signature(
    creds: Credentials,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    now: datetime,
) -> tuple[str, str]:
    """(signed header names, hex signature) of a request; `path` is already encoded."""
    amz_date, day = _stamp(now)
    canon = {k.lower().strip(): " ".join(v.strip().split()) for k, v in headers.items()}
    names = ";".join(sorted(canon))
    request = "\n".join(
        [
            method,
            path,
            canonical_query(query),
            "".join(f"{k}:{canon[k]}\n" for k in sorted(canon)),
            names,
            payload_sha256,
        ]
    )
    to_sign = "\n".join(
        [ALGORITHM, amz_date, creds.scope(day), hashlib.sha256(request.encode()).hexdigest()]
    )
    sig = hmac.new(signing_key(creds, day), to_sign.encode(), hashlib.sha256).hexdigest()
    return names, sig


def sign_headers(
    creds: Credentials,
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
    now: datetime,
) -> dict[str, str]:
    """The headers to send (given ones + host, x-amz-date, x-amz-content-sha256,
    authorization) for a header-signed request."""
    amz_date, day = _stamp(now)
    out = {
        **(headers or {}),
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
    }
    names, sig = signature(
        creds,
        method=method,
        path=path,
        query=query or {},
        headers=out,
        payload_sha256=payload_sha256,
        now=now,
    )
    out["authorization"] = (
        f"{ALGORITHM} Credential={creds.access_key_id}/{creds.scope(day)}, "
        f"SignedHeaders={names}, Signature={sig}"
    )
    return out


def presign(
    creds: Credentials,
    *,
    method: str,
    base_url: str,
    host: str,
    path: str,
    expires_in: int,
    now: datetime,
) -> str:
    """A presigned URL (query-string auth, host the only signed header, payload unsigned)."""
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_in must be within 1..{MAX_PRESIGN_SECONDS} seconds")
    amz_date, day = _stamp(now)
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key_id}/{creds.scope(day)}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": "host",
    }
    _, sig = signature(
        creds,
        method=method,
        path=path,
        query=query,
        headers={"host": host},
        payload_sha256=UNSIGNED_PAYLOAD,
        now=now,
    )
    return f"{base_url.rstrip('/')}{path}?{canonical_query(query)}&X-Amz-Signature={sig}"
