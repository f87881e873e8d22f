"""Wiring for the runtime proof: publishing (HTTP + outbox) → Kafka → connector (consumer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chorus_connector.main import MIGRATIONS as CONNECTOR_MIGRATIONS
from chorus_connector.main import build as build_connector
from chorus_connector.settings import ConnectorSettings
from chorus_publishing.main import MIGRATIONS as PUBLISHING_MIGRATIONS
from chorus_publishing.main import build as build_publishing
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.telemetry import setup_tracing
from chorus_testing.postgres import ServiceDatabase

SPANS = InMemorySpanExporter()
setup_tracing("tests", extra_processors=[SimpleSpanProcessor(SPANS)])


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@dataclass
class Stack:
    prefix: str
    bootstrap: str
    publishing_db: ServiceDatabase
    connector_db: ServiceDatabase

    def publishing_settings(self, **kw: object) -> PublishingSettings:
        return PublishingSettings(
            database_url=self.publishing_db.app_url,
            migrations_database_url=self.publishing_db.owner_url,
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
            outbox_poll_interval_seconds=0.1,
            **kw,
        )

    def connector_settings(self, **kw: object) -> ConnectorSettings:
        return ConnectorSettings(
            database_url=self.connector_db.app_url,
            migrations_database_url=self.connector_db.owner_url,
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
            **kw,
        )

    def publishing(self, **kw: object):  # type: ignore[no-untyped-def]
        return build_publishing(self.publishing_settings(**kw))

    def connector(self, **kw: object):  # type: ignore[no-untyped-def]
        return build_connector(self.connector_settings(**kw))


@pytest.fixture
async def stack(database_factory, kafka_broker, topic_prefix) -> AsyncIterator[Stack]:  # type: ignore[no-untyped-def]
    from chorus_contracts.registry import load_registry

    names = []
    for spec in load_registry().topics.values():
        names += [topic_prefix + spec.name, topic_prefix + spec.dlq_name]
    await asyncio.to_thread(kafka_broker.ensure_topics, names)
    pub = await database_factory.create("publishing", PUBLISHING_MIGRATIONS)
    con = await database_factory.create("connector", CONNECTOR_MIGRATIONS)
    yield Stack(topic_prefix, kafka_broker.bootstrap_servers, pub, con)
    await database_factory.drop(pub.name)
    await database_factory.drop(con.name)
