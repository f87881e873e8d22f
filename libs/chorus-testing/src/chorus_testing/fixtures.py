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
        return f"no Docker engine: {type(exc).__name__}: {str(exc)[:120]}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
