"""Analytics ingest: Kafka → ClickHouse throughput against a raw consumer, and freshness.

    .venv/bin/python bench/ingest.py [--events N] [--rate R] [--seconds S] [--json]

One run, one machine: the embedded Kafka-protocol broker (a separate process) and a fresh
embedded ClickHouse (chdb) directory. N metric-snapshot events (post and account metrics,
the bulk of analytics traffic) are produced, then read twice from the start:

* baseline: a plain aiokafka consumer that JSON-decodes every value (nothing else);
* analytics: the service's own ingest (`KafkaIngestor` + `ClickHouseWriter`: envelope and
  contract decode, mapping to `events` + the typed table, batched INSERTs with dedup tokens
  into chdb with the rollup views, offset commits), timed until every offset is committed.

Then freshness: with the ingest caught up, events are produced at R/s for S seconds and each
event's age (ce_time → the commit of the batch that wrote it) is recorded; p50/p99 reported.

The issue's scale (1M events) is cut to `--events` (default 200,000) so the run takes a few
minutes on a 2-core machine. Targets: analytics ≥ 0.6 × raw events/s; freshness p99 ≤ 2 s at
1,000 events/s. A measurement, not a test: exit 0 whatever the numbers, 1 if set-up fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from chorus_analytics.ingest import ClickHouseWriter, KafkaIngestor
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_contracts.catalog import build_event
from chorus_contracts.envelope import encode
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import AccountMetricsCollected, PostMetricsCollected
from chorus_runtime.clickhouse import EmbeddedClickHouseClient, migrate_up
from chorus_testing.broker import BrokerProcess

TOPIC = "connector.metrics"
# The embedded broker (librdkafka's mock cluster) keeps only ~5 MB per partition and drops
# older data silently, so the events are spread over enough topics (4 partitions each).
EVENTS_PER_TOPIC = 15_000
TARGET_RATIO = 0.6
TARGET_P99_SECONDS = 2.0


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def make_event(i: int, workspaces: list[uuid.UUID], accounts: list[uuid.UUID]) -> Any:
    ws = workspaces[i % len(workspaces)]
    account = accounts[i % len(accounts)]
    now = datetime.now(UTC)
    if i % 5 == 0:
        data: Any = AccountMetricsCollected(
            workspace_id=ws,
            account_id=account,
            platform=Platform.LINKEDIN,
            followers=1000 + i,
            following=10,
            posts=i % 300,
            collected_at=now,
        )
    else:
        data = PostMetricsCollected(
            workspace_id=ws,
            account_id=account,
            platform=Platform.LINKEDIN,
            post_id=uuid.uuid4(),
            target_id=uuid.uuid4(),
            platform_post_id=f"urn:li:share:{i % 5000}",
            likes=i % 100,
            comments=i % 17,
            shares=i % 7,
            saves=i % 3,
            impressions=i % 1000,
            reach=i % 800,
            clicks=i % 50,
            video_views=0,
            collected_at=now,
        )
    return build_event(data, source="/bench", tenant_id=str(ws), subject=str(account))


WORKSPACES = [uuid.uuid4() for _ in range(20)]
ACCOUNTS = [uuid.uuid4() for _ in range(200)]


def new_producer(bootstrap: str, linger_ms: int = 20) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms, max_batch_size=256 * 1024
    )


async def send(producer: AIOKafkaProducer, topics: list[str], n: int, *, start: int = 0) -> None:
    pending = []
    for i in range(start, start + n):
        event = make_event(i, WORKSPACES, ACCOUNTS)
        headers, value = encode(event)
        topic = topics[(i // EVENTS_PER_TOPIC) % len(topics)]
        assert event.subject is not None
        pending.append(
            await producer.send(topic, value=value, key=event.subject.encode(), headers=headers)
        )
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def raw_consume(bootstrap: str, topics: list[str], n: int) -> float:
    """Seconds for a plain consumer to read and JSON-decode n messages."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        last_progress = time.monotonic()
        while seen < n:
            if time.monotonic() - last_progress > 30:
                raise TimeoutError(f"raw consumer stuck at {seen} of {n}")
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if batch:
                last_progress = time.monotonic()
            if started is None and batch:
                started = time.perf_counter()  # after the group join, like the ingest side
            for records in batch.values():
                for r in records:
                    json.loads(r.value)
                    seen += 1
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


def ce_time_of(record: Any) -> float:
    for key, value in record.headers:
        if key == "ce_time":
            return datetime.fromisoformat(value.decode().replace("Z", "+00:00")).timestamp()
    raise ValueError("no ce_time")


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def produce_all(bootstrap: str, topics: list[str], n: int) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        await send(producer, topics, n)
    finally:
        await producer.stop()


async def start_ingest(
    bootstrap: str, client: EmbeddedClickHouseClient, topics: list[str], args: argparse.Namespace
) -> tuple[KafkaIngestor, asyncio.Task[None]]:
    """The service's ingestor on `topics`, started and joined to its (new) group."""
    ingestor = KafkaIngestor(
        bootstrap_servers=bootstrap,
        topics=topics,
        writer=ClickHouseWriter(client),
        group_id=f"bench-analytics-{uuid.uuid4().hex[:6]}",
        max_rows=args.batch_rows,
        max_seconds=args.batch_seconds,
    )
    task = asyncio.create_task(ingestor.run())

    def assigned() -> bool:
        if task.done():
            task.result()
        return ingestor.consumer is not None and bool(ingestor.consumer.assignment())

    await until(assigned, 60, "the ingest consumer joined its group")
    return ingestor, task


async def freshness(
    bootstrap: str, ingestor: KafkaIngestor, topics: list[str], args: argparse.Namespace
) -> tuple[int, list[float]]:
    """Produce at `args.rate`/s for `args.seconds`; each event's ce_time → commit age."""
    ages: list[float] = []

    def record_ages(records: list[Any]) -> None:
        done = time.time()
        ages.extend(done - ce_time_of(r) for r in records)

    ingestor.on_committed = record_ages
    per_tick = max(1, args.rate // 10)
    producer = new_producer(bootstrap, linger_ms=0)
    await producer.start()
    try:
        began = time.perf_counter()
        for tick in range(args.seconds * 10):
            await send(producer, topics, per_tick, start=args.events + tick * per_tick)
            next_tick = began + (tick + 1) * 0.1
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    finally:
        await producer.stop()
    expected = args.events + args.seconds * 10 * per_tick
    await until(lambda: ingestor.stats.events >= expected, 60, "freshness phase drained")
    return per_tick * 10, sorted(ages)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    broker = await asyncio.to_thread(BrokerProcess.start)
    tmp = Path(tempfile.mkdtemp(prefix="chorus-bench-ingest-"))
    client = EmbeddedClickHouseClient(tmp / "chdb", database="bench", settings=SESSION_SETTINGS)
    bootstrap = broker.bootstrap_servers
    try:
        prefix = f"b{uuid.uuid4().hex[:6]}"
        n_topics = max(1, -(-args.events // EVENTS_PER_TOPIC))
        topics = [f"{prefix}.{TOPIC}{i}" for i in range(n_topics)]
        await asyncio.to_thread(broker.ensure_topics, topics + [t + ".dlq" for t in topics])
        await migrate_up(client, MIGRATIONS)
        say(f"producing {args.events:,} events to {n_topics} topic(s) {prefix}.{TOPIC}*")
        t0 = time.perf_counter()
        await produce_all(bootstrap, topics, args.events)
        say(f"produced in {time.perf_counter() - t0:.1f}s")

        say("baseline: raw aiokafka consume + json.loads")
        raw_rate = args.events / await raw_consume(bootstrap, topics, args.events)

        say("analytics ingest: decode + map + batched chdb INSERTs + commits")
        ingestor, task = await start_ingest(bootstrap, client, topics, args)
        started = time.perf_counter()  # after the group join, like the baseline
        await until(lambda: ingestor.stats.events >= args.events, 600, "ingest finished")
        ingest_rate = args.events / (time.perf_counter() - started)
        rows = await client.query("SELECT count() AS n FROM events")
        assert rows[0]["n"] == args.events, rows

        say(f"freshness: {args.rate}/s for {args.seconds}s")
        rate, ages = await freshness(bootstrap, ingestor, topics, args)
        task.cancel()
        return {
            "events": args.events,
            "topics": n_topics,
            "raw_events_per_s": round(raw_rate),
            "analytics_events_per_s": round(ingest_rate),
            "ratio": round(ingest_rate / raw_rate, 3),
            "target_ratio": TARGET_RATIO,
            "freshness_rate_per_s": rate,
            "freshness_samples": len(ages),
            "freshness_p50_s": round(statistics.median(ages), 3),
            "freshness_p99_s": round(ages[min(len(ages) - 1, int(len(ages) * 0.99))], 3),
            "target_p99_s": TARGET_P99_SECONDS,
            "batch": {"rows": args.batch_rows, "seconds": args.batch_seconds},
        }
    finally:
        await client.close()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1_000, help="events/s for freshness")
    parser.add_argument("--seconds", type=int, default=20, help="freshness phase length")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--batch-seconds", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        result = asyncio.run(run(args))
    except Exception as exc:
        say(f"set-up failed: {type(exc).__name__}: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ratio_ok = result["ratio"] >= TARGET_RATIO
    fresh_ok = result["freshness_p99_s"] <= TARGET_P99_SECONDS
    print(f"events                 {result['events']:,}")
    print(f"raw consume+decode     {result['raw_events_per_s']:,} events/s")
    print(f"analytics ingest       {result['analytics_events_per_s']:,} events/s")
    verdict = "PASS" if ratio_ok else "FAIL"
    print(f"ratio                  {result['ratio']} (target >= {TARGET_RATIO}) {verdict}")
    print(
        f"freshness @ {result['freshness_rate_per_s']}/s  p50 {result['freshness_p50_s']}s  "
        f"p99 {result['freshness_p99_s']}s (target p99 <= {TARGET_P99_SECONDS}s) "
        f"{'PASS' if fresh_ok else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
