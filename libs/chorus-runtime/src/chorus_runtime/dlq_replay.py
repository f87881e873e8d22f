"""Replay a dead-letter topic into its source topic, once the cause is fixed.

`<topic>.dlq` records keep the original key, value and headers plus `dlq_*` headers saying
why they failed. Replaying republishes key, value and original headers to `<topic>` (the
consumers are idempotent by event id, so a replay of something already applied is a no-op)
with `dlq_replays` counting how often this record came back; a record replayed
`max_replays` times already is left alone and reported, so a still-broken message cannot
loop forever. Progress is the replay group's committed offsets: an interrupted run resumes
where it stopped, and a second run replays nothing new.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPLAY_GROUP = "chorus.dlq-replay"
REPLAYS_HEADER = "dlq_replays"


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0
    skipped_offsets: list[tuple[int, int]] = field(default_factory=list)


UNREADABLE_COUNT = 1_000_000  # a `dlq_replays` that is not a number: never replayed again


def replay_headers(headers: list[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], int]:
    """Original headers without the DLQ's own, plus the incremented replay count."""
    previous = 0
    kept: list[tuple[str, bytes]] = []
    for name, value in headers:
        if name == REPLAYS_HEADER:
            raw = value or b"0"
            previous = int(raw) if raw.isdigit() else UNREADABLE_COUNT
        elif not name.startswith("dlq_"):
            kept.append((name, value))
    return [*kept, (REPLAYS_HEADER, str(previous + 1).encode())], previous


async def replay_dlq(
    bootstrap: str,
    topic: str,
    *,
    limit: int | None = None,
    max_replays: int = 3,
    dry_run: bool = False,
    progress_every: int = 500,
) -> ReplayReport:
    """Replay `topic + ".dlq"` into `topic` (physical names) up to its current end."""
    if progress_every < 1:
        raise ValueError("progress_every must be at least 1")
    dlq = f"{topic}.dlq"
    report = ReplayReport()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{REPLAY_GROUP}.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        if dlq not in await consumer.topics():
            return report
        # The producer's lookup waits for the topic's metadata (the consumer's does not).
        partitions = [TopicPartition(dlq, p) for p in sorted(await producer.partitions_for(dlq))]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if await consumer.position(tp) < end[tp]}
        while pending and (limit is None or report.replayed + report.skipped < limit):
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=200)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp] or (
                        limit is not None and report.replayed + report.skipped >= limit
                    ):
                        break
                    headers, previous = replay_headers(list(record.headers or ()))
                    if previous >= max_replays:
                        report.skipped += 1
                        report.skipped_offsets.append((tp.partition, record.offset))
                    else:
                        if not dry_run:
                            await producer.send_and_wait(
                                topic, value=record.value, key=record.key, headers=headers
                            )
                        report.replayed += 1
                    if not dry_run:
                        # Committed record by record after its send: a crash replays at most
                        # the one in flight (absorbed by the consumers' dedupe).
                        await consumer.commit({tp: record.offset + 1})
                    done = report.replayed + report.skipped
                    if done % progress_every == 0:
                        print(f"[dlq] {dlq}: {done} handled", file=sys.stderr, flush=True)
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    finally:
        await producer.stop()
        await consumer.stop()
    return report
