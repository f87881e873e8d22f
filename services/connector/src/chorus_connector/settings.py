"""Connector settings (env prefix CHORUS_CONNECTOR_, shared values from CHORUS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class ConnectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_CONNECTOR_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "connector"
    embedded_secret_defaults: ClassVar[dict[str, str]] = {
        # `kid:base64(32 bytes)[,older…]`; the first key encrypts, all decrypt (rotation).
        "token_encryption_keys": "dev:ZW1iZWRkZWQtZGV2LW9ubHktbm90LWEtc2VjcmV0ISE=",
        "state_signing_secret": "embedded-dev-only-state-secret",
        "platform_client_secret": "sandbox-app-secret",  # the sandbox's app secret
    }

    port: int = Field(default=8002, ge=0, le=65535)
    token_encryption_keys: str = ""
    state_signing_secret: str = ""
    # Where the platforms are: the sandbox (`<url>/<platform>`) in dev and tests; in
    # production a JSON map {"x": "https://api.x.com", …} in `platform_base_urls`.
    sandbox_url: str = ""
    platform_base_urls: dict[str, str] = Field(default_factory=dict)
    platform_auth_urls: dict[str, str] = Field(default_factory=dict)
    # The sandbox as a user's browser reaches it, for its authorize pages, where that differs
    # from `sandbox_url` (compose: the host's published port, not the container name).
    sandbox_public_url: str = ""
    platform_client_id: str = "sandbox-client"
    platform_client_secret: str = ""
    # Per-platform credentials override the defaults above: {"x": {"id": …, "secret": …}}.
    platform_credentials: dict[str, dict[str, str]] = Field(default_factory=dict)
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    refresh_margin_seconds: int = Field(default=300, ge=0)
    oauth_state_ttl_seconds: int = Field(default=600, ge=60)
    readback_slack_seconds: int = Field(default=120, ge=0)
    # Webhooks: the secret each platform signs its deliveries with (Meta's app secret, X's
    # consumer secret); a platform without an entry uses its app credentials' secret.
    webhook_secrets: dict[str, str] = Field(default_factory=dict)
    # Meta's subscription handshake echoes the challenge only for this token; empty = refuse.
    webhook_verify_token: str = ""
    # Metrics collector (worker role): how often each account is collected, and which of
    # its posts (published through Chorus in the last N days).
    metrics_enabled: bool = True
    metrics_interval_seconds: float = Field(default=3600.0, gt=0)
    metrics_lookback_days: int = Field(default=30, ge=1, le=365)
    metrics_batch_size: int = Field(default=20, ge=1, le=500)

    def webhook_secret(self, platform: str) -> str:
        if platform in self.webhook_secrets:
            return self.webhook_secrets[platform]
        creds = self.platform_credentials.get(platform, {})
        return creds.get("secret", self.platform_client_secret)

    def auth_url(self, platform: str) -> str | None:
        """Base of the platform's authorize page; None: the API base serves it."""
        if platform in self.platform_auth_urls:
            return self.platform_auth_urls[platform]
        if self.sandbox_public_url:
            return f"{self.sandbox_public_url.rstrip('/')}/{platform}"
        return None

    def base_url(self, platform: str) -> str | None:
        if platform in self.platform_base_urls:
            return self.platform_base_urls[platform]
        if self.sandbox_url:
            return f"{self.sandbox_url.rstrip('/')}/{platform}"
        return None
