"""The worker role end to end: the embedded Kafka-protocol broker → batches → chdb.

Every example (and garbage) through real topics; a crash between insert and commit; the
store unavailable for 10 s. Final counts are exact in each case.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from analytics_support import analytics_settings
from analytics_testkit import Offsets, account_metrics, counts, post_metrics, record_for
from test_analytics_writer import FlakyClient, example_records, expected_counts

from chorus_analytics.main import AnalyticsRuntime, build, consumed_topics
from chorus_analytics.store import SESSION_SETTINGS
from chorus_contracts.registry import load_registry
from chorus_runtime.clickhouse import EmbeddedClickHouseClient
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.broker import BrokerProcess
from chorus_testing.waiting import eventually_equals, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def topics(kafka_broker: BrokerProcess, topic_prefix: str) -> str:
    names = []
    for spec in load_registry().topics.values():
        names += [topic_prefix + spec.name, topic_prefix + spec.dlq_name]
    await asyncio.to_thread(kafka_broker.ensure_topics, names)
    return topic_prefix


def worker(
    chdb_path: Path,
    database: str,
    kafka_broker: BrokerProcess,
    prefix: str,
    *,
    clickhouse: FlakyClient | None = None,
    **kw: object,
) -> AnalyticsRuntime:
    settings = analytics_settings(
        chdb_path,
        database,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        topic_prefix=prefix,
        ingest_batch_max_seconds=0.2,
        ingest_retry_initial_seconds=0.05,
        ingest_retry_max_seconds=0.5,
        ingest_session_timeout_ms=3_000,
        ingest_group=f"analytics.ingest.{prefix.strip('.')}",
        **kw,
    )
    return build(settings, clickhouse=clickhouse)


async def produce(bootstrap: str, records: Sequence[object], *, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send(
                r.topic,  # type: ignore[attr-defined]
                value=r.value,  # type: ignore[attr-defined]
                key=key,
                headers=r.headers,  # type: ignore[attr-defined]
            )
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 15.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"tests-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(recs)
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group: str, topics: list[str]) -> int:
    """Sum of the group's committed offsets over the topics' partitions (as the broker says)."""
    from aiokafka.admin import AIOKafkaAdminClient

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await producer.start()
    await admin.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in await producer.partitions_for(t)
        ]
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return sum(max(0, o.offset) for o in offsets.values())
    finally:
        await producer.stop()
        await admin.close()


def metric_events(ws: uuid.UUID, n: int) -> list:  # type: ignore[type-arg]
    account = uuid.uuid4()
    out = []
    for i in range(n):
        day = 1 + i % 20
        out.append(
            post_metrics(
                ws,
                account,
                f"p{i % 7}",
                f"2025-04-{day:02d}T{i % 24:02d}:00:00",
                likes=i,
                impressions=10 * i,
            )
        )
        out.append(account_metrics(ws, account, f"2025-04-{day:02d}T{i % 24:02d}:30:00", 100 + i))
    return out


async def rollup_state(ch: EmbeddedClickHouseClient) -> list[dict[str, object]]:
    return await ch.query(
        "SELECT platform_post_id, day, argMaxMerge(likes) AS likes, argMaxMerge(impressions) AS i "
        "FROM post_metrics_daily GROUP BY platform_post_id, day ORDER BY platform_post_id, day"
    )


async def test_every_example_and_garbage_through_kafka(
    chdb_path: Path,
    database: str,
    ch: EmbeddedClickHouseClient,
    kafka_broker: BrokerProcess,
    topics: str,
) -> None:
    records = example_records()
    for r in records:
        r.topic = topics + r.topic
    garbage_topic = topics + "gateway.audit"
    garbage = type(records[0])(garbage_topic, 0, 0, None, b"{not json", [("ce_type", b"x")])
    runtime = worker(chdb_path, database, kafka_broker, topics)
    async with running(runtime, Role.WORKER):
        await produce(kafka_broker.bootstrap_servers, [*records, garbage])
        expected = expected_counts(records)
        await eventually_equals(lambda: counts(ch), expected, timeout=30)
        await wait_for(lambda: runtime.ingestor.stats.dead_lettered == 1, timeout=10)
        await wait_for(
            lambda: sum(runtime.ingestor.stats.committed.values()) == len(records) + 1,
            timeout=10,
            message="every offset committed",
        )
    dlq = await read_topic(kafka_broker.bootstrap_servers, garbage_topic + ".dlq", expect=1)
    assert len(dlq) == 1
    headers = {k: v.decode() for k, v in dlq[0].headers}
    assert dlq[0].value == b"{not json"
    assert headers["dlq_error_type"] == "EnvelopeError"
    assert headers["dlq_original_topic"] == garbage_topic
    assert headers["dlq_consumer_group"] == runtime.ingestor.group_id
    assert await counts(ch) == expected


async def test_a_crash_between_insert_and_commit_changes_no_number(
    chdb_path: Path,
    database: str,
    ch: EmbeddedClickHouseClient,
    kafka_broker: BrokerProcess,
    topics: str,
) -> None:
    ws = uuid.uuid4()
    offsets = Offsets()
    events = metric_events(ws, 150)
    records = [record_for(e, offsets, prefix=topics) for e in events]
    runtime = worker(chdb_path, database, kafka_broker, topics, ingest_batch_max_rows=40)
    ingestor = runtime.ingestor
    crashes = {"left": 2}
    original = ingestor._commit

    async def crash_once(consumer, recs):  # type: ignore[no-untyped-def]
        if crashes["left"] > 0 and ingestor.stats.batches >= 1:
            crashes["left"] -= 1
            raise RuntimeError("process died after the insert, before the commit (test)")
        await original(consumer, recs)

    ingestor._commit = crash_once  # type: ignore[method-assign]
    async with running(runtime, Role.WORKER):
        await produce(kafka_broker.bootstrap_servers, records)
        await wait_for(lambda: crashes["left"] == 0, timeout=30, message="two crashes")
        total = {"events": 300, "post_metric_snapshots": 150, "account_metric_snapshots": 150}
        await eventually_equals(lambda: _some(counts(ch), total), total, timeout=45)
        await wait_for(
            lambda: sum(ingestor.stats.committed.values()) == len(records),
            timeout=20,
            message="all offsets committed after the restarts",
        )

    raw = await counts(ch, final=False)
    assert raw["events"] >= 300  # resent identical batches were dropped by their token
    final = await counts(ch)
    assert (final["events"], final["post_metric_snapshots"], final["account_metric_snapshots"]) == (
        300,
        150,
        150,
    )
    # The rollups equal a fresh ingest of the same events into another table set.
    expected = await _fresh_rollups(chdb_path, events)
    assert await rollup_state(ch) == expected


async def _some(coro, keys):  # type: ignore[no-untyped-def]
    values = await coro
    return {k: values[k] for k in keys}


async def _fresh_rollups(chdb_path: Path, events: list) -> list[dict[str, object]]:  # type: ignore[type-arg]
    from analytics_support import new_database
    from analytics_testkit import ingest

    from chorus_analytics.store import MIGRATIONS
    from chorus_runtime.clickhouse import migrate_up

    name = new_database()
    client = EmbeddedClickHouseClient(chdb_path, database=name, settings=SESSION_SETTINGS)
    try:
        await migrate_up(client, MIGRATIONS)
        await ingest(client, events)
        return await rollup_state(client)
    finally:
        await client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        await client.close()


async def test_the_store_unavailable_for_10s_pauses_and_loses_nothing(
    chdb_path: Path,
    database: str,
    ch: EmbeddedClickHouseClient,
    kafka_broker: BrokerProcess,
    topics: str,
) -> None:
    ws = uuid.uuid4()
    offsets = Offsets()
    events = metric_events(ws, 60)
    records = [record_for(e, offsets, prefix=topics) for e in events]
    inner = EmbeddedClickHouseClient(chdb_path, database=database, settings=SESSION_SETTINGS)
    flaky = FlakyClient(inner)
    runtime = worker(chdb_path, database, kafka_broker, topics, clickhouse=flaky)
    ingestor = runtime.ingestor
    physical = [topics + t for t in consumed_topics()]
    async with running(runtime, Role.WORKER):
        await produce(kafka_broker.bootstrap_servers, records[:20])
        await eventually_equals(lambda: _events(ch), 20, timeout=30)
        # Rows are visible a moment before their offsets are committed: wait for the commit,
        # or it could land after the store goes down and look like a commit while down.
        await wait_for(
            lambda: sum(ingestor.stats.committed.values()) == 20,
            timeout=10,
            message="the first 20 committed",
        )
        commits_before = ingestor.stats.commits

        flaky.down = True
        down_at = time.monotonic()
        await produce(kafka_broker.bootstrap_servers, records[20:])
        await wait_for(lambda: ingestor.writer.unavailable_retries > 3, timeout=10)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        assert ingestor.stats.commits == commits_before, "nothing committed while down"
        assert await _events(ch) == 20, "nothing written while down"
        assert await committed(kafka_broker.bootstrap_servers, ingestor.group_id, physical) == 20
        flaky.down = False

        await eventually_equals(lambda: _events(ch), len(records), timeout=30)
        await wait_for(lambda: sum(ingestor.stats.committed.values()) == len(records), timeout=20)
    final = await counts(ch)
    assert final["events"] == len(records) == 120
    assert final["post_metric_snapshots"] == 60
    assert final["account_metric_snapshots"] == 60
    assert await rollup_state(ch) == await _fresh_rollups(chdb_path, events)


async def _events(ch: EmbeddedClickHouseClient) -> int:
    rows = await ch.query("SELECT count() AS n FROM events FINAL")
    return int(rows[0]["n"])
