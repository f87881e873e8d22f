"""Kafka → ClickHouse: one consumer group reads every registry topic in batches.

Per batch (flushed at `ingest_batch_max_rows` events or `ingest_batch_max_seconds` after its
first event, whichever comes first):

1. `prepare`: decode each message (`decoding.FastDecoder`, falling back to
   `chorus_contracts.envelope.decode` + the data contract for anything it is not sure of);
   an undecodable one (or a tenant mismatch) becomes a dead letter, the rest become rows:
   `events` for every event plus the typed tables its type maps to (`mappings.py`).
2. `ClickHouseWriter.write`: one INSERT per table, each carrying an
   `insert_deduplication_token` derived from the batch's (topic, partition, first offset,
   last offset) ranges, so a batch sent twice adds nothing. ClickHouse unavailable → the
   insert is retried with backoff, forever: nothing is polled meanwhile (consumption pauses)
   and nothing is committed, so nothing is lost or skipped. A statement ClickHouse rejects
   `ingest_rejected_attempts` times makes the batch go event by event; the events that
   still fail are dead-lettered.
3. Dead letters are published to `<topic>.dlq` (original value and headers plus `dlq_*`
   error headers, as the runtime's consumers do), and must succeed.
4. Only then are the offsets committed.

A crash between 2 and 4 redelivers the batch, possibly cut differently: the tables are
ReplacingMergeTree on the event id (exact with FINAL) and the rollups use only
duplicate-insensitive aggregates, so the final numbers do not change.

The runtime's `ConsumerRuntime` handles one message at a time; this module is the batching
counterpart on plain aiokafka, kept in this service until it moves to the runtime (it
needs no Postgres: dedup is ClickHouse's). Schema and replay: docs/data-team.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from chorus_analytics import metrics as ametrics
from chorus_analytics.decoding import FastDecoder
from chorus_analytics.mappings import (
    TABLES,
    EventEnvelope,
    as_sequence,
    event_values,
    tenant_of,
    typed_rows,
)
from chorus_contracts.catalog import EventData, catalog, parse_data
from chorus_contracts.envelope import UnknownEventType, decode
from chorus_contracts.registry import DLQ_SUFFIX
from chorus_runtime import metrics
from chorus_runtime.clickhouse import ClickHouseClient, ClickHouseUnavailable

log = logging.getLogger("chorus.analytics.ingest")

SERVICE = "analytics"
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)  # `events` first


class KafkaRecord(Protocol):
    """What the pipeline reads from a Kafka record (aiokafka's ConsumerRecord has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class DeadLetter:
    record: KafkaRecord
    error: BaseException


@dataclass(slots=True)
class RecordRows:
    record: KafkaRecord
    event_id: str
    rows: list[tuple[str, list[Any]]]


Ranges = dict[tuple[str, int], tuple[int, int]]


@dataclass
class PreparedBatch:
    token: str
    records: list[KafkaRecord]
    rows: dict[str, list[list[Any]]]
    by_record: list[RecordRows]
    dead: list[DeadLetter]
    newest_event_time: datetime | None = None
    ranges: Ranges = field(default_factory=dict)  # (topic, partition) → first, last offset

    @property
    def row_count(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.2
    maximum: float = 5.0

    def delay(self, attempt: int) -> float:
        cap = min(self.maximum, self.initial * (2 ** min(attempt - 1, 32)))
        return random.uniform(cap / 2, cap)


def offset_ranges(records: Sequence[KafkaRecord]) -> Ranges:
    """(topic, partition) → (first offset, last offset) of the records."""
    ranges: Ranges = {}
    for r in records:
        key, offset = (r.topic, r.partition), r.offset
        seen = ranges.get(key)
        if seen is None:
            ranges[key] = (offset, offset)
        elif offset < seen[0]:
            ranges[key] = (offset, seen[1])
        elif offset > seen[1]:
            ranges[key] = (seen[0], offset)
    return ranges


def token_of(ranges: Ranges) -> str:
    text = ";".join(f"{t}/{p}/{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def batch_token(records: Sequence[KafkaRecord]) -> str:
    """Hash of the batch's (topic, partition, first offset, last offset) ranges.

    Deterministic for the same messages, so a redelivered identical batch is deduplicated
    by ClickHouse. Each table's insert appends its name (`<token>:<table>`).
    """
    return token_of(offset_ranges(records))


@functools.lru_cache(maxsize=8)
def decoder_for(known_types: frozenset[str]) -> FastDecoder:
    models = catalog()
    return FastDecoder({t: models[t] for t in known_types if t in models})


def _reference_decode(
    record: KafkaRecord, known: frozenset[str]
) -> tuple[EventEnvelope, EventData]:
    """The contracts' decoding: the errors it raises are the ones dead letters carry."""
    event = decode(record.headers, record.value)
    if event.type not in known:  # what decode(known_types=) checks, without a set copy
        raise UnknownEventType(f"unknown event type {event.type!r}", header="ce_type")
    return event, parse_data(event)


def _map(
    record: KafkaRecord, event: EventEnvelope, data: EventData, now: datetime
) -> list[tuple[str, list[Any]]]:
    workspace = tenant_of(event, data)
    events_row = event_values(
        event,
        workspace_id=workspace,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        ingested_at=now,
        raw_data=record.value,
    )
    mapped: list[tuple[str, list[Any]]] = [("events", events_row)]
    for table, row in typed_rows(event, data):
        mapped.append((table, as_sequence(table, row)))
    return mapped


def prepare(
    records: Sequence[KafkaRecord],
    *,
    ingested_at: datetime | None = None,
    known_types: frozenset[str] | None = None,
) -> PreparedBatch:
    """Decode and map a batch (pure: no I/O)."""
    known = known_types if known_types is not None else frozenset(catalog())
    fast = decoder_for(known).decode
    now = ingested_at or datetime.now(UTC)
    rows: dict[str, list[list[Any]]] = {}
    by_record: list[RecordRows] = []
    dead: list[DeadLetter] = []
    newest: datetime | None = None
    for record in records:
        mapped: list[tuple[str, list[Any]]] | None = None
        decoded = fast(record.headers, record.value)
        if decoded is not None:
            event: EventEnvelope = decoded[0]
            try:
                mapped = _map(record, event, decoded[1], now)
            except Exception:  # redone the reference way below, which names the error
                mapped = None
        if mapped is None:
            try:
                event, data = _reference_decode(record, known)
                mapped = _map(record, event, data, now)
            except Exception as exc:  # envelope, contract, tenant mismatch or a mapping bug
                dead.append(DeadLetter(record, exc))
                continue
        for table, row in mapped:
            rows.setdefault(table, []).append(row)
        by_record.append(RecordRows(record, event.id, mapped))
        if newest is None or event.time > newest:
            newest = event.time
    ranges = offset_ranges(records)
    return PreparedBatch(token_of(ranges), list(records), rows, by_record, dead, newest, ranges)


class BatchRejected(Exception):
    """ClickHouse refused a statement of the batch repeatedly (not an outage)."""


SleepFn = Callable[[float], Awaitable[None]]


class ClickHouseWriter:
    """Writes prepared batches; retries outages forever, isolates rejected events."""

    def __init__(
        self,
        client: ClickHouseClient,
        *,
        backoff: Backoff | None = None,
        rejected_attempts: int = 3,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        self.client = client
        self.backoff = backoff or Backoff()
        self.rejected_attempts = rejected_attempts
        self.sleep = sleep
        self.unavailable_retries = 0
        self.rejected_retries = 0

    async def write(self, batch: PreparedBatch) -> list[DeadLetter]:
        """Insert every table's rows; returns events that ClickHouse refused (for the DLQ)."""
        try:
            for table in TABLE_ORDER:
                rows = batch.rows.get(table)
                if rows:
                    await self._insert(table, rows, f"{batch.token}:{table}")
        except BatchRejected as exc:
            log.error(
                "ClickHouse rejected a batch; writing it event by event",
                extra={"fields": {"token": batch.token, "error": str(exc)[:500]}},
            )
            ametrics.BATCHES.labels("isolated").inc()
            return await self._isolate(batch)
        return []

    async def _isolate(self, batch: PreparedBatch) -> list[DeadLetter]:
        dead: list[DeadLetter] = []
        for item in batch.by_record:
            try:
                for table, row in item.rows:
                    await self._insert(table, [row], f"event:{item.event_id}:{table}")
            except BatchRejected as exc:
                dead.append(DeadLetter(item.record, exc.__cause__ or exc))
        return dead

    async def _insert(self, table: str, rows: list[list[Any]], token: str) -> None:
        columns = TABLES[table].columns
        unavailable = rejected = 0
        while True:
            try:
                await self.client.insert(table, rows, columns, dedup_token=token)
            except asyncio.CancelledError:
                raise
            except ClickHouseUnavailable as exc:
                unavailable += 1
                self.unavailable_retries += 1
                ametrics.INSERT_RETRIES.labels("unavailable").inc()
                ametrics.CLICKHOUSE_UP.set(0)
                delay = self.backoff.delay(unavailable)
                if unavailable == 1 or unavailable % 10 == 0:
                    log.warning(
                        "ClickHouse unavailable; consumption paused, retrying",
                        extra={
                            "fields": {
                                "table": table,
                                "attempt": unavailable,
                                "error": str(exc)[:300],
                                "delaySeconds": round(delay, 3),
                            }
                        },
                    )
                await self.sleep(delay)
                continue
            except Exception as exc:  # the statement or the data was refused
                rejected += 1
                self.rejected_retries += 1
                ametrics.INSERT_RETRIES.labels("rejected").inc()
                if rejected >= self.rejected_attempts:
                    raise BatchRejected(f"{table}: {exc}") from exc
                await self.sleep(self.backoff.delay(rejected))
                continue
            ametrics.CLICKHOUSE_UP.set(1)
            ametrics.ROWS_INSERTED.labels(table).inc(len(rows))
            return


@dataclass
class IngestStats:
    batches: int = 0
    events: int = 0
    dead_lettered: int = 0
    commits: int = 0
    commit_failures: int = 0
    last_flush_at: float | None = None
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs only: buffered records of a revoked partition are dropped before the flush
    (`_loop` keeps the assigned ones) and re-read by the partition's next owner."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("partitions revoked", extra={"fields": {"count": len(revoked)}})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", extra={"fields": {"count": len(assigned)}})


class KafkaIngestor:
    """The worker-role loop: poll, batch, write, dead-letter, commit."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: Sequence[str],
        writer: ClickHouseWriter,
        group_id: str = "analytics.ingest",
        topic_prefix: str = "",
        max_rows: int = 10_000,
        max_seconds: float = 1.0,
        backoff: Backoff | None = None,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 100,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms = session_timeout_ms
        self.prefix = topic_prefix
        self.topics = [topic_prefix + t for t in topics]
        self.writer = writer
        self.group_id = group_id
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.backoff = backoff or Backoff()
        self.known_types = frozenset(catalog())
        self.stats = IngestStats()
        self.consumer: AIOKafkaConsumer | None = None
        # Called with each batch's records once its offsets are committed (benchmarks).
        self.on_committed: Callable[[list[KafkaRecord]], None] | None = None

    def _logical(self, physical: str) -> str:
        return physical[len(self.prefix) :] if physical.startswith(self.prefix) else physical

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"chorus-{SERVICE}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A flush may wait for ClickHouse for long; the heartbeat thread keeps the member.
            max_poll_interval_ms=60 * 60 * 1000,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"chorus-{SERVICE}-dlq",
            enable_idempotence=True,
            acks="all",
        )
        consumer.subscribe(self.topics, listener=_Rebalance())
        await consumer.start()
        self.consumer = consumer
        try:
            await producer.start()
            await self._loop(consumer, producer)
        finally:
            self.consumer = None
            # No commit here: whatever was not flushed is redelivered after a restart.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        """Poll and batch; each batch is prepared here while the previous one is still being
        written (one in flight: inserts block a worker thread, not this loop), and batches
        complete and commit strictly in order. A batch that cannot be written holds the next
        one back, so at most two batches are in memory and polling stops."""
        # Fetched records stay in their per-partition chunks until the flush, so dropping a
        # revoked partition's records costs one check per chunk, not one per record.
        buffer: list[tuple[TopicPartition, list[KafkaRecord]]] = []
        buffered = 0
        first_at: float | None = None
        inflight: asyncio.Task[None] | None = None
        idle_ms = max(1, int(min(self.max_seconds, 1.0) * 1000))
        try:
            while True:
                if inflight is not None and inflight.done():
                    inflight.result()  # a failed batch stops the loop (the task restarts it)
                    inflight = None
                if first_at is None:
                    timeout_ms = idle_ms
                else:
                    left = first_at + self.max_seconds - time.monotonic()
                    timeout_ms = max(0, int(left * 1000))
                fetched = await consumer.getmany(
                    timeout_ms=timeout_ms, max_records=max(1, self.max_rows - buffered)
                )
                for tp, records in fetched.items():
                    if records:
                        buffer.append((tp, records))
                        buffered += len(records)
                if buffer and first_at is None:
                    first_at = time.monotonic()
                due = first_at is not None and time.monotonic() - first_at >= self.max_seconds
                if not buffer or (buffered < self.max_rows and not due):
                    continue
                assigned = consumer.assignment()
                owned = [r for tp, records in buffer if tp in assigned for r in records]
                buffer, buffered, first_at = [], 0, None
                if not owned:
                    continue
                started = time.perf_counter()
                # Off the event loop: in `--role all` the API shares this loop.
                batch = await asyncio.to_thread(prepare, owned, known_types=self.known_types)
                if inflight is not None:
                    await inflight
                inflight = asyncio.create_task(
                    self._complete(consumer, producer, batch, started), name="analytics-batch"
                )
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()
                with contextlib.suppress(BaseException):
                    await inflight

    async def flush(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, records: list[KafkaRecord]
    ) -> None:
        """Prepare, write, dead-letter and commit one batch (no pipelining)."""
        started = time.perf_counter()
        await self._complete(
            consumer, producer, prepare(records, known_types=self.known_types), started
        )

    async def _complete(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: PreparedBatch,
        started: float,
    ) -> None:
        records = batch.records
        dead = batch.dead + await self.writer.write(batch)
        for letter in dead:
            await self._dead_letter(producer, letter)
        await self._commit(consumer, batch.ranges or offset_ranges(records))
        now = datetime.now(UTC)
        ametrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        ametrics.BATCH_ROWS.observe(len(records))
        ametrics.BATCHES.labels("committed").inc()
        if batch.newest_event_time is not None:
            ametrics.FRESHNESS.observe(max(0.0, (now - batch.newest_event_time).total_seconds()))
        per_topic = Counter(r.topic for r in records)
        per_topic.subtract(d.record.topic for d in dead)
        for topic, n in per_topic.items():
            if n <= 0:
                continue
            metrics.EVENTS_PROCESSED.labels(
                SERVICE, self.group_id, self._logical(topic), "processed"
            ).inc(n)
        self.stats.batches += 1
        self.stats.events += len(records) - len(dead)
        self.stats.dead_lettered += len(dead)
        self.stats.last_flush_at = time.monotonic()
        if self.on_committed is not None:
            self.on_committed(records)

    async def _commit(self, consumer: AIOKafkaConsumer, ranges: Ranges) -> None:
        offsets = {TopicPartition(t, p): hi + 1 for (t, p), (_, hi) in ranges.items()}
        attempt = 0
        while True:
            attempt += 1
            try:
                await consumer.commit(offsets)
                break
            except asyncio.CancelledError:
                raise
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced: the partitions' new owner re-reads from the last
                # committed offset, and the rows already written are deduplicated.
                self.stats.commit_failures += 1
                log.warning("offset commit refused", extra={"fields": {"error": repr(exc)}})
                return
            except KafkaError as exc:
                self.stats.commit_failures += 1
                log.warning(
                    "offset commit failed; retrying", extra={"fields": {"error": repr(exc)}}
                )
                await asyncio.sleep(self.backoff.delay(attempt))
        self.stats.commits += 1
        for tp, offset in offsets.items():
            self.stats.committed[(tp.topic, tp.partition)] = offset

    async def _dead_letter(self, producer: AIOKafkaProducer, letter: DeadLetter) -> None:
        record, error = letter.record, letter.error
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
        extra = {
            "dlq_error": f"{type(error).__name__}: {error}"[:2000],
            "dlq_error_type": type(error).__name__,
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_consumer_group": self.group_id,
            "dlq_failed_at": datetime.now(UTC).isoformat(),
        }
        headers += [(k, v.encode()) for k, v in extra.items()]
        attempt = 0
        while True:  # the DLQ write must succeed before the offset moves
            attempt += 1
            try:
                await producer.send_and_wait(
                    record.topic + DLQ_SUFFIX,
                    value=record.value if record.value is not None else b"",
                    key=record.key,
                    headers=headers,
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("DLQ publish failed; retrying", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(self.backoff.delay(attempt))
        logical = self._logical(record.topic)
        metrics.DLQ_TOTAL.labels(SERVICE, logical).inc()
        metrics.EVENTS_PROCESSED.labels(SERVICE, self.group_id, logical, "dlq").inc()
        log.error(
            "message dead-lettered",
            extra={
                "fields": {
                    "group": self.group_id,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": extra["dlq_error"],
                }
            },
        )

    async def lag_reporter(self, interval: float = 5.0) -> None:
        """Consumer lag per topic into the runtime's `chorus_consumer_lag` gauge."""
        while True:
            consumer = self.consumer
            if consumer is not None:
                lag: dict[str, int] = {}
                with contextlib.suppress(Exception):
                    for tp in consumer.assignment():
                        high = consumer.highwater(tp)
                        pos = await consumer.position(tp)
                        if high is not None and pos is not None:
                            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - pos)
                for topic, n in lag.items():
                    metrics.CONSUMER_LAG.labels(SERVICE, self.group_id, self._logical(topic)).set(n)
            await asyncio.sleep(interval)
