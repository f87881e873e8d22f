"""Read-only ClickHouse users per workspace, fenced by row policies.

The policy proof needs a ClickHouse server (docker). The embedded store has no users,
grants or row policies: the commands refuse it with that explanation (integration).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from analytics_support import new_database
from analytics_testkit import (
    account_metrics,
    audited,
    ingest,
    post_metrics,
    workspace_created,
)

from chorus_analytics import readers
from chorus_analytics.main import main
from chorus_analytics.mappings import TABLES
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_runtime.clickhouse import (
    ClickHouseClient,
    ClickHouseError,
    EmbeddedClickHouseClient,
    create_clickhouse_client,
    migrate_up,
)


@pytest.mark.integration
async def test_the_embedded_store_has_no_readers(ch: EmbeddedClickHouseClient) -> None:
    with pytest.raises(readers.ReaderError, match="no users, grants or row policies"):
        await readers.create_reader(ch, "db", uuid.uuid4())


@pytest.mark.integration
def test_the_create_reader_command_refuses_embedded_mode(
    chdb_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_ANALYTICS_CLICKHOUSE_URL", f"chdb://{chdb_path}")
    monkeypatch.setenv("CHORUS_ANALYTICS_CLICKHOUSE_DATABASE", new_database())
    monkeypatch.setattr("chorus_analytics.main.setup_logging", lambda *a, **k: None)
    assert main(["create-reader", "--workspace-id", str(uuid.uuid4())]) == 2
    assert "embedded store (chdb) has no users" in capsys.readouterr().err


@pytest.mark.integration
async def test_the_reader_ddl_parses(ch: EmbeddedClickHouseClient, database: str) -> None:
    """Every statement the commands send, through ClickHouse's own parser (formatQuery)."""
    ws = uuid.uuid4()
    user = readers.reader_user(ws, "bi")
    tables, views = await readers.scoped_objects(ch, database)
    assert set(TABLES) <= set(tables)
    assert set(views) == {"accounts", "posts", "workspaces"}
    statements = [
        *readers.user_statements(database, user, "it's a 'secret'"),
        *readers.grant_statements(database, user, ws, tables, views),
        *readers.unrestricted_statements(database, tables, [user, "ws_" + "0" * 32]),
        *readers.unrestricted_statements(database, tables, []),
        *readers.drop_statements(database, user, tables),
    ]
    for statement in statements:
        rows = await ch.query("SELECT formatQuery({q:String}) AS f", {"q": statement})
        assert rows[0]["f"], statement


@pytest.fixture
async def server_db(clickhouse_server_url: str) -> AsyncIterator[tuple[ClickHouseClient, str]]:
    name = new_database()
    admin = create_clickhouse_client(clickhouse_server_url, database="default")
    await admin.command(f"CREATE DATABASE IF NOT EXISTS {name}")
    await admin.close()
    client = create_clickhouse_client(
        clickhouse_server_url, database=name, settings=SESSION_SETTINGS
    )
    await migrate_up(client, MIGRATIONS)
    yield client, name
    for user in await readers.list_readers(client):
        await readers.drop_reader(client, name, user)
    await client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    await client.close()


@pytest.mark.docker
async def test_a_reader_sees_only_its_workspace(
    server_db: tuple[ClickHouseClient, str], clickhouse_server_url: str
) -> None:
    ch, db = server_db
    a, b = uuid.uuid4(), uuid.uuid4()
    events = []
    for ws in (a, b):
        account = uuid.uuid4()
        events += [
            workspace_created(ws),
            account_metrics(ws, account, "2025-03-01T10:00:00", 100),
            post_metrics(ws, account, "p", "2025-03-01T10:00:00", likes=3, impressions=9),
            audited(ws, "POST /api/v1/posts", "2025-03-01T10:00:00"),
        ]
    events.append(audited(None, "POST /api/v1/auth/login", "2025-03-01T10:00:00", 401))
    await ingest(ch, events)

    user, password = await readers.create_reader(ch, db, a, suffix="bi")
    host = clickhouse_server_url.split("@", 1)[1]
    reader = create_clickhouse_client(f"clickhouse://{user}:{password}@{host}{db}")
    try:
        scoped, views = await readers.scoped_objects(ch, db)
        assert set(TABLES) <= set(scoped)
        assert {"workspaces", "posts", "accounts"} <= set(views)
        for table in [*scoped, *views]:
            seen = await reader.query(f"SELECT DISTINCT workspace_id AS w FROM {table}")
            assert {r["w"] for r in seen} <= {a}, table
        n = await reader.query("SELECT count() AS n FROM events")
        assert n[0]["n"] == 4
        rollup = await reader.query("SELECT count() AS n FROM post_metrics_daily")
        assert rollup[0]["n"] == 1
        # The service user is not fenced by the readers' policies.
        everyone = await ch.query("SELECT count() AS n FROM events")
        assert everyone[0]["n"] == 9
        with pytest.raises(ClickHouseError):
            await reader.command(
                "INSERT INTO audit_log (workspace_id, event_id) VALUES (generateUUIDv4(), "
                "generateUUIDv4())"
            )
        with pytest.raises(ClickHouseError):
            await reader.query("SELECT count() FROM schema_migrations")
        with pytest.raises(ClickHouseError):
            await reader.command("SET readonly = 0")
        # A second workspace's reader sees its own rows only, and the first keeps its fence.
        user_b, password_b = await readers.create_reader(ch, db, b)
        reader_b = create_clickhouse_client(f"clickhouse://{user_b}:{password_b}@{host}{db}")
        try:
            seen_b = await reader_b.query("SELECT DISTINCT workspace_id AS w FROM events")
            assert {r["w"] for r in seen_b} == {b}
        finally:
            await reader_b.close()
        seen_a = await reader.query("SELECT DISTINCT workspace_id AS w FROM events")
        assert {r["w"] for r in seen_a} == {a}
    finally:
        await reader.close()
