"""Connector settings (env prefix CHORUS_CONNECTOR_, shared values from CHORUS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import ServiceSettings


class ConnectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_CONNECTOR_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "connector"

    port: int = Field(default=8002, ge=0, le=65535)
