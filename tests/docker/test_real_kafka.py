"""Against real Apache Kafka (testcontainers): what the embedded broker cannot show.

- the topic job creates every registry topic with its partitions and config;
- consumer-group scale-out: two connector workers in one group share the partitions and
  every command still has exactly one effect.
Skipped with the reason shown where no Docker engine answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from chorus_connector.main import MIGRATIONS as CONNECTOR_MIGRATIONS
from chorus_connector.main import build as build_connector
from chorus_connector.settings import ConnectorSettings
from chorus_contracts.registry import load_registry
from chorus_publishing.main import MIGRATIONS as PUBLISHING_MIGRATIONS
from chorus_runtime.outbox import OutboxRelay, RelayConfig
from chorus_runtime.service import Role
from chorus_runtime.topics_cli import apply, plan
from chorus_testing.apps import running
from chorus_testing.events import stage_publish_commands
from chorus_testing.postgres import scalar
from chorus_testing.waiting import eventually_equals

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def kafka(docker_engine: None) -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as container:
        yield container.get_bootstrap_server()


def test_topic_job_creates_the_registry(kafka: str) -> None:
    from confluent_kafka.admin import AdminClient

    topics = plan(load_registry(), "it.", replication_factor=1)
    assert apply(kafka, topics) == 0
    assert apply(kafka, topics) == 0, "idempotent"
    existing = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics
    for t in topics:
        assert len(existing[t.name].partitions) == t.partitions


async def test_two_workers_in_one_group_apply_each_command_once(
    kafka: str, database_factory
) -> None:  # type: ignore[no-untyped-def]
    prefix = f"d{uuid.uuid4().hex[:6]}."
    assert apply(kafka, plan(load_registry(), prefix, replication_factor=1)) == 0
    pub = await database_factory.create("publishing", PUBLISHING_MIGRATIONS)
    con = await database_factory.create("connector", CONNECTOR_MIGRATIONS)
    total = 400
    await stage_publish_commands(pub.app_url, str(uuid.uuid4()), total)

    def worker():  # type: ignore[no-untyped-def]
        return build_connector(
            ConnectorSettings(
                database_url=con.app_url,
                migrations_database_url=con.owner_url,
                kafka_bootstrap_servers=kafka,
                topic_prefix=prefix,
            )
        )

    from chorus_runtime.db.database import Database

    db = Database(pub.app_url)
    relay = OutboxRelay(
        db, RelayConfig(service="publishing", bootstrap_servers=kafka, topic_prefix=prefix)
    )
    task = asyncio.create_task(relay.run())
    try:
        async with running(worker(), Role.WORKER), running(worker(), Role.WORKER):
            await eventually_equals(
                lambda: scalar(con.owner_url, "SELECT count(*) FROM publish_ledger"),
                total,
                timeout=120,
            )
            await asyncio.sleep(2)
        assert (
            await scalar(con.owner_url, "SELECT sum(commands_received) FROM publish_ledger")
            == total
        )
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)
        await db.dispose()
