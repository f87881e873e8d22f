"""Read-only ClickHouse users for data teams, one per workspace, fenced by row policies.

Server mode only: chdb has no users, grants or row policies (the embedded store is one
process's private directory), so these commands refuse to run against it.

For a workspace `W` the reader `ws_<W hex>[_<suffix>]` gets:

* `readonly = 1` (no writes, no setting changes, no temporary tables), the role
  `chorus_workspace_reader`, `DEFAULT DATABASE` the analytics database;
* `SELECT` on every table and view of the database that has a `workspace_id` column (not on
  `schema_migrations` or the materialized views' objects);
* a row policy `chorus_reader_<user>` on each of those tables: `workspace_id = W`.

ClickHouse rule: once a table has any row policy, users no policy names see no rows of it.
So every scoped table also gets `chorus_unrestricted` (`USING 1 TO ALL EXCEPT <readers>`),
which keeps the analytics service and admins unrestricted; it is rewritten whenever readers
change. A migration that adds a table leaves readers without access to it until
`chorus-analytics refresh-readers` runs (never with access to other workspaces' rows).
"""

from __future__ import annotations

import re
import secrets
import uuid

from chorus_runtime.clickhouse import ClickHouseClient
from chorus_runtime.clickhouse.base import quote_identifier, quote_string

READER_ROLE = "chorus_workspace_reader"
UNRESTRICTED_POLICY = "chorus_unrestricted"
_USER_RE = re.compile(r"^ws_(?P<hex>[0-9a-f]{32})(?:_(?P<suffix>[a-z0-9]{1,24}))?$")
_SUFFIX_RE = re.compile(r"^[a-z0-9]{1,24}$")


class ReaderError(Exception):
    pass


def reader_user(workspace_id: uuid.UUID | str, suffix: str | None = None) -> str:
    ws = uuid.UUID(str(workspace_id))
    if suffix is not None and not _SUFFIX_RE.match(suffix):
        raise ReaderError("the name suffix must be 1-24 of [a-z0-9]")
    return f"ws_{ws.hex}" + (f"_{suffix}" if suffix else "")


def workspace_of(user: str) -> uuid.UUID | None:
    match = _USER_RE.match(user)
    return uuid.UUID(match["hex"]) if match else None


def policy_name(user: str) -> str:
    return f"chorus_reader_{user}"


async def scoped_objects(client: ClickHouseClient, database: str) -> tuple[list[str], list[str]]:
    """(tables, views) of `database` that carry a `workspace_id` column."""
    rows = await client.query(
        "SELECT t.name AS name, t.engine AS engine FROM system.tables AS t "
        "INNER JOIN system.columns AS c ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = {db:String} AND c.name = 'workspace_id' "
        "AND NOT startsWith(t.name, '.inner') AND t.engine != 'MaterializedView' "
        "ORDER BY t.name",
        {"db": database},
    )
    tables = [r["name"] for r in rows if r["engine"] != "View"]
    views = [r["name"] for r in rows if r["engine"] == "View"]
    return tables, views


def _on(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def grant_statements(
    database: str, user: str, workspace_id: uuid.UUID, tables: list[str], views: list[str]
) -> list[str]:
    ws = uuid.UUID(str(workspace_id))
    u = quote_identifier(user)
    out = [f"GRANT SELECT ON {_on(database, name)} TO {u}" for name in [*tables, *views]]
    policy = quote_identifier(policy_name(user))
    out += [
        f"CREATE ROW POLICY OR REPLACE {policy} ON {_on(database, t)} "
        f"FOR SELECT USING workspace_id = toUUID({quote_string(str(ws))}) AS PERMISSIVE TO {u}"
        for t in tables
    ]
    return out


def user_statements(database: str, user: str, password: str) -> list[str]:
    u = quote_identifier(user)
    return [
        f"CREATE ROLE IF NOT EXISTS {quote_identifier(READER_ROLE)}",
        f"CREATE USER OR REPLACE {u} IDENTIFIED WITH sha256_password BY {quote_string(password)} "
        f"DEFAULT DATABASE {quote_identifier(database)} SETTINGS readonly = 1",
        f"GRANT {quote_identifier(READER_ROLE)} TO {u}",
    ]


def drop_statements(database: str, user: str, tables: list[str]) -> list[str]:
    policy = quote_identifier(policy_name(user))
    return [f"DROP ROW POLICY IF EXISTS {policy} ON {_on(database, t)}" for t in tables] + [
        f"DROP USER IF EXISTS {quote_identifier(user)}"
    ]


def unrestricted_statements(database: str, tables: list[str], readers: list[str]) -> list[str]:
    target = "ALL"
    if readers:
        target += " EXCEPT " + ", ".join(quote_identifier(r) for r in sorted(readers))
    policy = quote_identifier(UNRESTRICTED_POLICY)
    return [
        f"CREATE ROW POLICY OR REPLACE {policy} ON {_on(database, t)} "
        f"FOR SELECT USING 1 AS PERMISSIVE TO {target}"
        for t in tables
    ]


async def list_readers(client: ClickHouseClient) -> list[str]:
    rows = await client.query(
        "SELECT user_name FROM system.role_grants "
        "WHERE granted_role_name = {role:String} AND user_name IS NOT NULL ORDER BY user_name",
        {"role": READER_ROLE},
    )
    return [str(r["user_name"]) for r in rows]


async def _refuse_embedded(client: ClickHouseClient) -> None:
    from chorus_runtime.clickhouse import EmbeddedClickHouseClient

    if isinstance(client, EmbeddedClickHouseClient):
        raise ReaderError(
            "the embedded store (chdb) has no users, grants or row policies; create readers "
            "against a ClickHouse server (CHORUS_ANALYTICS_CLICKHOUSE_URL=clickhouse://...), "
            "or hand a data team an export (GET /api/v1/analytics/export)"
        )


async def create_reader(
    client: ClickHouseClient,
    database: str,
    workspace_id: uuid.UUID | str,
    *,
    suffix: str | None = None,
    password: str | None = None,
) -> tuple[str, str]:
    """Create (or reset) the workspace's reader; returns (user, password)."""
    await _refuse_embedded(client)
    ws = uuid.UUID(str(workspace_id))
    user = reader_user(ws, suffix)
    password = password or secrets.token_urlsafe(24)
    for statement in user_statements(database, user, password):
        await client.command(statement)
    await refresh_readers(client, database)
    return user, password


async def drop_reader(client: ClickHouseClient, database: str, user: str) -> None:
    await _refuse_embedded(client)
    if workspace_of(user) is None:
        raise ReaderError(f"{user!r} is not a workspace reader name")
    tables, _ = await scoped_objects(client, database)
    for statement in drop_statements(database, user, tables):
        await client.command(statement)
    await refresh_readers(client, database)


async def refresh_readers(client: ClickHouseClient, database: str) -> list[str]:
    """(Re)apply grants and policies of every reader on every scoped table; returns readers."""
    await _refuse_embedded(client)
    tables, views = await scoped_objects(client, database)
    readers = [r for r in await list_readers(client) if workspace_of(r) is not None]
    # The unrestricted policy first: from the first reader policy on, unnamed users see nothing.
    for statement in unrestricted_statements(database, tables, readers):
        await client.command(statement)
    for user in readers:
        ws = workspace_of(user)
        assert ws is not None
        for statement in grant_statements(database, user, ws, tables, views):
            await client.command(statement)
    return readers
