"""Gateway settings (env prefix CHORUS_GATEWAY_, shared values from CHORUS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_GATEWAY_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "gateway"
    # `kid:base64(32 bytes)[,older…]`: encrypts the token-signing private keys at rest.
    embedded_secret_defaults: ClassVar[dict[str, str]] = {
        "key_encryption_key": "dev:ZW1iZWRkZWQtZGV2LW9ubHktbm90LWEtc2VjcmV0ISE=",
    }

    port: int = Field(default=8000, ge=0, le=65535)
    key_encryption_key: str = ""
    signing_algorithm: str = Field(default="EdDSA", pattern="^(EdDSA|RS256)$")
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 7 * 86_400
    api_key_token_ttl_seconds: int = 300
    invitation_ttl_seconds: int = 7 * 86_400
    # Upstreams by service name; an empty URL means "not deployed": 503 with the error body.
    publishing_url: str = ""
    connector_url: str = ""
    listening_url: str = ""
    inbox_url: str = ""
    analytics_url: str = ""
    ai_url: str = ""
    max_body_bytes: int = 10 * 1024 * 1024
    # POST /api/v1/media: publishing accepts videos up to 512 MiB (plus multipart framing).
    upload_max_body_bytes: int = 520 * 1024 * 1024
    cors_allow_origins: list[str] = Field(default_factory=list)
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    rate_limit_fail_open: bool = True
    # JSON overriding plan limits/quotas, e.g. {"free": {"limits": {"api": {"requests": 300}}}}
    plans_override: str | None = None
    # Client addresses are read from X-Forwarded-For only when the peer is one of these.
    trusted_proxies: list[str] = Field(default_factory=list)
