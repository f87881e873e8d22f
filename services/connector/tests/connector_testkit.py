"""Helpers for the connector's component tests: commands, the harness around its runtime."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

from chorus_contracts.catalog import EventData, build_event
from chorus_contracts.envelope import CloudEvent, encode
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import DeleteRequested, PublishContent, PublishRequested
from chorus_runtime.consumer import Subscription
from chorus_runtime.db.database import to_asyncpg_dsn
from chorus_runtime.service import ServiceRuntime
from chorus_testing.postgres import ServiceDatabase, scalar

COMMANDS = "connector.commands"


def publish_command(
    workspace: str | None = None, *, target: uuid.UUID | None = None, **data: Any
) -> PublishRequested:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "command_id": uuid.uuid4(),
        "workspace_id": uuid.UUID(workspace) if workspace else uuid.uuid4(),
        "post_id": uuid.uuid4(),
        "target_id": target or uuid.uuid4(),
        "platform": Platform.LINKEDIN,
        "account_id": uuid.uuid4(),
        "attempt": 1,
        "idempotency_key": "",
        "deadline": now + timedelta(minutes=15),
        "content": PublishContent(text="Hello", hashtags=["launch"]),
        "requested_at": now,
    }
    fields.update(data)
    fields["idempotency_key"] = fields["idempotency_key"] or str(fields["target_id"])
    return PublishRequested(**fields)


def delete_command(workspace: str | None = None) -> DeleteRequested:
    return DeleteRequested(
        command_id=uuid.uuid4(),
        workspace_id=uuid.UUID(workspace) if workspace else uuid.uuid4(),
        post_id=uuid.uuid4(),
        target_id=uuid.uuid4(),
        platform=Platform.X,
        account_id=uuid.uuid4(),
        platform_post_id="1790000000000000000",
        requested_at=datetime.now(UTC),
    )


def as_event(data: EventData, *, tenant: str | None = None) -> CloudEvent:
    workspace = str(data.workspace_id)  # type: ignore[attr-defined]
    return build_event(
        data,
        source="/chorus/publishing",
        subject=str(data.target_id),  # type: ignore[attr-defined]
        tenant_id=tenant or workspace,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Harness:
    runtime: ServiceRuntime
    db: ServiceDatabase
    prefix: str
    broker: Any = None
    dead_letters: list[ConsumerRecord[Any, Any]] = field(default_factory=list)
    acks: list[tuple[str, str | None]] = field(default_factory=list)  # (topic, ce_id)

    @property
    def sub(self) -> Subscription:
        """The subscription on `connector.commands` (the connector may grow others)."""
        (sub,) = [s for s in self.runtime.consumers.subscriptions if s.topic == COMMANDS]
        return sub

    @property
    def topic(self) -> str:
        return self.prefix + COMMANDS

    def dlq_headers(self, index: int = 0) -> dict[str, str]:
        return {k: v.decode() for k, v in self.dead_letters[index].headers}

    async def send_raw(
        self,
        headers: list[tuple[str, bytes]] | dict[str, str],
        value: bytes,
        *,
        key: bytes | None = b"account-1",
        topic: str | None = None,
    ) -> None:
        if not isinstance(headers, dict):
            headers = {k: v.decode() for k, v in headers}
        await self.broker.publish(value, topic=topic or self.topic, key=key, headers=headers)

    async def send(self, event: CloudEvent, *, key: bytes | None = None) -> None:
        headers, value = encode(event)
        account = event.data.get("accountId")
        await self.send_raw(headers, value, key=key or (account.encode() if account else None))

    async def scalar(self, sql: str, **params: object) -> Any:
        return await scalar(self.db.owner_url, sql, **params)

    async def ledger_count(self) -> int:
        return int(await self.scalar("SELECT count(*) FROM publish_ledger"))

    async def processed_count(self) -> int:
        return int(await self.scalar("SELECT count(*) FROM processed_events"))

    def metric(self, outcome: str) -> float:
        return metric(
            "chorus_consumer_events_total",
            service="connector",
            group=self.sub.group_id,
            topic=COMMANDS,
            outcome=outcome,
        )

    def dlq_metric(self) -> float:
        return metric("chorus_consumer_dlq_total", service="connector", topic=COMMANDS)


async def reset_tables(owner_url: str) -> None:
    """Empty every table but alembic's (as the owner: TRUNCATE is not subject to RLS), so a
    module can share one cloned database instead of cloning one per test."""
    conn = await asyncpg.connect(to_asyncpg_dsn(owner_url))
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
