"""Helpers for the publishing service's tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chorus_runtime.db.database import to_asyncpg_dsn
from chorus_testing.auth import TestTokens
from chorus_testing.postgres import ServiceDatabase, scalar


def post_body(*platforms: str, text: str = "Hello from Chorus", **extra: Any) -> dict[str, Any]:
    return {
        "content": {"text": text, "hashtags": ["launch"]},
        "platforms": [
            {"platform": p, "accountId": str(uuid.uuid4())} for p in (platforms or ("x",))
        ],
        **extra,
    }


@dataclass
class OutboxRow:
    id: int
    topic: str
    key: str | None
    headers: dict[str, str]
    value: bytes
    published_at: Any

    @property
    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.headers.items()]


@dataclass
class Publishing:
    client: httpx.AsyncClient
    db: ServiceDatabase
    tokens: TestTokens

    def headers(self, workspace: str, role: str = "owner", **kw: Any) -> dict[str, str]:
        return self.tokens.headers(workspace, role, **kw)

    async def create(
        self, workspace: str, *platforms: str, role: str = "owner", **kw: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/posts", json=post_body(*platforms, **kw), headers=self.headers(workspace, role)
        )

    async def create_ok(self, workspace: str, *platforms: str) -> dict[str, Any]:
        resp = await self.create(workspace, *platforms)
        assert resp.status_code == 201, resp.text
        return resp.json()["post"]  # type: ignore[no-any-return]

    async def scalar(self, sql: str, **params: object) -> Any:
        return await scalar(self.db.owner_url, sql, **params)

    async def outbox(self) -> list[OutboxRow]:
        return await outbox_rows(self.db.owner_url)


async def outbox_rows(url: str) -> list[OutboxRow]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, topic, key, headers, value, published_at "
                        "FROM outbox ORDER BY id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return [
        OutboxRow(r.id, r.topic, r.key, r.headers, bytes(r.value), r.published_at) for r in rows
    ]


async def reset_tables(owner_url: str) -> None:
    """Empty every table but alembic's (as the owner: TRUNCATE is not subject to RLS), so a
    module can share one cloned database instead of cloning one per test."""
    conn = await asyncpg.connect(to_asyncpg_dsn(owner_url))
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
