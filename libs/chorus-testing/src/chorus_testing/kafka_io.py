"""Plain Kafka reads and writes for tests (aiokafka, no Chorus code in between): what an
outside consumer or producer of the topics would see and do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

Records = list[ConsumerRecord]  # type: ignore[type-arg]
Headers = Sequence[tuple[str, bytes]]


async def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[Records], bool] | None = None,
    expect: int | None = None,
    timeout: float = 15.0,
    settle: float = 0.0,
) -> Records:
    """Every record of `topic` from the start, read with a throwaway consumer group until
    `until(records)` holds (or `expect` records arrived, or `timeout` passed), then for as
    long as new records keep coming within `settle` seconds — so a duplicate right behind
    the expected records is seen too. Without `until`/`expect` it reads until quiet."""
    if until is None and expect is not None:
        wanted = expect

        def until(records: Records) -> bool:
            return len(records) >= wanted

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: Records = []
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + timeout
        while until is not None and not until(out) and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
        quiet_since = loop.time()
        while settle and loop.time() - quiet_since < settle and loop.time() < deadline + settle:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
                quiet_since = loop.time()
    finally:
        await consumer.stop()
    return out


async def produce_records(
    bootstrap: str,
    topic: str,
    items: Iterable[tuple[Headers, bytes | None]],
    *,
    key: bytes | None = b"k",
) -> None:
    """Send (headers, value) pairs in order, each acknowledged by every replica."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for headers, value in items:
            await producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
    finally:
        await producer.stop()
