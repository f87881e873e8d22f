"""Publishing settings (env prefix CHORUS_PUBLISHING_, shared values from CHORUS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class PublishingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_PUBLISHING_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "publishing"

    port: int = 8001
    dispatch_deadline_seconds: int = 900
