"""The outbox relay against the embedded Kafka-protocol broker and a real Postgres
(integration): one leader per service, every row exactly once, per-key order, failover,
and the backlog metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY
from publishing_testkit import outbox_rows

from chorus_contracts.envelope import decode
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import PublishContent, PublishRequested
from chorus_publishing.main import MIGRATIONS
from chorus_runtime import metrics
from chorus_runtime.db.database import Database
from chorus_runtime.outbox import OutboxRelay, RelayConfig, default_producer, emit
from chorus_testing.broker import BrokerProcess
from chorus_testing.postgres import DatabaseFactory, ServiceDatabase
from chorus_testing.waiting import wait_for

pytestmark = pytest.mark.integration

TOPIC = "connector.commands"


def command(workspace: str, account: str) -> PublishRequested:
    now = datetime.now(UTC)
    target = uuid.uuid4()
    return PublishRequested(
        command_id=uuid.uuid4(),
        workspace_id=uuid.UUID(workspace),
        post_id=uuid.uuid4(),
        target_id=target,
        platform=Platform.X,
        account_id=uuid.UUID(account),
        attempt=1,
        idempotency_key=str(target),
        deadline=now + timedelta(minutes=15),
        content=PublishContent(text="hi"),
        requested_at=now,
    )


@dataclass
class RelayEnv:
    db: ServiceDatabase
    broker: BrokerProcess
    prefix: str
    service: str  # unique per test: its own advisory lock and metric labels
    workspace: str
    staging: Database

    @property
    def topic(self) -> str:
        return self.prefix + TOPIC

    def relay(self, **overrides: Any) -> OutboxRelay:
        cfg = RelayConfig(
            service=self.service,
            bootstrap_servers=self.broker.bootstrap_servers,
            topic_prefix=self.prefix,
            batch_size=overrides.pop("batch_size", 25),
            poll_interval=0.05,
            backoff_initial=0.05,
            backoff_max=0.2,
        )
        return OutboxRelay(Database(self.db.app_url, pool_size=2), cfg, **overrides)

    async def stage(self, accounts: list[str], n: int) -> list[tuple[str, str]]:
        """Stage n commands round-robin over accounts; returns (key, event id) in id order."""
        staged = []
        async with self.staging.unit_of_work(tenant_id=self.workspace) as uow:
            for i in range(n):
                account = accounts[i % len(accounts)]
                event = await emit(
                    uow.session,
                    command(self.workspace, account),
                    topic=TOPIC,
                    key=account,
                    source="/chorus/publishing",
                    tenant_id=self.workspace,
                )
                staged.append((account, event.id))
            await uow.commit()
        return staged

    async def unpublished(self) -> int:
        return sum(1 for r in await outbox_rows(self.db.owner_url) if r.published_at is None)

    def metric(self, name: str) -> float:
        return REGISTRY.get_sample_value(name, {"service": self.service}) or 0.0


@pytest.fixture
async def env(
    database_factory: DatabaseFactory, kafka_broker: BrokerProcess, topic_prefix: str
) -> AsyncIterator[RelayEnv]:
    await asyncio.to_thread(kafka_broker.ensure_topics, [topic_prefix + TOPIC])
    db = await database_factory.create("publishing", MIGRATIONS)
    staging = Database(db.app_url, pool_size=2)
    try:
        yield RelayEnv(
            db,
            kafka_broker,
            topic_prefix,
            f"relaytest-{uuid.uuid4().hex[:8]}",
            str(uuid.uuid4()),
            staging,
        )
    finally:
        await staging.dispose()
        await database_factory.drop(db.name)


class Running:
    """Relays running as tasks; stopped and their pools closed on exit."""

    def __init__(self, *relays: OutboxRelay) -> None:
        self.relays = list(relays)
        self.tasks: dict[int, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Running:
        for r in self.relays:
            self.tasks[id(r)] = asyncio.create_task(r.run())
        return self

    async def stop(self, relay: OutboxRelay) -> None:
        relay.stop()
        await asyncio.wait_for(self.tasks[id(relay)], 10)

    async def __aexit__(self, *exc: object) -> None:
        for r in self.relays:
            r.stop()
        for r in self.relays:
            try:
                await asyncio.wait_for(self.tasks[id(r)], 10)
            finally:
                await r.db.dispose()


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list[Any]:
    # No consumer group (a group join costs seconds): the consumer takes every partition.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expect and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        # One more short poll would catch a duplicate arriving late.
        for batch in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def ids_by_key(records: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        out[rec.key.decode()].append(decode(rec.headers, rec.value).id)
    return out


async def test_two_relays_one_leader_every_row_once_in_order(env: RelayEnv) -> None:
    accounts = [str(uuid.uuid4()) for _ in range(5)]
    staged = await env.stage(accounts, 200)
    published_before = env.metric("chorus_outbox_published_total")
    metrics.OUTBOX_BACKLOG.labels(env.service).set(-1)  # a sentinel the relay must overwrite
    metrics.OUTBOX_OLDEST_AGE.labels(env.service).set(-1)
    a, b = env.relay(), env.relay()
    leaders_at_once: set[int] = set()

    async with Running(a, b):

        async def drained() -> bool:
            leaders_at_once.add(a.is_leader + b.is_leader)
            return await env.unpublished() == 0

        await wait_for(drained, timeout=30, interval=0.02, message="outbox drained")
        await wait_for(lambda: env.metric("chorus_outbox_backlog") == 0, timeout=10, interval=0.02)
        assert a.is_leader != b.is_leader, "exactly one leader"
        assert max(leaders_at_once) == 1, "never two leaders at once"
        assert sorted([a.published_total, b.published_total]) == [0, 200]
        assert env.metric("chorus_outbox_published_total") == published_before + 200
        assert env.metric("chorus_outbox_oldest_age_seconds") == 0

    records = await read_topic(env.broker.bootstrap_servers, env.topic, expect=200)
    assert len(records) == 200, "every row published exactly once"
    got = ids_by_key(records)
    want: dict[str, list[str]] = defaultdict(list)
    for key, event_id in staged:
        want[key].append(event_id)
    assert got == want, "per key, in outbox id order"
    for rec in records:
        headers = dict(rec.headers)
        assert headers["ce_tenantid"].decode() == env.workspace
        assert headers["ce_type"] == b"chorus.connector.post.publish_requested.v1"


async def test_the_standby_takes_over_when_the_leader_stops(env: RelayEnv) -> None:
    accounts = [str(uuid.uuid4()) for _ in range(3)]
    first = await env.stage(accounts, 30)
    a, b = env.relay(), env.relay()
    async with Running(a, b) as running:
        await wait_for(lambda: a.is_leader or b.is_leader, timeout=10, interval=0.02)
        leader, standby = (a, b) if a.is_leader else (b, a)
        await wait_for(lambda: leader.published_total == 30, timeout=20, interval=0.02)
        assert not standby.is_leader

        await running.stop(leader)
        assert not leader.is_leader
        await wait_for(lambda: standby.is_leader, timeout=10, interval=0.02, message="failover")
        second = await env.stage(accounts, 30)
        await wait_for(lambda: standby.published_total == 30, timeout=20, interval=0.02)
        assert await env.unpublished() == 0

    records = await read_topic(env.broker.bootstrap_servers, env.topic, expect=60)
    assert len(records) == 60
    want: dict[str, list[str]] = defaultdict(list)
    for key, event_id in first + second:
        want[key].append(event_id)
    assert ids_by_key(records) == want


async def test_a_failed_batch_is_retried_and_published_once(env: RelayEnv) -> None:
    staged = await env.stage([str(uuid.uuid4())], 10)
    errors_before = env.metric("chorus_outbox_errors_total")
    producers: list[AIOKafkaProducer] = []

    def flaky_first_producer(cfg: RelayConfig) -> AIOKafkaProducer:
        producer = default_producer(cfg)
        if not producers:

            async def refuse(*args: Any, **kwargs: Any) -> Any:
                raise KafkaConnectionError("broker went away")

            producer.send = refuse  # type: ignore[method-assign]
        producers.append(producer)
        return producer

    relay = env.relay(producer_factory=flaky_first_producer)
    async with Running(relay):
        await wait_for(lambda: relay.published_total == 10, timeout=20, interval=0.02)
    assert env.metric("chorus_outbox_errors_total") == errors_before + 1
    assert len(producers) == 2, "the failed producer was replaced"
    records = await read_topic(env.broker.bootstrap_servers, env.topic, expect=10)
    assert [decode(r.headers, r.value).id for r in records] == [e for _, e in staged]
