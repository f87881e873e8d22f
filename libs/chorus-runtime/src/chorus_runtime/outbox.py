"""Transactional outbox (design.md §4).

`add_event` writes the event in the caller's transaction (`emit_many` writes a batch of
them with one statement); `OutboxRelay` publishes committed
rows with an idempotent producer (`acks=all`) and marks them sent. One relay per service
holds a Postgres advisory lock so per-key order is kept; other replicas stand by.
A crash between send and mark republishes the batch: consumers absorb duplicates by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.catalog import EventData, build_event
from chorus_contracts.envelope import CloudEvent, encode
from chorus_runtime import metrics
from chorus_runtime.db.database import Database, to_asyncpg_dsn
from chorus_runtime.db.tables import outbox_table
from chorus_runtime.telemetry import current_traceparent

log = logging.getLogger("chorus.outbox")
NOTIFY_CHANNEL = "chorus_outbox"
_NOTIFIED = "chorus_outbox_notified"  # session.info: the transaction that already notified


def _with_trace(event: CloudEvent) -> CloudEvent:
    if event.traceparent is None:
        traceparent, tracestate = current_traceparent()
        if traceparent:
            event = event.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})
    return event


async def _notify_once(session: AsyncSession) -> None:
    # Delivered only on commit: wakes the relay without waiting for its poll interval.
    # Once per transaction is enough (Postgres folds repeats anyway); a round trip per
    # event was a third of the scheduler's statements.
    transaction = session.sync_session.get_transaction()
    if session.info.get(_NOTIFIED) is not transaction:
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        session.info[_NOTIFIED] = transaction


async def add_event(
    session: AsyncSession, event: CloudEvent, *, topic: str, key: str | None
) -> CloudEvent:
    """Stage `event` for `topic` (logical name) in the current transaction."""
    event = _with_trace(event)
    headers, value = encode(event)
    await session.execute(
        insert(outbox_table).values(
            event_id=event.id,
            topic=topic,
            key=key,
            headers={k: v.decode() for k, v in headers},
            value=value,
        )
    )
    await _notify_once(session)
    return event


async def emit(
    session: AsyncSession,
    data: EventData,
    *,
    topic: str,
    key: str,
    source: str,
    tenant_id: str | None,
    subject: str | None = None,
) -> CloudEvent:
    """Build the CloudEvent for a contract model and stage it in the outbox."""
    event = build_event(data, source=source, subject=subject or key, tenant_id=tenant_id)
    return await add_event(session, event, topic=topic, key=key)


@dataclass(frozen=True)
class Emission:
    """One event to stage: what `emit` takes, as a value (for `emit_many`)."""

    data: EventData
    topic: str
    key: str
    source: str
    tenant_id: str | None
    subject: str | None = None


# One statement whatever the batch size (a fixed text, so it is prepared once); WITH
# ORDINALITY keeps the rows' ids in the given order, which is the relay's per-key order.
_INSERT_MANY = text(
    "INSERT INTO outbox (event_id, topic, key, headers, value) "
    "SELECT u.event_id, u.topic, u.key, u.headers::jsonb, u.value "
    "FROM unnest(CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), CAST(:keys AS text[]), "
    "CAST(:headers AS text[]), CAST(:values AS bytea[])) "
    "WITH ORDINALITY AS u(event_id, topic, key, headers, value, n) ORDER BY u.n"
)


async def emit_many(session: AsyncSession, items: Sequence[Emission]) -> list[CloudEvent]:
    """`emit` for a batch: the same events (ids, headers, trace context, tenant), staged in
    order with one INSERT and at most one NOTIFY per transaction."""
    if not items:
        return []
    events = [
        _with_trace(
            build_event(e.data, source=e.source, subject=e.subject or e.key, tenant_id=e.tenant_id)
        )
        for e in items
    ]
    encoded = [encode(event) for event in events]
    await session.execute(
        _INSERT_MANY,
        {
            "event_ids": [str(event.id) for event in events],
            "topics": [e.topic for e in items],
            "keys": [e.key for e in items],
            "headers": [json.dumps({k: v.decode() for k, v in headers}) for headers, _ in encoded],
            "values": [value for _, value in encoded],
        },
    )
    await _notify_once(session)
    return events


@dataclass
class RelayConfig:
    service: str
    bootstrap_servers: str
    topic_prefix: str = ""
    batch_size: int = 500
    poll_interval: float = 0.5
    send_timeout: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    cleanup_after_seconds: float = 3600.0


ProducerFactory = Callable[[RelayConfig], AIOKafkaProducer]


def default_producer(cfg: RelayConfig) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap_servers,
        client_id=f"chorus-{cfg.service}-outbox",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=int(cfg.send_timeout * 1000),
        retry_backoff_ms=100,
    )


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        cfg: RelayConfig,
        producer_factory: ProducerFactory = default_producer,
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published_total = 0
        self.is_leader = False
        self._last_cleanup = 0.0

    async def run(self) -> None:
        """Run until `stop()`; survives broker and database outages with backoff."""
        backoff = self.cfg.backoff_initial
        while not self._stopping.is_set():
            try:
                await self._lead()
                backoff = self.cfg.backoff_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay error, retrying", extra={"fields": {"error": str(exc)}})
                await self._sleep(backoff)
                backoff = min(self.cfg.backoff_max, backoff * 2)
        await self._close_producer()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _lead(self) -> None:
        conn = await asyncpg.connect(to_asyncpg_dsn(self.db.url))
        try:
            lock_id = zlib.crc32(f"chorus-outbox-{self.cfg.service}".encode())
            while not self._stopping.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id):
                    break
                await self._sleep(self.cfg.poll_interval * 4)  # hot standby
            else:
                return
            self.is_leader = True
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            backoff = self.cfg.backoff_initial
            while not self._stopping.is_set():
                try:
                    sent = await self.publish_batch()
                    backoff = self.cfg.backoff_initial
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Kafka or Postgres: either way the producer's state is not trusted
                    # after a failed batch (an idempotent producer's sequence may be off).
                    metrics.OUTBOX_ERRORS.labels(self.cfg.service).inc()
                    log.warning(
                        "outbox publish failed; backing off",
                        extra={"fields": {"error": repr(exc), "backoffSeconds": backoff}},
                    )
                    await self._close_producer()
                    if conn.is_closed():
                        raise  # the lock went with the connection: lead again from the top
                    await self._sleep(backoff * (0.5 + random.random()))
                    backoff = min(self.cfg.backoff_max, backoff * 2)
                    continue
                await self._report_backlog()
                if sent < self.cfg.batch_size:
                    self._wake.clear()
                    await self._sleep(self.cfg.poll_interval, wake=True)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await conn.close()

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        async with self.db.engine.connect() as conn, conn.begin():
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, topic, key, headers, value, created_at FROM outbox "
                        "WHERE published_at IS NULL ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": self.cfg.batch_size},
                )
            ).all()
            if not rows:
                await self._maybe_cleanup(conn)
                return 0
            producer = await self._get_producer()
            futures = []
            for row in rows:
                headers = [(k, v.encode()) for k, v in row.headers.items()]
                futures.append(
                    await producer.send(
                        self.cfg.topic_prefix + row.topic,
                        value=bytes(row.value),
                        key=row.key.encode() if row.key is not None else None,
                        headers=headers,
                    )
                )
            await asyncio.wait_for(asyncio.gather(*futures), self.cfg.send_timeout)
            now = datetime.now(UTC)
            await conn.execute(
                text("UPDATE outbox SET published_at = :now WHERE id = ANY(:ids)"),
                {"now": now, "ids": [r.id for r in rows]},
            )
        for row in rows:
            metrics.OUTBOX_PUBLISH_LATENCY.labels(self.cfg.service).observe(
                max(0.0, (now - row.created_at).total_seconds())
            )
        metrics.OUTBOX_PUBLISHED.labels(self.cfg.service).inc(len(rows))
        self.published_total += len(rows)
        return len(rows)

    async def _report_backlog(self) -> None:
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
                        "WHERE published_at IS NULL"
                    )
                )
            ).one()
        metrics.OUTBOX_BACKLOG.labels(self.cfg.service).set(row.n)
        age = (datetime.now(UTC) - row.oldest).total_seconds() if row.oldest else 0.0
        metrics.OUTBOX_OLDEST_AGE.labels(self.cfg.service).set(age)

    async def _maybe_cleanup(self, conn: object) -> None:
        # Published rows are only needed for a short audit window; keep the table small.
        if time.monotonic() - self._last_cleanup < 60:
            return
        self._last_cleanup = time.monotonic()
        await conn.execute(  # type: ignore[attr-defined]
            text(
                "DELETE FROM outbox WHERE published_at IS NOT NULL "
                "AND published_at < now() - make_interval(secs => :s)"
            ),
            {"s": self.cfg.cleanup_after_seconds},
        )

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self.producer_factory(self.cfg)
            try:
                await asyncio.wait_for(producer.start(), self.cfg.send_timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), 2)
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        waiter = self._wake if wake else self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)
