"""12-factor settings shared by every service (design.md §6).

Each service subclasses `ServiceSettings` with its own env prefix (`CHORUS_PUBLISHING_`);
infrastructure values may also come from the shared `CHORUS_` prefix so one env file can
configure a whole stack. Secrets have no usable default outside the embedded mode.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class Mode(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class SettingsError(Exception):
    """Configuration is missing or unsafe; the message names the variable to set.

    Not a ValueError: pydantic would wrap that in a ValidationError from the validators."""


class ServiceSettings(BaseSettings):
    """Base for every service's settings."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "service"
    # Secrets: field name → value used only in embedded mode (dev/test on one machine).
    embedded_secret_defaults: ClassVar[dict[str, str]] = {}

    mode: Mode = Mode.EMBEDDED
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = Field(
        default="", description="app role DSN (postgresql+asyncpg://…), not the table owner"
    )
    migrations_database_url: str = Field(
        default="", description="owner DSN used by migrations; defaults to database_url"
    )
    database_pool_size: int = 10
    # Embedded mode only: appended to the default database names (`chorus_<service><suffix>`),
    # so a test stack never shares a developer's databases.
    database_name_suffix: str = Field(default="", pattern=r"^[a-z0-9_]*$", max_length=20)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"

    jwks_url: str = "http://127.0.0.1:8000/.well-known/jwks.json"
    jwt_issuer: str = "chorus-gateway"
    jwt_audience: str = "chorus"

    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    readiness_timeout_seconds: float = 2.0
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_seconds: float = Field(default=0.5, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Service prefix wins over the shared CHORUS_ prefix.
        shared = EnvSettingsSource(settings_cls, env_prefix="CHORUS_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _embedded_secrets(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        mode = str(values.get("mode", Mode.EMBEDDED.value))
        if mode == Mode.EMBEDDED.value:
            for name, default in cls.embedded_secret_defaults.items():
                values.setdefault(name, default)
            if cls.needs_database() and not values.get("database_url"):
                suffix = str(values.get("database_name_suffix") or "")
                if not re.fullmatch(r"[a-z0-9_]{0,20}", suffix):
                    raise ValueError("database_name_suffix: lowercase letters, digits and _ only")
                db = f"chorus_{cls.service_name}{suffix}"
                values["database_url"] = f"postgresql+asyncpg://{db}_app@127.0.0.1:5432/{db}"
                values.setdefault(
                    "migrations_database_url", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
                )
        return values

    @model_validator(mode="after")
    def _require_secrets(self) -> ServiceSettings:
        missing = [
            self.env_name(name)
            for name in self.embedded_secret_defaults
            if _empty(getattr(self, name, None))
        ]
        if missing:
            raise SettingsError(
                f"{self.service_name}: set {', '.join(missing)} (no default outside embedded mode)"
            )
        if self.mode is Mode.PRODUCTION and not self.database_url and self.needs_database():
            raise SettingsError(f"{self.service_name}: set {self.env_name('database_url')}")
        return self

    @classmethod
    def needs_database(cls) -> bool:
        return True

    @classmethod
    def env_name(cls, field: str) -> str:
        prefix = cls.model_config.get("env_prefix", "CHORUS_")
        return f"{prefix}{field}".upper()

    @property
    def migrations_url(self) -> str:
        return self.migrations_database_url or self.database_url

    def physical_topic(self, logical: str) -> str:
        return f"{self.topic_prefix}{logical}"


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, SecretStr):
        return value.get_secret_value() == ""
    return value == ""
