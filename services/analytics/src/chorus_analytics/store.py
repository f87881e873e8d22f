"""The analytics process's one ClickHouse client and its schema lifecycle.

Embedded mode (chdb): the API and the ingest worker of one process share this client, so the
data directory is opened once and every call runs on the client's single worker thread.
Only the analytics process may open that directory; run it as `--role all` there.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from chorus_analytics.settings import AnalyticsSettings
from chorus_runtime.clickhouse import (
    ClickHouseClient,
    ClickHouseUnavailable,
    create_clickhouse_client,
    migrate_down,
    migrate_up,
    redact_url,
)
from chorus_runtime.clickhouse.base import quote_identifier

log = logging.getLogger("chorus.analytics.store")

MIGRATIONS = Path(__file__).parent / "clickhouse_migrations"

# Session settings of every analytics client. A re-sent batch (same dedup token) is dropped
# by the source table, but its materialized views still run: this setting makes their
# target tables drop the block too (each target also has a deduplication window).
SESSION_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class AnalyticsStore:
    def __init__(self, settings: AnalyticsSettings, client: ClickHouseClient | None = None) -> None:
        self.settings = settings
        self.database = settings.clickhouse_database
        self.embedded = settings.embedded_clickhouse
        self.client = client or create_clickhouse_client(
            settings.clickhouse_url,
            database=settings.clickhouse_database,
            settings=SESSION_SETTINGS,
        )

    async def ensure_database(self) -> None:
        """A server has no `CREATE DATABASE` on connect (chdb's client makes it itself)."""
        if self.embedded:
            return
        admin = create_clickhouse_client(self.settings.clickhouse_url, database="default")
        try:
            await admin.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}")
        finally:
            await admin.close()

    async def start(self, *, attempts: int = 10) -> None:
        """Open the store (fail fast after a few tries) and apply pending migrations."""
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                await self.ensure_database()
                await self.client.connect()
                break
            except ClickHouseUnavailable as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "ClickHouse not reachable; retrying",
                    extra={
                        "fields": {
                            "url": redact_url(self.settings.clickhouse_url),
                            "error": str(exc)[:300],
                        }
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
        if self.settings.migrate_on_start:
            applied = await self.migrate()
            if applied:
                log.info("ClickHouse migrations applied", extra={"fields": {"versions": applied}})

    async def migrate(self, target: int | None = None) -> list[int]:
        return await migrate_up(self.client, MIGRATIONS, target)

    async def rollback(self, target: int) -> list[int]:
        return await migrate_down(self.client, MIGRATIONS, target)

    async def ping(self) -> None:
        """Readiness check: raises when the store does not answer."""
        if not await self.client.ping():
            raise ConnectionError("ClickHouse not reachable")

    async def close(self) -> None:
        await self.client.close()
