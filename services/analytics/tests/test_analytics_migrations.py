"""ClickHouse migrations of the analytics service: forward, backward, and a schema snapshot,
on the embedded backend, the server backend's code path (clickhouse-connect over its chdb
transport) and a real server (docker)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from analytics_support import new_database

from chorus_analytics.main import main
from chorus_analytics.mappings import TABLES
from chorus_analytics.store import MIGRATIONS
from chorus_runtime.clickhouse import (
    ClickHouseClient,
    EmbeddedClickHouseClient,
    ServerClickHouseClient,
    applied_versions,
    create_clickhouse_client,
    load_migrations,
    migrate_down,
    migrate_up,
    schema_snapshot,
)

# Golden text of the schema after every migration (chdb engine). Regenerate with
# CHORUS_UPDATE_SNAPSHOTS=1 after a deliberate change, and review the diff.
SNAPSHOT_FILE = Path(__file__).parent / "clickhouse_schema.snapshot.sql"

BACKENDS = [
    pytest.param("embedded", marks=pytest.mark.integration),
    pytest.param("server-inprocess", marks=pytest.mark.integration),
    pytest.param("server", marks=pytest.mark.docker),
]


@pytest.fixture(params=BACKENDS)
async def empty_db(
    request: pytest.FixtureRequest, chdb_path: Path
) -> AsyncIterator[tuple[ClickHouseClient, str, str]]:
    """(client, database, backend) on a new, empty database."""
    backend = request.param
    name = new_database()
    client: ClickHouseClient
    if backend == "embedded":
        client = EmbeddedClickHouseClient(chdb_path, database=name)
    elif backend == "server-inprocess":
        import clickhouse_connect

        setup = EmbeddedClickHouseClient(chdb_path)
        await setup.command(f"CREATE DATABASE IF NOT EXISTS {name}")
        await setup.close()
        inner = clickhouse_connect.get_client(
            interface="chdb",
            path=str(chdb_path),
            database=name,
            tz_mode="aware",
            settings={"session_timezone": "UTC"},
        )
        client = ServerClickHouseClient(client=inner, database=name)
    else:
        url = request.getfixturevalue("clickhouse_server_url")
        admin = create_clickhouse_client(url, database="default")
        await admin.command(f"CREATE DATABASE IF NOT EXISTS {name}")
        await admin.close()
        client = create_clickhouse_client(url, database=name)
    try:
        yield client, name, backend
    finally:
        await client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        await client.close()


async def test_up_down_up_and_the_schema_snapshot(
    empty_db: tuple[ClickHouseClient, str, str],
) -> None:
    ch, db, backend = empty_db
    versions = [m.version for m in load_migrations(MIGRATIONS)]
    assert versions == list(range(1, len(versions) + 1)), "numbered without gaps"
    assert all(m.down_path is not None for m in load_migrations(MIGRATIONS)), "every step reverts"

    assert await migrate_up(ch, MIGRATIONS) == versions
    snapshot = await schema_snapshot(ch, db)
    assert await migrate_up(ch, MIGRATIONS) == [], "re-running applies nothing"

    for table in TABLES:  # every table the mappings write exists
        assert f"-- {table}\n" in snapshot
    if backend != "server":
        # Exact text is pinned for the chdb engine; a server may print settings differently.
        if os.environ.get("CHORUS_UPDATE_SNAPSHOTS") == "1":
            SNAPSHOT_FILE.write_text(snapshot, encoding="utf-8")
        assert snapshot == SNAPSHOT_FILE.read_text(encoding="utf-8")

    # Backward one step, then all the way, then forward again to the same schema.
    assert await migrate_down(ch, MIGRATIONS, versions[-2]) == [versions[-1]]
    assert await applied_versions(ch) == versions[:-1]
    assert await migrate_down(ch, MIGRATIONS, 0) == list(reversed(versions[:-1]))
    assert await schema_snapshot(ch, db) == "\n"
    assert await migrate_up(ch, MIGRATIONS) == versions
    assert await schema_snapshot(ch, db) == snapshot


@pytest.mark.integration
def test_the_migrate_command_applies_and_reverts(
    chdb_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chorus-analytics migrate [--down-to N]` (in this process: chdb allows one path each)."""
    name = new_database()
    monkeypatch.setenv("CHORUS_ANALYTICS_CLICKHOUSE_URL", f"chdb://{chdb_path}")
    monkeypatch.setenv("CHORUS_ANALYTICS_CLICKHOUSE_DATABASE", name)
    monkeypatch.setattr("chorus_analytics.main.setup_logging", lambda *a, **k: None)

    assert main(["migrate", "--provision"]) == 0
    assert "migrations applied: [1, 2, 3, 4]" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert "migrations applied: none" in capsys.readouterr().err
    assert main(["migrate", "--down-to", "2"]) == 0
    assert "migrations reverted: [4, 3]" in capsys.readouterr().err
    assert main(["migrate", "--down-to", "0"]) == 0
