"""Gateway fixtures: a migrated database per test, Redis db 15, the app in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

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
