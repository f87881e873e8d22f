"""The publishing service on a real Postgres database, with FastStream's in-memory broker
standing in for Kafka (Role.API starts no consumer and no relay)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import TestKafkaBroker
from publishing_testkit import Publishing, reset_tables

from chorus_publishing.main import MIGRATIONS
from chorus_publishing.main import build as build_publishing
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.auth import TestTokens
from chorus_testing.postgres import DatabaseFactory, ServiceDatabase


@pytest.fixture(scope="module")
async def module_publishing_db(
    database_factory: DatabaseFactory,
) -> AsyncIterator[ServiceDatabase]:
    db = await database_factory.create("publishing", MIGRATIONS)
    yield db
    await database_factory.drop(db.name)


@pytest.fixture
async def publishing_db(module_publishing_db: ServiceDatabase) -> ServiceDatabase:
    """The module's database, emptied: every test starts from the migrated, empty state."""
    await reset_tables(module_publishing_db.owner_url)
    return module_publishing_db


@pytest.fixture
async def publishing(
    publishing_db: ServiceDatabase, tokens: TestTokens
) -> AsyncIterator[Publishing]:
    settings = PublishingSettings(
        database_url=publishing_db.app_url,
        migrations_database_url=publishing_db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",  # never dialled: the broker is in memory
    )
    runtime = build_publishing(settings)
    async with (
        TestKafkaBroker(runtime.broker) as broker,
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        # The in-memory broker runs the service's consumers inline on `publish`; the
        # dispatcher is driven by `tick(now=…)` (Role.API starts no scheduler loop).
        yield Publishing(svc.client, publishing_db, tokens, runtime=runtime, broker=broker)
