"""SQLAlchemy 2 async engine and the unit of work.

Every tenant-scoped transaction sets `app.tenant_id` with `SET LOCAL` semantics so the
row-level-security policies (the second wall) see it; the app connects as a role that is
not the tables' owner, so the policies apply. System work (schedulers, consumers acting
across tenants) must ask for it explicitly with `system=True`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def to_async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def to_asyncpg_dsn(url: str) -> str:
    """SQLAlchemy URL → plain DSN for asyncpg (LISTEN, advisory locks)."""
    return "postgresql://" + url.split("://", 1)[1]


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = to_async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def unit_of_work(self, *, tenant_id: str | None = None, system: bool = False) -> UnitOfWork:
        if tenant_id is None and not system:
            raise ValueError("a unit of work is tenant-scoped unless system=True is explicit")
        return UnitOfWork(self, tenant_id=tenant_id, system=system)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


class UnitOfWork:
    """One transaction: `async with db.unit_of_work(tenant_id=…) as uow: …; await uow.commit()`.

    Leaving the block without `commit()` rolls back, so a handler that raises leaves nothing.
    """

    def __init__(self, db: Database, *, tenant_id: str | None, system: bool) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.system = system
        self.session: AsyncSession = db.sessions()
        self._committed = False

    async def __aenter__(self) -> Self:
        await self.session.begin()
        await self.session.execute(
            text(
                "SELECT set_config('app.tenant_id', :t, true), set_config('app.system', :s, true)"
            ),
            {"t": self.tenant_id or "", "s": "on" if self.system else "off"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()
        self._committed = True
