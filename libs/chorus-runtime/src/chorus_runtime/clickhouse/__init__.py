"""ClickHouse access for Chorus: one async interface, an embedded (chdb) and a server backend.

    client = create_clickhouse_client(settings.clickhouse_url)  # chdb:///... or clickhouse://...
    async with client:
        await migrate_up(client, Path(__file__).parent / "migrations")
        await client.insert("events", rows, ["event_id", ...], dedup_token=batch_id)
        rows = await client.query("SELECT ... WHERE tenant = {tenant:UUID}", {"tenant": tid})

Backends load lazily: importing this package imports neither chdb nor clickhouse-connect.
"""

from __future__ import annotations

from chorus_runtime.clickhouse.base import (
    TRANSIENT_ERROR_CODES,
    ClickHouseClient,
    ClickHouseError,
    ClickHouseUnavailable,
)
from chorus_runtime.clickhouse.embedded import EmbeddedClickHouseClient
from chorus_runtime.clickhouse.factory import create_clickhouse_client, redact_url
from chorus_runtime.clickhouse.migrations import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    applied_versions,
    load_migrations,
    migrate_down,
    migrate_up,
    schema_snapshot,
)
from chorus_runtime.clickhouse.server import ServerClickHouseClient

__all__ = [
    "MIGRATIONS_TABLE",
    "TRANSIENT_ERROR_CODES",
    "ClickHouseClient",
    "ClickHouseError",
    "ClickHouseUnavailable",
    "EmbeddedClickHouseClient",
    "Migration",
    "MigrationError",
    "ServerClickHouseClient",
    "applied_versions",
    "create_clickhouse_client",
    "load_migrations",
    "migrate_down",
    "migrate_up",
    "redact_url",
    "schema_snapshot",
]
