"""Publishing settings (env prefix CHORUS_PUBLISHING_, shared values from CHORUS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class PublishingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_PUBLISHING_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "publishing"

    port: int = Field(default=8001, ge=0, le=65535)
    dispatch_deadline_seconds: int = 900
    scheduler_interval_seconds: float = Field(default=0.25, gt=0)
