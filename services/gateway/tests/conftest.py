"""Gateway fixtures: a migrated database per test, Redis db 15, the app in process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from gateway_support import FakeUpstream, serve

from chorus_gateway.main import MIGRATIONS, build
from chorus_gateway.settings import GatewaySettings
from chorus_runtime.service import Role
from chorus_testing.apps import RunningService, running
from chorus_testing.fixtures import REDIS_URL


@pytest.fixture
async def gateway_db(database_factory):  # type: ignore[no-untyped-def]
    db = await database_factory.create("gateway", MIGRATIONS)
    yield db
    await database_factory.drop(db.name)


@pytest.fixture
def gateway_settings(gateway_db, kafka_broker, redis_client) -> Callable[..., GatewaySettings]:  # type: ignore[no-untyped-def]
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "database_url": gateway_db.app_url,
            "migrations_database_url": gateway_db.owner_url,
            "kafka_bootstrap_servers": kafka_broker.bootstrap_servers,
            "redis_url": REDIS_URL,
            **overrides,
        }
        return GatewaySettings(**values)

    return make


@pytest.fixture
async def gateway(gateway_settings) -> AsyncIterator[RunningService]:  # type: ignore[no-untyped-def]
    async with running(build(gateway_settings()), Role.API) as svc:
        yield svc


@pytest.fixture
async def start_gateway(
    gateway_settings,  # type: ignore[no-untyped-def]
) -> AsyncIterator[Callable[..., Awaitable[RunningService]]]:
    """`await start_gateway(**settings_overrides)`: the gateway in process with those
    settings (stopped at the end of the test)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RunningService:
            return await stack.enter_async_context(
                running(build(gateway_settings(**overrides)), Role.API)
            )

        yield start


@pytest.fixture(scope="session")
async def fake_upstream_server() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    async with serve(upstream.app()) as url:
        upstream.url = url
        yield upstream


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    """A real HTTP upstream (uvicorn) that records what reaches it; empty for each test."""
    fake_upstream_server.seen.clear()
    return fake_upstream_server


@pytest.fixture
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters for tests that create many accounts (each hash otherwise
    costs ~0.2 s of CPU). Still argon2id end to end; the hash records its own parameters."""
    from argon2 import PasswordHasher

    from chorus_gateway import security

    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
