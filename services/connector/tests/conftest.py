"""Component harness for the connector: its real runtime and handlers, FastStream's in-memory
Kafka broker, and a real Postgres database cloned from the migrated template."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from connector_testkit import COMMANDS, Harness, reset_tables
from faststream.kafka import KafkaMessage, TestKafkaBroker
from faststream.kafka.message import KafkaAckableMessage

from chorus_connector.main import MIGRATIONS
from chorus_connector.main import build as build_connector
from chorus_connector.settings import ConnectorSettings
from chorus_runtime.consumer import RetryPolicy
from chorus_testing.postgres import DatabaseFactory, ServiceDatabase


@pytest.fixture(scope="module")
async def module_connector_db(
    database_factory: DatabaseFactory,
) -> AsyncIterator[ServiceDatabase]:
    db = await database_factory.create("connector", MIGRATIONS)
    yield db
    await database_factory.drop(db.name)


@pytest.fixture
async def connector_db(module_connector_db: ServiceDatabase) -> ServiceDatabase:
    """The module's database, emptied: every test starts from the migrated, empty state."""
    await reset_tables(module_connector_db.owner_url)
    return module_connector_db


@pytest.fixture
async def connector(
    connector_db: ServiceDatabase, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    settings = ConnectorSettings(
        database_url=connector_db.app_url,
        migrations_database_url=connector_db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",  # never dialled: the broker is in memory
        topic_prefix=topic_prefix,
    )
    runtime = build_connector(settings)
    runtime.consumers.retry = RetryPolicy(initial=0.001, maximum=0.005, poison_attempts=3)
    harness = Harness(runtime, connector_db, topic_prefix)

    async def raw(message: KafkaMessage) -> bytes:
        return message.body  # a dead letter need not be JSON

    @runtime.broker.subscriber(
        topic_prefix + COMMANDS + ".dlq", group_id="tests.dlq-reader", decoder=raw
    )
    async def read_dlq(message: KafkaMessage) -> None:
        harness.dead_letters.append(message.raw_message)  # type: ignore[arg-type]

    original_ack = KafkaAckableMessage.ack

    async def spy_ack(self: KafkaAckableMessage) -> None:
        record = self.raw_message
        headers = dict(record.headers or ())  # type: ignore[union-attr]
        ce_id = headers.get("ce_id")
        harness.acks.append((record.topic, ce_id.decode() if ce_id else None))  # type: ignore[union-attr]
        await original_ack(self)

    monkeypatch.setattr(KafkaAckableMessage, "ack", spy_ack)
    try:
        async with TestKafkaBroker(runtime.broker) as broker:
            harness.broker = broker
            yield harness
    finally:
        assert runtime.db is not None
        await runtime.db.dispose()
