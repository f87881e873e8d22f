"""Create a service's database and app role (embedded mode, tests, `migrate --provision`).

In production ops create them (compose init script, Helm values); the app role must not
own the tables so that row-level security applies to it.
"""

from __future__ import annotations

import contextlib

import asyncpg
from sqlalchemy.engine import make_url

from chorus_runtime.db.database import to_asyncpg_dsn


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe identifier {name!r}")
    return f'"{name}"'


async def ensure_database(
    admin_url: str,
    database: str,
    *,
    app_role: str | None = None,
    app_password: str | None = None,
    template: str | None = None,
) -> bool:
    """Create role and database if missing. Returns True when the database was created."""
    conn = await asyncpg.connect(to_asyncpg_dsn(admin_url))
    try:
        if app_role:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", app_role)
            if not exists:
                # Another provisioner may create it concurrently.
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await conn.execute(f"CREATE ROLE {_ident(app_role)} LOGIN")
            if app_password:
                await conn.execute(
                    f"ALTER ROLE {_ident(app_role)} PASSWORD "
                    + "'"
                    + app_password.replace("'", "''")
                    + "'"
                )
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        sql = f"CREATE DATABASE {_ident(database)}"
        if template:
            sql += f" TEMPLATE {_ident(template)}"
        try:
            await conn.execute(sql)
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(to_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)} WITH (FORCE)")
    finally:
        await conn.close()


def admin_url_for(url: str, admin_user: str = "postgres", admin_db: str = "postgres") -> str:
    """Same server as `url`, as the admin user on the maintenance database."""
    parsed = make_url(url).set(username=admin_user, database=admin_db, password=None)
    return parsed.render_as_string(hide_password=False)


def database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError(f"no database name in {url!r}")
    return name


def role_name(url: str) -> str:
    name = make_url(url).username
    if not name:
        raise ValueError(f"no user in {url!r}")
    return name
