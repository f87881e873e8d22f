"""Sandbox settings (env prefix CHORUS_SANDBOX_). Dev/test only: never deploy to production."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class SandboxSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_SANDBOX_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "sandbox"

    port: int = Field(default=8010, ge=0, le=65535)
    # Where signed webhooks go (the connector's /webhooks/{platform}); empty = don't send.
    webhook_url: str = ""
    # Shared app secrets the connector is configured with (per platform, same value here).
    app_secret: str = "sandbox-app-secret"
    access_token_ttl_seconds: int = 3600
    # Seconds a simulated `timeout` fault holds the response (longer than the client's timeout).
    timeout_seconds: float = 30.0
    seed: int = 42
    # Seconds an injected `rate_limit` fault tells the client to wait.
    rate_limit_window_seconds: float = Field(default=60.0, gt=0)

    @classmethod
    def needs_database(cls) -> bool:
        return False
