"""Alembic per service, configured in code (no alembic.ini) so every service runs it the same way.

A service keeps `migrations/` (env.py + versions/) beside its package; `env.py` calls
`run_env(metadata)`. After upgrading, the app role gets DML rights on every table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from chorus_runtime.db.database import to_async_url
from chorus_runtime.db.provision import _ident


def alembic_config(migrations_dir: Path, url: str, app_role: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", to_async_url(url).replace("%", "%%"))
    if app_role:
        cfg.attributes["app_role"] = app_role
    return cfg


def upgrade(
    migrations_dir: Path, url: str, *, app_role: str | None, revision: str = "head"
) -> None:
    command.upgrade(alembic_config(migrations_dir, url, app_role), revision)


def downgrade(migrations_dir: Path, url: str, revision: str) -> None:
    command.downgrade(alembic_config(migrations_dir, url), revision)


async def upgrade_async(
    migrations_dir: Path, url: str, *, app_role: str | None, revision: str = "head"
) -> None:
    # Alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, migrations_dir, url, app_role=app_role, revision=revision)


def _grant(connection: Connection, app_role: str) -> None:
    role = _ident(app_role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    connection.execute(
        text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    )
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    connection.execute(text(f"REVOKE ALL ON TABLE alembic_version FROM {role}"))


def run_env(target_metadata: MetaData | None = None) -> None:
    """Body of every service's `migrations/env.py`."""
    config = context.config

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
            app_role = config.attributes.get("app_role")
            if app_role:
                _grant(connection, app_role)

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_async() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
