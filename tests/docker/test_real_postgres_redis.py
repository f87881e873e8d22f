"""The runtime against the server versions production runs (testcontainers)."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from chorus_publishing.main import MIGRATIONS
from chorus_runtime.db.database import Database
from chorus_runtime.db.migrate import upgrade_async
from chorus_runtime.db.provision import ensure_database
from chorus_testing.events import stage_publish_commands

pytestmark = pytest.mark.docker


async def test_migrations_and_rls_on_postgres_16(docker_postgres_url: str) -> None:
    owner = docker_postgres_url.rsplit("/", 1)[0] + "/chorus_publishing"
    await ensure_database(
        docker_postgres_url,
        "chorus_publishing",
        app_role="chorus_publishing_app",
        app_password="app-pw",
    )
    await upgrade_async(MIGRATIONS, owner, app_role="chorus_publishing_app")
    host = docker_postgres_url.split("@", 1)[1].rsplit("/", 1)[0]
    app_url = f"postgresql+asyncpg://chorus_publishing_app:app-pw@{host}/chorus_publishing"
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await stage_publish_commands(app_url, a, 3)
    db = Database(app_url)
    try:
        async with db.unit_of_work(tenant_id=b) as uow:
            await uow.session.execute(
                text("INSERT INTO posts (id, workspace_id, status) VALUES (:i, :w, 'draft')"),
                {"i": str(uuid.uuid4()), "w": b},
            )
            await uow.commit()
        async with db.unit_of_work(tenant_id=a) as uow:
            seen = (await uow.session.execute(text("SELECT count(*) FROM posts"))).scalar()
        assert seen == 0, "RLS hides workspace b's post from workspace a"
    finally:
        await db.dispose()


async def test_redis_7_round_trip(docker_redis_url: str) -> None:
    client = aioredis.from_url(docker_redis_url)
    try:
        assert await client.ping()
        await client.set("chorus:probe", "1", ex=10)
        assert await client.get("chorus:probe") == b"1"
    finally:
        await client.aclose()
