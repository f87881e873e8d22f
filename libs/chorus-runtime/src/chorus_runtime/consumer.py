"""The one way to consume events (design.md §4): FastStream + aiokafka subscribers with

- at-least-once: the offset is committed only after the effect is durable;
- dedup: the event id goes into `processed_events` in the effect's own transaction;
- retries: transient errors back off exponentially with jitter and never skip a message;
- a DLQ: poison messages go to `<topic>.dlq` with the original headers and the error,
  and the partition moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chorus_contracts.catalog import EventData, catalog, parse_data
from chorus_contracts.envelope import CloudEvent, EnvelopeError, decode
from chorus_contracts.registry import DLQ_SUFFIX
from chorus_runtime import metrics
from chorus_runtime.db.database import Database, UnitOfWork
from chorus_runtime.db.tables import processed_events_table
from chorus_runtime.failpoints import failpoint

log = logging.getLogger("chorus.consumer")


class TransientError(Exception):
    """Raise from a handler when trying again later can succeed (e.g. a dependency is down)."""


class PoisonMessage(Exception):
    """Raise from a handler when the message can never succeed: straight to the DLQ."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return True
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        # The asyncpg dialect puts an adapter in `.orig`; the driver's exception is its cause.
        orig = exc.orig
        return orig is not None and (
            is_transient(orig) or (orig.__cause__ is not None and is_transient(orig.__cause__))
        )
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, OSError)


@dataclass(frozen=True)
class Delivery:
    """What a handler gets: the decoded event, its typed data and (with a db) its transaction."""

    event: CloudEvent
    data: EventData
    topic: str
    partition: int
    offset: int
    uow: UnitOfWork | None


Handler = Callable[[Delivery], Awaitable[None]]


@dataclass
class RetryPolicy:
    initial: float = 0.1
    maximum: float = 30.0
    poison_attempts: int = 3  # non-transient errors get this many tries before the DLQ

    def delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many consumers after a shared outage.
        # The exponent is bounded: transient errors retry forever and 2**1024 overflows a float.
        cap = min(self.maximum, self.initial * (2 ** min(attempt - 1, 64)))
        return random.uniform(cap / 2, cap)


@dataclass
class Subscription:
    topic: str  # logical
    group_id: str
    handler: Handler
    event_types: frozenset[str] | None
    dedupe: bool
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class ConsumerRuntime:
    """Registers subscribers on a FastStream `KafkaBroker` with the guarantees above."""

    def __init__(
        self,
        service: str,
        broker: KafkaBroker,
        *,
        db: Database | None = None,
        topic_prefix: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.service = service
        self.broker = broker
        self.db = db
        self.prefix = topic_prefix
        self.retry = retry or RetryPolicy()
        self.subscriptions: list[Subscription] = []
        self._known_types = frozenset(catalog())
        self._subscribers: list[tuple[Subscription, Any]] = []

    def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        purpose: str,
        event_types: Collection[str] | None = None,
        dedupe: bool = True,
    ) -> Subscription:
        """Consume logical `topic` in group `<service>.<purpose>` (one group per subscriber)."""
        if dedupe and self.db is None:
            raise ValueError("dedupe needs a database; pass dedupe=False for idempotent effects")
        sub = Subscription(
            topic=topic,
            group_id=f"{self.service}.{purpose}",
            handler=handler,
            event_types=frozenset(event_types) if event_types is not None else None,
            dedupe=dedupe,
        )
        if any(s.group_id == sub.group_id for s in self.subscriptions):
            raise ValueError(f"consumer group {sub.group_id} already used by another subscriber")

        async def on_message(message: KafkaMessage) -> None:
            await self._on_message(sub, message)

        subscriber = self.broker.subscriber(
            self.prefix + topic,
            group_id=sub.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            max_poll_interval_ms=60 * 60 * 1000,  # a handler may block on retries, never skip
            decoder=_raw_decoder,
            title=f"{sub.group_id}:{topic}",
        )
        subscriber(on_message)
        self.subscriptions.append(sub)
        self._subscribers.append((sub, subscriber))
        return sub

    async def _on_message(self, sub: Subscription, message: KafkaMessage) -> None:
        record: ConsumerRecord[Any, Any] = message.raw_message  # type: ignore[assignment]
        labels = (self.service, sub.group_id, sub.topic)
        try:
            event = decode(record.headers, record.value, known_types=self._known_types)
            data = parse_data(event)
        except EnvelopeError as exc:
            await self._dead_letter(sub, record, exc)
            await message.ack()
            return
        if sub.event_types is not None and event.type not in sub.event_types:
            await message.ack()  # a type this subscriber does not act on
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._apply(sub, event, data, record)
                break
            except asyncio.CancelledError:
                raise  # shutting down: not acked, redelivered after restart
            except Exception as exc:
                transient = is_transient(exc) and not isinstance(exc, PoisonMessage)
                if transient or (
                    attempt < self.retry.poison_attempts and not isinstance(exc, PoisonMessage)
                ):
                    delay = self.retry.delay(attempt)
                    metrics.EVENTS_PROCESSED.labels(*labels, "retried").inc()
                    log.warning(
                        "handler failed; retrying",
                        extra={
                            "fields": {
                                "group": sub.group_id,
                                "eventId": event.id,
                                "attempt": attempt,
                                "transient": transient,
                                "error": repr(exc)[:500],
                                "delaySeconds": round(delay, 3),
                            }
                        },
                    )
                    await asyncio.sleep(delay)
                    continue
                await self._dead_letter(sub, record, exc)
                outcome = "dlq"
                break
        if outcome == "processed":
            sub.processed += 1
        elif outcome == "duplicate":
            sub.duplicates += 1
        metrics.EVENTS_PROCESSED.labels(*labels, outcome).inc()
        # Crash-safety tests die here: the effect is committed, the offset is not.
        failpoint(f"consumer.{sub.group_id}.before_ack")
        await message.ack()

    async def _apply(
        self, sub: Subscription, event: CloudEvent, data: EventData, record: ConsumerRecord
    ) -> str:
        delivery = dict(
            event=event,
            data=data,
            topic=sub.topic,
            partition=record.partition,
            offset=record.offset,
        )
        if self.db is None:
            await sub.handler(Delivery(uow=None, **delivery))
            return "processed"
        tenant = event.tenantid
        async with self.db.unit_of_work(tenant_id=tenant, system=tenant is None) as uow:
            if sub.dedupe:
                inserted = await uow.session.execute(
                    pg_insert(processed_events_table)
                    .values(consumer_group=sub.group_id, event_id=event.id)
                    .on_conflict_do_nothing()
                    .returning(processed_events_table.c.event_id)
                )
                if inserted.first() is None:
                    return "duplicate"
            await sub.handler(Delivery(uow=uow, **delivery))
            await uow.commit()
        return "processed"

    async def _dead_letter(
        self, sub: Subscription, record: ConsumerRecord, error: BaseException
    ) -> None:
        headers = {k: _text(v) for k, v in (record.headers or ())}
        headers.update(
            {
                "dlq_error": f"{type(error).__name__}: {error}"[:2000],
                "dlq_error_type": type(error).__name__,
                "dlq_original_topic": record.topic,
                "dlq_original_partition": str(record.partition),
                "dlq_original_offset": str(record.offset),
                "dlq_consumer_group": sub.group_id,
                "dlq_failed_at": datetime.now(UTC).isoformat(),
            }
        )
        attempt = 0
        while True:  # the DLQ write must succeed before the offset moves
            attempt += 1
            try:
                await self.broker.publish(
                    record.value if record.value is not None else b"",
                    topic=record.topic + DLQ_SUFFIX,
                    key=record.key,
                    headers=headers,
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("DLQ publish failed; retrying", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(self.retry.delay(attempt))
        sub.dead_lettered += 1
        metrics.DLQ_TOTAL.labels(self.service, sub.topic).inc()
        log.error(
            "message dead-lettered",
            extra={
                "fields": {
                    "group": sub.group_id,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": headers["dlq_error"],
                }
            },
        )

    async def report_lag(self) -> None:
        """Update the consumer-lag gauge from each subscriber's aiokafka consumer."""
        for sub, subscriber in self._subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            lag = 0
            with contextlib.suppress(Exception):
                for tp in consumer.assignment():
                    high = consumer.highwater(tp)
                    pos = await consumer.position(TopicPartition(tp.topic, tp.partition))
                    if high is not None and pos is not None:
                        lag += max(0, high - pos)
            metrics.CONSUMER_LAG.labels(self.service, sub.group_id, sub.topic).set(lag)

    async def lag_reporter(self, interval: float = 5.0) -> None:
        while True:
            await self.report_lag()
            await asyncio.sleep(interval)


async def _raw_decoder(message: KafkaMessage) -> bytes:
    # The runtime decodes the CloudEvent itself so a malformed value becomes a DLQ entry
    # instead of an error inside FastStream's JSON decoding.
    return message.body


def _text(v: bytes | str | None) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v
