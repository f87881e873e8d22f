"""Publishing settings (env prefix CHORUS_PUBLISHING_, shared values from CHORUS_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class PublishingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_PUBLISHING_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "publishing"
    embedded_secret_defaults: ClassVar[dict[str, str]] = {
        "media_signing_secret": "embedded-dev-only-media-signing-secret",
    }

    port: int = Field(default=8001, ge=0, le=65535)
    dispatch_deadline_seconds: int = 900
    scheduler_interval_seconds: float = Field(default=0.25, gt=0)
    # Due posts claimed and written per scheduler transaction (one statement per table).
    scheduler_batch_size: int = Field(default=200, ge=1, le=5000)
    import_max_rows: int = Field(default=1000, ge=1)  # CSV import: more rows → 413
    import_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)  # CSV import body size

    # Media assets: local disk (default) or S3-compatible storage.
    media_storage: Literal["local", "s3"] = "local"
    media_root: Path = Path(".chorus/media")  # local files; also where uploads are staged
    media_max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    media_max_video_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # Signed file URLs handed to the connector (local disk): HMAC key, lifetime, and the
    # base URL the connector reaches this service at (default: this service's own address).
    media_signing_secret: str = ""
    media_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    media_base_url: str = ""
    media_s3_endpoint_url: str = ""  # e.g. https://s3.eu-west-1.amazonaws.com, http://minio:9000
    media_s3_bucket: str = ""
    media_s3_region: str = "us-east-1"
    media_s3_access_key_id: str = ""
    media_s3_secret_access_key: str = ""
    media_s3_prefix: str = ""
    media_s3_path_style: bool = True  # bucket in the path (MinIO, most S3-compatibles)

    @property
    def media_public_base_url(self) -> str:
        return (self.media_base_url or f"http://{self.host}:{self.port}").rstrip("/")
