"""Numbered ClickHouse DDL migrations, shared by every service that owns ClickHouse tables.

A migrations directory holds ``NNNN_name.up.sql`` and (optionally) ``NNNN_name.down.sql``.
Statements in a file are separated by ``;`` (quotes and comments are respected), and each
runs as its own command, since the server runs one statement per request.

ClickHouse DDL is not transactional: if statement 2 of 3 fails, statement 1 stays applied
and the version is not recorded, so the next run repeats the file. Write statements that
can re-run (``CREATE TABLE IF NOT EXISTS``, ``ADD COLUMN IF NOT EXISTS``, ``DROP ... IF
EXISTS``). Run migrations from one place at a time (the migrations job), not from replicas.

Bookkeeping is append-only in ``schema_migrations`` (a ReplacingMergeTree keyed by version):
every up or down adds a row, and a version counts as applied when its newest row (highest
``seq``) says so. Reads aggregate, so they are right before and after background merges.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chorus_runtime.clickhouse._sql import split_statements
from chorus_runtime.clickhouse.base import ClickHouseClient, quote_table

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "MigrationError",
    "applied_versions",
    "load_migrations",
    "migrate_down",
    "migrate_up",
    "schema_snapshot",
]

MIGRATIONS_TABLE = "schema_migrations"

_FILE_RE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.(?P<direction>up|down)\.sql$")
_UUID_RE = re.compile(r"\s+UUID\s+'[0-9a-fA-F-]{36}'")


class MigrationError(Exception):
    """The migrations directory or the recorded state is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path | None

    def up_statements(self) -> list[str]:
        return split_statements(self.up_path.read_text(encoding="utf-8"))

    def down_statements(self) -> list[str]:
        if self.down_path is None:
            raise MigrationError(f"migration {self.version:04d}_{self.name} has no .down.sql")
        return split_statements(self.down_path.read_text(encoding="utf-8"))


def load_migrations(directory: str | Path) -> list[Migration]:
    """The migrations in ``directory``, by version; rejects duplicates and orphans."""
    root = Path(directory)
    if not root.is_dir():
        raise MigrationError(f"migrations directory {root} does not exist")
    found: dict[int, dict[str, tuple[str, Path]]] = {}
    for path in sorted(root.iterdir()):
        match = _FILE_RE.match(path.name)
        if match is None:
            if path.suffix == ".sql":
                raise MigrationError(f"{path.name} is not NNNN_name.up.sql / NNNN_name.down.sql")
            continue
        version, name, direction = int(match["version"]), match["name"], match["direction"]
        slot = found.setdefault(version, {})
        if direction in slot:
            raise MigrationError(f"two {direction} migrations with version {version}")
        slot[direction] = (name, path)
    migrations: list[Migration] = []
    for version in sorted(found):
        slot = found[version]
        if "up" not in slot:
            raise MigrationError(f"version {version} has a .down.sql but no .up.sql")
        name, up_path = slot["up"]
        down = slot.get("down")
        if down is not None and down[0] != name:
            raise MigrationError(f"version {version} is named {name!r} up but {down[0]!r} down")
        migrations.append(Migration(version, name, up_path, down[1] if down else None))
    return migrations


async def _ensure_table(client: ClickHouseClient, table: str) -> None:
    await client.command(
        f"""CREATE TABLE IF NOT EXISTS {quote_table(table)}
(
    version UInt32,
    name String,
    applied UInt8,
    applied_at DateTime64(3, 'UTC'),
    seq UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY version"""
    )


async def _table_exists(client: ClickHouseClient, table: str) -> bool:
    rows = await client.query(f"EXISTS TABLE {quote_table(table)}")
    return bool(rows and next(iter(rows[0].values())))


async def applied_versions(client: ClickHouseClient, *, table: str = MIGRATIONS_TABLE) -> list[int]:
    """Versions currently applied, ascending (empty before the first migration)."""
    if not await _table_exists(client, table):
        return []
    rows = await client.query(
        f"SELECT version FROM {quote_table(table)} GROUP BY version "
        "HAVING argMax(applied, seq) = 1 ORDER BY version"
    )
    return [int(r["version"]) for r in rows]


async def _next_seq(client: ClickHouseClient, table: str) -> int:
    rows = await client.query(f"SELECT max(seq) AS seq FROM {quote_table(table)}")
    return int(rows[0]["seq"] or 0) + 1 if rows else 1


async def _record(
    client: ClickHouseClient, table: str, migration: Migration, applied: bool, seq: int
) -> None:
    await client.insert(
        table,
        [[migration.version, migration.name, int(applied), datetime.now(UTC), seq]],
        ["version", "name", "applied", "applied_at", "seq"],
    )


async def migrate_up(
    client: ClickHouseClient,
    directory: str | Path,
    target: int | None = None,
    *,
    table: str = MIGRATIONS_TABLE,
) -> list[int]:
    """Apply pending migrations up to ``target`` (all when None), in version order.

    Returns the versions applied now; re-running applies nothing.
    """
    migrations = load_migrations(directory)
    await _ensure_table(client, table)
    done = set(await applied_versions(client, table=table))
    pending = [
        m for m in migrations if m.version not in done and (target is None or m.version <= target)
    ]
    seq = await _next_seq(client, table)
    for migration in pending:
        for statement in migration.up_statements():
            await client.command(statement)
        await _record(client, table, migration, True, seq)
        seq += 1
    return [m.version for m in pending]


async def migrate_down(
    client: ClickHouseClient,
    directory: str | Path,
    target: int,
    *,
    table: str = MIGRATIONS_TABLE,
) -> list[int]:
    """Revert applied migrations newer than ``target`` (0 reverts all), newest first."""
    by_version = {m.version: m for m in load_migrations(directory)}
    done = await applied_versions(client, table=table)
    to_revert = sorted((v for v in done if v > target), reverse=True)
    missing = [v for v in to_revert if v not in by_version]
    if missing:
        raise MigrationError(f"applied versions {missing} have no migration files")
    seq = await _next_seq(client, table) if to_revert else 0
    for version in to_revert:
        migration = by_version[version]
        for statement in migration.down_statements():
            await client.command(statement)
        await _record(client, table, migration, False, seq)
        seq += 1
    return to_revert


def _normalize_ddl(ddl: str, database: str) -> str:
    # Snapshots must not depend on the database name or on Atomic-database UUIDs.
    db = re.escape(database)
    text = re.sub(rf"(?<![\w`.]){db}\.|`{db}`\.", "", ddl)
    text = _UUID_RE.sub("", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


async def schema_snapshot(
    client: ClickHouseClient,
    database: str,
    *,
    exclude: Collection[str] = (MIGRATIONS_TABLE,),
) -> str:
    """Deterministic text of every table/view in ``database`` (``SHOW CREATE``, normalized).

    Tables are sorted by name; materialized views' hidden ``.inner*`` tables are left out
    (their DDL shows in the view's). Compare it with a checked-in snapshot in tests.
    """
    tables = await client.query(
        "SELECT name, engine FROM system.tables "
        "WHERE database = {db:String} AND NOT is_temporary AND NOT startsWith(name, '.inner') "
        "ORDER BY name",
        {"db": database},
    )
    blocks: list[str] = []
    for row in tables:
        name = row["name"]
        if name in exclude:
            continue
        kind = "DICTIONARY" if row["engine"] == "Dictionary" else "TABLE"
        shown = await client.query(
            f"SHOW CREATE {kind} {{db:Identifier}}.{{name:Identifier}}",
            {"db": database, "name": name},
        )
        ddl = str(next(iter(shown[0].values())))
        blocks.append(f"-- {name}\n{_normalize_ddl(ddl, database)};")
    return "\n\n".join(blocks) + "\n"
