"""Where media bytes live, behind one small interface: local disk or S3-compatible storage.

The connector fetches an asset's bytes by URL when it publishes: for local disk that is this
service's `/media-files/{id}` with an HMAC over id+expiry (service to service, not routed by
the gateway); for S3 a presigned GET. Both expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import httpx

from chorus_publishing import s3_sigv4
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.errors import ServiceUnavailable
from chorus_runtime.settings import SettingsError

CHUNK = 1024 * 1024
FILES_PATH = "/media-files"


class MediaStore(Protocol):
    kind: str  # stored with each asset: which store holds its bytes

    async def put(self, key: str, source: Path, *, mime_type: str, sha256: str) -> None:
        """Take the staged file at `source` (consumed) and keep it under `key`."""

    async def delete(self, key: str) -> None:
        """Forget `key`; a missing key is not an error."""

    def fetch_url(self, asset_id: str, key: str, *, expires_at: int) -> str:
        """A URL that serves the bytes without credentials until `expires_at` (epoch s)."""

    async def close(self) -> None:
        """Release connections (on shutdown)."""


# -- signed URLs for the local store ---------------------------------------------------------


def file_signature(secret: str, asset_id: str, expires_at: int) -> str:
    message = f"{asset_id}.{expires_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_file_signature(
    secret: str, asset_id: str, expires_at: int, sig: str, *, now: float | None = None
) -> bool:
    """True when `sig` signs (asset_id, expires_at) and the time has not passed."""
    if expires_at < (time.time() if now is None else now):
        return False
    # Bytes, not str: compare_digest refuses non-ASCII strings with a TypeError.
    expected = file_signature(secret, asset_id, expires_at).encode()
    return hmac.compare_digest(expected, sig.lower().encode("utf-8", "replace"))


class LocalMediaStore:
    kind = "local"

    def __init__(self, root: Path, *, base_url: str, secret: str) -> None:
        if not secret:
            raise SettingsError("publishing: set CHORUS_PUBLISHING_MEDIA_SIGNING_SECRET")
        self.root = root.resolve()
        self.base_url = base_url.rstrip("/")
        self.secret = secret

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("media key escapes the media root")  # keys are ours; a guard
        return path

    async def put(self, key: str, source: Path, *, mime_type: str, sha256: str) -> None:
        target = self.path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)  # staging lives under the root: same file system

        await asyncio.to_thread(move)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    def fetch_url(self, asset_id: str, key: str, *, expires_at: int) -> str:
        sig = file_signature(self.secret, asset_id, expires_at)
        query = urlencode({"expires": expires_at, "sig": sig})
        return f"{self.base_url}{FILES_PATH}/{asset_id}?{query}"

    async def close(self) -> None:
        return None


# -- S3-compatible storage -------------------------------------------------------------------


class S3MediaStore:
    kind = "s3"

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        credentials: s3_sigv4.Credentials,
        prefix: str = "",
        path_style: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or not bucket:
            raise SettingsError(
                "publishing: S3 media storage needs CHORUS_PUBLISHING_MEDIA_S3_ENDPOINT_URL "
                "and CHORUS_PUBLISHING_MEDIA_S3_BUCKET"
            )
        self.creds = credentials
        self.prefix = prefix.strip("/")
        self.path_style = path_style
        self.bucket = bucket
        if path_style:
            self.host = parts.netloc
            self.base = f"{parts.scheme}://{parts.netloc}"
        else:
            self.host = f"{bucket}.{parts.netloc}"
            self.base = f"{parts.scheme}://{self.host}"
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))

    def object_path(self, key: str) -> str:
        """The encoded request path of `key` (bucket first in path style)."""
        full = f"{self.prefix}/{key}" if self.prefix else key
        path = f"/{self.bucket}/{full}" if self.path_style else f"/{full}"
        return s3_sigv4.encode(path, keep_slash=True)

    async def _send(
        self,
        method: str,
        key: str,
        *,
        headers: dict[str, str] | None = None,
        payload_sha256: str = s3_sigv4.EMPTY_SHA256,
        content: AsyncIterator[bytes] | None = None,
    ) -> httpx.Response:
        path = self.object_path(key)
        signed = s3_sigv4.sign_headers(
            self.creds,
            method=method,
            host=self.host,
            path=path,
            headers=headers,
            payload_sha256=payload_sha256,
            now=datetime.now(UTC),
        )
        try:
            return await self.client.request(
                method, f"{self.base}{path}", headers=signed, content=content
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "media storage is unreachable", details={"reason": type(exc).__name__}
            ) from None

    async def put(self, key: str, source: Path, *, mime_type: str, sha256: str) -> None:
        size = (await asyncio.to_thread(source.stat)).st_size
        try:
            resp = await self._send(
                "PUT",
                key,
                headers={"content-type": mime_type, "content-length": str(size)},
                payload_sha256=sha256,  # computed while the upload streamed in
                content=_read_chunks(source),
            )
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)
        if resp.status_code // 100 != 2:
            raise ServiceUnavailable(
                "media storage refused the upload", details={"status": resp.status_code}
            )

    async def delete(self, key: str) -> None:
        resp = await self._send("DELETE", key)
        if resp.status_code // 100 != 2 and resp.status_code != 404:
            raise ServiceUnavailable(
                "media storage refused the delete", details={"status": resp.status_code}
            )

    def fetch_url(self, asset_id: str, key: str, *, expires_at: int) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        expires_in = max(1, min(expires_at - int(now.timestamp()), s3_sigv4.MAX_PRESIGN_SECONDS))
        return s3_sigv4.presign(
            self.creds,
            method="GET",
            base_url=self.base,
            host=self.host,
            path=self.object_path(key),
            expires_in=expires_in,
            now=now,
        )

    async def close(self) -> None:
        await self.client.aclose()


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


def build_store(settings: PublishingSettings) -> MediaStore:
    if settings.media_storage == "s3":
        return S3MediaStore(
            endpoint_url=settings.media_s3_endpoint_url,
            bucket=settings.media_s3_bucket,
            credentials=s3_sigv4.Credentials(
                settings.media_s3_access_key_id,
                settings.media_s3_secret_access_key,
                settings.media_s3_region,
            ),
            prefix=settings.media_s3_prefix,
            path_style=settings.media_s3_path_style,
        )
    return LocalMediaStore(
        settings.media_root,
        base_url=settings.media_public_base_url,
        secret=settings.media_signing_secret,
    )
