"""The media stores (unit). S3: SigV4 checked against AWS's documented examples, and the
store's PUT/DELETE/presigned GET checked on the wire through an httpx mock transport (S3
is an external platform, unreachable here). Local: the HMAC file URLs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chorus_publishing import s3_sigv4
from chorus_publishing.media_store import (
    LocalMediaStore,
    S3MediaStore,
    build_store,
    file_signature,
    verify_file_signature,
)
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.errors import ServiceUnavailable
from chorus_runtime.settings import SettingsError

pytestmark = pytest.mark.unit

# The credentials and time of the examples in AWS's "Signature Calculations for the
# Authorization Header" and "Authenticating Requests: Using Query Parameters" pages.
AWS = s3_sigv4.Credentials(
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1"
)
AWS_TIME = datetime(2013, 5, 24, tzinfo=UTC)
AWS_HOST = "examplebucket.s3.amazonaws.com"


def test_presigned_get_matches_the_aws_example() -> None:
    url = s3_sigv4.presign(
        AWS,
        method="GET",
        base_url=f"https://{AWS_HOST}",
        host=AWS_HOST,
        path="/test.txt",
        expires_in=86400,
        now=AWS_TIME,
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_header_signed_get_matches_the_aws_example() -> None:
    headers = s3_sigv4.sign_headers(
        AWS, method="GET", host=AWS_HOST, path="/test.txt", headers={"range": "bytes=0-9"},
        now=AWS_TIME,
    )  # fmt: skip
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_put_object_matches_the_aws_example_including_an_encoded_key() -> None:
    body = b"Welcome to Amazon S3."
    headers = s3_sigv4.sign_headers(
        AWS,
        method="PUT",
        host=AWS_HOST,
        path=s3_sigv4.encode("/test$file.text", keep_slash=True),
        headers={
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        payload_sha256=hashlib.sha256(body).hexdigest(),
        now=AWS_TIME,
    )
    assert headers["authorization"].endswith(
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_presigning_refuses_lifetimes_s3_would_refuse() -> None:
    for expires_in in (0, s3_sigv4.MAX_PRESIGN_SECONDS + 1):
        with pytest.raises(ValueError):
            s3_sigv4.presign(
                AWS, method="GET", base_url="https://h", host="h", path="/k",
                expires_in=expires_in, now=AWS_TIME,
            )  # fmt: skip


# -- the S3 store on the wire -----------------------------------------------------------------

CREDS = s3_sigv4.Credentials("AKIDTEST", "secret/test+key", "eu-west-1")


def assert_signed(request: httpx.Request, body: bytes) -> None:
    """The Authorization header is a valid signature of what was actually sent."""
    auth = request.headers["authorization"]
    fields = dict(p.split("=", 1) for p in auth.removeprefix("AWS4-HMAC-SHA256 ").split(", "))
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    now = datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    _, expected = s3_sigv4.signature(
        CREDS,
        method=request.method,
        path=request.url.raw_path.decode(),
        query={},
        headers={h: request.headers[h] for h in signed},
        payload_sha256=request.headers["x-amz-content-sha256"],
        now=now,
    )
    assert fields["Signature"] == expected
    assert fields["Credential"] == f"AKIDTEST/{now:%Y%m%d}/eu-west-1/s3/aws4_request"


def s3_store(handler: object, **kw: object) -> S3MediaStore:
    return S3MediaStore(
        endpoint_url="https://objects.example.test",
        bucket="chorus-media",
        credentials=CREDS,
        prefix="media",
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


async def test_put_streams_the_staged_file_signed_with_its_sha256(tmp_path: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    staged = tmp_path / "upload.part"
    staged.write_bytes(data)
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        seen.append(request)
        return httpx.Response(200)

    store = s3_store(handler)
    await store.put(
        "ws/a b$.png", staged, mime_type="image/png", sha256=hashlib.sha256(data).hexdigest()
    )
    (request,) = seen
    assert request.method == "PUT"
    assert request.url.host == "objects.example.test"
    assert request.url.raw_path == b"/chorus-media/media/ws/a%20b%24.png"
    assert request.headers["content-type"] == "image/png"
    assert request.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in request.headers  # S3 needs a length, not chunks
    assert request.content == data
    assert_signed(request, data)
    assert not staged.exists(), "the staged file is consumed"


async def test_a_refused_put_is_a_503_and_still_removes_the_staged_file(tmp_path: Path) -> None:
    staged = tmp_path / "upload.part"
    staged.write_bytes(b"bytes")
    store = s3_store(lambda request: httpx.Response(403, text="<Error>AccessDenied</Error>"))
    with pytest.raises(ServiceUnavailable) as err:
        await store.put("k", staged, mime_type="image/png", sha256=hashlib.sha256(b"x").hexdigest())
    assert err.value.details == {"status": 403}
    assert not staged.exists()


async def test_delete_is_signed_and_a_missing_object_is_fine() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204 if len(seen) == 1 else 404)

    store = s3_store(handler, path_style=False)
    await store.delete("ws/x.mp4")
    await store.delete("ws/x.mp4")
    assert [r.method for r in seen] == ["DELETE", "DELETE"]
    assert seen[0].url.host == "chorus-media.objects.example.test"  # virtual-hosted style
    assert seen[0].url.raw_path == b"/media/ws/x.mp4"
    assert_signed(seen[0], b"")


async def test_storage_errors_and_outages_are_503() -> None:
    with pytest.raises(ServiceUnavailable):
        await s3_store(lambda request: httpx.Response(500)).delete("k")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServiceUnavailable) as err:
        await s3_store(down).delete("k")
    assert err.value.details == {"reason": "ConnectError"}


def test_fetch_url_is_a_presigned_get_valid_until_the_expiry() -> None:
    store = s3_store(lambda request: httpx.Response(200))
    now = int(datetime.now(UTC).timestamp())
    url = store.fetch_url("asset", "ws/asset.jpg", expires_at=now + 900)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "objects.example.test"
    assert parts.path == "/chorus-media/media/ws/asset.jpg"
    assert query["X-Amz-SignedHeaders"] == "host"
    assert 898 <= int(query["X-Amz-Expires"]) <= 900
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    again = s3_sigv4.presign(
        CREDS,
        method="GET",
        base_url="https://objects.example.test",
        host="objects.example.test",
        path=parts.path,
        expires_in=int(query["X-Amz-Expires"]),
        now=signed_at,
    )
    assert again == url


def test_s3_settings_must_name_an_endpoint_and_a_bucket(tmp_path: Path) -> None:
    settings = PublishingSettings(media_storage="s3", media_root=tmp_path)
    with pytest.raises(SettingsError, match="MEDIA_S3_ENDPOINT_URL"):
        build_store(settings)
    ok = PublishingSettings(
        media_storage="s3",
        media_s3_endpoint_url="http://minio:9000",
        media_s3_bucket="media",
        media_s3_access_key_id="k",
        media_s3_secret_access_key="s",
    )
    store = build_store(ok)
    assert isinstance(store, S3MediaStore) and store.kind == "s3"
    assert store.object_path("w/a.png") == "/media/w/a.png"


# -- local files --------------------------------------------------------------------------


def test_local_urls_carry_an_hmac_over_id_and_expiry(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path, base_url="http://publishing:8001/", secret="s3cret")
    url = store.fetch_url("a1", "ws/a1.png", expires_at=2_000_000_000)
    assert url == (
        "http://publishing:8001/media-files/a1?expires=2000000000&sig="
        + file_signature("s3cret", "a1", 2_000_000_000)
    )
    sig = file_signature("s3cret", "a1", 2_000_000_000)
    assert verify_file_signature("s3cret", "a1", 2_000_000_000, sig, now=1_999_999_999)
    assert not verify_file_signature("s3cret", "a1", 2_000_000_000, sig, now=2_000_000_001)
    assert not verify_file_signature("s3cret", "a2", 2_000_000_000, sig, now=0)
    assert not verify_file_signature("s3cret", "a1", 2_000_000_001, sig, now=0)
    assert not verify_file_signature("other", "a1", 2_000_000_000, sig, now=0)


def test_local_keys_cannot_leave_the_root(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path, base_url="http://x", secret="s")
    assert store.path("ws/a.png") == (tmp_path / "ws" / "a.png").resolve()
    with pytest.raises(ValueError):
        store.path("../outside")


def test_a_local_store_needs_a_signing_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MEDIA_SIGNING_SECRET"):
        LocalMediaStore(tmp_path, base_url="http://x", secret="")
