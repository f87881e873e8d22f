"""The numbered-migration runner, on every backend, against tests/clickhouse/migrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chorus_runtime.clickhouse import (
    ClickHouseClient,
    ClickHouseError,
    MigrationError,
    applied_versions,
    load_migrations,
    migrate_down,
    migrate_up,
    schema_snapshot,
)

# Golden text of the schema after every migration. The chdb backends must match it exactly;
# regenerate with CHORUS_UPDATE_SNAPSHOTS=1 after a deliberate change and review the diff.
SNAPSHOT_FILE = Path(__file__).parent / "migrations.snapshot.sql"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def current_database(ch: ClickHouseClient) -> str:
    rows = await ch.query("SELECT currentDatabase() AS db")
    return str(rows[0]["db"])


async def table_names(ch: ClickHouseClient) -> list[str]:
    rows = await ch.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND NOT startsWith(name, '.inner') ORDER BY name"
    )
    return [r["name"] for r in rows]


async def test_up_applies_in_order_and_rerun_is_a_no_op(ch: ClickHouseClient, backend: str) -> None:
    db = await current_database(ch)
    assert await applied_versions(ch) == []

    assert await migrate_up(ch, MIGRATIONS_DIR) == [1, 2, 3]
    assert await applied_versions(ch) == [1, 2, 3]
    assert await table_names(ch) == [
        "daily_counts",
        "daily_counts_mv",
        "events",
        "schema_migrations",
    ]
    snapshot = await schema_snapshot(ch, db)

    assert await migrate_up(ch, MIGRATIONS_DIR) == []
    assert await applied_versions(ch) == [1, 2, 3]
    assert await schema_snapshot(ch, db) == snapshot

    # Database-name independent, and the added column came from 0003.
    assert db not in snapshot
    assert "`platform` LowCardinality(String) DEFAULT 'none;unknown'" in snapshot
    assert snapshot.index("-- daily_counts\n") < snapshot.index("-- events\n")
    if backend != "server":
        # Exact text is pinned for the chdb engine; a server build may print settings differently.
        if os.environ.get("CHORUS_UPDATE_SNAPSHOTS") == "1":
            SNAPSHOT_FILE.write_text(snapshot, encoding="utf-8")
        assert snapshot == SNAPSHOT_FILE.read_text(encoding="utf-8")


async def test_the_schema_works_after_migrating(ch: ClickHouseClient) -> None:
    import uuid
    from datetime import UTC, datetime

    await migrate_up(ch, MIGRATIONS_DIR)
    workspace = uuid.uuid4()
    rows = [
        [uuid.uuid4(), workspace, "post.published", datetime(2024, 5, 1, h, tzinfo=UTC), "{}"]
        for h in range(3)
    ]
    columns = ["event_id", "workspace_id", "event_type", "occurred_at", "payload"]
    await ch.insert("events", rows, columns, dedup_token="b-1")
    await ch.insert("events", rows, columns, dedup_token="b-1")
    got = await ch.query(
        "SELECT day, sum(events) AS n FROM daily_counts WHERE workspace_id = {w:UUID} GROUP BY day",
        {"w": workspace},
    )
    # The rollup counted the batch once: the view's block from the resend was deduplicated at
    # daily_counts (which has its own dedup window) with a token derived from ours.
    assert [(r["day"].isoformat(), r["n"]) for r in got] == [("2024-05-01", 3)]
    platforms = await ch.query("SELECT DISTINCT platform FROM events")
    assert platforms == [{"platform": "none;unknown"}]


async def test_target_down_and_up_again_give_the_same_schema(ch: ClickHouseClient) -> None:
    db = await current_database(ch)
    assert await migrate_up(ch, MIGRATIONS_DIR, target=1) == [1]
    at_one = await schema_snapshot(ch, db)
    assert await migrate_up(ch, MIGRATIONS_DIR) == [2, 3]
    full = await schema_snapshot(ch, db)

    assert await migrate_down(ch, MIGRATIONS_DIR, target=1) == [3, 2]
    assert await applied_versions(ch) == [1]
    assert await schema_snapshot(ch, db) == at_one

    assert await migrate_up(ch, MIGRATIONS_DIR) == [2, 3]
    assert await schema_snapshot(ch, db) == full

    assert await migrate_down(ch, MIGRATIONS_DIR, target=0) == [3, 2, 1]
    assert await applied_versions(ch) == []
    assert await table_names(ch) == ["schema_migrations"]
    assert await schema_snapshot(ch, db) == "\n"
    assert await migrate_down(ch, MIGRATIONS_DIR, target=0) == []

    assert await migrate_up(ch, MIGRATIONS_DIR) == [1, 2, 3]
    assert await schema_snapshot(ch, db) == full


async def test_failed_migration_is_not_recorded_and_reruns(
    ch: ClickHouseClient, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.up.sql").write_text(
        "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    )
    broken = tmp_path / "0002_broken.up.sql"
    broken.write_text(
        "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "ALTER TABLE b ADD COLUMN y NoSuchType;\n"
    )
    with pytest.raises(ClickHouseError, match=r"NoSuchType|UNKNOWN_TYPE"):
        await migrate_up(ch, tmp_path)
    assert await applied_versions(ch) == [1]

    broken.write_text(
        "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "ALTER TABLE b ADD COLUMN IF NOT EXISTS y UInt8;\n"
    )
    assert await migrate_up(ch, tmp_path) == [2]
    assert await applied_versions(ch) == [1, 2]


@pytest.mark.unit
def test_loader_reads_versions_names_and_statements() -> None:
    migrations = load_migrations(MIGRATIONS_DIR)
    assert [(m.version, m.name) for m in migrations] == [
        (1, "events"),
        (2, "daily_counts"),
        (3, "events_platform"),
    ]
    assert len(migrations[1].up_statements()) == 2
    assert len(migrations[1].down_statements()) == 2
    # The ';' inside the string literal and the comment did not split 0003.
    assert len(migrations[2].up_statements()) == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.up.sql": "", "1_a.up.sql": ""}, "two up migrations"),
        ({"0002_b.down.sql": ""}, "no .up.sql"),
        ({"0001_a.up.sql": "", "0001_b.down.sql": ""}, "named"),
        ({"create_tables.sql": ""}, "is not NNNN_name"),
    ],
)
def test_loader_rejects_inconsistent_directories(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


@pytest.mark.unit
def test_loader_requires_the_directory(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "missing")
