"""Analytics settings (env prefix CHORUS_ANALYTICS_, shared values from CHORUS_).

The service owns no Postgres database: its state is ClickHouse (`clickhouse_url`), a chdb
directory in the embedded mode (relative to the working directory unless absolute) or a
server in production (`clickhouse://user:password@host:8123/`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import Mode, ServiceSettings, SettingsError

EMBEDDED_CLICKHOUSE_URL = "chdb://.chorus/analytics-chdb"
_DATABASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_ANALYTICS_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "analytics"

    port: int = 8005

    clickhouse_url: str = Field(
        default="", description="chdb://<dir> (embedded) or clickhouse://user:pw@host:8123/"
    )
    clickhouse_database: str = Field(default="chorus_analytics", description="created if missing")
    migrate_on_start: bool = Field(
        default=True, description="apply ClickHouse migrations when the api/worker role starts"
    )

    ingest_group: str = Field(default="analytics.ingest", description="Kafka consumer group")
    ingest_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Kafka group session timeout of the ingest consumer"
    )
    # How long a fetch may wait at the broker for data. Real Kafka answers as soon as data
    # arrives; the embedded mock cluster always waits the full time (~0.3 s at the client
    # default of 500 ms), which adds straight to freshness.
    ingest_fetch_max_wait_ms: int = Field(default=100, ge=1, le=5_000)
    ingest_batch_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    ingest_batch_max_seconds: float = Field(default=1.0, gt=0, le=60)
    ingest_retry_initial_seconds: float = Field(default=0.2, gt=0)
    ingest_retry_max_seconds: float = Field(default=5.0, gt=0)
    # A statement ClickHouse rejects (not an outage) is retried this often before the batch
    # is split and the offending events go to the DLQ.
    ingest_rejected_attempts: int = Field(default=3, ge=1)

    export_chunk_rows: int = Field(default=5_000, ge=1, le=100_000)
    max_range_days: int = Field(default=366, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _embedded_store(cls, values: Any) -> Any:
        """Embedded default: `.chorus/analytics-chdb`, one directory per topic prefix, since a
        prefix is a separate deployment (e.g. the e2e stack beside a developer's `make up`)
        and a chdb directory can be open in one process only."""
        if isinstance(values, dict) and not values.get("clickhouse_url"):
            mode = str(values.get("mode", Mode.EMBEDDED.value))
            if mode == Mode.EMBEDDED.value:
                prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", str(values.get("topic_prefix") or ""))
                suffix = prefix.strip("-")
                values["clickhouse_url"] = EMBEDDED_CLICKHOUSE_URL + (
                    f"-{suffix}" if suffix else ""
                )
        return values

    @model_validator(mode="after")
    def _require_server_url(self) -> AnalyticsSettings:
        # The server URL carries a password: no default outside the embedded mode.
        if not self.clickhouse_url:
            raise SettingsError(f"{self.service_name}: set {self.env_name('clickhouse_url')}")
        return self

    @field_validator("clickhouse_database")
    @classmethod
    def _check_database(cls, v: str) -> str:
        if not _DATABASE_RE.match(v):
            raise ValueError("must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
        return v

    @classmethod
    def needs_database(cls) -> bool:
        return False

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_url.lower().startswith("chdb://")
