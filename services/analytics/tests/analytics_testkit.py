"""Helpers for the analytics tests: Kafka-shaped records, event builders, direct ingest."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chorus_analytics.ingest import ClickHouseWriter, PreparedBatch, prepare
from chorus_contracts.catalog import EventData, build_event
from chorus_contracts.envelope import CloudEvent, encode
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import (
    AccountConnected,
    AccountMetricsCollected,
    DeliverySucceeded,
    PostMetricsCollected,
)
from chorus_contracts.events.gateway import RequestAudited
from chorus_contracts.events.identity import WorkspaceCreated, WorkspaceSettingsChanged
from chorus_contracts.events.publishing import PostCreated, PostStatus
from chorus_contracts.registry import load_registry
from chorus_runtime.clickhouse import ClickHouseClient

TABLE_COUNTS = (
    "events",
    "post_deliveries",
    "post_metric_snapshots",
    "account_metric_snapshots",
    "audit_log",
    "workspace_changes",
    "post_changes",
    "account_changes",
)


@dataclass
class FakeRecord:
    """The fields of an aiokafka ConsumerRecord the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class Offsets:
    """Hands out increasing offsets per (topic, partition), like a log."""

    next: dict[tuple[str, int], int] = field(default_factory=dict)

    def take(self, topic: str, partition: int = 0) -> int:
        n = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = n + 1
        return n


def topic_of(event: CloudEvent) -> str:
    return load_registry().topic_for_type(event.type).name


def record_for(
    event: CloudEvent, offsets: Offsets, *, prefix: str = "", partition: int = 0
) -> FakeRecord:
    headers, value = encode(event)
    topic = prefix + topic_of(event)
    return FakeRecord(topic, partition, offsets.take(topic, partition), None, value, headers)


def event(
    data: EventData, workspace: uuid.UUID | str | None, *, time: datetime | None = None
) -> CloudEvent:
    """The CloudEvent of `data`; `time` (ce_time) is when it happened, not when built."""
    built = build_event(data, source="/tests", tenant_id=str(workspace) if workspace else None)
    return built.model_copy(update={"time": time}) if time is not None else built


async def ingest(
    client: ClickHouseClient,
    events: Iterable[CloudEvent],
    offsets: Offsets | None = None,
) -> PreparedBatch:
    """Write events the way the consumer does (prepare + writer), without Kafka."""
    offsets = offsets or Offsets()
    batch = prepare([record_for(e, offsets) for e in events])
    assert not batch.dead, [repr(d.error) for d in batch.dead]
    dead = await ClickHouseWriter(client).write(batch)
    assert not dead
    return batch


async def counts(client: ClickHouseClient, *, final: bool = True) -> dict[str, int]:
    out = {}
    for table in TABLE_COUNTS:
        rows = await client.query(f"SELECT count() AS n FROM {table}{' FINAL' if final else ''}")
        out[table] = int(rows[0]["n"])
    return out


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- event builders --------------------------------------------------------------------------


def workspace_created(ws: uuid.UUID, timezone: str = "UTC") -> CloudEvent:
    return event(
        WorkspaceCreated(
            workspace_id=ws,
            name="Acme",
            slug=f"acme-{ws.hex[:6]}",
            plan="starter",
            owner_user_id=uuid.uuid4(),
            timezone=timezone,
            created_at=at("2025-01-01T00:00:00"),
        ),
        ws,
        time=at("2025-01-01T00:00:00"),
    )


def settings_changed(ws: uuid.UUID, timezone: str, when: str) -> CloudEvent:
    return event(
        WorkspaceSettingsChanged(
            workspace_id=ws,
            timezone=timezone,
            default_locale="en",
            changed_by=uuid.uuid4(),
            changed_at=at(when),
        ),
        ws,
        time=at(when),
    )


def account_connected(
    ws: uuid.UUID, account: uuid.UUID, platform: str = "linkedin", username: str = "acme"
) -> CloudEvent:
    return event(
        AccountConnected(
            account_id=account,
            workspace_id=ws,
            platform=Platform(platform),
            platform_account_id=f"pa-{account.hex[:8]}",
            username=username,
            connected_at=at("2025-01-01T00:00:00"),
        ),
        ws,
        time=at("2025-01-01T00:00:00"),
    )


def account_metrics(
    ws: uuid.UUID, account: uuid.UUID, when: str, followers: int, platform: str = "linkedin"
) -> CloudEvent:
    return event(
        AccountMetricsCollected(
            workspace_id=ws,
            account_id=account,
            platform=Platform(platform),
            followers=followers,
            following=10,
            posts=5,
            collected_at=at(when),
        ),
        ws,
        time=at(when),
    )


def post_metrics(
    ws: uuid.UUID,
    account: uuid.UUID,
    platform_post_id: str,
    when: str,
    *,
    platform: str = "linkedin",
    post_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
    **values: int,
) -> CloudEvent:
    return event(
        PostMetricsCollected(
            workspace_id=ws,
            account_id=account,
            platform=Platform(platform),
            post_id=post_id,
            target_id=target_id,
            platform_post_id=platform_post_id,
            collected_at=at(when),
            **values,
        ),
        ws,
        time=at(when),
    )


def delivered(
    ws: uuid.UUID,
    post_id: uuid.UUID,
    account: uuid.UUID,
    platform_post_id: str,
    when: str,
    *,
    platform: str = "linkedin",
    target_id: uuid.UUID | None = None,
) -> CloudEvent:
    return event(
        DeliverySucceeded(
            command_id=uuid.uuid4(),
            workspace_id=ws,
            post_id=post_id,
            target_id=target_id or uuid.uuid4(),
            platform=Platform(platform),
            account_id=account,
            attempt=1,
            platform_post_id=platform_post_id,
            url=f"https://example.test/{platform_post_id}",
            published_at=at(when),
        ),
        ws,
        time=at(when),
    )


def post_created(
    ws: uuid.UUID, post_id: uuid.UUID, text: str, hashtags: list[str], when: str
) -> CloudEvent:
    return event(
        PostCreated(
            post_id=post_id,
            workspace_id=ws,
            status=PostStatus.SCHEDULED,
            text=text,
            hashtags=hashtags,
            created_at=at(when),
        ),
        ws,
        time=at(when),
    )


def audited(
    ws: uuid.UUID | None, action: str, when: str, status: int = 201, actor: str = "u1"
) -> CloudEvent:
    return event(
        RequestAudited(
            workspace_id=ws,
            actor_type="user",
            actor_id=actor,
            action=action,
            resource_type="post",
            resource_id=str(uuid.uuid4()),
            status_code=status,
            ip="192.0.2.1",
            user_agent="tests",
            request_id=f"req_{uuid.uuid4().hex[:8]}",
            duration_ms=12.5,
            occurred_at=at(when),
        ),
        ws,
        time=at(when),
    )
