"""Helpers for the publishing service's tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chorus_contracts.catalog import EventData, build_event, catalog, parse_data
from chorus_contracts.envelope import CloudEvent, decode, encode
from chorus_contracts.events.common import Role
from chorus_contracts.events.connector import (
    DeleteRequested,
    DeliveryFailed,
    DeliverySucceeded,
    FailureKind,
    PublishRequested,
)
from chorus_contracts.events.identity import WorkspaceSettingsChanged
from chorus_publishing.repository import upsert_account
from chorus_runtime.db.database import to_asyncpg_dsn
from chorus_runtime.service import ServiceRuntime
from chorus_testing.auth import TestTokens
from chorus_testing.postgres import ServiceDatabase, scalar


def post_body(*platforms: str, text: str = "Hello from Chorus", **extra: Any) -> dict[str, Any]:
    return {
        "content": {"text": text, "hashtags": ["launch"]},
        "platforms": [
            {"platform": p, "accountId": str(uuid.uuid4())} for p in (platforms or ("x",))
        ],
        **extra,
    }


@dataclass
class OutboxRow:
    id: int
    topic: str
    key: str | None
    headers: dict[str, str]
    value: bytes
    published_at: Any

    @property
    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.headers.items()]

    @property
    def data(self) -> EventData:
        return parse_data(decode(self.kafka_headers, self.value, known_types=catalog()))


@dataclass
class Publishing:
    client: httpx.AsyncClient
    db: ServiceDatabase
    tokens: TestTokens
    runtime: ServiceRuntime | None = None
    broker: Any = None  # the in-memory (TestKafkaBroker-patched) broker

    def headers(self, workspace: str, role: str = "owner", **kw: Any) -> dict[str, str]:
        return self.tokens.headers(workspace, role, **kw)

    async def connect(
        self,
        workspace: str,
        platform: str = "x",
        *,
        account_id: str | None = None,
        status: str = "active",
        username: str | None = None,
    ) -> str:
        """An account of `workspace` in the connector.accounts projection (the repository
        function the consumer uses), so posts may target it."""
        assert self.runtime is not None and self.runtime.db is not None
        account_id = account_id or str(uuid.uuid4())
        async with self.runtime.db.unit_of_work(tenant_id=workspace) as uow:
            await upsert_account(
                uow.session,
                id=account_id,
                workspace_id=workspace,
                platform=platform,
                username=username or f"{platform}-{account_id[:8]}",
                status=status,
            )
            await uow.commit()
        return account_id

    async def body(self, workspace: str, *platforms: str, **kw: Any) -> dict[str, Any]:
        """`post_body(...)` whose accounts are connected accounts of `workspace`."""
        body = post_body(*platforms, **kw)
        for target in body["platforms"]:
            await self.connect(workspace, target["platform"], account_id=target["accountId"])
        return body

    async def create(
        self, workspace: str, *platforms: str, role: str = "owner", **kw: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/posts",
            json=await self.body(workspace, *platforms, **kw),
            headers=self.headers(workspace, role),
        )

    async def create_ok(self, workspace: str, *platforms: str) -> dict[str, Any]:
        resp = await self.create(workspace, *platforms)
        assert resp.status_code == 201, resp.text
        return resp.json()["post"]  # type: ignore[no-any-return]

    async def scalar(self, sql: str, **params: object) -> Any:
        return await scalar(self.db.owner_url, sql, **params)

    async def outbox(self) -> list[OutboxRow]:
        return await outbox_rows(self.db.owner_url)

    # -- helpers for the scheduler, consumer and calendar tests ------------------------------

    @property
    def dispatcher(self) -> Any:
        """The runtime's `Dispatcher` (drive it with `tick(now=…)`)."""
        assert self.runtime is not None
        return self.runtime.dispatcher  # type: ignore[attr-defined]

    async def tick(self, now: datetime | None = None) -> int:
        return int(await self.dispatcher.tick(now=now))

    async def get(self, workspace: str, post_id: str, role: str = "owner") -> dict[str, Any]:
        resp = await self.client.get(
            f"/api/v1/posts/{post_id}", headers=self.headers(workspace, role)
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["post"]  # type: ignore[no-any-return]

    async def commands(self) -> list[PublishRequested | DeleteRequested]:
        """Every command staged on `connector.commands`, in outbox order."""
        out: list[PublishRequested | DeleteRequested] = []
        for row in await self.outbox():
            if row.topic == "connector.commands":
                data = row.data
                assert isinstance(data, PublishRequested | DeleteRequested), data
                out.append(data)
        return out

    async def publish_commands(self) -> list[PublishRequested]:
        """The publish commands staged on `connector.commands`, in outbox order."""
        return [c for c in await self.commands() if isinstance(c, PublishRequested)]

    async def delete_commands(self) -> list[DeleteRequested]:
        return [c for c in await self.commands() if isinstance(c, DeleteRequested)]

    async def post_events(self) -> list[EventData]:
        """Every event staged on `publishing.posts`, in outbox order."""
        return [r.data for r in await self.outbox() if r.topic == "publishing.posts"]

    async def send_event(self, event: CloudEvent, *, topic: str, key: str | None = None) -> None:
        """Feed an encoded CloudEvent through the service's own consumer (in memory)."""
        assert self.runtime is not None and self.broker is not None
        headers, value = encode(event)
        await self.broker.publish(
            value,
            topic=self.runtime.settings.topic_prefix + topic,
            key=key.encode() if key else None,
            headers={k: v.decode() for k, v in headers},
        )

    async def send(
        self, data: EventData, *, topic: str, tenant: str | None, key: str | None = None
    ) -> CloudEvent:
        event = build_event(data, source="/tests", subject=key, tenant_id=tenant)
        await self.send_event(event, topic=topic, key=key)
        return event

    async def deliver(self, data: DeliverySucceeded | DeliveryFailed) -> CloudEvent:
        """A delivery result from the connector on `connector.deliveries`."""
        return await self.send(
            data,
            topic="connector.deliveries",
            tenant=str(data.workspace_id),
            key=str(data.post_id),
        )

    async def require_approval(self, workspace: str, *roles: str) -> None:
        """The workspace's approval policy, as the gateway announces it."""
        await self.send(
            WorkspaceSettingsChanged(
                workspace_id=uuid.UUID(workspace),
                timezone="UTC",
                default_locale="en",
                approval_required_for=[Role(r) for r in roles],
                changed_by=uuid.uuid4(),
                changed_at=datetime.now(UTC),
            ),
            topic="identity.workspaces",
            tenant=workspace,
            key=workspace,
        )


def succeeded(
    command: PublishRequested, *, platform_post_id: str | None = None, **kw: Any
) -> DeliverySucceeded:
    """The connector's success result for `command`."""
    pid = platform_post_id or f"pp-{command.target_id.hex[:12]}"
    fields: dict[str, Any] = {
        "command_id": command.command_id,
        "workspace_id": command.workspace_id,
        "post_id": command.post_id,
        "target_id": command.target_id,
        "platform": command.platform,
        "account_id": command.account_id,
        "attempt": command.attempt,
        "platform_post_id": pid,
        "url": f"https://{command.platform.value}.example/p/{pid}",
        "published_at": datetime.now(UTC).replace(microsecond=0),
    }
    fields.update(kw)
    return DeliverySucceeded(**fields)


def failed(
    command: PublishRequested,
    kind: FailureKind | str = FailureKind.PERMANENT,
    *,
    code: str = "rejected",
    message: str = "the platform said no",
    retry_after: float | None = None,
    **kw: Any,
) -> DeliveryFailed:
    """The connector's failure result for `command`."""
    fields: dict[str, Any] = {
        "command_id": command.command_id,
        "workspace_id": command.workspace_id,
        "post_id": command.post_id,
        "target_id": command.target_id,
        "platform": command.platform,
        "account_id": command.account_id,
        "attempt": command.attempt,
        "kind": FailureKind(kind),
        "error_code": code,
        "error_message": message,
        "retry_after_seconds": retry_after,
        "failed_at": datetime.now(UTC),
    }
    fields.update(kw)
    return DeliveryFailed(**fields)


async def outbox_rows(url: str) -> list[OutboxRow]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, topic, key, headers, value, published_at "
                        "FROM outbox ORDER BY id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return [
        OutboxRow(r.id, r.topic, r.key, r.headers, bytes(r.value), r.published_at) for r in rows
    ]


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
