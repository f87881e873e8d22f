"""Per-test Postgres databases for a service: migrate a template once, clone it per test."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from chorus_runtime.db.migrate import upgrade_async
from chorus_runtime.db.provision import drop_database, ensure_database

ADMIN_URL = os.environ.get(
    "CHORUS_TEST_ADMIN_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class ServiceDatabase:
    name: str
    app_url: str  # the app role: RLS applies
    owner_url: str  # the table owner (migrations, test inspection)


def _url(user: str, database: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    scheme, rest = base.split("://", 1)
    host = rest.split("@", 1)[-1]
    return f"{scheme}://{user}@{host}/{database}"


class DatabaseFactory:
    """Creates databases for one test session; drops them all at the end."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.templates: dict[str, str] = {}
        self.created: list[str] = []

    async def template(self, service: str, migrations_dir: Path) -> str:
        if service not in self.templates:
            name = f"chorus_t_{service}_{self.run_id}_tmpl"
            await ensure_database(ADMIN_URL, name, app_role=f"chorus_{service}_app")
            self.created.append(name)
            await upgrade_async(
                migrations_dir, _url("postgres", name), app_role=f"chorus_{service}_app"
            )
            self.templates[service] = name
        return self.templates[service]

    async def create(self, service: str, migrations_dir: Path) -> ServiceDatabase:
        template = await self.template(service, migrations_dir)
        name = f"chorus_t_{service}_{uuid.uuid4().hex[:10]}"
        await ensure_database(ADMIN_URL, name, template=template)
        self.created.append(name)
        return ServiceDatabase(
            name=name,
            app_url=_url(f"chorus_{service}_app", name),
            owner_url=_url("postgres", name),
        )

    async def drop(self, name: str) -> None:
        await drop_database(ADMIN_URL, name)
        if name in self.created:
            self.created.remove(name)

    async def drop_all(self) -> None:
        for name in reversed(list(self.created)):
            await drop_database(ADMIN_URL, name)
        self.created.clear()


async def scalar(url: str, sql: str, **params: object) -> object:
    """One value, read across tenants (an explicit system transaction: RLS is FORCEd)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT set_config('app.system', 'on', true)"))
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()
