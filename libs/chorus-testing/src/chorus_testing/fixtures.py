"""The fixtures themselves (imported by `plugin.py`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from chorus_testing.auth import TestTokens
from chorus_testing.broker import BrokerProcess
from chorus_testing.postgres import DatabaseFactory

REDIS_URL = os.environ.get("CHORUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
async def database_factory() -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory()
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerProcess]:
    broker = BrokerProcess.start()
    yield broker
    broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """Topics of one test never see another test's messages."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
def tokens() -> TestTokens:
    return TestTokens()


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:
        detail = "socket not found" if "FileNotFoundError" in str(exc) else type(exc).__name__
        return f"no Docker engine answers ({detail}); runs where one does"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_postgres_url(docker_engine: None) -> Iterator[str]:
    """A throwaway PostgreSQL 16 server (testcontainers); URL of its superuser."""
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as pg:
        yield pg.get_connection_url()


@pytest.fixture(scope="session")
def docker_redis_url(docker_engine: None) -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"
